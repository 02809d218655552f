//! [`Ring`]: one collection's recent committed changes, kept so a client that drops can resume
//! from the last event id it saw (`since`, `Last-Event-ID`) instead of refetching.
//!
//! Bounded twice: by change count and by age. Its `floor` is the position below which changes
//! may be missing (the last evicted, or where this process's replication resumed), so a resume
//! from below it is answered with must-refetch rather than a silent gap.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::event::RowChange;
use crate::core::pgoutput::Lsn;

/// One transaction's changes to one collection.
#[derive(Debug, Clone, PartialEq)]
pub struct Slice {
    pub xid: u32,
    pub commit_lsn: Lsn,
    pub end_lsn: Lsn,
    pub commit_ts: DateTime<Utc>,
    pub changes: Vec<RowChange>,
    /// More of this transaction follows in later slices: its events carry no id.
    pub more: bool,
    /// The index of its first change within its transaction (parts of a large one).
    pub first: usize,
}

/// The requested position is older than what the ring still holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    pub floor: Lsn,
}

#[derive(Debug)]
pub struct Ring {
    entries: VecDeque<(Arc<Slice>, Instant)>,
    changes: usize,
    max_changes: usize,
    max_age: Duration,
    floor: Lsn,
}

impl Ring {
    /// An empty ring whose history is complete from `floor` on ([`Lsn::UNKNOWN`] until
    /// replication says where it resumed: every resume is refused meanwhile).
    pub fn new(max_changes: usize, max_age: Duration, floor: Lsn) -> Ring {
        Ring {
            entries: VecDeque::new(),
            changes: 0,
            max_changes: max_changes.max(1),
            max_age,
            floor,
        }
    }

    /// Appends a transaction's slice (in commit order) and evicts what no longer fits.
    pub fn push(&mut self, slice: Arc<Slice>, now: Instant) {
        self.changes += slice.changes.len();
        self.entries.push_back((slice, now));
        while self.changes > self.max_changes && self.entries.len() > 1 {
            self.evict_front();
        }
        self.expire(now);
    }

    /// Evicts entries older than the age bound.
    pub fn expire(&mut self, now: Instant) {
        while let Some((_, at)) = self.entries.front() {
            if now.saturating_duration_since(*at) <= self.max_age {
                break;
            }
            self.evict_front();
        }
        // An emptied ring gives back what a burst made it allocate.
        if self.entries.is_empty() && self.entries.capacity() > 64 {
            self.entries.shrink_to(64);
        }
    }

    fn evict_front(&mut self) {
        if let Some((slice, _)) = self.entries.pop_front() {
            self.changes -= slice.changes.len();
            if self.floor != Lsn::UNKNOWN {
                self.floor = self.floor.max(slice.end_lsn);
            }
        }
    }

    /// Raises the floor (replication resumed later than the ring's start): nothing below it can
    /// be replayed.
    pub fn raise_floor(&mut self, floor: Lsn) {
        self.floor = if self.floor == Lsn::UNKNOWN {
            floor
        } else {
            self.floor.max(floor)
        };
    }

    pub fn floor(&self) -> Lsn {
        self.floor
    }

    /// The slices after `since`, oldest first; [`Gap`] when some may have been evicted.
    pub fn since(&self, since: Lsn) -> Result<impl Iterator<Item = &Arc<Slice>>, Gap> {
        if since < self.floor {
            return Err(Gap { floor: self.floor });
        }
        let start = self.entries.partition_point(|(s, _)| s.end_lsn <= since);
        Ok(self.entries.range(start..).map(|(s, _)| s))
    }

    /// Slices received at or after `at`: the recent tail a snapshot handoff re-examines.
    pub fn received_since(&self, at: Instant) -> impl Iterator<Item = &Arc<Slice>> {
        let start = self.entries.partition_point(|(_, t)| *t < at);
        self.entries.range(start..).map(|(s, _)| s)
    }

    /// Where the oldest retained slice's commit starts: the slot must not be confirmed past it.
    pub fn oldest_commit(&self) -> Option<Lsn> {
        self.entries.front().map(|(s, _)| s.commit_lsn)
    }

