//! A bounds-checked cursor over one pgoutput payload, and [`DecodeError`].
//!
//! Every read goes through [`Reader`], so no byte is indexed without a length check and every
//! failure names its offset and what was expected there. Counts read from the wire are checked
//! against the bytes left before anything is allocated for them: a hostile count fails fast
//! instead of reserving gigabytes. `message.rs` builds messages on top of it.

/// Why a payload is not a well-formed pgoutput message. `offset` is the byte position in the
/// payload where the problem was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The payload ended inside a field (or a counted list would need more bytes than remain).
    #[error("truncated at byte {offset}: expected {expected} ({needed} bytes), {remaining} left")]
    Truncated {
        offset: usize,
        expected: &'static str,
        needed: usize,
        remaining: usize,
    },
    /// A string had no terminating NUL before the end of the payload.
    #[error("unterminated string at byte {offset}: expected {expected}")]
    Unterminated { offset: usize, expected: &'static str },
    /// A string or text value was not UTF-8 (the database's encoding must be UTF8).
    #[error("invalid UTF-8 at byte {offset}: expected {expected}")]
    InvalidUtf8 { offset: usize, expected: &'static str },
    /// A length or count was negative.
    #[error("negative length {length} at byte {offset}: expected {expected}")]
    NegativeLength {
        offset: usize,
        expected: &'static str,
        length: i64,
    },
    /// A marker byte (message tag, tuple kind, column kind) had a value the protocol does not
    /// define there.
    #[error("unexpected byte {found:#04x} at byte {offset}: expected {expected}")]
    Unexpected {
        offset: usize,
        expected: &'static str,
        found: u8,
    },
    /// A message of a protocol feature this decoder does not take (streamed or two-phase
    /// transactions): start replication with `proto_version '1'`, or `'2'` without `streaming`.
    #[error("unsupported message {tag:?} ({what}); use proto_version '1' without streaming or two_phase")]
    Unsupported { tag: char, what: &'static str },
    /// A timestamp outside what [`chrono`] represents (Postgres never sends one for a commit).
    #[error("timestamp out of range at byte {offset}: {micros} µs since 2000-01-01")]
    TimestampOutOfRange { offset: usize, micros: i64 },
    /// Bytes were left after a complete message: a newer protocol version or a corrupt frame.
    #[error("{count} trailing bytes at byte {offset} after a complete message")]
    TrailingBytes { offset: usize, count: usize },
}

/// Reads big-endian fields front to back; never panics, never reads past the end.
#[derive(Debug)]
pub(super) struct Reader<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, offset: 0 }
    }

    /// Position of the next byte to read.
    pub(super) fn offset(&self) -> usize {
        self.offset
    }

    fn rest(&self) -> &'a [u8] {
        // `offset` never passes `bytes.len()`; `get` keeps that an invariant rather than a panic.
        self.bytes.get(self.offset..).unwrap_or_default()
    }

    pub(super) fn remaining(&self) -> usize {
        self.rest().len()
    }

    fn truncated(&self, expected: &'static str, needed: usize) -> DecodeError {
        DecodeError::Truncated {
            offset: self.offset,
            expected,
            needed,
            remaining: self.remaining(),
        }
    }

    /// The next `n` bytes.
    pub(super) fn take(&mut self, n: usize, expected: &'static str) -> Result<&'a [u8], DecodeError> {
        match self.rest().split_at_checked(n) {
            Some((head, _)) => {
                self.offset += n;
                Ok(head)
            }
            None => Err(self.truncated(expected, n)),
        }
    }

    fn array<const N: usize>(&mut self, expected: &'static str) -> Result<[u8; N], DecodeError> {
        match self.rest().split_first_chunk::<N>() {
            Some((head, _)) => {
                self.offset += N;
                Ok(*head)
            }
            None => Err(self.truncated(expected, N)),
        }
    }

    pub(super) fn u8(&mut self, expected: &'static str) -> Result<u8, DecodeError> {
        Ok(u8::from_be_bytes(self.array(expected)?))
    }

    pub(super) fn i16(&mut self, expected: &'static str) -> Result<i16, DecodeError> {
        Ok(i16::from_be_bytes(self.array(expected)?))
    }

    pub(super) fn i32(&mut self, expected: &'static str) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.array(expected)?))
    }

    /// An `Int32` that Postgres writes from an unsigned value (oids, xids).
    pub(super) fn u32(&mut self, expected: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array(expected)?))
    }

    pub(super) fn i64(&mut self, expected: &'static str) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array(expected)?))
    }

    /// An `Int64` that Postgres writes from an unsigned value (LSNs).
    pub(super) fn u64(&mut self, expected: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array(expected)?))
    }

    /// A NUL-terminated UTF-8 string, without its NUL.
    pub(super) fn cstr(&mut self, expected: &'static str) -> Result<&'a str, DecodeError> {
        let start = self.offset;
        let rest = self.rest();
        let Some(end) = rest.iter().position(|&b| b == 0) else {
            return Err(DecodeError::Unterminated {
                offset: start,
                expected,
            });
        };
        let text = rest.get(..end).unwrap_or_default();
        let text = std::str::from_utf8(text).map_err(|err| DecodeError::InvalidUtf8 {
            offset: start + err.valid_up_to(),
            expected,
        })?;
        self.offset += end + 1;
        Ok(text)
    }

    /// An `Int32` byte length followed by that many bytes.
    pub(super) fn counted_bytes(&mut self, expected: &'static str) -> Result<&'a [u8], DecodeError> {
        let at = self.offset;
        let length = self.i32(expected)?;
        let length = usize::try_from(length).map_err(|_| DecodeError::NegativeLength {
            offset: at,
            expected,
            length: length.into(),
        })?;
        self.take(length, expected)
    }

    /// Like [`Reader::counted_bytes`], for text values.
    pub(super) fn counted_str(&mut self, expected: &'static str) -> Result<&'a str, DecodeError> {
        let bytes = self.counted_bytes(expected)?;
        let start = self.offset - bytes.len();
        std::str::from_utf8(bytes).map_err(|err| DecodeError::InvalidUtf8 {
            offset: start + err.valid_up_to(),
            expected,
        })
    }

    /// An `Int16` count of items that take at least `min_item_len` bytes each, checked against
    /// the bytes left so the caller can allocate for it.
    pub(super) fn count_i16(
        &mut self,
        expected: &'static str,
        min_item_len: usize,
    ) -> Result<usize, DecodeError> {
        let at = self.offset;
        let count = self.i16(expected)?;
        self.check_count(at, expected, count.into(), min_item_len)
    }

    /// An `Int32` count, as [`Reader::count_i16`].
    pub(super) fn count_i32(
        &mut self,
        expected: &'static str,
        min_item_len: usize,
    ) -> Result<usize, DecodeError> {
        let at = self.offset;
        let count = self.i32(expected)?;
        self.check_count(at, expected, count.into(), min_item_len)
    }

    fn check_count(
        &self,
        at: usize,
        expected: &'static str,
        count: i64,
        min_item_len: usize,
    ) -> Result<usize, DecodeError> {
        let count = usize::try_from(count).map_err(|_| DecodeError::NegativeLength {
            offset: at,
            expected,
            length: count,
        })?;
        let needed = count.saturating_mul(min_item_len);
        if needed > self.remaining() {
            return Err(self.truncated(expected, needed));
        }
        Ok(count)
    }

    /// Ends the message: any byte left over is an error.
    pub(super) fn finish(self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(DecodeError::TrailingBytes {
                offset: self.offset,
                count,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_width_reads_are_big_endian_and_advance() {
        let mut r = Reader::new(&[0x01, 0x02, 0x03, 0xFF, 0xFF, 0xFF, 0xFE]);
        assert_eq!(r.i16("a").unwrap(), 0x0102);
        assert_eq!(r.u8("b").unwrap(), 0x03);
        assert_eq!(r.i32("c").unwrap(), -2);
        assert_eq!(r.offset(), 7);
        r.finish().unwrap();
    }

    #[test]
    fn a_short_read_names_its_offset_and_field() {
        let mut r = Reader::new(&[0, 0, 0]);
        r.u8("tag").unwrap();
        assert_eq!(
            r.i32("relation oid"),
            Err(DecodeError::Truncated {
                offset: 1,
                expected: "relation oid",
                needed: 4,
                remaining: 2
            })
        );
        // A failed read consumes nothing.
        assert_eq!(r.offset(), 1);
    }

    #[test]
    fn strings_need_their_nul_and_valid_utf8() {
        let mut r = Reader::new(b"public\0items\0");
        assert_eq!(r.cstr("namespace").unwrap(), "public");
        assert_eq!(r.cstr("name").unwrap(), "items");
        assert!(matches!(
            Reader::new(b"abc").cstr("name"),
            Err(DecodeError::Unterminated { offset: 0, .. })
        ));
        assert!(matches!(
            Reader::new(b"a\xFFb\0").cstr("name"),
            Err(DecodeError::InvalidUtf8 { offset: 1, .. })
        ));
    }

    #[test]
    fn hostile_counts_fail_before_allocating() {
        // 32767 columns of at least 10 bytes each cannot fit in 2 bytes.
        let mut r = Reader::new(&[0x7F, 0xFF, 0, 0]);
        assert!(matches!(
            r.count_i16("column count", 10),
            Err(DecodeError::Truncated {
                needed: 327_670,
                remaining: 2,
                ..
            })
        ));
        let mut r = Reader::new(&[0xFF, 0xFF, 0xFF, 0xFF]);
        assert!(matches!(
            r.count_i32("relation count", 4),
            Err(DecodeError::NegativeLength { length: -1, .. })
        ));
        let mut r = Reader::new(&[0, 0, 0, 9, 1, 2]);
        assert!(matches!(
            r.counted_bytes("value"),
            Err(DecodeError::Truncated {
                needed: 9,
                remaining: 2,
                ..
            })
        ));
    }

    #[test]
    fn leftover_bytes_are_reported() {
        let mut r = Reader::new(&[1, 2, 3]);
        r.u8("tag").unwrap();
        assert_eq!(
            r.finish(),
            Err(DecodeError::TrailingBytes { offset: 1, count: 2 })
        );
    }
}
