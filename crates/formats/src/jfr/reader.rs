//! Bounds-checked reading of the primitive encodings used inside a JFR
//! chunk.
//!
//! JFR writes multi-byte numbers big-endian. When a chunk's header sets the
//! "compressed integers" feature bit (every JDK ≥ 11 and async-profiler
//! recording does), `short`, `char`, `int` and `long` values are instead
//! written as a variant of unsigned LEB128: seven bits per byte, low bits
//! first, high bit set on every byte but the last, except that a ninth byte
//! carries a full eight bits so that any 64-bit value fits in at most nine
//! bytes. There is no zig-zag step: negative numbers use all nine bytes
//! (or five for an `int`). `byte`, `boolean`, `float` and `double` are never
//! compressed.
//!
//! Strings start with an encoding byte: 0 = null, 1 = empty, 2 = index into
//! the `java.lang.String` constant pool, 3 = UTF-8 bytes, 4 = UTF-16 code
//! units (each an integer as above), 5 = Latin-1 bytes; 3 to 5 are preceded
//! by their length as an `int`.
//!
//! Every read checks the remaining length first, so a hostile length can
//! never make the reader allocate or index past the data.

use super::JfrDecodeError;

/// A string as stored in an event or constant pool entry.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum StrValue {
    /// Encoding 0: a Java `null`.
    Null,
    /// Encodings 1, 3, 4 and 5, decoded (invalid UTF-8 or UTF-16 is replaced
    /// by U+FFFD so that the result is always valid UTF-8).
    Inline(String),
    /// Encoding 2: index into the chunk's `java.lang.String` constant pool.
    Pool(u64),
}

/// A cursor over a slice of one decompressed recording.
#[derive(Debug, Clone)]
pub(super) struct ByteReader<'a> {
    data: &'a [u8],
    pos: usize,
    /// Offset of `data[0]` in the whole recording, for error messages.
    origin: usize,
    compressed_integers: bool,
}

impl<'a> ByteReader<'a> {
    pub(super) fn new(data: &'a [u8], origin: usize, compressed_integers: bool) -> Self {
        Self {
            data,
            pos: 0,
            origin,
            compressed_integers,
        }
    }

    /// Offset of the next byte in the whole recording.
    pub(super) fn offset(&self) -> usize {
        self.origin + self.pos
    }

    /// Position of the next byte relative to the start of this reader.
    pub(super) fn position(&self) -> usize {
        self.pos
    }

    pub(super) fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    fn end_error(&self, what: &'static str) -> JfrDecodeError {
        JfrDecodeError::UnexpectedEnd {
            offset: self.offset(),
            what,
        }
    }

    pub(super) fn read_u8(&mut self, what: &'static str) -> Result<u8, JfrDecodeError> {
        let byte = *self
            .data
            .get(self.pos)
            .ok_or_else(|| self.end_error(what))?;
        self.pos += 1;
        Ok(byte)
    }

    pub(super) fn read_bytes(
        &mut self,
        len: usize,
        what: &'static str,
    ) -> Result<&'a [u8], JfrDecodeError> {
        if len > self.remaining() {
            return Err(self.end_error(what));
        }
        let bytes = &self.data[self.pos..self.pos + len];
        self.pos += len;
        Ok(bytes)
    }

    fn read_array<const N: usize>(
        &mut self,
        what: &'static str,
    ) -> Result<[u8; N], JfrDecodeError> {
        let bytes = self.read_bytes(N, what)?;
        let mut array = [0u8; N];
        array.copy_from_slice(bytes);
        Ok(array)
    }

    /// A raw big-endian 16-bit value (chunk header, uncompressed chunks).
    pub(super) fn read_raw_u16(&mut self, what: &'static str) -> Result<u16, JfrDecodeError> {
        self.read_array(what).map(u16::from_be_bytes)
    }

    /// A raw big-endian 32-bit value.
    pub(super) fn read_raw_u32(&mut self, what: &'static str) -> Result<u32, JfrDecodeError> {
        self.read_array(what).map(u32::from_be_bytes)
    }

    /// A raw big-endian 64-bit value.
    pub(super) fn read_raw_u64(&mut self, what: &'static str) -> Result<u64, JfrDecodeError> {
        self.read_array(what).map(u64::from_be_bytes)
    }

    /// A JFR compressed integer (see the module documentation).
    pub(super) fn read_varint(&mut self, what: &'static str) -> Result<u64, JfrDecodeError> {
        let mut value = 0u64;
        for index in 0..8 {
            let byte = self.read_u8(what)?;
            value |= u64::from(byte & 0x7f) << (7 * index);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        let last = self.read_u8(what)?;
        Ok(value | (u64::from(last) << 56))
    }

    /// A `long` (compressed or raw, per the chunk's features).
    pub(super) fn read_long(&mut self, what: &'static str) -> Result<u64, JfrDecodeError> {
        if self.compressed_integers {
            self.read_varint(what)
        } else {
            self.read_raw_u64(what)
        }
    }

    /// An `int`; compressed values wider than 32 bits are truncated, as the
    /// JDK's own reader does.
    pub(super) fn read_int(&mut self, what: &'static str) -> Result<u32, JfrDecodeError> {
        if self.compressed_integers {
            // Truncation is the documented JFR behaviour for over-long ints.
            Ok(self.read_varint(what)? as u32)
        } else {
            self.read_raw_u32(what)
        }
    }

    /// A `short` or `char`.
    pub(super) fn read_short(&mut self, what: &'static str) -> Result<u16, JfrDecodeError> {
        if self.compressed_integers {
            // Truncation, as for `read_int`.
            Ok(self.read_varint(what)? as u16)
        } else {
            self.read_raw_u16(what)
        }
    }

    /// An `int` used as a count or length of items that each take at least
    /// one byte: rejected when larger than what is left to read, so that a
    /// caller can size collections by it without trusting the file.
    pub(super) fn read_count(&mut self, what: &'static str) -> Result<usize, JfrDecodeError> {
        let offset = self.offset();
        let count = self.read_int(what)?;
        let count = usize::try_from(count).unwrap_or(usize::MAX);
        if count > self.remaining() {
            return Err(JfrDecodeError::CountTooLarge {
                offset,
                what,
                count: u64::try_from(count).unwrap_or(u64::MAX),
                remaining: self.remaining(),
            });
        }
        Ok(count)
    }

    /// A string in any of the JFR string encodings.
    pub(super) fn read_string(&mut self, what: &'static str) -> Result<StrValue, JfrDecodeError> {
        let offset = self.offset();
        match self.read_u8(what)? {
            0 => Ok(StrValue::Null),
            1 => Ok(StrValue::Inline(String::new())),
            2 => Ok(StrValue::Pool(self.read_long(what)?)),
            3 => {
                let len = self.read_count(what)?;
                let bytes = self.read_bytes(len, what)?;
                Ok(StrValue::Inline(
                    String::from_utf8_lossy(bytes).into_owned(),
                ))
            }
            4 => {
                let len = self.read_count(what)?;
                let mut units = Vec::with_capacity(len);
                for _ in 0..len {
                    units.push(self.read_short(what)?);
                }
                Ok(StrValue::Inline(String::from_utf16_lossy(&units)))
            }
            5 => {
                let len = self.read_count(what)?;
                let bytes = self.read_bytes(len, what)?;
                Ok(StrValue::Inline(
                    bytes.iter().map(|&b| char::from(b)).collect(),
                ))
            }
            encoding => Err(JfrDecodeError::InvalidStringEncoding { offset, encoding }),
        }
    }
}

