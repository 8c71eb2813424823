//! Per-tenant limits end to end: every limit answers with its status code
//! and a message naming it, acknowledged data stays exact, other tenants
//! are unaffected, the overrides file is re-read without a restart, and the
//! server stays healthy throughout.

use std::collections::BTreeMap;
use std::time::Duration;

use kiln_tests::{Client, Kiln, decode_levels, now_ms, read_testdata, wait_until};

use crate::spine::CPU;

const OVERRIDES: &str = "\
overrides:
  slow:
    ingestion_rate_mb: 0.01
    ingestion_burst_size_mb: 0.02
  few:
    max_series: 3
  tiny:
    max_body_bytes: 100000
    max_profile_bytes: 1000
    max_label_names: 4
    max_label_value_len: 16
    max_stack_depth: 5
  short:
    max_query_length: 1h
    max_nodes_default: 50
    max_nodes_max: 100
";

fn secs() -> String {
    (now_ms() / 1000).to_string()
}

/// `/ingest` of folded text for `name` (`app{labels}`).
async fn push_folded(c: &Client, name: &str, text: &str) -> kiln_tests::Reply {
    c.ingest(
        &[
            ("name", name.to_owned()),
            ("from", secs()),
            ("until", secs()),
        ],
        "text/plain",
        text.as_bytes().to_vec(),
    )
    .await
    .unwrap()
}

fn refused(status: u16, r: &kiln_tests::Reply, needle: &str) {
    assert_eq!(r.status, status, "{}", r.text());
    let msg = r.json()["message"].as_str().unwrap_or_default().to_owned();
    assert!(msg.contains(needle), "{needle:?} not in {msg:?}");
}

