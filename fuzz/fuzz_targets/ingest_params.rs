//! The query string of `/ingest`: `name` (app name with `{k=v}` labels),
//! `from`/`until` (attime syntax), `sampleRate`, ... One input is a query
//! string `k=v&k=v` (no percent-decoding: the HTTP layer does that).
#![no_main]

use kiln_formats::ingest::{IngestParams, detect_format};
use kiln_fuzz::NOW_NS;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let query: Vec<(String, String)> = text
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (pair.to_owned(), String::new()),
        })
        .collect();
    if let Ok(params) = IngestParams::from_query(&query, NOW_NS) {
        let labels = params.base_labels(&params.app_name);
        assert!(labels.get("service_name").is_some());
        let _ = detect_format(params.format.as_deref(), Some(text));
    }
    let _ = kiln_model::ProfileType::parse(text);
});
