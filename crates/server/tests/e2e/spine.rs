//! The spine: ingest through every write API, query through every read
//! API, restart, query again. Expected values are computed in the test from
//! the input files, never taken from Kiln's own output.

use std::collections::BTreeMap;

use kiln_proto::google::v1::Profile;
use kiln_proto::push::v1::{PushRequest, PushResponse, RawProfileSeries, RawSample};
use kiln_proto::querier::v1 as q;
use kiln_proto::types::v1 as t;
use kiln_tests::{
    Client, Kiln, base64, decode_levels, flamegraph_stacks, maybe_gunzip, now_ms, pprof_totals,
    read_testdata,
};
use prost::Message;

pub(crate) const CPU: &str = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";

/// What one ingested input should read back as.
#[derive(Debug, Clone)]
pub(crate) struct Expect {
    service: String,
    profile_type: String,
    total: i64,
}

/// Parses folded text independently: `stack count` per line, split at the
/// last space.
fn folded_counts(text: &str) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let (stack, n) = line.rsplit_once(' ').unwrap();
        *out.entry(stack.to_owned()).or_insert(0) += n.trim().parse::<i64>().unwrap();
    }
    out
}

fn secs() -> String {
    (now_ms() / 1000).to_string()
}

pub(crate) async fn ingest_everything(c: &Client) -> (Vec<Expect>, BTreeMap<String, i64>) {
    let mut expect = Vec::new();

    // 1. Folded text (the default format), OG-style name with a kind suffix.
    let folded = String::from_utf8(read_testdata("collapsed/pprof-string.txt")).unwrap();
    let counts = folded_counts(&folded);
    let r = c
        .ingest(
            &[
                ("name", "foldedapp.cpu{env=test}".into()),
                ("from", secs()),
                ("until", secs()),
            ],
            "text/plain",
            folded.into_bytes(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let folded_ns: BTreeMap<String, i64> = counts
        .iter()
        .map(|(k, v)| (k.clone(), v * 10_000_000))
        .collect();
    expect.push(Expect {
        service: "foldedapp".into(),
        profile_type: CPU.into(),
        total: folded_ns.values().sum(),
    });

    // 2. pprof as pyroscope-go sends it: multipart, no format, ns timestamps.
    let go = read_testdata("pprof/cpu.pb.gz");
    let ns = (now_ms() * 1_000_000).to_string();
    let r = c
        .ingest_multipart(
            &[
                ("name", "goapp{env=test}".into()),
                ("from", ns.clone()),
                ("until", ns),
                ("spyName", "gospy".into()),
            ],
            &[("profile", "profile.pprof", go.clone())],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    for (ty, unit, total) in pprof_totals(&go) {
        expect.push(Expect {
            service: "goapp".into(),
            profile_type: format!("process_cpu:{ty}:{unit}:cpu:nanoseconds"),
            total,
        });
    }

    // 3. gzipped pprof posted raw with format=pprof, as @pyroscope/nodejs does.
    let node = read_testdata("captured/nodejs-pyroscope-0.6.4.ingest-wall.pprof.gz");
    let r = c
        .ingest(
            &[
                ("name", "nodeapp{env=test}".into()),
                ("format", "pprof".into()),
                ("from", secs()),
                ("until", secs()),
                ("spyName", "nodespy".into()),
            ],
            "application/octet-stream",
            node.clone(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    for (ty, unit, total) in pprof_totals(&node) {
        expect.push(Expect {
            service: "nodeapp".into(),
            profile_type: format!("wall:{ty}:{unit}:wall:nanoseconds"),
            total,
        });
    }

    // 4. push.v1 over Connect, binary proto with a gzip body, as
    //    pyroscope-io (Python) sent it.
    let push_gz = read_testdata("captured/python-pyroscope-io-1.4.0.push-request.pb.gz");
    let push = PushRequest::decode(maybe_gunzip(&push_gz).as_slice()).unwrap();
    let service = push.series[0]
        .labels
        .iter()
        .find(|l| l.name == "service_name")
        .unwrap()
        .value
        .clone();
    let mut py_total = 0;
    for s in &push.series {
        for sample in &s.samples {
            for (ty, unit, total) in pprof_totals(&sample.raw_profile) {
                assert_eq!((ty.as_str(), unit.as_str()), ("cpu", "nanoseconds"));
                py_total += total;
            }
        }
    }
    let resp: Result<PushResponse, _> = c
        .connect_proto("/push.v1.PusherService/Push", &push, true)
        .await
        .unwrap();
    resp.unwrap_or_else(|e| panic!("push failed: {} {}", e.status, e.text()));
    expect.push(Expect {
        service,
        profile_type: CPU.into(),
        total: py_total,
    });

    // 5. push.v1 over Connect with a JSON body.
    let rust = read_testdata("pprof/profile_rust");
    let body = serde_json::json!({"series": [{
        "labels": [{"name": "__name__", "value": "process_cpu"}, {"name": "service_name", "value": "rustapp"}],
        "samples": [{"rawProfile": base64(&rust), "ID": "00000000-0000-4000-8000-000000000001"}],
    }]});
    let r = c
        .connect_json("/push.v1.PusherService/Push", &body)
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    for (ty, unit, total) in pprof_totals(&rust) {
        expect.push(Expect {
            service: "rustapp".into(),
            profile_type: format!("process_cpu:{ty}:{unit}:cpu:nanoseconds"),
            total,
        });
    }
    (expect, folded_ns)
}

fn range() -> (i64, i64) {
    // Test profiles carry their original timestamps (some from years ago).
    (1, now_ms() + 3_600_000)
}

pub(crate) async fn merge(
    c: &Client,
    profile_type: &str,
    selector: &str,
) -> q::SelectMergeStacktracesResponse {
    let (start, end) = range();
    let req = q::SelectMergeStacktracesRequest {
        profile_type_id: profile_type.into(),
        label_selector: selector.into(),
        start,
        end,
        max_nodes: Some(0),
        ..Default::default()
    };
    c.merge(&req).await
}

pub(crate) async fn check_everything(
    c: &Client,
    expect: &[Expect],
    folded_ns: &BTreeMap<String, i64>,
) {
    let (start, end) = range();
    for e in expect {
        let sel = format!("{{service_name=\"{}\"}}", e.service);
        let fg = merge(c, &e.profile_type, &sel).await.flamegraph.unwrap();
        assert_eq!(
            fg.total, e.total,
            "total of {} {}",
            e.service, e.profile_type
        );

        // SelectSeries sums to the same total.
        let req = q::SelectSeriesRequest {
            profile_type_id: e.profile_type.clone(),
            label_selector: sel.clone(),
            start,
            end,
            step: 60.0,
            ..Default::default()
        };
        let series: q::SelectSeriesResponse = c
            .connect_proto("/querier.v1.QuerierService/SelectSeries", &req, false)
            .await
            .unwrap()
            .unwrap();
        let sum: f64 = series
            .series
            .iter()
            .flat_map(|s| s.points.iter())
            .map(|p| p.value)
            .sum();
        assert_eq!(
            sum as i64, e.total,
            "series sum of {} {}",
            e.service, e.profile_type
        );

        // SelectMergeProfile returns a pprof with the same total.
        let req = q::SelectMergeProfileRequest {
            profile_type_id: e.profile_type.clone(),
            label_selector: sel.clone(),
            start,
            end,
            ..Default::default()
        };
        let p: Profile = c
            .connect_proto("/querier.v1.QuerierService/SelectMergeProfile", &req, false)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            p.sample.iter().map(|s| s.value[0]).sum::<i64>(),
            e.total,
            "pprof of {} {}",
            e.service,
            e.profile_type
        );
    }

    // The folded input comes back stack by stack.
    let fg = merge(c, CPU, r#"{service_name="foldedapp"}"#)
        .await
        .flamegraph
        .unwrap();
    assert_eq!(&flamegraph_stacks(&fg), folded_ns);

    // Connect JSON, as the Pyroscope UI and Grafana's Drilldown app call it.
    let r = c
        .connect_json(
            "/querier.v1.QuerierService/SelectMergeStacktraces",
            &serde_json::json!({"profileTypeID": CPU, "labelSelector": "{service_name=\"foldedapp\", env=\"test\"}",
                "start": start.to_string(), "end": end.to_string(), "maxNodes": "1024"}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    assert_eq!(
        j["flamegraph"]["total"]
            .as_str()
            .unwrap()
            .parse::<i64>()
            .unwrap(),
        folded_ns.values().sum::<i64>()
    );
    assert_eq!(j["flamegraph"]["names"][0], "total");

    // The legacy render API, with a profile type ID and with the OG form.
    for query in [
        format!("{CPU}{{service_name=\"foldedapp\"}}"),
        "foldedapp.cpu{env=\"test\"}".to_owned(),
    ] {
        let r = c
            .get(
                "/pyroscope/render",
                &[
                    ("query", query.clone()),
                    ("from", "1".into()),
                    ("until", "now+1h".into()),
                ],
            )
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{query}: {}", r.text());
        let j = r.json();
        assert_eq!(
            j["flamebearer"]["numTicks"].as_i64().unwrap(),
            folded_ns.values().sum::<i64>(),
            "{query}"
        );
        assert_eq!(j["metadata"]["format"], "single");
        assert_eq!(j["metadata"]["sampleRate"], 1_000_000_000);
        let names: Vec<String> = serde_json::from_value(j["flamebearer"]["names"].clone()).unwrap();
        let levels: Vec<Vec<i64>> =
            serde_json::from_value(j["flamebearer"]["levels"].clone()).unwrap();
        assert_eq!(&decode_levels(&names, &levels), folded_ns, "{query}");
    }

    // Label APIs.
    let services: t::LabelValuesResponse = c
        .connect_proto(
            "/querier.v1.QuerierService/LabelValues",
            &t::LabelValuesRequest {
                name: "service_name".into(),
                matchers: vec![],
                start,
                end,
            },
            false,
        )
        .await
        .unwrap()
        .unwrap();
    for e in expect {
        assert!(
            services.names.contains(&e.service),
            "{} missing from {:?}",
            e.service,
            services.names
        );
    }
    let types: q::ProfileTypesResponse = c
        .connect_proto(
            "/querier.v1.QuerierService/ProfileTypes",
            &q::ProfileTypesRequest { start, end },
            false,
        )
        .await
        .unwrap()
        .unwrap();
    let ids: Vec<&str> = types.profile_types.iter().map(|p| p.id.as_str()).collect();
    for e in expect {
        assert!(
            ids.contains(&e.profile_type.as_str()),
            "{} missing from {ids:?}",
            e.profile_type
        );
    }
    let series: q::SeriesResponse = c
        .connect_proto(
            "/querier.v1.QuerierService/Series",
            &q::SeriesRequest {
                matchers: vec![r#"{service_name="goapp"}"#.into()],
                label_names: vec!["service_name".into(), "__profile_type__".into()],
                start,
                end,
            },
            false,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(series.labels_set.len(), 2, "{series:?}");
    let names: t::LabelNamesResponse = c
        .connect_proto(
            "/querier.v1.QuerierService/LabelNames",
            &t::LabelNamesRequest {
                matchers: vec![r#"{service_name="foldedapp"}"#.into()],
                start,
                end,
            },
            false,
        )
        .await
        .unwrap()
        .unwrap();
    assert!(
        names.names.contains(&"env".to_owned()) && names.names.contains(&"service_name".to_owned()),
        "{names:?}"
    );

    // Diff of two services: each side keeps its own total.
    let go_cpu = expect
        .iter()
        .find(|e| e.service == "goapp" && e.profile_type == CPU)
        .unwrap()
        .total;
    let side = |svc: &str| q::SelectMergeStacktracesRequest {
        profile_type_id: CPU.into(),
        label_selector: format!("{{service_name=\"{svc}\"}}"),
        start,
        end,
        ..Default::default()
    };
    let diff: q::DiffResponse = c
        .connect_proto(
            "/querier.v1.QuerierService/Diff",
            &q::DiffRequest {
                left: Some(side("goapp")),
                right: Some(side("foldedapp")),
            },
            false,
        )
        .await
        .unwrap()
        .unwrap();
    let d = diff.flamegraph.unwrap();
    assert_eq!(
        (d.left_ticks, d.right_ticks),
        (go_cpu, folded_ns.values().sum::<i64>())
    );
}

async fn check_bad_input(c: &Client) {
    let (start, end) = range();
    let secs = secs();
    let bad = |status: u16, r: &kiln_tests::Reply, needle: &str| {
        assert_eq!(r.status, status, "{}", r.text());
        assert!(
            r.text().to_lowercase().contains(needle),
            "{needle:?} not in {}",
            r.text()
        );
        assert_eq!(r.json()["code"], "invalid_argument");
    };
    let r = c
        .ingest(
            &[
                ("name", "bad".into()),
                ("format", "pprof".into()),
                ("from", secs.clone()),
            ],
            "application/octet-stream",
            vec![0x0a, 0xff, 0xff, 0x01, 0x02],
        )
        .await
        .unwrap();
    bad(400, &r, "pprof");
    let r = c
        .ingest(
            &[("name", "bad.cpu".into())],
            "text/plain",
            b"main;foo 12\nmain;bar abc\n".to_vec(),
        )
        .await
        .unwrap();
    bad(400, &r, "line 2");
    let r = c
        .ingest(
            &[("name", "bad.cpu".into()), ("format", "yaml".into())],
            "text/plain",
            b"main 1\n".to_vec(),
        )
        .await
        .unwrap();
    bad(400, &r, "format");
    let r = c
        .ingest(&[("name", "".into())], "text/plain", b"main 1\n".to_vec())
        .await
        .unwrap();
    assert_eq!(r.status, 400, "{}", r.text());
    let r = c
        .connect_json(
            "/querier.v1.QuerierService/SelectMergeStacktraces",
            &serde_json::json!({"profileTypeID": CPU, "labelSelector": "{service_name=", "start": start.to_string(), "end": end.to_string()}),
        )
        .await
        .unwrap();
    bad(400, &r, "selector");
    let r = c
        .connect_json(
            "/querier.v1.QuerierService/SelectMergeStacktraces",
            &serde_json::json!({"profileTypeID": CPU, "labelSelector": "{}", "start": end.to_string(), "end": start.to_string()}),
        )
        .await
        .unwrap();
    bad(400, &r, "time range");
    let r = c
        .get(
            "/pyroscope/render",
            &[
                ("query", format!("{CPU}{{}}")),
                ("from", "now".into()),
                ("until", "now-1h".into()),
            ],
        )
        .await
        .unwrap();
    bad(400, &r, "after");
    let push = PushRequest {
        series: vec![RawProfileSeries {
            labels: vec![t::LabelPair {
                name: "__name__".into(),
                value: "process_cpu".into(),
            }],
            samples: vec![RawSample {
                raw_profile: vec![1, 2, 3, 4, 5],
                id: String::new(),
            }],
            annotations: vec![],
        }],
    };
    let r: Result<PushResponse, _> = c
        .connect_proto("/push.v1.PusherService/Push", &push, false)
        .await
        .unwrap();
    let e = r.unwrap_err();
    bad(400, &e, "pprof");
    // Nothing partial was stored: the bad service has no data.
    let fg = merge(c, CPU, r#"{service_name="bad"}"#)
        .await
        .flamegraph
        .unwrap();
    assert_eq!(fg.total, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_query_restart_query() {
    let dir = tempfile::tempdir().unwrap();
    let bin = Kiln::binary();
    let kiln = Kiln::start(&bin, dir.path(), &["--target", "all"]).unwrap();
    let c = Client::new(&kiln.http);
    let (expect, folded_ns) = ingest_everything(&c).await;
    check_everything(&c, &expect, &folded_ns).await;
    check_bad_input(&c).await;
    assert_eq!(
        c.get("/ready", &[]).await.unwrap().status,
        200,
        "still serving after bad input"
    );
    let metrics = c.get("/metrics", &[]).await.unwrap().text();
    assert!(
        metrics.contains("kiln_ingester_flushed_segments_total"),
        "{metrics}"
    );

    let status = kiln.stop().unwrap();
    assert!(status.success(), "exit status {status}");
    let kiln = Kiln::start(&bin, dir.path(), &[]).unwrap();
    let c = Client::new(&kiln.http);
    check_everything(&c, &expect, &folded_ns).await;
    kiln.stop().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_flushes_and_answers_buffered_pushes() {
    let dir = tempfile::tempdir().unwrap();
    let bin = Kiln::binary();
    // A long flush interval and linger: the push below waits in the buffer
    // until SIGTERM.
    let kiln = Kiln::start_with_env(
        &bin,
        dir.path(),
        &[],
        &[
            ("KILN_INGESTER__FLUSH_INTERVAL", "60s"),
            ("KILN_INGESTER__FLUSH_LINGER", "60s"),
        ],
    )
    .unwrap();
    let c = Client::new(&kiln.http);
    let push = {
        let c = c.clone();
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let r = c
                .ingest(
                    &[
                        ("name", "drain.cpu".into()),
                        ("from", secs()),
                        ("until", secs()),
                    ],
                    "text/plain",
                    b"main;work 7\n".to_vec(),
                )
                .await
                .unwrap();
            (r, started.elapsed())
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    assert!(!push.is_finished(), "the push must wait for its segment");
    let status = tokio::task::spawn_blocking(move || kiln.stop().unwrap())
        .await
        .unwrap();
    assert!(status.success());
    let (reply, waited) = push.await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(
        waited < std::time::Duration::from_secs(30),
        "answered at shutdown, not after the interval: {waited:?}"
    );
    let kiln = Kiln::start(&bin, dir.path(), &[]).unwrap();
    let fg = merge(&Client::new(&kiln.http), CPU, r#"{service_name="drain"}"#)
        .await
        .flamegraph
        .unwrap();
    assert_eq!(fg.total, 7 * 10_000_000);
    kiln.stop().unwrap();
}

/// Group commit: a push is written after `ingester.flush_linger`, not the
/// whole `flush_interval`, and pushes arriving while a segment of their
/// buffer is being written are batched into the next segment rather than
/// each written alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_are_written_after_the_linger_and_batched_behind_a_write() {
    let dir = tempfile::tempdir().unwrap();
    // A 20 s interval that no push should wait for; no linger; PUTs slowed
    // to 1 s so that a write is in progress while the others arrive.
    let kiln = Kiln::start_with_env(
        &Kiln::binary(),
        dir.path(),
        &[],
        &[
            ("KILN_INGESTER__FLUSH_INTERVAL", "20s"),
            ("KILN_INGESTER__FLUSH_LINGER", "0s"),
            ("KILN_STORAGE__FAULTS__ENABLED", "true"),
            ("KILN_STORAGE__FAULTS__SLOW_PUT", "1s"),
        ],
    )
    .unwrap();
    let c = Client::new(&kiln.http);
    let segments = "kiln_ingester_flushed_segments_total";
    let before = c.metric(segments).await.unwrap();
    let pushes = 24u64;
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for i in 1..=pushes {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            c.ingest(
                &[("name", "group.cpu".into()), ("sampleRate", "0".into())],
                "text/plain",
                format!("main;p{i} {i}\n").into_bytes(),
            )
            .await
            .unwrap()
        }));
    }
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let waited = started.elapsed();
    let written = c.metric(segments).await.unwrap() - before;
    eprintln!("{pushes} pushes acknowledged in {waited:?} with {written} segments");
    assert!(
        waited < std::time::Duration::from_secs(15),
        "acknowledged after the writes, not after the 20 s interval: {waited:?}"
    );
    assert!(written >= 1.0);
    assert!(
        written <= (pushes / 4) as f64,
        "pushes that arrive during a write share the next segment: {written} segments for {pushes} pushes"
    );
    let fg = merge(
        &c,
        "process_cpu:samples:count::",
        r#"{service_name="group"}"#,
    )
    .await
    .flamegraph
    .unwrap();
    assert_eq!(fg.total, (pushes * (pushes + 1) / 2) as i64);
    kiln.stop().unwrap();

    // The default linger (100 ms) with a long interval: one push alone is
    // written after the linger.
    let dir = tempfile::tempdir().unwrap();
    let kiln = Kiln::start_with_env(
        &Kiln::binary(),
        dir.path(),
        &[],
        &[("KILN_INGESTER__FLUSH_INTERVAL", "20s")],
    )
    .unwrap();
    let c = Client::new(&kiln.http);
    let started = std::time::Instant::now();
    let r = c
        .ingest(
            &[("name", "alone.cpu".into()), ("sampleRate", "0".into())],
            "text/plain",
            b"main;work 3\n".to_vec(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let waited = started.elapsed();
    assert!(
        waited < std::time::Duration::from_secs(10),
        "written after the linger, not the 20 s interval: {waited:?}"
    );
    kiln.stop().unwrap();
}
