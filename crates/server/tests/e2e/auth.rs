//! Auth and tenant isolation end to end: every route of the route table
//! answers 401 without credentials, 401 with wrong ones and 403 without the
//! scope; the open routes stay open; gRPC clients get the same answers; and
//! no read API ever shows one tenant another tenant's services, labels,
//! values or frames.

use kiln_proto::push::v1::pusher_service_client::PusherServiceClient;
use kiln_proto::querier::v1 as q;
use kiln_proto::querier::v1::querier_service_client::QuerierServiceClient;
use kiln_server::http::{OPEN_ROUTES, READ_ROUTES, WRITE_ROUTES};
use kiln_tests::{Client, Kiln, base64, now_ms, pprof_totals, read_testdata};

use crate::grpc::push_request;
use crate::spine::CPU;

/// Every method of `querier.v1.QuerierService`, for `{method}` routes.
const QUERIER_METHODS: &[&str] = &[
    "ProfileTypes",
    "LabelNames",
    "LabelValues",
    "Series",
    "SelectMergeStacktraces",
    "SelectMergeSpanProfile",
    "SelectMergeProfile",
    "SelectSeries",
    "Diff",
    "GetProfileStats",
];

const CREDENTIALS: &str = "\
credentials:
  - tenant: team-a
    token: token-a
  - tenant: team-a
    token: reader-a
    scopes: [read]
  - tenant: team-a
    token: writer-a
    scopes: [write]
  - tenant: team-b
    token: token-b
  - tenant: team-b
    username: grafana
    password: grafana-pw
    scopes: [read]
";

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", base64(format!("{user}:{password}").as_bytes()))
}

/// Concrete paths for a route pattern.
fn expand(route: &str) -> Vec<String> {
    if route.starts_with("/querier.v1.QuerierService/") {
        QUERIER_METHODS
            .iter()
            .map(|m| route.replace("{method}", m))
            .collect()
    } else {
        vec![route.replace("{method}", "Table")]
    }
}

/// A request to `path` with whatever method the route takes.
async fn call(base: &str, path: &str, auth: Option<&str>, tenant: Option<&str>) -> (u16, String) {
    let http = reqwest::Client::new();
    let url = format!("{base}{path}");
    let get = path.starts_with("/pyroscope/") && !path.ends_with("/ingest")
        || OPEN_ROUTES.contains(&path);
    let mut rb = if get {
        http.get(url)
    } else {
        http.post(url)
            .header("content-type", "application/json")
            .body("{}")
    };
    if let Some(a) = auth {
        rb = rb.header("authorization", a);
    }
    if let Some(t) = tenant {
        rb = rb.header("x-scope-orgid", t);
    }
    let resp = rb.send().await.unwrap();
    let status = resp.status().as_u16();
    let www = resp
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = resp.text().await.unwrap();
    if status == 401 {
        assert!(
            www.starts_with("Bearer"),
            "{path}: 401 without WWW-Authenticate"
        );
    }
    (status, body)
}

