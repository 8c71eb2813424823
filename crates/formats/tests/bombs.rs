//! Decompression bombs against the bounded decoders of
//! `kiln_formats::compress` and the parsers that use them: each is refused
//! with `TooLarge` quickly, and the memory the refusal costs (measured with
//! a counting global allocator, per thread) stays within the limit plus the
//! decoder's own state.
//!
//! This is its own test binary because it installs a global allocator.

#![allow(
    clippy::unwrap_used,
    clippy::print_stderr,
    reason = "test code: measurements are printed, a failed step stops the test"
)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Write;
use std::time::{Duration, Instant};

use kiln_formats::compress::{bounded_gunzip, bounded_unzstd, decode_content_encoding};
use kiln_formats::{FormatError, Limits};

/// Counts the bytes each thread holds, and the most it held since the last
/// [`reset_peak`].
struct CountingAllocator;

thread_local! {
    static CURRENT: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn grow(by: usize) {
    let _ = CURRENT.try_with(|c| {
        let now = c.get().saturating_add(by);
        c.set(now);
        let _ = PEAK.try_with(|p| p.set(p.get().max(now)));
    });
}

fn shrink(by: usize) {
    let _ = CURRENT.try_with(|c| c.set(c.get().saturating_sub(by)));
}

// SAFETY: every method forwards to `System` with the same arguments; the
// counting on the side touches only thread-local cells.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grow(layout.size());
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        grow(layout.size());
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        shrink(layout.size());
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // Counted as if the old block lived until the new one exists, the
        // worst case of a moving realloc.
        grow(new_size);
        shrink(layout.size());
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Runs `f` and returns its result, how long it took and the most bytes
/// this thread held above what it held before.
fn measure<T>(f: impl FnOnce() -> T) -> (T, Duration, usize) {
    let base = CURRENT.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let start = Instant::now();
    let out = f();
    let elapsed = start.elapsed();
    let peak = PEAK.with(Cell::get) - base;
    (out, elapsed, peak)
}

const GIB: usize = 1 << 30;
const MIB: usize = 1 << 20;

/// A gzip stream that inflates to `total` zero bytes: one member of
/// `member` zeros, repeated (multi-member streams are valid gzip, and each
/// decoder here reads all members).
fn gzip_zeros(member: usize, total: usize) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let chunk = vec![0u8; MIB.min(member)];
    for _ in 0..member / chunk.len() {
        enc.write_all(&chunk).unwrap();
    }
    let one = enc.finish().unwrap();
    one.repeat(total / member)
}

/// A zstd stream of `total` zero bytes: one frame of `frame` zeros,
/// repeated (concatenated frames are one stream).
fn zstd_zeros(frame: usize, total: usize) -> Vec<u8> {
    let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 19).unwrap();
    let chunk = vec![0u8; MIB.min(frame)];
    for _ in 0..frame / chunk.len() {
        enc.write_all(&chunk).unwrap();
    }
    let one = enc.finish().unwrap();
    one.repeat(total / frame)
}

/// Asserts a refusal: `TooLarge` with `limit`, in less than `max_time`
/// (generous: debug builds on a loaded 2-core machine), holding at most
/// `limit + slack` bytes.
fn assert_refused(
    name: &str,
    result: Result<impl Sized, FormatError>,
    elapsed: Duration,
    peak: usize,
    limit: usize,
    slack: usize,
) {
    eprintln!(
        "{name}: refused in {:.1} ms, peak {:.2} MiB held (limit {} MiB)",
        elapsed.as_secs_f64() * 1e3,
        peak as f64 / MIB as f64,
        limit / MIB,
    );
    match result {
        Err(FormatError::TooLarge { limit: l, .. }) => assert_eq!(l, limit, "{name}"),
        Err(e) => panic!("{name}: expected TooLarge, got {e}"),
        Ok(_) => panic!("{name}: the bomb was accepted"),
    }
    assert!(
        peak <= limit + slack,
        "{name}: held {peak} bytes, more than the limit {limit} + {slack}"
    );
    assert!(elapsed < Duration::from_secs(3), "{name}: took {elapsed:?}");
}

#[test]
fn one_gib_gzip_bomb_costs_the_limit_not_the_gibibyte() {
    // 1 GiB of zeros in ~1 MiB of gzip (64 members of 16 MiB).
    let bomb = gzip_zeros(16 * MIB, GIB);
    eprintln!("gzip bomb: {} bytes for 1 GiB", bomb.len());
    assert!(bomb.len() < 2 * MIB);
    let limit = Limits::default().max_profile_bytes;
    let (result, elapsed, peak) = measure(|| bounded_gunzip(&bomb, limit, "profile"));
    assert_refused("gzip 1 GiB", result, elapsed, peak, limit, 256 << 10);
}

