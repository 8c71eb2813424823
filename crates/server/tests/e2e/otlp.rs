//! OTLP profiles ingest: OTLP/HTTP (`/v1development/profiles`, protobuf and
//! gzip) and gRPC `ProfilesService/Export`, with the OpenTelemetry eBPF
//! profiler capture; totals compared with Pyroscope's expected results.

use kiln_proto::opentelemetry::proto::collector::profiles::v1development::ExportProfilesServiceRequest;
use kiln_proto::opentelemetry::proto::collector::profiles::v1development::profiles_service_client::ProfilesServiceClient;
use kiln_proto::querier::v1 as q;
use kiln_tests::{Client, Kiln, now_ms, read_testdata};
use prost::Message;

/// Sum of the values of an expected-result file (independent of Kiln).
fn expected_total(file: &str) -> i64 {
    let json: serde_json::Value = serde_json::from_slice(&read_testdata(file)).unwrap();
    json["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["values"].as_str().unwrap().parse::<i64>().unwrap())
        .sum()
}

async fn total(c: &Client, name: &str, tenant_services: &str) -> i64 {
    let (start, end) = (1, now_ms() + 3_600_000);
    let types: q::ProfileTypesResponse = c
        .connect_proto(
            "/querier.v1.QuerierService/ProfileTypes",
            &q::ProfileTypesRequest { start, end },
            false,
        )
        .await
        .unwrap()
        .unwrap();
    let id = types
        .profile_types
        .iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no {name} in {types:?}"))
        .id
        .clone();
    let req = q::SelectMergeStacktracesRequest {
        profile_type_id: id,
        label_selector: tenant_services.into(),
        start,
        end,
        ..Default::default()
    };
    let r = c.merge(&req).await;
    r.flamegraph.unwrap().total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_http_and_grpc() {
    let body = read_testdata("otlp/otel-ebpf-profile.pb.bin");
    let cpu = expected_total("otlp/otel-ebpf-profile-cpu.out.json");
    let off = expected_total("otlp/otel-ebpf-profile-offcpu.out.json");
    let sel = r#"{service_name="unknown_service"}"#;

    // OTLP/HTTP, protobuf body.
    let dir = tempfile::tempdir().unwrap();
    let kiln = Kiln::start(
        &Kiln::binary(),
        dir.path(),
        &["--target", "distributor,ingester,querier,metastore"],
    )
    .unwrap();
    let c = Client::new(&kiln.http);
    let r = c
        .post_raw(
            "/v1development/profiles",
            "application/x-protobuf",
            body.clone(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(total(&c, "process_cpu", sel).await, cpu);
    assert_eq!(total(&c, "off_cpu", sel).await, off);
    // A bad body is refused with a message.
    let r = c
        .post_raw(
            "/v1development/profiles",
            "application/x-protobuf",
            vec![0xff, 0x01, 0x02],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 400, "{}", r.text());
    let r = c
        .post_raw("/v1development/profiles", "text/plain", body.clone())
        .await
        .unwrap();
    assert_eq!(r.status, 415, "{}", r.text());
    kiln.stop().unwrap();

    // gRPC on the gRPC port.
    let dir = tempfile::tempdir().unwrap();
    let kiln = Kiln::start(
        &Kiln::binary(),
        dir.path(),
        &["--target", "distributor,ingester,querier,metastore"],
    )
    .unwrap();
    let mut client = ProfilesServiceClient::connect(format!("http://{}", kiln.grpc))
        .await
        .unwrap();
    client
        .export(ExportProfilesServiceRequest::decode(body.as_slice()).unwrap())
        .await
        .unwrap();
    let c = Client::new(&kiln.http);
    assert_eq!(total(&c, "process_cpu", sel).await, cpu);
    kiln.stop().unwrap();
}
