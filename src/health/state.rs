//! The pure rise/fall state machine of one probe target, and its RTT statistics.
//!
//! No clock and no I/O: results come in with their time, transitions come out. A target
//! with no result yet counts as up; its *first* result sets the state directly (that is
//! the cold-start round: a region that is down when gslbd starts is never served). After
//! that, `fall` consecutive failures take an up target down and `rise` consecutive
//! successes bring a down target up, so one lost probe does not move traffic.

use std::fmt;
use std::time::{Duration, SystemTime};

/// How many recent successful RTTs the "recent best" is the minimum of.
const RTT_WINDOW: usize = 32;

/// What one probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Expected status (and body, if asked), or the TCP connect succeeded.
    Ok,
    /// An HTTP status not in `expect_status`.
    Status(u16),
    /// The body did not contain `expect_body` (within the first 64 KiB).
    BodyMismatch,
    /// No answer within the probe's timeout.
    Timeout,
    /// Connection refused.
    Refused,
    /// Anything else (DNS, TLS, reset, ...), with the error text.
    Error(String),
}

impl Outcome {
    /// True for a successful probe.
    pub fn is_ok(&self) -> bool {
        *self == Outcome::Ok
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Ok => f.write_str("ok"),
            Outcome::Status(s) => write!(f, "status {s}"),
            Outcome::BodyMismatch => f.write_str("body mismatch"),
            Outcome::Timeout => f.write_str("timeout"),
            Outcome::Refused => f.write_str("connection refused"),
            Outcome::Error(e) => write!(f, "error: {e}"),
        }
    }
}

/// A change of a target's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The state before.
    pub from: bool,
    /// The state after.
    pub to: bool,
    /// The result that caused it.
    pub reason: Outcome,
}

/// The state of one probe target.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetState {
    /// Counts as up (true until a first result says otherwise).
    pub up: bool,
    /// At least one result has arrived.
    pub known: bool,
    ok_streak: u32,
    fail_streak: u32,
    /// When `up` last changed (by a result).
    pub last_change: Option<SystemTime>,
    /// The latest result and its time.
    pub last: Option<(Outcome, SystemTime)>,
    /// Smoothed RTT of successful probes (EWMA, 1/8 as TCP's SRTT), ms.
    pub srtt_ms: Option<f64>,
    recent: [f64; RTT_WINDOW],
    recent_len: usize,
    recent_next: usize,
}

impl Default for TargetState {
    fn default() -> Self {
        TargetState {
            up: true,
            known: false,
            ok_streak: 0,
            fail_streak: 0,
            last_change: None,
            last: None,
            srtt_ms: None,
            recent: [0.0; RTT_WINDOW],
            recent_len: 0,
            recent_next: 0,
        }
    }
}

impl TargetState {
    /// Applies one result; returns the transition if `up` changed.
    pub fn apply(
        &mut self,
        outcome: Outcome,
        rtt: Duration,
        rise: u32,
        fall: u32,
        now: SystemTime,
    ) -> Option<Transition> {
        let ok = outcome.is_ok();
        if ok {
            self.record_rtt(rtt.as_secs_f64() * 1000.0);
            self.ok_streak = self.ok_streak.saturating_add(1);
            self.fail_streak = 0;
        } else {
            self.fail_streak = self.fail_streak.saturating_add(1);
            self.ok_streak = 0;
        }
        let first = !self.known;
        self.known = true;
        self.last = Some((outcome.clone(), now));
        let to = if first {
            ok
        } else if self.up {
            self.fail_streak < fall.max(1)
        } else {
            self.ok_streak >= rise.max(1)
        };
        if to == self.up {
            return None;
        }
        let from = self.up;
        self.up = to;
        self.last_change = Some(now);
        Some(Transition {
            from,
            to,
            reason: outcome,
        })
    }

