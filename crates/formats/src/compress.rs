//! Bounded decompression of untrusted bytes: the one place where Kiln
//! inflates what a client sent.
//!
//! Agents send pprof and JFR either raw or gzipped, without telling which;
//! the gzip magic bytes decide ([`decompress_if_gzip`]). Connect and
//! OTLP/HTTP bodies name their encoding in `Content-Encoding`
//! ([`decode_content_encoding`]: `gzip`, `zstd` or `identity`).
//!
//! Every decoder here writes into an output buffer that never grows past
//! `limit` bytes: inflation stops as soon as the output would exceed the
//! limit, so a bomb costs at most `limit` bytes of output memory (plus the
//! decoder's own state: under 64 KiB for gzip, at most
//! 2^[`ZSTD_MAX_WINDOW_LOG`] for zstd) and the time to inflate `limit`
//! bytes. The buffer is sized from the size the stream claims (gzip
//! `ISIZE`, zstd frame content size), so an honest stream is inflated
//! without reallocation; a stream that lies about its size makes the buffer
//! grow by doubling, and a moving reallocation of the last doubling may
//! briefly hold 1.5 × `limit`. The error is
//! [`FormatError::TooLarge`] (HTTP 413, Connect `resource_exhausted`);
//! corrupt streams are [`FormatError::Gzip`] / [`FormatError::Zstd`] and an
//! unknown encoding is [`FormatError::UnsupportedEncoding`] (all three
//! `invalid_argument`).

use std::borrow::Cow;
use std::io::Read;

use flate2::read::MultiGzDecoder;

use crate::FormatError;

/// The two magic bytes every gzip member starts with.
pub const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Largest zstd window accepted, as a power of two (8 MiB, the window RFC
/// 8878 asks HTTP `zstd` decoders to support). A frame that declares a
/// larger window would make the decoder allocate it before producing a byte,
/// so it is refused as corrupt.
pub const ZSTD_MAX_WINDOW_LOG: u32 = 23;

/// Whether `data` starts with the gzip magic bytes.
pub fn is_gzip(data: &[u8]) -> bool {
    data.starts_with(&GZIP_MAGIC)
}

/// Returns `data` inflated if it is gzip (all members of a multi-member
/// stream), or `data` itself otherwise.
///
/// Either way the result is at most `limit` bytes: a larger input or output
/// fails with [`FormatError::TooLarge`]. No more than `limit + 1` bytes are
/// ever inflated, nor `limit` bytes allocated for the output.
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
    bounded_gunzip(data, limit, what).map(Cow::Owned)
}

/// Inflates a gzip stream (all members of a multi-member stream) of at most
/// `limit` bytes; `what` names it in the error.
pub fn bounded_gunzip(
    data: &[u8],
    limit: usize,
    what: &'static str,
) -> Result<Vec<u8>, FormatError> {
    read_bounded(MultiGzDecoder::new(data), gzip_size_hint(data), limit)
        .map_err(|e| e.into_format_error(limit, what, |source| FormatError::Gzip { source }))
}

/// Decompresses a zstd stream (all frames) of at most `limit` bytes; frames
/// whose window is larger than 2^[`ZSTD_MAX_WINDOW_LOG`] are refused.
pub fn bounded_unzstd(
    data: &[u8],
    limit: usize,
    what: &'static str,
) -> Result<Vec<u8>, FormatError> {
    let corrupt = |source| FormatError::Zstd { source };
    let mut decoder = zstd::stream::read::Decoder::with_buffer(data).map_err(corrupt)?;
    decoder
        .window_log_max(ZSTD_MAX_WINDOW_LOG)
        .map_err(corrupt)?;
    read_bounded(decoder, zstd_size_hint(data), limit)
        .map_err(|e| e.into_format_error(limit, what, corrupt))
}

