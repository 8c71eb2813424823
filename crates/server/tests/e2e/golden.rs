//! Golden tests over the shared real-world test data: every pprof from Go,
//! Node, Python, Ruby, Rust and .NET producers is ingested through `/ingest`
//! and read back per profile type; every total must equal the sum of the
//! file's own sample values. The OG flamebearer export must come back with
//! the same stacks.

use kiln_proto::querier::v1 as q;
use kiln_tests::{Client, Kiln, decode_levels, now_ms, pprof_totals, read_testdata, testdata_dir};

/// pprof inputs and the sample_type_config sent with them, if any.
fn inputs() -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    for dir in ["pprof", "pprof/phlaredb"] {
        for entry in std::fs::read_dir(testdata_dir().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if !path.is_file() || name.ends_with(".json") || name.ends_with(".fixed") {
                continue;
            }
            let rel = format!("{dir}/{name}");
            let stem = name.split('.').next().unwrap().to_owned();
            let config = format!("{dir}/{stem}.st.json");
            let config = testdata_dir().join(&config).exists().then_some(config);
            out.push((rel, config));
        }
    }
    for name in [
        "captured/go1.19-runtime-pprof.cpu.pb.gz",
        "captured/go1.19-runtime-pprof.heap.pb.gz",
        "captured/go1.19-runtime-pprof.allocs.pb.gz",
        "captured/nodejs-pyroscope-0.6.4.ingest-heap.pprof.gz",
        "captured/rust-pyroscope-0.5.8-pprofrs-0.2.10.ingest-cpu.pprof.gz",
    ] {
        out.push((name.to_owned(), None));
    }
    out.sort();
    out
}

