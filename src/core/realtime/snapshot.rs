//! [`Snapshot`]: which transactions a `REPEATABLE READ` snapshot sees, from
//! `pg_current_snapshot()`'s text. A subscription's `init` rows are read under such a snapshot;
//! the feed then forwards exactly the transactions that snapshot did not see, so the handoff from
//! rows to changes has neither a gap nor a duplicate.

use std::collections::HashSet;

/// `xmin:xmax:xip1,xip2,…` with 64-bit (epoch-extended) transaction ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    xmin: u64,
    xmax: u64,
    in_progress: HashSet<u64>,
}

/// The text was not a `pg_snapshot`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid pg_snapshot text: {0:?}")]
pub struct SnapshotParseError(pub String);

impl Snapshot {
    pub fn parse(text: &str) -> Result<Snapshot, SnapshotParseError> {
        let bad = || SnapshotParseError(text.to_string());
        let mut parts = text.split(':');
        let (Some(xmin), Some(xmax), Some(xip), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let number = |s: &str| {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            s.parse::<u64>().map_err(|_| bad())
        };
        let xmin = number(xmin)?;
        let xmax = number(xmax)?;
        if xmin > xmax {
            return Err(bad());
        }
        let mut in_progress = HashSet::new();
        if !xip.is_empty() {
            for id in xip.split(',') {
                let id = number(id)?;
                if id < xmin || id >= xmax {
                    return Err(bad());
                }
                in_progress.insert(id);
            }
        }
        Ok(Snapshot {
            xmin,
            xmax,
            in_progress,
        })
    }

    /// Whether the committed transaction `xid` (32 bits, as pgoutput sends it) is visible.
    ///
    /// pgoutput's xids lack the epoch; the snapshot's `xmax` supplies it. A transaction that
    /// committed is at most 2^31 ids older than any live snapshot, so the nearest epoch is right.
    pub fn sees(&self, xid: u32) -> bool {
        let full = self.widen(xid);
        full < self.xmin || (full < self.xmax && !self.in_progress.contains(&full))
    }

    /// The full id nearest `xmax`: committed transactions the feed meets are within 2^31 of
    /// any live snapshot, older or newer.
    fn widen(&self, xid: u32) -> u64 {
        let epoch = self.xmax & !0xFFFF_FFFF;
        let candidate = epoch | u64::from(xid);
        let half = 1u64 << 31;
        if candidate > self.xmax && candidate - self.xmax > half && epoch > 0 {
            candidate - (1 << 32)
        } else if candidate < self.xmax && self.xmax - candidate > half {
            candidate + (1 << 32)
        } else {
            candidate
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_and_answers() {
        let snap = Snapshot::parse("100:105:101,103").unwrap();
        assert!(snap.sees(99));
        assert!(snap.sees(100));
        assert!(!snap.sees(101));
        assert!(snap.sees(102));
        assert!(!snap.sees(103));
        assert!(snap.sees(104));
        assert!(!snap.sees(105));
        assert!(!snap.sees(200));
        assert!(Snapshot::parse("5:5:").unwrap().sees(4));
    }

    #[test]
    fn refuses_malformed() {
        for text in ["", "1:2", "1:2:3:4", "3:2:", "1:5:7", "a:b:", "1:5:,", "-1:5:"] {
            assert!(Snapshot::parse(text).is_err(), "{text}");
        }
    }

    #[test]
    fn epochs_are_restored() {
        let epoch = 3u64 << 32;
        let snap = Snapshot::parse(&format!("{}:{}:", epoch + 10, epoch + 20)).unwrap();
        assert!(snap.sees(5));
        assert!(!snap.sees(25));
        // Just before the epoch wrapped: an old id from the previous epoch is visible.
        assert!(snap.sees(u32::MAX - 3));
    }

    proptest! {
        #[test]
        fn parse_never_panics(text in ".{0,40}") {
            let _ = Snapshot::parse(&text);
        }

        #[test]
        fn widened_ids_agree_with_full_ids(
            base in prop_oneof![1u64..(1u64 << 40), ((1u64 << 32) - 1500)..((1u64 << 32) + 10)],
            span in 1u64..1000,
            offset in 0u64..2000,
        ) {
            let xmin = base;
            let xmax = base + span;
            let snap = Snapshot::parse(&format!("{xmin}:{xmax}:")).unwrap();
            let full = (xmax + 1000).saturating_sub(offset);
            let expected = full < xmin || full < xmax;
            prop_assert_eq!(snap.sees(full as u32), expected);
        }
    }
}
