//! The progress bar a person at a terminal sees during `pull`: pages done out of the page
//! count from page 1's `total`, and keys per second. Nothing at all is drawn unless both
//! stdout and stderr are terminals, so cron mail and pipes stay free of escape codes.

use std::io::IsTerminal;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::api::client::RetryObserver;
use crate::api::{Page, PageSink};
use crate::error::Result;

/// Passes pages on to `inner`, advancing a bar on the way.
pub struct PageProgress<S> {
    inner: S,
    bar: Option<ProgressBar>,
    keys: u64,
    started: Instant,
    /// The listing pass being drawn; a new pass starts the bar again.
    pass: u32,
}

impl<S: PageSink> PageProgress<S> {
    /// A bar only when it is wanted (`show`) and both output streams are terminals.
    pub fn new(inner: S, show: bool) -> PageProgress<S> {
        let terminal = std::io::stdout().is_terminal() && std::io::stderr().is_terminal();
        let bar = (show && terminal).then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template("{bar:30} {pos}/{len} pages  {msg}")
                .expect("the template is valid");
            bar.set_style(style);
            bar
        });
        PageProgress {
            inner,
            bar,
            keys: 0,
            started: Instant::now(),
            pass: 0,
        }
    }

    /// Shows a retry on the progress line while it waits (`page 7: HTTP 429, retry 2/8 in
    /// 4s`), when there is a bar.
    pub fn retry_observer(&self) -> Option<RetryObserver> {
        let bar = self.bar.clone()?;
        Some(Box::new(move |notice: &str| {
            bar.set_message(notice.to_string())
        }))
    }

    /// Takes the bar off the screen; the summary line follows.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl<S: PageSink + Send> PageSink for PageProgress<S> {
    async fn stage(&mut self, pass: u32, page: Page) -> Result<()> {
        if let Some(bar) = &self.bar {
            if pass != self.pass {
                self.pass = pass;
                bar.set_length(page.expected_last_page().map_or(1, u64::from));
                bar.set_position(0);
            }
            self.keys += page.items.len() as u64;
            let rate = self.keys as f64 / self.started.elapsed().as_secs_f64().max(0.001);
            let again = if pass > 1 {
                format!(" (pass {pass})")
            } else {
                String::new()
            };
            bar.set_message(format!("{} keys, {rate:.0} keys/s{again}", self.keys));
            bar.inc(1);
            // `total` is only a hint: a listing longer than it said stretches the bar.
            if bar.length().is_some_and(|length| bar.position() >= length) && !page.is_short() {
                bar.set_length(bar.position() + 1);
            }
        }
        self.inner.stage(pass, page).await
    }
}