fn service_of(rel: &str) -> String {
    format!("golden-{}", rel.replace(['/', '.'], "-"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_pprof_reads_back_with_its_own_totals() {
    let dir = tempfile::tempdir().unwrap();
    let kiln = Kiln::start(&Kiln::binary(), dir.path(), &[]).unwrap();
    let c = Client::new(&kiln.http);
    let secs = (now_ms() / 1000).to_string();
    let files = inputs();
    assert!(
        files.len() >= 30,
        "expected the shared pprof files, found {}",
        files.len()
    );
    // Upload everything at once (the pushes share segments), then check.
    let uploads = files.iter().map(|(rel, config)| {
        let c = c.clone();
        let secs = secs.clone();
        async move {
            let data = read_testdata(rel);
            let spy = if rel.contains("dotnet") {
                "dotnetspy"
            } else {
                "unknown"
            };
            let query = vec![
                ("name", service_of(rel)),
                ("from", secs.clone()),
                ("until", secs),
                ("spyName", spy.to_owned()),
            ];
            let mut parts = vec![("profile", "profile.pprof", data)];
            if let Some(cfg) = config {
                parts.push((
                    "sample_type_config",
                    "sample_type_config.json",
                    read_testdata(cfg),
                ));
            }
            (
                rel.clone(),
                c.ingest_multipart(&query, &parts).await.unwrap(),
            )
        }
    });
    let replies = futures::future::join_all(uploads).await;
    let mut checked = 0;
    for (rel, r) in replies {
        let rel = rel.as_str();
        let data = read_testdata(rel);
        let service = service_of(rel);
        if rel.contains("invalid_utf8") {
            assert_eq!(r.status, 400, "{rel}: {}", r.text());
            assert!(r.text().contains("UTF-8"), "{rel}: {}", r.text());
            continue;
        }
        assert_eq!(r.status, 200, "{rel}: {}", r.text());

        // Which profile types did the server derive for this service?
        let (start, end) = (1, now_ms() + 3_600_000);
        let series: q::SeriesResponse = c
            .connect_proto(
                "/querier.v1.QuerierService/Series",
                &q::SeriesRequest {
                    matchers: vec![format!("{{service_name=\"{service}\"}}")],
                    label_names: vec!["__profile_type__".into()],
                    start,
                    end,
                },
                false,
            )
            .await
            .unwrap()
            .unwrap();
        let types: Vec<String> = series
            .labels_set
            .iter()
            .map(|l| l.labels[0].value.clone())
            .collect();
        let expected: Vec<(String, String, i64)> = pprof_totals(&data)
            .into_iter()
            .map(|(t, u, v)| (t.replace('-', "_"), u, v))
            .filter(|(_, _, v)| *v != 0)
            .collect();
        assert_eq!(
            types.len(),
            expected.len(),
            "{rel}: profile types {types:?} vs sample types {expected:?}"
        );
        for (ty, unit, total) in expected {
            let id = types
                .iter()
                .find(|id| {
                    let p: Vec<&str> = id.split(':').collect();
                    p[1] == ty && p[2] == unit
                })
                .unwrap_or_else(|| panic!("{rel}: no profile type for {ty}/{unit} in {types:?}"));
            let req = q::SelectMergeStacktracesRequest {
                profile_type_id: id.clone(),
                label_selector: format!("{{service_name=\"{service}\"}}"),
                start,
                end,
                ..Default::default()
            };
            let resp = c.merge(&req).await;
            assert_eq!(
                resp.flamegraph.unwrap().total,
                total,
                "{rel}: total of {id}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 60, "only {checked} profile types checked");
    kiln.stop().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn og_flamebearer_export_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let kiln = Kiln::start(&Kiln::binary(), dir.path(), &[]).unwrap();
    let c = Client::new(&kiln.http);
    let export: serde_json::Value =
        serde_json::from_slice(&read_testdata("flamebearer/profile.json")).unwrap();
    let names: Vec<String> =
        serde_json::from_value(export["flamebearer"]["names"].clone()).unwrap();
    let levels: Vec<Vec<i64>> =
        serde_json::from_value(export["flamebearer"]["levels"].clone()).unwrap();
    let stacks = decode_levels(&names, &levels);
    assert_eq!(
        stacks.values().sum::<i64>(),
        export["flamebearer"]["numTicks"].as_i64().unwrap()
    );
    // Upload as folded samples (sampleRate=0 keeps the plain counts).
    let folded: String = stacks.iter().map(|(s, v)| format!("{s} {v}\n")).collect();
    let secs = (now_ms() / 1000).to_string();
    let r = c
        .ingest(
            &[
                ("name", "fbapp.cpu".into()),
                ("sampleRate", "0".into()),
                ("from", secs.clone()),
                ("until", secs),
            ],
            "text/plain",
            folded.into_bytes(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let r = c
        .get(
            "/pyroscope/render",
            &[
                (
                    "query",
                    "process_cpu:samples:count::{service_name=\"fbapp\"}".into(),
                ),
                ("from", "now-1h".into()),
                ("until", "now+1h".into()),
            ],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    assert_eq!(
        j["flamebearer"]["numTicks"],
        export["flamebearer"]["numTicks"]
    );
    assert_eq!(
        j["flamebearer"]["maxSelf"],
        export["flamebearer"]["maxSelf"]
    );
    let got_names: Vec<String> = serde_json::from_value(j["flamebearer"]["names"].clone()).unwrap();
    let got_levels: Vec<Vec<i64>> =
        serde_json::from_value(j["flamebearer"]["levels"].clone()).unwrap();
    assert_eq!(decode_levels(&got_names, &got_levels), stacks);
    // Same layout, level by level (names may be numbered differently).
    let named = |names: &[String], levels: &[Vec<i64>]| -> Vec<Vec<(i64, i64, i64, String)>> {
        levels
            .iter()
            .map(|l| {
                l.chunks(4)
                    .map(|t| (t[0], t[1], t[2], names[t[3] as usize].clone()))
                    .collect()
            })
            .collect()
    };
    assert_eq!(named(&got_names, &got_levels), named(&names, &levels));
    kiln.stop().unwrap();
}