impl ByteReader<'_> {
    /// Skips a string in any encoding without allocating.
    pub(super) fn skip_string(&mut self, what: &'static str) -> Result<(), JfrDecodeError> {
        let offset = self.offset();
        match self.read_u8(what)? {
            0 | 1 => Ok(()),
            2 => self.read_long(what).map(drop),
            3 | 5 => {
                let len = self.read_count(what)?;
                self.read_bytes(len, what).map(drop)
            }
            4 => {
                let len = self.read_count(what)?;
                for _ in 0..len {
                    self.read_short(what)?;
                }
                Ok(())
            }
            encoding => Err(JfrDecodeError::InvalidStringEncoding { offset, encoding }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jfr_varint_uses_a_full_ninth_byte() {
        let mut reader = ByteReader::new(&[0x85, 0xb0, 0x03], 0, true);
        assert_eq!(reader.read_long("test").unwrap(), 55301);
        let all_ones = [0xff; 9];
        let mut reader = ByteReader::new(&all_ones, 0, true);
        assert_eq!(reader.read_long("test").unwrap(), u64::MAX);
        assert_eq!(reader.remaining(), 0);
        let mut reader = ByteReader::new(&[0xff, 0xff, 0xff, 0xff, 0x0f], 0, true);
        assert_eq!(reader.read_int("test").unwrap() as i32, -1);
    }

    #[test]
    fn jfr_reader_reports_truncation_instead_of_panicking() {
        let mut reader = ByteReader::new(&[0x80, 0x80], 10, true);
        let error = reader.read_long("a long").unwrap_err();
        assert!(matches!(
            error,
            JfrDecodeError::UnexpectedEnd { offset: 12, .. }
        ));
        let mut reader = ByteReader::new(&[3, 0x7f, b'a'], 0, true);
        assert!(matches!(
            reader.read_string("a string").unwrap_err(),
            JfrDecodeError::CountTooLarge { count: 127, .. }
        ));
    }

    #[test]
    fn jfr_strings_decode_every_encoding() {
        let data = [
            0, 1, 2, 7, 3, 2, b'h', b'i', 4, 2, 0x68, 0x69, 5, 1, 0xe9, 9,
        ];
        let mut reader = ByteReader::new(&data, 0, true);
        assert_eq!(reader.read_string("s").unwrap(), StrValue::Null);
        assert_eq!(
            reader.read_string("s").unwrap(),
            StrValue::Inline(String::new())
        );
        assert_eq!(reader.read_string("s").unwrap(), StrValue::Pool(7));
        assert_eq!(
            reader.read_string("s").unwrap(),
            StrValue::Inline("hi".into())
        );
        assert_eq!(
            reader.read_string("s").unwrap(),
            StrValue::Inline("hi".into())
        );
        assert_eq!(
            reader.read_string("s").unwrap(),
            StrValue::Inline("é".into())
        );
        assert!(matches!(
            reader.read_string("s").unwrap_err(),
            JfrDecodeError::InvalidStringEncoding { encoding: 9, .. }
        ));
    }
}