async fn start() -> (tempfile::TempDir, Kiln) {
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("credentials.yaml");
    std::fs::write(&creds, CREDENTIALS).unwrap();
    let server = Kiln::start_with_env(
        &Kiln::binary(),
        &dir.path().join("data"),
        &[],
        &[
            ("KILN_MULTITENANCY__ENABLED", "true"),
            ("KILN_AUTH__ENABLED", "true"),
            ("KILN_AUTH__CREDENTIALS_FILE", creds.to_str().unwrap()),
        ],
    )
    .unwrap();
    (dir, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_needs_its_scope() {
    let (_dir, server) = start().await;
    let base = server.http.as_str();
    let mut checked = 0;
    for (routes, good, wrong_scope) in [
        (WRITE_ROUTES, "Bearer writer-a", "Bearer reader-a"),
        (READ_ROUTES, "Bearer reader-a", "Bearer writer-a"),
    ] {
        for route in routes {
            for path in expand(route) {
                let (s, body) = call(base, &path, None, None).await;
                assert_eq!(s, 401, "{path} without credentials: {body}");
                assert!(body.contains("authentication required"), "{path}: {body}");
                let (s, body) = call(base, &path, Some("Bearer nope"), None).await;
                assert_eq!(s, 401, "{path} with a wrong token: {body}");
                let (s, body) = call(base, &path, Some(&basic("grafana", "wrong")), None).await;
                assert_eq!(s, 401, "{path} with a wrong password: {body}");
                let (s, body) = call(base, &path, Some(wrong_scope), None).await;
                assert_eq!(s, 403, "{path} without the scope: {body}");
                assert!(body.contains("scope"), "{path}: {body}");
                // Right credentials, another tenant's header: 403.
                let (s, body) = call(base, &path, Some(good), Some("team-b")).await;
                assert_eq!(s, 403, "{path} for another tenant: {body}");
                // Right credentials: past auth (the empty body may still be
                // refused by the handler, but not with 401/403).
                let (s, body) = call(base, &path, Some(good), None).await;
                assert!(s != 401 && s != 403, "{path} with credentials: {s} {body}");
                checked += 1;
            }
        }
    }
    assert!(
        checked >= 5 + 4 + QUERIER_METHODS.len(),
        "{checked} routes checked"
    );
    for path in OPEN_ROUTES {
        let (s, body) = call(base, path, None, None).await;
        assert_eq!(s, 200, "{path} is open: {body}");
    }

    // gRPC on the gRPC port: the same answers as statuses.
    let raw = read_testdata("pprof/profile_rust");
    let grpc = format!("http://{}", server.grpc);
    let mut push = PusherServiceClient::connect(grpc.clone()).await.unwrap();
    let err = push.push(push_request("g", raw.clone())).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err}");
    let mut req = tonic::Request::new(push_request("g", raw.clone()));
    req.metadata_mut()
        .insert("authorization", "Bearer reader-a".parse().unwrap());
    let err = push.push(req).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err}");
    let mut req = tonic::Request::new(push_request("g", raw.clone()));
    req.metadata_mut()
        .insert("authorization", "Bearer token-a".parse().unwrap());
    push.push(req).await.unwrap();
    // gRPC framing on the HTTP port gets a gRPC status too.
    let mut push_http = PusherServiceClient::connect(server.http.clone())
        .await
        .unwrap();
    let err = push_http
        .push(push_request("g", raw.clone()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err}");

    let mut query = QuerierServiceClient::connect(grpc).await.unwrap();
    let select = || q::SelectMergeStacktracesRequest {
        profile_type_id: CPU.into(),
        label_selector: "{service_name=\"g\"}".into(),
        start: 1,
        end: now_ms() + 60_000,
        ..Default::default()
    };
    let err = query.select_merge_stacktraces(select()).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    let expected: i64 = pprof_totals(&raw)
        .iter()
        .filter(|(t, _, _)| t == "cpu")
        .map(|t| t.2)
        .sum();
    for (auth, total) in [("Bearer reader-a", expected), ("Bearer token-b", 0)] {
        let mut req = tonic::Request::new(select());
        req.metadata_mut()
            .insert("authorization", auth.parse().unwrap());
        let resp = query
            .select_merge_stacktraces(req)
            .await
            .unwrap()
            .into_inner();
        let got = resp.flamegraph.map(|f| f.total).unwrap_or_default();
        assert_eq!(got, total, "{auth}");
    }
    server.stop().unwrap();
}

/// Unique strings of each tenant's data.
const A_MARKS: &[&str] = &["svc-a", "only-a", "alpha_main", "alpha_work"];
const B_MARKS: &[&str] = &["svc-b", "only-b", "beta_main", "beta_secret"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_never_see_each_other() {
    let (_dir, server) = start().await;
    let base = server.http.as_str();
    let a = Client::new(base).with_authorization("Bearer token-a");
    let b = Client::new(base).with_authorization("Bearer token-b");
    let secs = (now_ms() / 1000).to_string();
    let ingest = |c: Client, name: &'static str, body: &'static str| {
        let secs = secs.clone();
        async move {
            let r = c
                .ingest(
                    &[
                        ("name", name.to_owned()),
                        ("from", secs.clone()),
                        ("until", secs),
                    ],
                    "text/plain",
                    body.as_bytes().to_vec(),
                )
                .await
                .unwrap();
            assert_eq!(r.status, 200, "{}", r.text());
        }
    };
    ingest(
        a.clone(),
        "svc-a.cpu{tier=\"only-a\"}",
        "alpha_main;alpha_work 7\n",
    )
    .await;
    ingest(
        b.clone(),
        "svc-b.cpu{secret=\"only-b\"}",
        "beta_main;beta_secret 11\n",
    )
    .await;
    // Basic auth (Grafana's data source) reads team-b.
    let grafana = Client::new(base).with_authorization(&basic("grafana", "grafana-pw"));

    let now = now_ms();
    let range = serde_json::json!({"start": (now - 3_600_000).to_string(), "end": (now + 60_000).to_string()});
    let merge = serde_json::json!({
        "profileTypeID": CPU, "labelSelector": "{}",
        "start": range["start"], "end": range["end"],
    });
    let connect: Vec<(&str, serde_json::Value)> = vec![
        ("ProfileTypes", range.clone()),
        ("LabelNames", range.clone()),
        (
            "LabelValues",
            serde_json::json!({"name": "service_name", "start": range["start"], "end": range["end"]}),
        ),
        ("Series", range.clone()),
        ("SelectMergeStacktraces", merge.clone()),
        ("SelectMergeProfile", merge.clone()),
        (
            "SelectSeries",
            serde_json::json!({
                "profileTypeID": CPU, "labelSelector": "{}", "groupBy": ["service_name"],
                "step": 60.0, "start": range["start"], "end": range["end"],
            }),
        ),
        ("Diff", serde_json::json!({"left": merge, "right": merge})),
    ];
    for (client, own, other, own_total) in [
        (&a, A_MARKS, B_MARKS, 7 * 10_000_000),
        (&b, B_MARKS, A_MARKS, 11 * 10_000_000),
        (&grafana, B_MARKS, A_MARKS, 11 * 10_000_000),
    ] {
        let mut bodies = Vec::new();
        for (method, req) in &connect {
            let r = client
                .connect_json(&format!("/querier.v1.QuerierService/{method}"), req)
                .await
                .unwrap();
            assert_eq!(r.status, 200, "{method}: {}", r.text());
            bodies.push((method.to_string(), r.text()));
        }
        for (path, query) in [
            ("/pyroscope/render", vec![("query", format!("{CPU}{{}}"))]),
            (
                "/pyroscope/render-diff",
                vec![
                    ("leftQuery", format!("{CPU}{{}}")),
                    ("rightQuery", format!("{CPU}{{}}")),
                    ("leftFrom", "now-1h".into()),
                    ("leftUntil", "now+1m".into()),
                    ("rightFrom", "now-1h".into()),
                    ("rightUntil", "now+1m".into()),
                ],
            ),
            ("/pyroscope/labels", vec![]),
            (
                "/pyroscope/label-values",
                vec![("label", "service_name".into())],
            ),
        ] {
            let mut q = query;
            q.push(("from", "now-1h".into()));
            q.push(("until", "now+1m".into()));
            let r = client.get(path, &q).await.unwrap();
            assert_eq!(r.status, 200, "{path}: {}", r.text());
            bodies.push((path.to_string(), r.text()));
        }
        for (what, body) in &bodies {
            for mark in other {
                assert!(!body.contains(mark), "{what} shows {mark:?}: {body}");
            }
        }
        // And each shows the tenant's own data where it should.
        let joined: String = bodies.iter().map(|(_, b)| b.as_str()).collect();
        for mark in own {
            assert!(joined.contains(mark), "{mark:?} missing");
        }
        let r = client
            .connect_json("/querier.v1.QuerierService/SelectMergeStacktraces", &merge)
            .await
            .unwrap();
        assert_eq!(
            r.json()["flamegraph"]["total"]
                .as_str()
                .unwrap()
                .parse::<i64>()
                .unwrap(),
            own_total
        );
    }
    // Asking for the other tenant explicitly is refused, not answered empty.
    let r = a
        .clone()
        .with_tenant("team-b")
        .connect_json("/querier.v1.QuerierService/LabelNames", &range)
        .await
        .unwrap();
    assert_eq!(r.status, 403, "{}", r.text());
    server.stop().unwrap();
}
