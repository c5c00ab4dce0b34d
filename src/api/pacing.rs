//! Pacing at the gateway's rate limit: a client-side sliding window in front of every request,
//! and the counts of what a pull sent.
//!
//! The gateway limits `/api` per client IP with a sliding window (N requests per W; rejected
//! requests do not count; see ../shared/cometapi-api.md). A pull cannot list faster than the
//! window allows, so the cheapest pull sends each request as soon as the window has room and
//! no sooner: every 429 is a wasted round trip and, without `Retry-After`, a guess how long to
//! wait. The [`Pacer`] keeps the times of the requests the server counted (sent, not answered
//! 429) and holds a request back while N of them lie within the last W.
//!
//! The window is known when `--max-rate` / `max_rate` gives it; otherwise it is learnt from the
//! first 429: N is the requests counted before it. With `Retry-After`, W is when the oldest of
//! them leaves the window (now + the wait). Without it, one probe request at a time goes out at
//! waits growing by √2 from the backoff base, and W is how long after the oldest counted request
//! the first probe passed. Until the window is known, requests are not held back.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::time::parse_positive_duration;

/// A rate limit: at most `requests` in any `window`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rate {
    pub requests: usize,
    pub window: Duration,
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}",
            self.requests,
            crate::time::readable_duration(self.window)
        )
    }
}

/// `--max-rate` and the profile's `max_rate`: `N/DURATION`, such as `360/180s`.
pub(crate) fn parse_rate(text: &str) -> Result<Rate, String> {
    let expected = "expected N/DURATION, requests per window, such as 360/180s (the gateway's \
                    default)";
    let (count, window) = text
        .trim()
        .split_once('/')
        .ok_or_else(|| format!("{expected}, got {text:?}"))?;
    let requests = count
        .trim()
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=1_000_000).contains(n))
        .ok_or_else(|| {
            format!("{expected}, got {text:?}: N must be a whole number from 1 to 1000000")
        })?;
    let window = parse_positive_duration(window).map_err(|e| format!("{expected}: {e}"))?;
    Ok(Rate { requests, window })
}

/// Every HTTP request a pull sent, and how many of them were answered 429.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RequestCounts {
    pub requests: u64,
    pub rate_limited: u64,
}

/// The counts as they grow, shared by the concurrent page fetches.
#[derive(Debug, Default)]
pub(crate) struct RequestCounter {
    requests: AtomicU64,
    rate_limited: AtomicU64,
}

impl RequestCounter {
    pub(crate) fn sent(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn rate_limited(&self) {
        self.rate_limited.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn counts(&self) -> RequestCounts {
        RequestCounts {
            requests: self.requests.load(Ordering::Relaxed),
            rate_limited: self.rate_limited.load(Ordering::Relaxed),
        }
    }
}

/// Probes of an unknown window that do not use up their page's retries: with waits growing by
/// √2 from 1 s (capped at 60 s) they outlast the gateway's 180 s window.
pub(crate) const FREE_PROBES: u32 = 16;

/// Who waits before a request answered 429 is sent again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RateLimited {
    /// The pacer holds the retry until the window has room; it uses up one of the page's
    /// retries.
    Paced,
    /// The same, but the 429 answered a probe of an unknown window, which costs no retry.
    Probe,
    /// Nothing is known about the window: the retry backs off exponentially.
    Backoff,
}

/// A request the pacer let go, to be told how it was answered.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Admission {
    sent_at: Instant,
    probe: bool,
}

/// The client's model of the server's window; see the module comment.
#[derive(Debug)]
pub(crate) struct Pacer {
    state: Mutex<State>,
    /// The first probe's wait after the first 429 (the retry backoff base).
    probe_base: Duration,
}

#[derive(Debug, Default)]
struct State {
    /// The window, when given or learnt.
    rate: Option<Rate>,
    /// When the requests the server counted (or may still count) were sent, oldest first.
    counted: VecDeque<Instant>,
    /// No request goes out before this (a `Retry-After`).
    paused_until: Option<Instant>,
    /// Learning without `Retry-After`: the first 429 came, the window is not known yet.
    learning: Option<Learning>,
}