/// Decodes a body by its `Content-Encoding` header value (`None` or
/// `identity`: as is; `gzip`/`x-gzip`; `zstd`), at most `limit` bytes after
/// decoding. Other encodings fail with [`FormatError::UnsupportedEncoding`].
pub fn decode_content_encoding<'a>(
    encoding: Option<&str>,
    data: &'a [u8],
    limit: usize,
    what: &'static str,
) -> Result<Cow<'a, [u8]>, FormatError> {
    let encoding = encoding.map(str::trim).unwrap_or("");
    let is = |name: &str| encoding.eq_ignore_ascii_case(name);
    if encoding.is_empty() || is("identity") {
        if data.len() > limit {
            return Err(FormatError::TooLarge { limit, what });
        }
        Ok(Cow::Borrowed(data))
    } else if is("gzip") || is("x-gzip") {
        bounded_gunzip(data, limit, what).map(Cow::Owned)
    } else if is("zstd") {
        bounded_unzstd(data, limit, what).map(Cow::Owned)
    } else {
        Err(FormatError::UnsupportedEncoding(crate::error::shorten(
            encoding,
        )))
    }
}

/// Why [`read_bounded`] stopped.
enum BoundedReadError {
    /// The output would be larger than the limit.
    TooLarge,
    /// The decoder failed (corrupt or truncated stream).
    Decoder(std::io::Error),
}

impl BoundedReadError {
    fn into_format_error(
        self,
        limit: usize,
        what: &'static str,
        decoder: impl FnOnce(std::io::Error) -> FormatError,
    ) -> FormatError {
        match self {
            BoundedReadError::TooLarge => FormatError::TooLarge { limit, what },
            BoundedReadError::Decoder(source) => decoder(source),
        }
    }
}

