//! What keysync's text for people looks like on the two output streams: whether a stream gets
//! colour ([`colour`], the one place that decides it), how wide stdout's tables may be
//! ([`table_width`]), the `keysync: error:` / `keysync: warning:` prefixes of stderr (log lines
//! included, [`LogFormat`]), log lines drawn above a progress bar ([`LogsAbove`]), and counted
//! nouns ([`counted`]: "1 key", "2 keys").
//!
//! A leaf: every module may use it, and it uses none of keysync's.

use std::fmt;
use std::io::{self, IsTerminal, Write};
use std::sync::Mutex;

use indicatif::ProgressBar;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

/// One of the two streams keysync writes text to; each decides its colour on its own, so that
/// `keysync query | less` keeps colour in the logs on the terminal and none in the pipe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stream {
    /// Tables and summary lines.
    Stdout,
    /// Log lines, warnings, errors and the progress bar.
    Stderr,
}

impl Stream {
    fn is_terminal(self) -> bool {
        match self {
            Stream::Stdout => io::stdout().is_terminal(),
            Stream::Stderr => io::stderr().is_terminal(),
        }
    }
}

/// Whether text written to `stream` may carry colour and other SGR styling (bold included).
/// The environment is read by anstyle-query, as clap's own colour choice (anstream) reads it,
/// so that `--help`, usage errors and keysync's output agree: see [`colour_by`] for the rule.
pub(crate) fn colour(stream: Stream) -> bool {
    colour_by(Asked::by_environment(), stream.is_terminal())
}

/// What the environment asks of colour.
#[derive(Clone, Copy, Debug, Default)]
struct Asked {
    /// `NO_COLOR` set to anything but the empty string (no-color.org).
    no_color: bool,
    /// `CLICOLOR_FORCE` set to anything but the empty string or `0` (bixense.com/clicolors).
    clicolor_force: bool,
    /// `CLICOLOR=0`.
    clicolor_off: bool,
    /// `TERM=dumb`.
    dumb_terminal: bool,
}

impl Asked {
    fn by_environment() -> Asked {
        let var = std::env::var_os;
        Asked {
            no_color: anstyle_query::no_color(),
            // anstyle-query takes `CLICOLOR_FORCE=0` as a force too; bixense.com's rule, which
            // keysync has always followed, is that 0 does not force.
            clicolor_force: anstyle_query::clicolor_force()
                && var("CLICOLOR_FORCE").is_some_and(|value| value != "0"),
            clicolor_off: anstyle_query::clicolor() == Some(false),
            // anstyle-query's TERM check also fails when TERM is unset, which would leave plain
            // a terminal reached through `env -i`, which keysync has always coloured.
            dumb_terminal: !anstyle_query::term_supports_color() && var("TERM").is_some(),
        }
    }
}

/// The colour rule, given what the environment asks and whether the stream is a terminal:
/// `NO_COLOR` never colours; else `CLICOLOR_FORCE` always colours, even into a pipe; else
/// `CLICOLOR=0` never colours; else a terminal gets colour unless `TERM=dumb`.
fn colour_by(asked: Asked, is_terminal: bool) -> bool {
    if asked.no_color {
        return false;
    }
    if asked.clicolor_force {
        return true;
    }
    is_terminal && !asked.clicolor_off && !asked.dumb_terminal
}

/// The width tables on stdout must fit in, or `None` to print them as they are: a pipe or a
/// file never gets wrapped or cut output. On a terminal, `COLUMNS` (when a whole number above
/// 0) wins over the terminal's own size, as it does for `ls`; a terminal of unknown width is
/// not wrapped. The width is read on its own: a terminal that reports 0 rows (a serial
/// console, some CI and container terminals) still has its columns honoured.
pub(crate) fn table_width() -> Option<u16> {
    let stdout = io::stdout();
    if !stdout.is_terminal() {
        return None;
    }
    let measured = rustix::termios::tcgetwinsize(&stdout)
        .ok()
        .map(|size| size.ws_col);
    width_by(std::env::var("COLUMNS").ok().as_deref(), measured)
}

