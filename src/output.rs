//! Writing results to stdout. A closed pipe (`keysync ... | head`) is not an error: the reader
//! has what it wanted, so output stops quietly.

use std::io::Write;

use crate::error::{Error, Result};

/// Prints one line to stdout.
pub fn print_line(text: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Error::Internal(format!("cannot write to stdout: {e}"))),
    }
}