    /// The newest slice held.
    pub fn newest(&self) -> Option<&Arc<Slice>> {
        self.entries.back().map(|(s, _)| s)
    }

    /// The newest position held.
    pub fn head(&self) -> Option<Lsn> {
        self.entries.back().map(|(s, _)| s.end_lsn)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::realtime::event::RowOp;
    use proptest::prelude::*;
    use serde_json::json;

    fn slice(end: u64, rows: usize) -> Arc<Slice> {
        let change = RowChange {
            collection: "a".into(),
            op: RowOp::Insert,
            key: json!(end),
            old: None,
            new: None,
        };
        Arc::new(Slice {
            xid: end as u32,
            commit_lsn: Lsn(end - 1),
            end_lsn: Lsn(end),
            commit_ts: DateTime::UNIX_EPOCH,
            changes: vec![change; rows],
            more: false,
            first: 0,
        })
    }

    fn ends(ring: &Ring, since: u64) -> Result<Vec<u64>, Gap> {
        ring.since(Lsn(since)).map(|it| it.map(|s| s.end_lsn.0).collect())
    }

    #[test]
    fn replays_after_the_position_and_refuses_below_the_floor() {
        let now = Instant::now();
        let mut ring = Ring::new(3, Duration::from_secs(60), Lsn(10));
        for end in [20, 30, 40] {
            ring.push(slice(end, 1), now);
        }
        assert_eq!(ends(&ring, 10), Ok(vec![20, 30, 40]));
        assert_eq!(ends(&ring, 30), Ok(vec![40]));
        assert_eq!(ends(&ring, 25), Ok(vec![30, 40]));
        assert_eq!(ends(&ring, 40), Ok(vec![]));
        assert_eq!(ends(&ring, 5), Err(Gap { floor: Lsn(10) }));
        ring.push(slice(50, 1), now);
        assert_eq!(ring.floor(), Lsn(20));
        assert_eq!(ends(&ring, 10), Err(Gap { floor: Lsn(20) }));
        assert_eq!(ends(&ring, 20), Ok(vec![30, 40, 50]));
        assert_eq!(ring.oldest_commit(), Some(Lsn(29)));
    }

    #[test]
    fn ages_out() {
        let start = Instant::now();
        let mut ring = Ring::new(100, Duration::from_secs(5), Lsn(0));
        ring.push(slice(10, 1), start);
        ring.push(slice(20, 1), start + Duration::from_secs(3));
        ring.expire(start + Duration::from_secs(6));
        assert_eq!(ring.len(), 1);
        assert_eq!(ring.floor(), Lsn(10));
        ring.expire(start + Duration::from_secs(9));
        assert!(ring.is_empty());
        assert_eq!(ring.oldest_commit(), None);
        assert_eq!(ends(&ring, 20), Ok(vec![]));
    }

    #[test]
    fn one_big_transaction_is_kept_whole() {
        let mut ring = Ring::new(2, Duration::from_secs(60), Lsn(0));
        ring.push(slice(10, 5), Instant::now());
        assert_eq!(ends(&ring, 0), Ok(vec![10]));
    }

    proptest! {
        /// Whatever was pushed and evicted, a resume either gets exactly the pushed slices
        /// after its position or a gap, never a partial history.
        #[test]
        fn resume_is_complete_or_refused(
            sizes in proptest::collection::vec(1usize..4, 1..40),
            cap in 1usize..20,
            since_index in 0usize..45,
        ) {
            let now = Instant::now();
            let mut ring = Ring::new(cap, Duration::from_secs(60), Lsn(0));
            let mut all = Vec::new();
            for (i, size) in sizes.iter().enumerate() {
                let end = (i as u64 + 1) * 10;
                ring.push(slice(end, *size), now);
                all.push(end);
            }
            let since = (since_index as u64) * 10;
            match ends(&ring, since) {
                Ok(got) => {
                    let expected: Vec<u64> = all.iter().copied().filter(|e| *e > since).collect();
                    prop_assert_eq!(got, expected);
                }
                Err(gap) => prop_assert!(Lsn(since) < gap.floor),
            }
        }
    }
}