/// The merged stacks of `app` for the tenant of `c`, over the last hour.
async fn stacks(c: &Client, app: &str) -> BTreeMap<String, i64> {
    let r = c
        .get(
            "/pyroscope/render",
            &[
                ("query", format!("{CPU}{{service_name=\"{app}\"}}")),
                ("from", "now-1h".into()),
                ("until", "now+1m".into()),
            ],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    let names: Vec<String> = serde_json::from_value(j["flamebearer"]["names"].clone()).unwrap();
    let levels: Vec<Vec<i64>> = serde_json::from_value(j["flamebearer"]["levels"].clone()).unwrap();
    decode_levels(&names, &levels)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_limit_answers_with_its_code_and_overrides_reload() {
    let dir = tempfile::tempdir().unwrap();
    let overrides = dir.path().join("overrides.yaml");
    std::fs::write(&overrides, OVERRIDES).unwrap();
    let server = Kiln::start_with_env(
        &Kiln::binary(),
        &dir.path().join("data"),
        &[],
        &[
            ("KILN_MULTITENANCY__ENABLED", "true"),
            ("KILN_RUNTIME_CONFIG__FILE", overrides.to_str().unwrap()),
            ("KILN_RUNTIME_CONFIG__PERIOD", "200ms"),
        ],
    )
    .unwrap();
    let base = server.http.as_str();
    let tenant = |t: &str| Client::new(base).with_tenant(t);

    // --- Ingestion rate: 10 kB/s with a 20 kB burst. Each push is tens
    // of kB of decoded profile: the first is admitted (into debt), a
    // following one is refused.
    let slow = tenant("slow");
    let body: String = (0..2000)
        .map(|i| format!("main;handler;work_function_number_{i:04} 1\n"))
        .collect();
    let mut acked = 0i64;
    let mut limited = None;
    for _ in 0..10 {
        let r = slow
            .ingest(
                &[
                    ("name", "rated".to_owned()),
                    ("from", secs()),
                    ("until", secs()),
                ],
                "text/plain",
                body.clone().into_bytes(),
            )
            .await
            .unwrap();
        match r.status {
            200 => acked += 1,
            429 => {
                limited = Some(r);
                break;
            }
            s => panic!("unexpected {s}: {}", r.text()),
        }
    }
    let limited = limited.expect("the rate limit never answered 429");
    refused(429, &limited, "ingestion rate limit");
    assert!(acked >= 1, "the burst admits the first push");
    // The hint: a raw request to read the header.
    let resp = reqwest::Client::new()
        .post(format!(
            "{base}/ingest?name=rated&from={}&until={}",
            secs(),
            secs()
        ))
        .header("X-Scope-OrgID", "slow")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    // Everything acknowledged is there, exactly.
    let total: i64 = stacks(&slow, "rated").await.values().sum();
    assert_eq!(total, acked * 2000 * 10_000_000);
    // Another tenant is not limited by "slow"'s budget.
    let r = push_folded(&tenant("other"), "rated", &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        Client::new(base)
            .metric(
                "kiln_distributor_discarded_profiles_total{tenant=\"slow\",reason=\"rate_limited\"}"
            )
            .await
            .unwrap()
            >= 2.0
    );

    // --- Series: "few" may write 3 series; a 4th is refused, the known
    // ones still take data.
    let few = tenant("few");
    for i in 0..3 {
        let r = push_folded(&few, &format!("app{{pod=\"p{i}\"}}"), "main;a 1\n").await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let r = push_folded(&few, "app{pod=\"p3\"}", "main;a 1\n").await;
    refused(429, &r, "series limit");
    let r = push_folded(&few, "app{pod=\"p0\"}", "main;a 1\n").await;
    assert_eq!(
        r.status,
        200,
        "a known series is still accepted: {}",
        r.text()
    );

    // --- Sizes (413), labels (400), stack depth (truncated).
    let tiny = tenant("tiny");
    let big: String = (0..20_000).map(|i| format!("main;f{i} 1\n")).collect();
    assert!(big.len() > 100_000);
    refused(413, &push_folded(&tiny, "app", &big).await, "100000");
    // A refused body leaves its connection usable: the client (one
    // connection pool) sends the next request at once and it is answered,
    // whether the oversized body was a little or a lot over the limit.
    let huge: String = big.repeat(40);
    for round in 0..20 {
        let over = if round % 2 == 0 { &big } else { &huge };
        refused(413, &push_folded(&tiny, "app", over).await, "100000");
        let r = push_folded(&tiny, "after", "main;a 1\n").await;
        assert_eq!(r.status, 200, "round {round}: {}", r.text());
    }
    let pprof = read_testdata("pprof/cpu.pb.gz");
    let r = tiny
        .ingest(
            &[
                ("name", "app".to_owned()),
                ("format", "pprof".into()),
                ("from", secs()),
                ("until", secs()),
            ],
            "application/octet-stream",
            pprof,
        )
        .await
        .unwrap();
    refused(413, &r, "1000");
    let r = push_folded(&tiny, "app{a=\"1\",b=\"2\",c=\"3\",d=\"4\"}", "main 1\n").await;
    refused(400, &r, "label");
    let r = push_folded(&tiny, "app{a=\"0123456789abcdefXYZ\"}", "main 1\n").await;
    refused(400, &r, "longer than 16 bytes");
    let r = push_folded(&tiny, "deep", "f0;f1;f2;f3;f4;f5;f6;f7;f8;f9 3\n").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let deep = stacks(&tiny, "deep").await;
    assert_eq!(
        deep,
        BTreeMap::from([("f0;f1;f2;f3;f4".to_owned(), 3 * 10_000_000)]),
        "the 5 root-side frames are kept, the value is unchanged"
    );

    // --- Queries: range (400) and max_nodes (400) for "short" only.
    let short = tenant("short");
    assert_eq!(push_folded(&short, "q", "main;a 1\n").await.status, 200);
    let render = |from: &str, nodes: &str| {
        let c = short.clone();
        let (from, nodes) = (from.to_owned(), nodes.to_owned());
        async move {
            c.get(
                "/pyroscope/render",
                &[
                    ("query", format!("{CPU}{{service_name=\"q\"}}")),
                    ("from", from),
                    ("until", "now".into()),
                    ("max-nodes", nodes),
                ],
            )
            .await
            .unwrap()
        }
    };
    refused(400, &render("now-2h", "10").await, "max_query_length");
    refused(400, &render("now-30m", "1000").await, "max_nodes_max");
    assert_eq!(render("now-30m", "10").await.status, 200);
    let now = now_ms();
    let r = short
        .connect_json(
            "/querier.v1.QuerierService/SelectMergeStacktraces",
            &serde_json::json!({
                "profileTypeID": CPU, "labelSelector": "{}",
                "start": (now - 3 * 3_600_000).to_string(), "end": now.to_string(),
            }),
        )
        .await
        .unwrap();
    refused(400, &r, "max_query_length");
    // The same range is fine for a tenant without the override.
    let r = tenant("few")
        .get(
            "/pyroscope/render",
            &[
                ("query", format!("{CPU}{{service_name=\"app\"}}")),
                ("from", "now-7d".into()),
                ("until", "now".into()),
            ],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());

    // --- Overrides reload without a restart: "few" gets 10 series, and a
    // broken file keeps the last good overrides.
    std::fs::write(
        &overrides,
        OVERRIDES.replace("max_series: 3", "max_series: 10"),
    )
    .unwrap();
    wait_until(
        "the raised series limit",
        Duration::from_secs(10),
        Duration::from_millis(200),
        || {
            let few = few.clone();
            async move {
                let r = push_folded(&few, "app{pod=\"p3\"}", "main;a 1\n").await;
                if r.status == 200 {
                    Ok(())
                } else {
                    Err(r.text())
                }
            }
        },
    )
    .await
    .unwrap();
    std::fs::write(&overrides, "overrides:\n  few: [not, a, map]\n").unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        server.log().contains("overrides not reloaded"),
        "{}",
        server.log()
    );
    let r = push_folded(&few, "app{pod=\"p4\"}", "main;a 1\n").await;
    assert_eq!(r.status, 200, "the last good overrides stay: {}", r.text());

    // Still healthy after all of it.
    let r = Client::new(base).get("/ready", &[]).await.unwrap();
    assert_eq!(r.status, 200);
    server.stop().unwrap();
}

/// An override can raise a tenant's body limit above the node's default on
/// every write path (`/ingest`, Connect Push, gRPC Push), while other
/// tenants keep the default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overrides_raise_the_body_limit_above_the_default() {
    use kiln_proto::push::v1::PushResponse;
    use kiln_proto::push::v1::pusher_service_client::PusherServiceClient;

    let dir = tempfile::tempdir().unwrap();
    let overrides = dir.path().join("overrides.yaml");
    std::fs::write(
        &overrides,
        "overrides:\n  roomy:\n    max_body_bytes: 1000000\n",
    )
    .unwrap();
    let server = Kiln::start_with_env(
        &Kiln::binary(),
        &dir.path().join("data"),
        &[],
        &[
            ("KILN_MULTITENANCY__ENABLED", "true"),
            ("KILN_LIMITS__MAX_BODY_BYTES", "100000"),
            ("KILN_RUNTIME_CONFIG__FILE", overrides.to_str().unwrap()),
        ],
    )
    .unwrap();
    let base = server.http.as_str();
    // A 198 kB uncompressed pprof: over the default, under roomy's limit.
    let pprof = read_testdata("pprof/dotnet-pprof-211.pb.gz");
    assert!((100_000..1_000_000).contains(&pprof.len()));
    let query = || {
        [
            ("name", "big".to_owned()),
            ("format", "pprof".into()),
            ("from", secs()),
            ("until", secs()),
        ]
    };
    for (tenant, allowed) in [("roomy", true), ("plain", false)] {
        let c = Client::new(base).with_tenant(tenant);
        let r = c
            .ingest(&query(), "application/octet-stream", pprof.clone())
            .await
            .unwrap();
        let push = c
            .connect_proto::<_, PushResponse>(
                "/push.v1.PusherService/Push",
                &crate::grpc::push_request("big", pprof.clone()),
                false,
            )
            .await
            .unwrap();
        let mut grpc = PusherServiceClient::connect(format!("http://{}", server.grpc))
            .await
            .unwrap();
        let mut request = tonic::Request::new(crate::grpc::push_request("big", pprof.clone()));
        request
            .metadata_mut()
            .insert("x-scope-orgid", tenant.parse().unwrap());
        let grpc_push = grpc.push(request).await;
        if allowed {
            assert_eq!(r.status, 200, "{tenant} /ingest: {}", r.text());
            assert!(
                push.is_ok(),
                "{tenant} Push: {:?}",
                push.err().map(|r| r.text())
            );
            assert!(grpc_push.is_ok(), "{tenant} gRPC Push: {grpc_push:?}");
        } else {
            refused(413, &r, "100000");
            refused(413, &push.expect_err("refused"), "100000");
            let status = grpc_push.expect_err("refused over gRPC");
            assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
            assert!(status.message().contains("100000"), "{status:?}");
            let discarded = Client::new(base)
                .metric(r#"kiln_distributor_discarded_requests_total{tenant="plain",reason="profile_size_limit"}"#)
                .await
                .unwrap();
            assert_eq!(discarded, 1.0, "the gRPC refusal is counted");
        }
    }
    // Over the largest limit of any tenant, the gRPC listener itself
    // refuses the message before decoding it, as RESOURCE_EXHAUSTED.
    let mut grpc = PusherServiceClient::connect(format!("http://{}", server.grpc))
        .await
        .unwrap()
        .max_encoding_message_size(8 << 20);
    let mut request = tonic::Request::new(crate::grpc::push_request("big", vec![0; 1_100_000]));
    request
        .metadata_mut()
        .insert("x-scope-orgid", "roomy".parse().unwrap());
    let status = grpc
        .push(request)
        .await
        .expect_err("over the listener's limit");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("too large"), "{status:?}");
    server.stop().unwrap();
}