/// Reads `reader` to its end into a buffer that never grows past `limit`
/// bytes; whether a full buffer's stream goes on is probed with a one-byte
/// stack buffer, so the heap never holds more than `limit` output bytes.
///
/// `size_hint` (what the stream's header or trailer claims the output size
/// is; untrusted) sizes the first allocation, clamped to the limit: an
/// honest stream is inflated without a single reallocation, a lying one
/// costs the doubling growth it would have cost without a hint.
fn read_bounded(
    mut reader: impl Read,
    size_hint: usize,
    limit: usize,
) -> Result<Vec<u8>, BoundedReadError> {
    let mut out: Vec<u8> = Vec::new();
    let mut target = size_hint.max(8 << 10).min(limit);
    let mut filled = 0usize;
    loop {
        if filled == out.len() {
            // The buffer is full: find out whether the stream ends here
            // before growing it, so that an exact hint never reallocates.
            let mut probe = [0u8; 1];
            let byte = match reader.read(&mut probe) {
                Ok(0) => return Ok(out),
                Ok(_) => probe[0],
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(source) => return Err(BoundedReadError::Decoder(source)),
            };
            if out.len() >= limit {
                return Err(BoundedReadError::TooLarge);
            }
            // Grow by doubling, never beyond the limit (reserve_exact:
            // `resize` alone may round the capacity up).
            target = target.max(out.len().saturating_mul(2)).min(limit);
            out.reserve_exact(target - out.len());
            out.resize(target, 0);
            out[filled] = byte;
            filled += 1;
            continue;
        }
        match reader.read(&mut out[filled..]) {
            Ok(0) => {
                out.truncate(filled);
                return Ok(out);
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(source) => return Err(BoundedReadError::Decoder(source)),
        }
    }
}

/// The output size a gzip stream claims: `ISIZE` of its last member (the
/// size modulo 2^32; only a hint), or a guess from the input size.
fn gzip_size_hint(data: &[u8]) -> usize {
    match data.len().checked_sub(4).map(|at| &data[at..]) {
        Some(&[a, b, c, d]) => u32::from_le_bytes([a, b, c, d]) as usize,
        _ => data.len().saturating_mul(4),
    }
}

/// The output size a zstd stream claims: the content size in its first
/// frame header (only a hint), or a guess from the input size.
fn zstd_size_hint(data: &[u8]) -> usize {
    match zstd::zstd_safe::get_frame_content_size(data) {
        Ok(Some(size)) => usize::try_from(size).unwrap_or(usize::MAX),
        _ => data.len().saturating_mul(4),
    }
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
    fn zstd_inflates_exactly_up_to_the_limit() {
        let z = zstd::encode_all(&b"abcdefgh"[..], 3).unwrap();
        assert_eq!(bounded_unzstd(&z, 8, "body").unwrap(), b"abcdefgh");
        let err = bounded_unzstd(&z, 7, "body").unwrap_err();
        assert!(matches!(
            err,
            FormatError::TooLarge {
                limit: 7,
                what: "body"
            }
        ));
        // several frames are one stream
        let mut two = z.clone();
        two.extend_from_slice(&z);
        assert_eq!(
            bounded_unzstd(&two, 16, "body").unwrap(),
            b"abcdefghabcdefgh"
        );
    }

    #[test]
    fn corrupt_zstd_is_an_error() {
        let mut z = zstd::encode_all(&[9u8; 4096][..], 3).unwrap();
        z.truncate(z.len() - 3);
        let err = bounded_unzstd(&z, 1 << 20, "body").unwrap_err();
        assert!(matches!(err, FormatError::Zstd { .. }), "{err}");
        let err = bounded_unzstd(b"not zstd at all", 1 << 20, "body").unwrap_err();
        assert!(matches!(err, FormatError::Zstd { .. }), "{err}");
        assert!(err.to_string().starts_with("decompress zstd"));
    }

    #[test]
    fn zstd_frame_with_a_window_over_8_mib_is_refused() {
        // A frame compressed with a 16 MiB window (long-distance mode) and no
        // content size: the decoder would have to allocate the window.
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        enc.include_contentsize(false).unwrap();
        enc.window_log(24).unwrap();
        enc.long_distance_matching(true).unwrap();
        std::io::Write::write_all(&mut enc, &[1u8; 1 << 20]).unwrap();
        let z = enc.finish().unwrap();
        let err = bounded_unzstd(&z, 64 << 20, "body").unwrap_err();
        assert!(matches!(err, FormatError::Zstd { .. }), "{err}");
        // the same data with the default window decodes
        let z = zstd::encode_all(&[1u8; 1 << 20][..], 3).unwrap();
        assert_eq!(bounded_unzstd(&z, 64 << 20, "body").unwrap().len(), 1 << 20);
    }

    #[test]
    fn content_encoding_picks_the_decoder() {
        let plain = b"folded;stack 1".to_vec();
        let gz = gzip(&plain).unwrap();
        let zs = zstd::encode_all(&plain[..], 1).unwrap();
        for (encoding, body) in [
            (None, &plain),
            (Some("identity"), &plain),
            (Some(" GZIP "), &gz),
            (Some("x-gzip"), &gz),
            (Some("zstd"), &zs),
        ] {
            let out = decode_content_encoding(encoding, body, 100, "body").unwrap();
            assert_eq!(&*out, &plain[..], "{encoding:?}");
        }
        // plain bodies are bounded too
        let err = decode_content_encoding(None, &plain, 3, "request body").unwrap_err();
        assert_eq!(err.to_string(), "request body too large: more than 3 bytes");
        let err = decode_content_encoding(Some("br"), &plain, 100, "body").unwrap_err();
        assert!(matches!(err, FormatError::UnsupportedEncoding(_)));
        assert_eq!(
            err.to_string(),
            "unsupported content encoding \"br\": use gzip, zstd or identity"
        );
        // a gzip body announced as zstd is corrupt, not silently accepted
        let err = decode_content_encoding(Some("zstd"), &gz, 100, "body").unwrap_err();
        assert!(matches!(err, FormatError::Zstd { .. }));
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
