//! Lists every file under `assets/` and generates the table of embedded
//! assets (`$OUT_DIR/assets.rs`): path, bytes (`include_bytes!`), content
//! type and an ETag computed from the content. Adding a file to `assets/`
//! is enough to serve it; no npm step is involved.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

/// FNV-1a, 64 bits: a content hash for ETags (not a security measure).
fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut files = Vec::new();
    walk(&root, &mut files);
    files.sort();
    let mut code = String::from(
        "/// Every embedded asset, sorted by path.\npub(crate) static ASSETS: &[Asset] = &[\n",
    );
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
        let rel = file
            .strip_prefix(&root)
            .expect("asset under assets/")
            .to_string_lossy()
            .replace('\\', "/");
        let data = std::fs::read(file).expect("readable asset");
        let _ = writeln!(
            code,
            "    Asset {{ path: {rel:?}, bytes: include_bytes!({abs:?}), content_type: {ct:?}, etag: \"\\\"{hash:016x}\\\"\" }},",
            abs = file.display().to_string(),
            ct = content_type(file),
            hash = fnv1a(&data),
        );
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("assets.rs");
    std::fs::write(out, code).expect("writable OUT_DIR");
}