/// [`table_width`] on a terminal: `COLUMNS`, else the measured width; zero is unknown.
fn width_by(columns: Option<&str>, measured: Option<u16>) -> Option<u16> {
    let columns = columns.and_then(|text| text.trim().parse::<u16>().ok());
    columns.or(measured).filter(|&width| width > 0)
}

/// `count` and the noun for it, singular for exactly one: `counted(1, "key")` is "1 key",
/// `counted(3, "key")` "3 keys", `counted(2, "pass")` "2 passes", `counted(0, "entry")`
/// "0 entries". Any integer type; only for the regular nouns of keysync's messages.
pub(crate) fn counted(count: impl fmt::Display, noun: &str) -> String {
    let count = count.to_string();
    if count == "1" {
        return format!("1 {noun}");
    }
    let consonant_y = noun.strip_suffix('y').filter(|stem| {
        stem.chars()
            .last()
            .is_some_and(|c| !"aeiou".contains(c.to_ascii_lowercase()))
    });
    match consonant_y {
        Some(stem) => format!("{count} {stem}ies"),
        None if ["s", "x", "z", "ch", "sh"]
            .iter()
            .any(|end| noun.ends_with(end)) =>
        {
            format!("{count} {noun}es")
        }
        None => format!("{count} {noun}s"),
    }
}

/// SGR codes, written only where [`colour`] said yes.
const BOLD_RED: &str = "\x1b[1;31m";
const BOLD_YELLOW: &str = "\x1b[1;33m";
const GREEN: &str = "\x1b[32m";
const BLUE: &str = "\x1b[34m";
const MAGENTA: &str = "\x1b[35m";
const RESET: &str = "\x1b[0m";

/// The start of every error keysync prints, `keysync: error: `, with the word in bold red
/// when stderr takes colour.
pub(crate) fn error_prefix() -> String {
    prefix("error", BOLD_RED, colour(Stream::Stderr))
}

fn prefix(word: &str, style: &str, coloured: bool) -> String {
    if coloured {
        format!("keysync: {style}{word}:{RESET} ")
    } else {
        format!("keysync: {word}: ")
    }
}

/// Log lines as the rest of stderr reads: `keysync: error: ...`, `keysync: warning: ...`, and
/// `keysync: info:` / `debug:` / `trace:` for the lines `-v` adds. No time (cron, journald
/// and Docker add their own) and no target (only keysync's own events pass the filter).
pub(crate) struct LogFormat;

impl<S, N> FormatEvent<S, N> for LogFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let (word, style) = match *event.metadata().level() {
            Level::ERROR => ("error", BOLD_RED),
            Level::WARN => ("warning", BOLD_YELLOW),
            Level::INFO => ("info", GREEN),
            Level::DEBUG => ("debug", BLUE),
            Level::TRACE => ("trace", MAGENTA),
        };
        let coloured = writer.has_ansi_escapes();
        write!(writer, "{}", prefix(word, style, coloured))?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// The progress bar on screen, if any: log lines are drawn above it.
static BAR: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// While it lives, log lines take `bar` off the screen, are written, and put it back, so no
/// stale copy of the bar is left between them. Dropping it ends that.
pub(crate) struct LogsAbove(());

impl LogsAbove {
    pub(crate) fn bar(bar: &ProgressBar) -> LogsAbove {
        *BAR.lock().unwrap_or_else(|e| e.into_inner()) = Some(bar.clone());
        LogsAbove(())
    }
}

