//! Connect JSON request bodies (protobuf JSON through prost-reflect) of
//! every Push and querier method, and of OTLP/HTTP JSON. The first byte
//! picks the message type; the rest is the body. A body that decodes must
//! encode back to JSON and decode again to the same message.
#![no_main]

use kiln_proto::json::{NamedMessage, from_json, to_json};
use kiln_proto::opentelemetry::proto::collector::profiles::v1development as otlp;
use kiln_proto::{push::v1 as push, querier::v1 as q, types::v1 as t};
use libfuzzer_sys::fuzz_target;

fn round_trip<M: NamedMessage + PartialEq + std::fmt::Debug>(json: &[u8]) {
    let Ok(message) = from_json::<M>(json) else {
        return;
    };
    let encoded = to_json(&message).expect("a decoded message encodes to JSON");
    let again = from_json::<M>(&encoded).expect("Kiln's own JSON decodes");
    assert_eq!(message, again, "JSON round trip changed the message");
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, json)) = data.split_first() else {
        return;
    };
    match selector % 12 {
        0 => round_trip::<push::PushRequest>(json),
        1 => round_trip::<q::ProfileTypesRequest>(json),
        2 => round_trip::<t::LabelNamesRequest>(json),
        3 => round_trip::<t::LabelValuesRequest>(json),
        4 => round_trip::<q::SeriesRequest>(json),
        5 => round_trip::<q::SelectMergeStacktracesRequest>(json),
        6 => round_trip::<q::SelectMergeSpanProfileRequest>(json),
        7 => round_trip::<q::SelectMergeProfileRequest>(json),
        8 => round_trip::<q::SelectSeriesRequest>(json),
        9 => round_trip::<q::DiffRequest>(json),
        10 => round_trip::<t::GetProfileStatsRequest>(json),
        _ => round_trip::<otlp::ExportProfilesServiceRequest>(json),
    }
});