#[derive(Debug)]
struct Learning {
    /// Requests counted before the first 429: the window's N.
    requests: usize,
    /// The oldest counted request when the first 429 came: it leaves the window first.
    oldest: Instant,
    /// When the next probe may go, and whether one is out now.
    next_probe: Instant,
    probe_out: bool,
    probes: u32,
}

impl State {
    /// A window that proved too generous (requests that were in flight when it was learnt,
    /// another client on the same IP, a lower limit than `--max-rate`): keep to what the
    /// server took.
    fn keep_to_what_was_taken(&mut self, now: Instant) {
        if let Some(rate) = &mut self.rate {
            while self
                .counted
                .front()
                .is_some_and(|sent| now.duration_since(*sent) >= rate.window)
            {
                self.counted.pop_front();
            }
            rate.requests = self.counted.len().clamp(1, rate.requests);
        }
    }

    /// A 429 with `Retry-After`: nothing goes out before `until`, and with no window known
    /// yet, the requests counted since the oldest make one.
    fn pause_as_told(&mut self, until: Instant) {
        self.paused_until = Some(self.paused_until.map_or(until, |p| p.max(until)));
        self.learning = None;
        if self.rate.is_none()
            && let Some(oldest) = self.counted.front()
            && *oldest < until
        {
            let rate = Rate {
                requests: self.counted.len(),
                window: with_margin(until.duration_since(*oldest)),
            };
            tracing::info!("learnt the rate limit from Retry-After: {rate}");
            self.rate = Some(rate);
        }
    }

    /// A 429 without `Retry-After`, while not learning: the pacer holds the retry until the
    /// oldest request leaves a known window, or starts learning an unknown one. Says who waits.
    fn wait_out_the_window(&mut self, now: Instant, probe_base: Duration) -> RateLimited {
        match (&mut self.rate, self.counted.front()) {
            // Let the oldest leave the window before the next request.
            (Some(rate), Some(oldest)) => {
                self.paused_until = Some(*oldest + rate.window);
                RateLimited::Paced
            }
            // The window was full before this pull sent anything (another client, an earlier
            // pull): there is nothing to learn from, so the retry backs off as usual.
            (_, None) => RateLimited::Backoff,
            (None, Some(oldest)) => {
                self.learning = Some(Learning {
                    requests: self.counted.len(),
                    oldest: *oldest,
                    next_probe: now + probe_base,
                    probe_out: false,
                    probes: 0,
                });
                RateLimited::Paced
            }
        }
    }
}

/// What [`Pacer::admit`] decided for one request, under the lock.
enum Decision {
    Go(Admission),
    Wait(Duration),
}

impl Pacer {
    pub(crate) fn new(rate: Option<Rate>, probe_base: Duration) -> Pacer {
        Pacer {
            state: Mutex::new(State {
                rate,
                ..State::default()
            }),
            probe_base: probe_base.max(Duration::from_millis(1)),
        }
    }

    /// About how long until the next request may go, for people (a retry's notice).
    pub(crate) fn wait_hint(&self) -> Duration {
        let state = self.lock();
        let now = Instant::now();
        let until = match (&state.learning, state.paused_until, state.rate) {
            (Some(learning), _, _) => Some(learning.next_probe),
            (None, Some(until), _) => Some(until),
            (None, None, Some(rate)) if state.counted.len() >= rate.requests => {
                state.counted.front().map(|oldest| *oldest + rate.window)
            }
            _ => None,
        };
        until.map_or(Duration::ZERO, |until| until.saturating_duration_since(now))
    }

    /// The window as given or learnt so far (what the tests check the pacer learnt).
    #[cfg(test)]
    fn rate(&self) -> Option<Rate> {
        self.lock().rate
    }

    /// Waits until the window has room for one more request, and counts it in.
    pub(crate) async fn admit(&self) -> Admission {
        loop {
            match self.decide(Instant::now()) {
                Decision::Go(admission) => return admission,
                Decision::Wait(wait) => tokio::time::sleep(wait).await,
            }
        }
    }

