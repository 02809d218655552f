//! pgoutput Begin and Commit frames rebuilt from the transport's events.
//!
//! pgwire-replication parses Begin and Commit itself and hands them over as events, not as
//! payloads; the decoder assembles transactions from payloads, so the two are written back in
//! the exact layout Postgres sends (protocol version 1).

/// `B`: final LSN, commit timestamp (µs since 2000-01-01), xid.
pub fn begin(final_lsn: u64, commit_time_micros: i64, xid: u32) -> [u8; 21] {
    let mut out = [0u8; 21];
    out[0] = b'B';
    out[1..9].copy_from_slice(&final_lsn.to_be_bytes());
    out[9..17].copy_from_slice(&commit_time_micros.to_be_bytes());
    out[17..21].copy_from_slice(&xid.to_be_bytes());
    out
}

/// `C`: flags (always 0), commit LSN, end LSN, commit timestamp.
pub fn commit(commit_lsn: u64, end_lsn: u64, commit_time_micros: i64) -> [u8; 26] {
    let mut out = [0u8; 26];
    out[0] = b'C';
    out[2..10].copy_from_slice(&commit_lsn.to_be_bytes());
    out[10..18].copy_from_slice(&end_lsn.to_be_bytes());
    out[18..26].copy_from_slice(&commit_time_micros.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::pgoutput::{Decoder, Event, Lsn};

    #[test]
    fn rebuilt_frames_decode_into_an_empty_transaction() {
        let mut decoder = Decoder::new();
        assert_eq!(decoder.push(&begin(0x200, 1_000_000, 42)), Ok(None));
        assert!(decoder.in_transaction());
        let Ok(Some(Event::Transaction(tx))) = decoder.push(&commit(0x200, 0x230, 1_000_000)) else {
            panic!("commit completes the transaction");
        };
        assert_eq!((tx.xid, tx.commit_lsn, tx.end_lsn), (42, Lsn(0x200), Lsn(0x230)));
        assert_eq!(tx.commit_ts.timestamp(), 946_684_801);
    }
}