#[test]
fn single_member_gzip_bomb_is_refused() {
    // One member of 256 MiB of zeros (~250 KiB compressed).
    let bomb = gzip_zeros(256 * MIB, 256 * MIB);
    let limit = Limits::default().max_profile_bytes;
    let (result, elapsed, peak) =
        measure(|| kiln_formats::pprof::decode(&bomb, &Limits::default()).map(|p| p.sample.len()));
    assert_refused(
        "pprof gzip 256 MiB",
        result,
        elapsed,
        peak,
        limit,
        256 << 10,
    );
}

#[test]
fn gzip_bomb_that_lies_about_its_size_is_refused() {
    // The ISIZE trailer claims 16 bytes: the buffer starts small and grows
    // by doubling; a moving reallocation of the last doubling (counted here
    // as if every reallocation moved) holds 1.5 x the limit for a moment.
    let mut bomb = gzip_zeros(256 * MIB, 256 * MIB);
    let n = bomb.len();
    bomb[n - 4..].copy_from_slice(&16u32.to_le_bytes());
    let limit = Limits::default().max_profile_bytes;
    let (result, elapsed, peak) = measure(|| bounded_gunzip(&bomb, limit, "profile"));
    assert_refused(
        "gzip lying ISIZE",
        result,
        elapsed,
        peak,
        limit,
        limit / 2 + (256 << 10),
    );
}

#[test]
fn one_gib_zstd_bomb_costs_the_limit_plus_the_window() {
    let bomb = zstd_zeros(64 * MIB, GIB);
    eprintln!("zstd bomb: {} bytes for 1 GiB", bomb.len());
    let limit = Limits::default().max_profile_bytes;
    let (result, elapsed, peak) =
        measure(|| decode_content_encoding(Some("zstd"), &bomb, limit, "request body"));
    // zstd keeps its window (at most 8 MiB, here far less) and block
    // buffers besides the output.
    assert_refused("zstd 1 GiB", result, elapsed, peak, limit, 10 * MIB);
    let (result, elapsed, peak) = measure(|| bounded_unzstd(&bomb, 16 * MIB, "body"));
    assert_refused(
        "zstd 1 GiB, 16 MiB limit",
        result,
        elapsed,
        peak,
        16 * MIB,
        10 * MIB,
    );
}

#[test]
fn nested_bombs_are_bounded_at_each_layer() {
    // A gzip body (as Content-Encoding) holding a gzip pprof bomb: the
    // outer layer is small and passes its limit, the inner one is refused
    // at the profile limit.
    let inner = gzip_zeros(16 * MIB, GIB);
    let outer = kiln_formats::compress::gzip(&inner).unwrap();
    let limits = Limits::default();
    let (result, elapsed, peak) = measure(|| {
        let body = decode_content_encoding(Some("gzip"), &outer, limits.max_body_bytes, "body")?;
        kiln_formats::pprof::decode(&body, &limits).map(|p| p.sample.len())
    });
    // The inflated outer layer (the inner bomb, ~1 MiB) is held while the
    // inner one is refused.
    let slack = inner.len() + (256 << 10);
    assert_refused(
        "gzip in gzip",
        result,
        elapsed,
        peak,
        limits.max_profile_bytes,
        slack,
    );

    // zstd around a gzip JFR bomb, refused at the JFR limit.
    let outer = zstd::encode_all(&inner[..], 3).unwrap();
    let (result, elapsed, peak) = measure(|| {
        let body = decode_content_encoding(Some("zstd"), &outer, limits.max_body_bytes, "body")?;
        let options = kiln_formats::jfr::JfrOptions {
            max_decompressed_bytes: limits.max_jfr_bytes,
            ..Default::default()
        };
        kiln_formats::jfr::parse_jfr(&body, None, &options)
            .map(|p| p.len())
            .map_err(|e| match e {
                kiln_formats::jfr::JfrError::TooLarge { limit, what } => {
                    FormatError::TooLarge { limit, what }
                }
                e => panic!("expected TooLarge, got {e}"),
            })
    });
    // The inner bomb's last member claims 16 MiB, so its buffer grows by
    // doubling up to the 64 MiB limit: up to half the limit more while the
    // last doubling moves.
    assert_refused(
        "gzip JFR in zstd",
        result,
        elapsed,
        peak,
        limits.max_jfr_bytes,
        slack + limits.max_jfr_bytes / 2,
    );
}
