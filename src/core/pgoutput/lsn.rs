//! [`Lsn`]: a position in the write-ahead log, as pgoutput and `pg_replication_slots` spell it.
//!
//! Only the value type lives here; which LSN is durable is the replication actor's business.

use std::fmt;
use std::str::FromStr;

/// A WAL position (`XLogRecPtr`). Ordered, so a consumer can skip transactions it has already
/// delivered after a restart (`end_lsn <= last_delivered`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);

impl Lsn {
    /// A position not known yet; above every real one.
    pub const UNKNOWN: Lsn = Lsn(u64::MAX);
}

impl fmt::Display for Lsn {
    /// Postgres's `pg_lsn` text form: high and low 32 bits in upper-case hex, `16/B374D848`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

/// The text was not `<hex>/<hex>` with each half fitting 32 bits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid LSN: expected `<hex>/<hex>`")]
pub struct LsnParseError;

impl FromStr for Lsn {
    type Err = LsnParseError;

    /// Parses the `pg_lsn` text form (as `confirmed_flush_lsn::text` returns it).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (high, low) = text.split_once('/').ok_or(LsnParseError)?;
        let half = |part: &str| {
            // `from_str_radix` accepts a leading `+`, which `pg_lsn` does not.
            if part.is_empty() || part.len() > 8 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(LsnParseError);
            }
            u32::from_str_radix(part, 16).map_err(|_| LsnParseError)
        };
        Ok(Lsn((u64::from(half(high)?) << 32) | u64::from(half(low)?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsn_text_round_trips_in_postgres_spelling() {
        let lsn = Lsn(0x16_B374_D848);
        assert_eq!(lsn.to_string(), "16/B374D848");
        assert_eq!("16/B374D848".parse::<Lsn>(), Ok(lsn));
        assert_eq!("0/0".parse::<Lsn>(), Ok(Lsn(0)));
        assert_eq!(Lsn(u64::MAX).to_string(), "FFFFFFFF/FFFFFFFF");
    }

    #[test]
    fn malformed_lsn_text_is_refused() {
        for text in ["", "16", "/1", "1/", "+1/2", "1/2/3", "123456789/0", "g/0"] {
            assert_eq!(text.parse::<Lsn>(), Err(LsnParseError), "{text}");
        }
    }
}