impl Drop for LogsAbove {
    fn drop(&mut self) {
        *BAR.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// The log subscriber's writer: stderr, above the progress bar while there is one.
pub(crate) struct LogWriter;

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = LogLine;

    fn make_writer(&'a self) -> LogLine {
        LogLine(Vec::new())
    }
}

/// One formatted log line, written to stderr in one piece when dropped. Write errors are
/// dropped: a closed stderr must not stop a pull (and the subscriber would report them on that
/// same stderr).
pub(crate) struct LogLine(Vec<u8>);

impl Write for LogLine {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for LogLine {
    fn drop(&mut self) {
        let line = std::mem::take(&mut self.0);
        let write = || {
            let _ = io::stderr().lock().write_all(&line);
        };
        let bar = BAR.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match bar {
            Some(bar) => bar.suspend(write),
            None => write(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_follows_no_color_then_clicolor_force_then_the_terminal() {
        let unset = Asked::default();
        assert!(colour_by(unset, true));
        assert!(!colour_by(unset, false));
        let no_color = Asked {
            no_color: true,
            ..unset
        };
        assert!(!colour_by(no_color, true));
        let forced = Asked {
            clicolor_force: true,
            ..unset
        };
        assert!(colour_by(forced, false));
        assert!(!colour_by(
            Asked {
                clicolor_force: true,
                ..no_color
            },
            true
        ));
        let clicolor_off = Asked {
            clicolor_off: true,
            ..unset
        };
        assert!(!colour_by(clicolor_off, true));
        assert!(colour_by(
            Asked {
                clicolor_force: true,
                ..clicolor_off
            },
            false
        ));
        let dumb = Asked {
            dumb_terminal: true,
            ..unset
        };
        assert!(!colour_by(dumb, true));
    }

    #[test]
    fn columns_wins_over_the_measured_width_and_zero_is_unknown() {
        assert_eq!(width_by(Some("60"), Some(200)), Some(60));
        assert_eq!(width_by(None, Some(200)), Some(200));
        assert_eq!(width_by(Some("wide"), Some(120)), Some(120));
        assert_eq!(width_by(Some("0"), None), None);
        assert_eq!(width_by(None, Some(0)), None);
        assert_eq!(width_by(None, None), None);
    }

    #[test]
    fn counted_nouns_are_singular_for_one_only() {
        assert_eq!(counted(1, "attempt"), "1 attempt");
        assert_eq!(counted(3, "attempt"), "3 attempts");
        assert_eq!(counted(0, "key"), "0 keys");
        assert_eq!(counted(1usize, "key"), "1 key");
        assert_eq!(counted(-1i64, "key"), "-1 keys");
        assert_eq!(counted(1, "page"), "1 page");
        assert_eq!(counted(2, "page"), "2 pages");
        assert_eq!(counted(1, "pass"), "1 pass");
        assert_eq!(counted(3, "pass"), "3 passes");
        assert_eq!(counted(2, "entry"), "2 entries");
        assert_eq!(counted(2, "key version"), "2 key versions");
        assert_eq!(counted(2, "day"), "2 days");
    }

    /// A writer the test can read back, as the subscriber makes one per event.
    struct Shared(std::sync::Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// One event of each level through [`LogFormat`], as stderr would receive them.
    fn logged(ansi: bool) -> String {
        let buffer = std::sync::Arc::new(Mutex::new(Vec::new()));
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(Level::TRACE)
            .with_ansi(ansi)
            .with_writer(move || Shared(writer.clone()))
            .event_format(LogFormat)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::error!("sync {} failed", 7);
            tracing::warn!("a warning");
            tracing::info!("page 3: HTTP 502");
            tracing::debug!("GET /api/token/?p=1");
            tracing::trace!("a trace");
        });
        String::from_utf8(buffer.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn log_lines_carry_keysync_s_prefixes_and_colour_only_when_asked() {
        assert_eq!(
            logged(false),
            "keysync: error: sync 7 failed\n\
             keysync: warning: a warning\n\
             keysync: info: page 3: HTTP 502\n\
             keysync: debug: GET /api/token/?p=1\n\
             keysync: trace: a trace\n"
        );
        assert_eq!(
            logged(true),
            "keysync: \x1b[1;31merror:\x1b[0m sync 7 failed\n\
             keysync: \x1b[1;33mwarning:\x1b[0m a warning\n\
             keysync: \x1b[32minfo:\x1b[0m page 3: HTTP 502\n\
             keysync: \x1b[34mdebug:\x1b[0m GET /api/token/?p=1\n\
             keysync: \x1b[35mtrace:\x1b[0m a trace\n"
        );
    }

    #[test]
    fn prefixes_colour_only_the_word() {
        assert_eq!(prefix("error", BOLD_RED, false), "keysync: error: ");
        assert_eq!(
            prefix("warning", BOLD_YELLOW, true),
            "keysync: \x1b[1;33mwarning:\x1b[0m "
        );
    }
}
