//! The public APIs over gRPC: on the gRPC port (tonic) and on the HTTP port
//! (gRPC framing over h2c, as connect-go servers accept it).

use kiln_proto::push::v1::pusher_service_client::PusherServiceClient;
use kiln_proto::push::v1::{PushRequest, RawProfileSeries, RawSample};
use kiln_proto::querier::v1 as q;
use kiln_proto::querier::v1::querier_service_client::QuerierServiceClient;
use kiln_proto::types::v1::LabelPair;
use kiln_tests::{Kiln, now_ms, pprof_totals, read_testdata};

pub(crate) fn push_request(service: &str, raw: Vec<u8>) -> PushRequest {
    PushRequest {
        series: vec![RawProfileSeries {
            labels: vec![
                LabelPair {
                    name: "__name__".into(),
                    value: "process_cpu".into(),
                },
                LabelPair {
                    name: "service_name".into(),
                    value: service.into(),
                },
            ],
            samples: vec![RawSample {
                raw_profile: raw,
                id: String::new(),
            }],
            annotations: vec![],
        }],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_and_query_over_grpc_on_both_ports() {
    let dir = tempfile::tempdir().unwrap();
    let kiln = Kiln::start(&Kiln::binary(), dir.path(), &[]).unwrap();
    let raw = read_testdata("pprof/profile_rust");
    let expected: i64 = pprof_totals(&raw)
        .iter()
        .filter(|(t, _, _)| t == "cpu")
        .map(|t| t.2)
        .sum();
    for (service, url) in [
        ("grpc-port", format!("http://{}", kiln.grpc)),
        ("http-port", kiln.http.clone()),
    ] {
        let mut push = PusherServiceClient::connect(url.clone()).await.unwrap();
        push.push(push_request(service, raw.clone()))
            .await
            .unwrap_or_else(|e| panic!("push via {url}: {e}"));
        let mut query = QuerierServiceClient::connect(url.clone()).await.unwrap();
        let resp = query
            .select_merge_stacktraces(q::SelectMergeStacktracesRequest {
                profile_type_id: "process_cpu:cpu:nanoseconds:cpu:nanoseconds".into(),
                label_selector: format!("{{service_name=\"{service}\"}}"),
                start: 1,
                end: now_ms() + 3_600_000,
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("query via {url}: {e}"))
            .into_inner();
        assert_eq!(resp.flamegraph.unwrap().total, expected, "{service}");
        // Errors come back as gRPC statuses.
        let err = push
            .push(push_request(service, vec![1, 2, 3]))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{url}: {err}");
    }
    kiln.stop().unwrap();
}