    fn decide(&self, now: Instant) -> Decision {
        let mut state = self.lock();
        if let Some(until) = state.paused_until {
            if now < until {
                return Decision::Wait(until - now);
            }
            state.paused_until = None;
        }
        if let Some(learning) = &mut state.learning {
            if learning.probe_out {
                // Nothing else goes out until the probe is answered; poll for its answer.
                return Decision::Wait(self.probe_base.min(Duration::from_millis(50)));
            }
            if now < learning.next_probe {
                return Decision::Wait(learning.next_probe - now);
            }
            learning.probe_out = true;
            learning.probes += 1;
            state.counted.push_back(now);
            return Decision::Go(Admission {
                sent_at: now,
                probe: true,
            });
        }
        if let Some(rate) = state.rate {
            while state
                .counted
                .front()
                .is_some_and(|sent| now.duration_since(*sent) >= rate.window)
            {
                state.counted.pop_front();
            }
            if state.counted.len() >= rate.requests
                && let Some(oldest) = state.counted.front()
            {
                return Decision::Wait(rate.window - now.duration_since(*oldest));
            }
        }
        state.counted.push_back(now);
        Decision::Go(Admission {
            sent_at: now,
            probe: false,
        })
    }

    /// The request was answered, and not with 429. The server counted it when it arrived, at
    /// the latest now: its place in the window moves to now, so that pacing by these times can
    /// never send a request the server sees within the window of an earlier one.
    pub(crate) fn passed(&self, admission: Admission) {
        let mut state = self.lock();
        let now = Instant::now();
        if let Some(at) = state.counted.iter().position(|t| *t == admission.sent_at) {
            state.counted.remove(at);
            let place = state.counted.partition_point(|t| *t <= now);
            state.counted.insert(place, now);
        }
        if !admission.probe {
            return;
        }
        if let Some(learning) = state.learning.take() {
            let rate = Rate {
                requests: learning.requests.max(1),
                window: with_margin(now.duration_since(learning.oldest)),
            };
            tracing::info!(
                "learnt the rate limit from the 429s: {rate} (after {} probes)",
                learning.probes
            );
            state.rate = Some(rate);
        }
    }

    /// The request got no answer (a reset, a timeout): it may or may not have been counted, and
    /// a probe that got none teaches nothing, so the next one goes after a longer wait.
    pub(crate) fn unanswered(&self, admission: Admission) {
        let mut state = self.lock();
        if let Some(learning) = &mut state.learning
            && admission.probe
        {
            learning.probe_out = false;
            learning.next_probe = Instant::now() + self.probe_wait(learning.probes);
        }
    }

    /// The request was answered 429 (the server did not count it), with this `Retry-After`
    /// (already kept within keysync's bounds). Says who waits before the retry.
    pub(crate) fn rejected(
        &self,
        admission: Admission,
        retry_after: Option<Duration>,
    ) -> RateLimited {
        let mut state = self.lock();
        let state = &mut *state;
        if let Some(at) = state.counted.iter().position(|t| *t == admission.sent_at) {
            state.counted.remove(at);
        }
        let now = Instant::now();
        state.keep_to_what_was_taken(now);
        if let Some(wait) = retry_after {
            state.pause_as_told(now + wait);
            return RateLimited::Paced;
        }
        if let Some(learning) = &mut state.learning {
            if !admission.probe {
                // Sent before the first 429 came back, and not counted either.
                learning.requests = learning.requests.saturating_sub(1);
                return RateLimited::Paced;
            }
            learning.probe_out = false;
            learning.next_probe = now + self.probe_wait(learning.probes);
            return match learning.probes <= FREE_PROBES {
                true => RateLimited::Probe,
                false => RateLimited::Paced,
            };
        }
        state.wait_out_the_window(now, self.probe_base)
    }

