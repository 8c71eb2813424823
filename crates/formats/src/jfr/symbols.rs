//! Merging of JVM-generated names, as Pyroscope does before it builds frame
//! names, so that classes the JVM generates at run time with a fresh number
//! or hash in their name do not turn into an unbounded number of distinct
//! functions.
//!
//! Each rule applies to a whole symbol (a class name, a method name, or the
//! library name async-profiler stores as the "class" of a native frame):
//!
//! | Symbol | Becomes |
//! |---|---|
//! | `jdk/internal/reflect/GeneratedMethodAccessor<digits>` | `jdk/internal/reflect/GeneratedMethodAccessor_` |
//! | `<prefix>$$Lambda` + (optional `$`, digits, `/` or `.`, optional `0x`, lowercase hex) to the end, or + digits to the end | `<prefix>$$Lambda_` (e.g. `App$$Lambda$75/0x0000000800c22a28` → `App$$Lambda_`; `App$$Lambda$241+0x…/826245889` is kept because of the `+`) |
//! | `[./tmp/]libzstd-jni-<a>.<b>.<c>-<digits>.so[ (deleted)]` | `libzstd-jni-_.so` |
//! | `[./tmp/][lib]amazonCorrettoCryptoProvider[NativeLibraries.]<16 hex>[/libcrypto or /libamazonCorrettoCryptoProvider].so[ (deleted)]` | `libamazonCorrettoCryptoProvider_.so` |
//! | `[./tmp/]libasyncProfiler-<linux-arm64, linux-musl-x64, linux-x64 or macos>-17b9a1d8156277a98ccc871afa9a8f69215f92.so[ (deleted)]` (the build bundled with pyroscope-java) | `libasyncProfiler-_.so` |

use std::borrow::Cow;

/// Applies every rule of the module documentation, in table order.
pub(super) fn merge_generated_names(symbol: &str) -> Cow<'_, str> {
    let mut current = Cow::Borrowed(symbol);
    let rules: [fn(&str) -> Option<String>; 5] = [
        merge_method_accessor,
        merge_lambda,
        merge_zstd_jni,
        merge_corretto,
        merge_async_profiler,
    ];
    for rule in rules {
        if let Some(replaced) = rule(&current) {
            current = Cow::Owned(replaced);
        }
    }
    current
}

fn all_digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

