//! Every input file, through every parser: the test data and the fuzz
//! seeds (`fuzz/seeds/`, which also holds the inputs of every bug the
//! fuzzers found) go, as they are and inflated, into each entry point that
//! reads untrusted bytes. Any answer is fine as long as none panics: the
//! `cargo test` form of `fuzz/run.sh`'s regression step, without libFuzzer.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use kiln_formats::ingest::{IngestBody, IngestParams, profiles_from_ingest};
use kiln_formats::{Limits, compress, otlp, push};
use kiln_proto::json::from_json;
use kiln_proto::querier::v1 as q;
use kiln_proto::types::v1::LabelPair;

use crate::{NOW, testdata};

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn every_parser(data: &[u8], limits: &Limits) {
    let query = |format: &str| {
        [
            ("name", "every.cpu{env=test}"),
            ("format", format),
            ("from", "1700000000"),
            ("until", "1700000010"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
    };
    for format in [
        "pprof",
        "jfr",
        "folded",
        "lines",
        "speedscope",
        "trie",
        "tree",
    ] {
        let params = IngestParams::from_query(&query(format), NOW).unwrap();
        let _ = profiles_from_ingest(
            &params,
            None,
            IngestBody::Raw(Bytes::copy_from_slice(data)),
            limits,
            NOW,
        );
    }
    let labels = [LabelPair {
        name: "__name__".to_owned(),
        value: "process_cpu".to_owned(),
    }];
    let _ = push::profiles_from_push_series(&labels, data, limits, NOW);
    let _ = otlp::profiles_from_otlp(data, limits, NOW);
    let _ = compress::decode_content_encoding(Some("zstd"), data, 1 << 20, "body");
    let _ = from_json::<q::SelectMergeStacktracesRequest>(data);
    if data.len() <= 4096
        && let Ok(text) = std::str::from_utf8(data)
    {
        let _ = kiln_model::Selector::parse(text);
    }
}

#[test]
fn no_input_file_panics_any_parser() {
    let mut files = Vec::new();
    files_under(&testdata(), &mut files);
    files_under(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds"),
        &mut files,
    );
    files.sort();
    assert!(files.len() > 100, "only {} input files", files.len());
    let limits = Limits::default();
    for path in &files {
        let data = std::fs::read(path).unwrap();
        let inflated = compress::decompress_if_gzip(&data, 64 << 20)
            .map(|d| d.into_owned())
            .ok();
        for input in std::iter::once(&data).chain(inflated.as_ref()) {
            if catch_unwind(AssertUnwindSafe(|| every_parser(input, &limits))).is_err() {
                panic!("a parser panicked on {}", path.display());
            }
        }
    }
}
