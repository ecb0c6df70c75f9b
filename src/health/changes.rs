//! The last state changes (probe targets, regions, drains, the cluster's quorum), kept by
//! the health owner beside the log lines that announce them, so that the status page
//! can show what changed in the last minutes without reading the log.

use std::collections::VecDeque;
use std::time::SystemTime;

/// Changes kept; older ones are dropped (they are still in the log).
pub const KEEP: usize = 50;

/// One state change.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// When it happened.
    pub at: SystemTime,
    /// `target`, `region`, `drain` or `cluster`.
    pub kind: &'static str,
    /// The target (`GET URL`, `tcp ADDR`), the region's name, or `cluster`.
    pub subject: String,
    /// The state before (`up`, `down`, `drained`, `undrained`, `quorum`, `alone`).
    pub from: &'static str,
    /// The state after.
    pub to: &'static str,
    /// Why: the probe result, the votes, `reload`, an operator.
    pub reason: String,
}

/// The last [`KEEP`] changes, oldest first.
#[derive(Debug, Clone, Default)]
pub struct Changes(VecDeque<Change>);

impl Changes {
    /// Records a change, dropping the oldest past [`KEEP`].
    pub fn push(&mut self, change: Change) {
        if self.0.len() == KEEP {
            self.0.pop_front();
        }
        self.0.push_back(change);
    }

    /// The changes, newest first.
    pub fn newest_first(&self) -> impl Iterator<Item = &Change> {
        self.0.iter().rev()
    }

    /// How many are kept.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when nothing changed yet.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_ones_newest_first() {
        let mut c = Changes::default();
        for i in 0..KEEP + 3 {
            c.push(Change {
                at: SystemTime::UNIX_EPOCH,
                kind: "region",
                subject: format!("r{i}"),
                from: "up",
                to: "down",
                reason: String::new(),
            });
        }
        assert_eq!(c.len(), KEEP);
        let names: Vec<&str> = c.newest_first().map(|c| c.subject.as_str()).collect();
        assert_eq!(names[0], format!("r{}", KEEP + 2));
        assert_eq!(names[KEEP - 1], "r3");
    }
}