fn all_lower_hex(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Strips an optional `./tmp/` or `/tmp/` prefix.
fn strip_tmp_prefix(text: &str) -> &str {
    text.strip_prefix("./tmp/")
        .or_else(|| text.strip_prefix("/tmp/"))
        .unwrap_or(text)
}

/// Strips the `.so` suffix, optionally followed by ` (deleted)`.
fn strip_so_suffix(text: &str) -> Option<&str> {
    let text = text.strip_suffix(" (deleted)").unwrap_or(text);
    text.strip_suffix(".so")
}

fn merge_method_accessor(symbol: &str) -> Option<String> {
    const PREFIX: &str = "jdk/internal/reflect/GeneratedMethodAccessor";
    let number = symbol.strip_prefix(PREFIX)?;
    all_digits(number).then(|| format!("{PREFIX}_"))
}

/// Whether `rest` (what follows `$$Lambda`) is a generated-lambda suffix.
fn is_lambda_suffix(rest: &str) -> bool {
    if all_digits(rest) {
        return true;
    }
    let after_dollar = rest.strip_prefix('$').unwrap_or(rest);
    let after_digits = after_dollar.trim_start_matches(|c: char| c.is_ascii_digit());
    let Some(address) = after_digits
        .strip_prefix('/')
        .or_else(|| after_digits.strip_prefix('.'))
    else {
        return false;
    };
    all_lower_hex(address) || address.strip_prefix("0x").is_some_and(all_lower_hex)
}

fn merge_lambda(symbol: &str) -> Option<String> {
    const MARKER: &str = "$$Lambda";
    // The last occurrence that leaves a valid suffix wins; at least one
    // character must precede the marker.
    let mut search_end = symbol.len();
    while let Some(start) = symbol[..search_end].rfind(MARKER) {
        if start == 0 {
            return None;
        }
        let keep = start + MARKER.len();
        if is_lambda_suffix(&symbol[keep..]) {
            return Some(format!("{}_", &symbol[..keep]));
        }
        // Look for an earlier marker, which may overlap this one.
        search_end = start + MARKER.len() - 1;
    }
    None
}

fn merge_zstd_jni(symbol: &str) -> Option<String> {
    let name = strip_so_suffix(strip_tmp_prefix(symbol))?;
    let rest = name.strip_prefix("libzstd-jni-")?;
    let (version, number) = rest.split_once('-')?;
    let mut parts = version.split('.');
    let is_version = parts
        .by_ref()
        .take(3)
        .filter(|part| all_digits(part))
        .count()
        == 3
        && parts.next().is_none();
    (is_version && all_digits(number)).then(|| "libzstd-jni-_.so".to_owned())
}

fn merge_corretto(symbol: &str) -> Option<String> {
    let name = strip_so_suffix(strip_tmp_prefix(symbol))?;
    let name = name.strip_prefix("lib").unwrap_or(name);
    let rest = name.strip_prefix("amazonCorrettoCryptoProvider")?;
    let rest = rest.strip_prefix("NativeLibraries.").unwrap_or(rest);
    let hash = rest.get(..16)?;
    let tail = &rest[16..];
    let tail_ok = matches!(tail, "" | "/libcrypto" | "/libamazonCorrettoCryptoProvider");
    (all_lower_hex(hash) && tail_ok).then(|| "libamazonCorrettoCryptoProvider_.so".to_owned())
}

fn merge_async_profiler(symbol: &str) -> Option<String> {
    const BUILD: &str = "17b9a1d8156277a98ccc871afa9a8f69215f92";
    let name = strip_so_suffix(strip_tmp_prefix(symbol))?;
    let rest = name.strip_prefix("libasyncProfiler-")?;
    let platform = rest.strip_suffix(BUILD)?.strip_suffix('-')?;
    matches!(
        platform,
        "linux-arm64" | "linux-musl-x64" | "linux-x64" | "macos"
    )
    .then(|| "libasyncProfiler-_.so".to_owned())
}

#[cfg(test)]
mod tests {
    use super::merge_generated_names as merge;

    #[test]
    fn jfr_symbols_merge_generated_lambdas() {
        assert_eq!(merge("App$$Lambda$75/0x0000000800c22a28"), "App$$Lambda_");
        assert_eq!(merge("a/B$$Lambda$679/1608956286"), "a/B$$Lambda_");
        assert_eq!(merge("Fib$$Lambda.0x00007ffa600c4da0"), "Fib$$Lambda_");
        assert_eq!(merge("Fib$$Lambda/0x00007ffa600c4da0"), "Fib$$Lambda_");
        assert_eq!(merge("a/B$$$Lambda$12/0x1f"), "a/B$$$Lambda_");
        assert_eq!(merge("Fib$$Lambda123"), "Fib$$Lambda_");
        assert_eq!(
            merge("jdk.internal.platform.CgroupUtil$$Lambda$241+0x0000000800f06770/826245889"),
            "jdk.internal.platform.CgroupUtil$$Lambda$241+0x0000000800f06770/826245889"
        );
        assert_eq!(merge("$$Lambda$1/0x1"), "$$Lambda$1/0x1");
        assert_eq!(merge("App$$Lambda$75/0x00ZZ"), "App$$Lambda$75/0x00ZZ");
        assert_eq!(merge("App$$Lambda"), "App$$Lambda");
        assert_eq!(
            merge("java/lang/invoke/LambdaForm$DMH.0x0000000801208c00"),
            "java/lang/invoke/LambdaForm$DMH.0x0000000801208c00"
        );
    }

    #[test]
    fn jfr_symbols_merge_generated_libraries_and_accessors() {
        assert_eq!(
            merge("jdk/internal/reflect/GeneratedMethodAccessor31"),
            "jdk/internal/reflect/GeneratedMethodAccessor_"
        );
        assert_eq!(
            merge("jdk/internal/reflect/GeneratedMethodAccessorX"),
            "jdk/internal/reflect/GeneratedMethodAccessorX"
        );
        assert_eq!(
            merge("./tmp/libzstd-jni-1.5.1-16931311898282279136.so (deleted)"),
            "libzstd-jni-_.so"
        );
        assert_eq!(merge("libzstd-jni-1.5-1.so"), "libzstd-jni-1.5-1.so");
        assert_eq!(
            merge("./tmp/libamazonCorrettoCryptoProvider109b39cf33c563eb.so"),
            "libamazonCorrettoCryptoProvider_.so"
        );
        assert_eq!(
            merge(
                "./tmp/amazonCorrettoCryptoProviderNativeLibraries.7382c2f79097f415/libcrypto.so (deleted)"
            ),
            "libamazonCorrettoCryptoProvider_.so"
        );
        assert_eq!(
            merge("libasyncProfiler-linux-arm64-17b9a1d8156277a98ccc871afa9a8f69215f92.so"),
            "libasyncProfiler-_.so"
        );
        assert_eq!(
            merge("libasyncProfiler-linux-x64-505cc169188276c919be50bc1b47e8f236295f.so"),
            "libasyncProfiler-linux-x64-505cc169188276c919be50bc1b47e8f236295f.so"
        );
    }
}
