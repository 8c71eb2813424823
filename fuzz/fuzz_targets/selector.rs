//! Label selectors (`label_selector`, `matchers[]`, the render `query`).
//! A selector that parses must print to a string that parses to the same
//! selector, and matching it against a label set must not panic.
#![no_main]

use kiln_model::Labels;
use kiln_model::selector::Selector;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(selector) = Selector::parse(text) else {
        return;
    };
    let printed = selector.to_string();
    let again = Selector::parse(&printed)
        .unwrap_or_else(|e| panic!("{text:?} printed as {printed:?}, which fails: {e}"));
    assert_eq!(
        printed,
        again.to_string(),
        "{text:?}: printing is not stable"
    );
    let labels = Labels::from_pairs([
        ("__name__", "process_cpu"),
        ("service_name", "fuzz"),
        ("env", ""),
    ]);
    let _ = selector.matches(&labels);
    let _ = selector.exact_values("service_name");
});
