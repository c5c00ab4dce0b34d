//! The progress bar a person at a terminal sees during `pull`: pages done out of the page
//! count from page 1's `total`, an estimate of the time left, and keys per second. Nothing at
//! all is drawn unless both stdout and stderr are terminals, so cron mail and pipes stay free
//! of escape codes. While the bar is drawn, log lines (`-v`) are printed above it
//! ([`LogsAbove`]), and it is coloured only when stderr takes colour (`NO_COLOR`).

use std::io::IsTerminal;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressFinish, ProgressStyle};

use crate::api::client::RetryObserver;
use crate::api::{Page, PageSink};
use crate::error::Result;
use crate::terminal::{self, LogsAbove, Stream, counted};

/// Passes pages on to `inner`, advancing a bar on the way.
pub(crate) struct PageProgress<S> {
    inner: S,
    bar: Option<ProgressBar>,
    keys: u64,
    /// When the pass being drawn started: the pull's start for the first pass, so that page
    /// 1's own fetch counts in the rate and the time left.
    started: Instant,
    /// The listing pass being drawn; a new pass starts the bar again.
    pass: u32,
    /// Log lines go above the bar while this lives.
    _logs_above: Option<LogsAbove>,
}

impl<S: PageSink> PageProgress<S> {
    /// A bar only when it is wanted (`show`) and both output streams are terminals.
    pub(crate) fn new(inner: S, show: bool) -> PageProgress<S> {
        let terminal = std::io::stdout().is_terminal() && std::io::stderr().is_terminal();
        let bar = (show && terminal).then(new_bar);
        PageProgress {
            inner,
            _logs_above: bar.as_ref().map(LogsAbove::bar),
            bar,
            keys: 0,
            started: Instant::now(),
            pass: 0,
        }
    }

    /// Shows a retry on the progress line while it waits (`page 7: HTTP 429, retry 2/8 in
    /// 4s`), when there is a bar.
    pub(crate) fn retry_observer(&self) -> Option<RetryObserver> {
        let bar = self.bar.clone()?;
        Some(Box::new(move |notice: &str| {
            bar.set_message(notice.to_string())
        }))
    }

    /// Takes the bar off the screen; the summary line follows.
    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// `████████░░░ page 3/8  1200 keys, 640 keys/s, 2s left`, the message cut to the terminal's
/// width (a wrapped bar would leave its first line behind); the bar is cyan when stderr takes
/// colour. Dropped without `finish` (a failed pull), it still leaves the screen, so the error
/// line is not printed under a stale bar.
fn new_bar() -> ProgressBar {
    let colour = terminal::colour(Stream::Stderr);
    // indicatif styles through `console`, whose own rule differs from keysync's.
    console::set_colors_enabled_stderr(colour);
    let bar = if colour {
        "{bar:30.cyan/blue}"
    } else {
        "{bar:30}"
    };
    let template = format!("{bar} page {{pos}}/{{len}}  {{wide_msg}}");
    let style = ProgressStyle::with_template(&template).expect("the template is valid");
    ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
        .with_style(style)
        .with_finish(ProgressFinish::AndClear)
}

impl<S: PageSink + Send> PageSink for PageProgress<S> {
    async fn stage(&mut self, pass: u32, page: Page) -> Result<()> {
        if let Some(bar) = self.bar.clone() {
            if pass != self.pass {
                self.start_pass(&bar, pass, &page);
            }
            // Page 1 read again to close the pass: its keys are counted, its page drawn.
            let closing_reread = page.number == 1 && bar.position() > 0;
            if !closing_reread {
                self.advance(&bar, pass, &page);
            }
        }
        self.inner.stage(pass, page).await
    }
}

impl<S> PageProgress<S> {
    /// A new listing pass starts the bar, the key count and the estimate again.
    fn start_pass(&mut self, bar: &ProgressBar, pass: u32, first: &Page) {
        self.pass = pass;
        bar.set_length(first.expected_last_page().map_or(1, u64::from));
        bar.set_position(0);
        self.keys = 0;
        if pass > 1 {
            self.started = Instant::now();
        }
    }

    /// One more page of `pass` done: the bar, the keys so far, their rate and the time left.
    fn advance(&mut self, bar: &ProgressBar, pass: u32, page: &Page) {
        self.keys += page.len() as u64;
        bar.inc(1);
        let again = if pass > 1 {
            format!(" (pass {pass})")
        } else {
            String::new()
        };
        let keys = counted(self.keys, "key");
        let elapsed = self.started.elapsed().as_secs_f64();
        // Under a quarter second (page 1 of a later pass) a rate would be noise.
        if elapsed < 0.25 {
            bar.set_message(format!("{keys}{again}"));
        } else {
            let done = bar.position() as f64;
            let left = bar.length().unwrap_or(0).saturating_sub(bar.position()) as f64;
            let rate = self.keys as f64 / elapsed;
            let time_left = (elapsed / done * left).ceil();
            bar.set_message(format!(
                "{keys}, {rate:.0} keys/s, {time_left:.0}s left{again}"
            ));
        }
        // `total` is only a hint: a listing longer than it said stretches the bar.
        if bar.length().is_some_and(|length| bar.position() >= length) && !page.is_short() {
            bar.set_length(bar.position() + 1);
        }
    }
}
