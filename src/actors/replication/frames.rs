//! pgoutput Begin, Commit and Message frames rebuilt from the transport's events.
//!
//! pgwire-replication parses Begin, Commit and logical decoding messages itself and hands them
//! over as events, not as payloads; the decoder assembles transactions from payloads, so they
//! are written back in the exact layout Postgres sends (protocol version 1).

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

/// `M`: flags (1: transactional), LSN, prefix (NUL-terminated), content length, content.
pub fn message(transactional: bool, lsn: u64, prefix: &str, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + 1 + 8 + prefix.len() + 1 + 4 + content.len());
    out.push(b'M');
    out.push(u8::from(transactional));
    out.extend_from_slice(&lsn.to_be_bytes());
    out.extend_from_slice(prefix.as_bytes());
    out.push(0);
    // A logical decoding message's content is bounded far below 4 GiB by the WAL record size.
    out.extend_from_slice(&u32::try_from(content.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(content);
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

    #[test]
    fn a_rebuilt_message_joins_its_transaction() {
        let mut decoder = Decoder::new();
        decoder.push(&begin(0x200, 1_000_000, 42)).unwrap();
        assert_eq!(
            decoder.push(&message(true, 0x1f0, "directrix.access", br#"{"t":"roles"}"#)),
            Ok(None)
        );
        let Ok(Some(Event::Transaction(tx))) = decoder.push(&commit(0x200, 0x230, 1_000_000)) else {
            panic!("commit completes the transaction");
        };
        assert_eq!(tx.messages.len(), 1);
        assert_eq!(tx.messages[0].prefix, "directrix.access");
        assert_eq!(tx.messages[0].content, br#"{"t":"roles"}"#);
    }
}