    /// The wait before probe number `probes + 1`: the backoff base, growing by √2 per probe,
    /// so that the window learnt overshoots the true one by at most that factor.
    fn probe_wait(&self, probes: u32) -> Duration {
        self.probe_base
            .mul_f64(std::f64::consts::SQRT_2.powi(probes.min(40) as i32))
            .min(Duration::from_secs(60))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A learnt window, made 2% longer: it was measured from answers, which reach the client a
/// little after the server counted the requests.
fn with_margin(window: Duration) -> Duration {
    window + window / 50
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_free_probes_outlast_the_gateway_window() {
        let pacer = Pacer::new(None, Duration::from_secs(1));
        let total: Duration = (0..FREE_PROBES).map(|n| pacer.probe_wait(n)).sum();
        assert!(total >= Duration::from_secs(180), "{total:?}");
    }

    #[test]
    fn a_window_full_before_the_first_request_leaves_the_wait_to_the_backoff() {
        let pacer = Pacer::new(None, Duration::from_millis(1));
        let Decision::Go(first) = pacer.decide(Instant::now()) else {
            panic!("held");
        };
        assert_eq!(pacer.rejected(first, None), RateLimited::Backoff);
        assert_eq!(pacer.rate(), None);
    }

    #[test]
    fn rates_read_as_requests_per_window() {
        assert_eq!(
            parse_rate("360/180s"),
            Ok(Rate {
                requests: 360,
                window: Duration::from_secs(180)
            })
        );
        assert_eq!(
            parse_rate(" 5 / 2s "),
            Ok(Rate {
                requests: 5,
                window: Duration::from_secs(2)
            })
        );
        for bad in ["360", "0/1s", "x/1s", "5/0s", "5/soon", "-1/1s"] {
            let error = parse_rate(bad).unwrap_err();
            assert!(error.starts_with("expected N/DURATION"), "{bad}: {error}");
        }
    }

    #[test]
    fn a_known_window_holds_the_request_past_the_limit() {
        let pacer = Pacer::new(
            Some(Rate {
                requests: 2,
                window: Duration::from_secs(10),
            }),
            Duration::from_millis(1),
        );
        let start = Instant::now();
        assert!(matches!(pacer.decide(start), Decision::Go(_)));
        assert!(matches!(pacer.decide(start), Decision::Go(_)));
        match pacer.decide(start + Duration::from_secs(4)) {
            Decision::Wait(wait) => assert_eq!(wait, Duration::from_secs(6)),
            Decision::Go(_) => panic!("a third request in the window went out"),
        }
        assert!(matches!(
            pacer.decide(start + Duration::from_secs(10)),
            Decision::Go(_)
        ));
    }

    #[test]
    fn retry_after_teaches_the_window() {
        let pacer = Pacer::new(None, Duration::from_millis(1));
        let start = Instant::now();
        let mut sent = Vec::new();
        for _ in 0..3 {
            match pacer.decide(start) {
                Decision::Go(admission) => sent.push(admission),
                Decision::Wait(_) => panic!("an unknown window held a request"),
            }
        }
        assert_eq!(
            pacer.rejected(sent[2], Some(Duration::from_secs(5))),
            RateLimited::Paced
        );
        let rate = pacer.rate().unwrap();
        assert_eq!(rate.requests, 2);
        assert!(rate.window >= Duration::from_secs(5), "{rate}");
    }

    #[test]
    fn without_retry_after_one_probe_at_a_time_teaches_the_window() {
        let pacer = Pacer::new(None, Duration::from_millis(1));
        let start = Instant::now();
        let first = match pacer.decide(start) {
            Decision::Go(admission) => admission,
            Decision::Wait(_) => panic!("held"),
        };
        pacer.passed(first);
        let second = match pacer.decide(start) {
            Decision::Go(admission) => admission,
            Decision::Wait(_) => panic!("held"),
        };
        assert_eq!(pacer.rejected(second, None), RateLimited::Paced);
        let later = Instant::now() + Duration::from_secs(1);
        let probe = match pacer.decide(later) {
            Decision::Go(admission) => admission,
            Decision::Wait(_) => panic!("the probe was held past its time"),
        };
        assert!(probe.probe);
        assert!(matches!(pacer.decide(later), Decision::Wait(_)));
        assert_eq!(pacer.rejected(probe, None), RateLimited::Probe);
        let later = Instant::now() + Duration::from_secs(2);
        let probe = match pacer.decide(later) {
            Decision::Go(admission) => admission,
            Decision::Wait(_) => panic!("the second probe was held past its time"),
        };
        assert!(matches!(pacer.decide(later), Decision::Wait(_)));
        pacer.passed(probe);
        let rate = pacer.rate().unwrap();
        assert_eq!(rate.requests, 1);
        // From the first answer to the passing probe's, which came after both waits.
        assert!(rate.window < Duration::from_secs(1), "{rate}");
    }
}
