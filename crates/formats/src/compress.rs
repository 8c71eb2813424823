//! Bounded gzip decompression of untrusted bodies.
//!
//! Agents send pprof and JFR either raw or gzipped, without telling which;
//! the gzip magic bytes decide. Inflation stops as soon as the output would
//! exceed the limit, so a gzip bomb costs at most `limit` bytes of memory and
//! the time to inflate them.

use std::borrow::Cow;
use std::io::Read;

use flate2::read::MultiGzDecoder;

use crate::FormatError;

/// The two magic bytes every gzip member starts with.
pub const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Whether `data` starts with the gzip magic bytes.
pub fn is_gzip(data: &[u8]) -> bool {
    data.starts_with(&GZIP_MAGIC)
}

/// Returns `data` inflated if it is gzip (all members of a multi-member
/// stream), or `data` itself otherwise.
///
/// Either way the result is at most `limit` bytes: a larger input or output
/// fails with [`FormatError::TooLarge`]. No more than `limit + 1` bytes are
/// ever inflated or allocated for the output.
pub fn decompress_if_gzip(data: &[u8], limit: usize) -> Result<Cow<'_, [u8]>, FormatError> {
    decompress_bounded(data, limit, "payload")
}

/// [`decompress_if_gzip`] with the name of what is decompressed, for the
/// error message.
pub(crate) fn decompress_bounded<'a>(
    data: &'a [u8],
    limit: usize,
    what: &'static str,
) -> Result<Cow<'a, [u8]>, FormatError> {
    if !is_gzip(data) {
        if data.len() > limit {
            return Err(FormatError::TooLarge { limit, what });
        }
        return Ok(Cow::Borrowed(data));
    }
    let cap = limit.saturating_add(1);
    let mut reader = MultiGzDecoder::new(data);
    // Start near the likely size (compression ratios of profiles are
    // around 4-10x), and grow by doubling, never beyond the cap.
    let mut out: Vec<u8> = Vec::new();
    let mut target = data.len().saturating_mul(4).max(8 << 10).min(cap);
    let mut filled = 0usize;
    loop {
        if filled == out.len() {
            if out.len() >= cap {
                return Err(FormatError::TooLarge { limit, what });
            }
            target = target.max(out.len().saturating_mul(2)).min(cap);
            out.reserve_exact(target - out.len());
            out.resize(target, 0);
        }
        match reader.read(&mut out[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(source) => return Err(FormatError::Gzip { source }),
        }
    }
    if filled > limit {
        return Err(FormatError::TooLarge { limit, what });
    }
    out.truncate(filled);
    Ok(Cow::Owned(out))
}

/// Gzips `data` at the default level.
pub fn gzip(data: &[u8]) -> Result<Vec<u8>, FormatError> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 4 + 64),
        flate2::Compression::default(),
    );
    enc.write_all(data)
        .map_err(|source| FormatError::Compress { source })?;
    enc.finish()
        .map_err(|source| FormatError::Compress { source })
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn passes_plain_data_through_without_copying() {
        let data = b"hello";
        let out = decompress_if_gzip(data, 5).unwrap();
        assert!(matches!(out, Cow::Borrowed(_)));
        assert_eq!(&*out, data);
        let err = decompress_if_gzip(data, 4).unwrap_err();
        assert!(matches!(err, FormatError::TooLarge { limit: 4, .. }));
    }

    #[test]
    fn inflates_single_and_multi_member_streams() {
        let a = gzip(b"first member;").unwrap();
        let b = gzip(b"second member").unwrap();
        assert_eq!(&*decompress_if_gzip(&a, 100).unwrap(), b"first member;");
        let mut both = a.clone();
        both.extend_from_slice(&b);
        assert_eq!(
            &*decompress_if_gzip(&both, 100).unwrap(),
            b"first member;second member"
        );
        // exactly at the limit is fine, one byte over is not
        assert!(decompress_if_gzip(&both, 26).is_ok());
        assert!(matches!(
            decompress_if_gzip(&both, 25),
            Err(FormatError::TooLarge { limit: 25, .. })
        ));
    }

    #[test]
    fn empty_gzip_is_empty() {
        let z = gzip(b"").unwrap();
        assert!(decompress_if_gzip(&z, 0).unwrap().is_empty());
    }

    #[test]
    fn corrupt_gzip_is_an_error() {
        let mut z = gzip(&[7u8; 1000]).unwrap();
        let n = z.len();
        z[n / 2] ^= 0xff;
        z.truncate(n - 4);
        let err = decompress_if_gzip(&z, 1 << 20).unwrap_err();
        assert!(matches!(err, FormatError::Gzip { .. }), "{err}");
        assert!(err.to_string().starts_with("decompress gzip"));
        let err = decompress_if_gzip(&[0x1f, 0x8b, 0, 0], 1 << 20).unwrap_err();
        assert!(matches!(err, FormatError::Gzip { .. }), "{err}");
    }

    #[test]
    fn gzip_bomb_fails_fast() {
        // 64 MiB of zeros compress to ~64 KiB.
        let bomb = gzip(&vec![0u8; 64 << 20]).unwrap();
        assert!(bomb.len() < 1 << 20);
        let start = Instant::now();
        let err = decompress_if_gzip(&bomb, 1 << 20).unwrap_err();
        assert!(matches!(
            err,
            FormatError::TooLarge {
                limit: 1_048_576,
                ..
            }
        ));
        assert!(start.elapsed() < Duration::from_secs(2));
    }
}