    fn record_rtt(&mut self, ms: f64) {
        self.srtt_ms = Some(match self.srtt_ms {
            Some(s) => s + (ms - s) / 8.0,
            None => ms,
        });
        self.recent[self.recent_next] = ms;
        self.recent_next = (self.recent_next + 1) % RTT_WINDOW;
        self.recent_len = (self.recent_len + 1).min(RTT_WINDOW);
    }

    /// The best RTT of the last 32 successful probes, ms.
    pub fn min_rtt_ms(&self) -> Option<f64> {
        self.recent[..self.recent_len]
            .iter()
            .copied()
            .reduce(f64::min)
    }

    /// How far the smoothed RTT is above the recent best: the latency policy's penalty.
    pub fn rtt_penalty_ms(&self) -> f64 {
        match (self.srtt_ms, self.min_rtt_ms()) {
            (Some(s), Some(m)) => (s - m).max(0.0),
            _ => 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(10);

    fn run(seq: &str, rise: u32, fall: u32) -> String {
        // '+' success, '-' failure; output: the state after each result.
        let mut s = TargetState::default();
        seq.chars()
            .map(|c| {
                let o = if c == '+' {
                    Outcome::Ok
                } else {
                    Outcome::Status(503)
                };
                s.apply(o, MS, rise, fall, SystemTime::UNIX_EPOCH);
                if s.up { 'U' } else { 'D' }
            })
            .collect()
    }

    #[test]
    fn first_result_decides_then_rise_and_fall_need_streaks() {
        let table = [
            // (results, rise, fall, states)
            ("+", 2, 3, "U"),
            ("-", 2, 3, "D"), // down at start: never served
            ("+--+---", 2, 3, "UUUUUUD"),
            ("+---", 2, 3, "UUUD"),
            ("-+-++", 2, 3, "DDDDU"),
            ("+-+-+-+-", 2, 2, "UUUUUUUU"), // flapping never reaches fall=2
            ("+--++", 1, 2, "UUDUU"),
            ("+-", 1, 1, "UD"),
        ];
        for (seq, rise, fall, want) in table {
            assert_eq!(run(seq, rise, fall), want, "{seq} rise={rise} fall={fall}");
        }
    }

    #[test]
    fn a_target_without_results_counts_as_up() {
        let s = TargetState::default();
        assert!(s.up && !s.known);
    }

    #[test]
    fn transitions_carry_the_reason() {
        let mut s = TargetState::default();
        let t0 = SystemTime::UNIX_EPOCH;
        assert_eq!(s.apply(Outcome::Ok, MS, 2, 2, t0), None);
        assert_eq!(s.apply(Outcome::Timeout, MS, 2, 2, t0), None);
        let t = s
            .apply(Outcome::Refused, MS, 2, 2, t0 + Duration::from_secs(5))
            .unwrap();
        assert_eq!(
            t,
            Transition {
                from: true,
                to: false,
                reason: Outcome::Refused
            }
        );
        assert_eq!(s.last_change, Some(t0 + Duration::from_secs(5)));
        assert_eq!(t.reason.to_string(), "connection refused");
    }

    #[test]
    fn penalty_is_smoothed_rtt_above_the_recent_best() {
        let mut s = TargetState::default();
        for _ in 0..10 {
            s.apply(
                Outcome::Ok,
                Duration::from_millis(20),
                2,
                2,
                SystemTime::UNIX_EPOCH,
            );
        }
        assert_eq!(s.rtt_penalty_ms(), 0.0);
        for _ in 0..20 {
            s.apply(
                Outcome::Ok,
                Duration::from_millis(120),
                2,
                2,
                SystemTime::UNIX_EPOCH,
            );
        }
        let p = s.rtt_penalty_ms();
        assert!(p > 80.0 && p < 100.0, "{p}");
        assert_eq!(s.min_rtt_ms(), Some(20.0));
        // Failures do not feed the RTT statistics.
        s.apply(
            Outcome::Timeout,
            Duration::from_secs(2),
            2,
            2,
            SystemTime::UNIX_EPOCH,
        );
        assert_eq!(s.min_rtt_ms(), Some(20.0));
    }
}
