//! A budget of info lines per second for what anyone who reaches a port can cause at will:
//! a refused connection costs the sender one `connect`, and without a budget a flood of them
//! would write a log line each, as fast as it connects, until the disk the logs go to is full.

use std::time::{Duration, Instant};

/// Refused connections logged at info per second; the others of that second go to debug, and
/// the next line at info says how many did (`not_logged`). Every one is still counted in the
/// metrics (`just_hungry_tcp_refused_connections_total`).
pub const REFUSALS_LOGGED_PER_SECOND: u32 = 10;

/// The window a budget of [`REFUSALS_LOGGED_PER_SECOND`] lines applies to.
const WINDOW: Duration = Duration::from_secs(1);

/// Lines logged at info in the current window, and those sent to debug since the last.
#[derive(Debug, Default)]
pub(crate) struct LogBudget {
    window_start: Option<Instant>,
    used: u32,
    not_logged: u64,
}

impl LogBudget {
    /// Whether a line may go to info at `now`: `Some(n)` if it may, `n` lines having gone to
    /// debug since the last line at info; `None` if this one goes to debug.
    pub(crate) fn take(&mut self, now: Instant) -> Option<u64> {
        if self
            .window_start
            .is_none_or(|start| now.saturating_duration_since(start) >= WINDOW)
        {
            self.window_start = Some(now);
            self.used = 0;
        }
        if self.used < REFUSALS_LOGGED_PER_SECOND {
            self.used += 1;
            Some(std::mem::take(&mut self.not_logged))
        } else {
            self.not_logged += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_logged_up_to_the_budget_and_the_next_window_says_how_many_were_not() {
        let mut budget = LogBudget::default();
        let start = Instant::now();
        let per_second = REFUSALS_LOGGED_PER_SECOND as usize;
        let burst: Vec<_> = (0..per_second + 5).map(|_| budget.take(start)).collect();
        assert_eq!(burst[..per_second], vec![Some(0); per_second]);
        assert_eq!(burst[per_second..], vec![None; 5]);
        // Still within the window: still not logged.
        assert_eq!(budget.take(start + Duration::from_millis(999)), None);
        // The next window: logged again, and the first line counts the six that were not.
        let next = start + WINDOW;
        assert_eq!(budget.take(next), Some(6));
        assert_eq!(budget.take(next), Some(0));
    }

    #[test]
    fn a_quiet_sender_is_always_logged() {
        let mut budget = LogBudget::default();
        let start = Instant::now();
        for second in 0..100 {
            assert_eq!(budget.take(start + WINDOW * second), Some(0));
        }
    }
}
