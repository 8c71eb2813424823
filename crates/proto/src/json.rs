//! Protobuf JSON mapping (as Connect's JSON codec and `protojson` use it) for
//! any generated message, by transcoding through prost-reflect.
//!
//! Decoding accepts both the lowerCamelCase JSON names and the original proto
//! field names, 64-bit integers as strings or numbers, and enums by name or
//! number. Encoding emits JSON names, 64-bit integers as strings, enum names,
//! and omits fields that hold their default value.

use std::sync::OnceLock;

use prost_reflect::{DescriptorPool, DeserializeOptions, DynamicMessage, SerializeOptions};

/// An error converting between a message and its JSON form.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    /// The message type is not in the descriptor pool (a bug).
    #[error("unknown message type {0}")]
    UnknownMessage(String),
    /// The JSON text does not describe a valid message of the requested type.
    #[error("invalid JSON message: {0}")]
    Invalid(String),
}

fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(crate::FILE_DESCRIPTOR_SET)
            .expect("the descriptor set embedded at build time is valid")
    })
}

/// A prost message whose fully-qualified protobuf name is known.
pub trait NamedMessage: prost::Message + Default {
    /// The fully-qualified protobuf name, e.g. `querier.v1.SeriesRequest`.
    const FULL_NAME: &'static str;
}

/// Decodes `json` into message `M`.
pub fn from_json<M: NamedMessage>(json: &[u8]) -> Result<M, JsonError> {
    let desc = pool()
        .get_message_by_name(M::FULL_NAME)
        .ok_or_else(|| JsonError::UnknownMessage(M::FULL_NAME.to_owned()))?;
    let mut de = serde_json::Deserializer::from_slice(json);
    let options = DeserializeOptions::new().deny_unknown_fields(false);
    let dynamic = DynamicMessage::deserialize_with_options(desc, &mut de, &options)
        .map_err(|e| JsonError::Invalid(e.to_string()))?;
    de.end().map_err(|e| JsonError::Invalid(e.to_string()))?;
    let bytes = prost::Message::encode_to_vec(&dynamic);
    M::decode(bytes.as_slice()).map_err(|e| JsonError::Invalid(e.to_string()))
}

/// Encodes `message` as protobuf JSON.
pub fn to_json<M: NamedMessage>(message: &M) -> Result<Vec<u8>, JsonError> {
    let desc = pool()
        .get_message_by_name(M::FULL_NAME)
        .ok_or_else(|| JsonError::UnknownMessage(M::FULL_NAME.to_owned()))?;
    let bytes = message.encode_to_vec();
    let dynamic = DynamicMessage::decode(desc, bytes.as_slice())
        .map_err(|e| JsonError::Invalid(e.to_string()))?;
    let mut out = Vec::with_capacity(bytes.len() * 2);
    let mut ser = serde_json::Serializer::new(&mut out);
    let options = SerializeOptions::new().skip_default_fields(true);
    dynamic
        .serialize_with_options(&mut ser, &options)
        .map_err(|e| JsonError::Invalid(e.to_string()))?;
    Ok(out)
}

macro_rules! named {
    ($($ty:path => $name:literal),* $(,)?) => {
        $(impl NamedMessage for $ty { const FULL_NAME: &'static str = $name; })*
    };
}

named! {
    crate::push::v1::PushRequest => "push.v1.PushRequest",
    crate::push::v1::PushResponse => "push.v1.PushResponse",
    crate::types::v1::LabelValuesRequest => "types.v1.LabelValuesRequest",
    crate::types::v1::LabelValuesResponse => "types.v1.LabelValuesResponse",
    crate::types::v1::LabelNamesRequest => "types.v1.LabelNamesRequest",
    crate::types::v1::LabelNamesResponse => "types.v1.LabelNamesResponse",
    crate::types::v1::GetProfileStatsRequest => "types.v1.GetProfileStatsRequest",
    crate::types::v1::GetProfileStatsResponse => "types.v1.GetProfileStatsResponse",
    crate::querier::v1::ProfileTypesRequest => "querier.v1.ProfileTypesRequest",
    crate::querier::v1::ProfileTypesResponse => "querier.v1.ProfileTypesResponse",
    crate::querier::v1::SeriesRequest => "querier.v1.SeriesRequest",
    crate::querier::v1::SeriesResponse => "querier.v1.SeriesResponse",
    crate::querier::v1::SelectMergeStacktracesRequest => "querier.v1.SelectMergeStacktracesRequest",
    crate::querier::v1::SelectMergeStacktracesResponse => "querier.v1.SelectMergeStacktracesResponse",
    crate::querier::v1::SelectMergeSpanProfileRequest => "querier.v1.SelectMergeSpanProfileRequest",
    crate::querier::v1::SelectMergeSpanProfileResponse => "querier.v1.SelectMergeSpanProfileResponse",
    crate::querier::v1::SelectMergeProfileRequest => "querier.v1.SelectMergeProfileRequest",
    crate::querier::v1::SelectSeriesRequest => "querier.v1.SelectSeriesRequest",
    crate::querier::v1::SelectSeriesResponse => "querier.v1.SelectSeriesResponse",
    crate::querier::v1::SelectHeatmapRequest => "querier.v1.SelectHeatmapRequest",
    crate::querier::v1::SelectHeatmapResponse => "querier.v1.SelectHeatmapResponse",
    crate::querier::v1::DiffRequest => "querier.v1.DiffRequest",
    crate::querier::v1::DiffResponse => "querier.v1.DiffResponse",
    crate::google::v1::Profile => "google.v1.Profile",
    crate::opentelemetry::proto::collector::profiles::v1development::ExportProfilesServiceRequest =>
        "opentelemetry.proto.collector.profiles.v1development.ExportProfilesServiceRequest",
    crate::opentelemetry::proto::collector::profiles::v1development::ExportProfilesServiceResponse =>
        "opentelemetry.proto.collector.profiles.v1development.ExportProfilesServiceResponse",
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::querier::v1::{
        FlameGraph, Level, SelectMergeStacktracesRequest, SelectMergeStacktracesResponse,
    };

    #[test]
    fn decodes_camel_case_and_proto_names_and_string_integers() {
        let json = br#"{"profileTypeID":"process_cpu:cpu:nanoseconds:cpu:nanoseconds","labelSelector":"{service_name=\"demo\"}","start":"1700000000000","end":1700003600000,"maxNodes":"1024"}"#;
        let req: SelectMergeStacktracesRequest = from_json(json).unwrap();
        assert_eq!(
            req.profile_type_id,
            "process_cpu:cpu:nanoseconds:cpu:nanoseconds"
        );
        assert_eq!(req.label_selector, "{service_name=\"demo\"}");
        assert_eq!(req.start, 1_700_000_000_000);
        assert_eq!(req.end, 1_700_003_600_000);
        assert_eq!(req.max_nodes, Some(1024));

        let json = br#"{"profile_typeID":"a:b:c:d:e","label_selector":"{}","format":"PROFILE_FORMAT_TREE"}"#;
        let req: SelectMergeStacktracesRequest = from_json(json).unwrap();
        assert_eq!(req.profile_type_id, "a:b:c:d:e");
        assert_eq!(req.format, 2);
    }

    #[test]
    fn encodes_int64_as_strings_and_skips_defaults() {
        let resp = SelectMergeStacktracesResponse {
            flamegraph: Some(FlameGraph {
                names: vec!["total".into(), "main".into()],
                levels: vec![Level {
                    values: vec![0, 45, 0, 0],
                }],
                total: 45,
                max_self: 30,
            }),
            ..Default::default()
        };
        let json = String::from_utf8(to_json(&resp).unwrap()).unwrap();
        assert_eq!(
            json,
            r#"{"flamegraph":{"names":["total","main"],"levels":[{"values":["0","45","0","0"]}],"total":"45","maxSelf":"30"}}"#
        );
    }

    #[test]
    fn rejects_malformed_json() {
        assert!(from_json::<SelectMergeStacktracesRequest>(b"{\"start\":").is_err());
        assert!(from_json::<SelectMergeStacktracesRequest>(b"{\"start\":\"abc\"}").is_err());
    }

    #[test]
    fn decodes_otlp_profiles_requests() {
        use crate::opentelemetry::proto::collector::profiles::v1development::ExportProfilesServiceRequest;
        use crate::opentelemetry::proto::common::v1::any_value::Value;
        let json = br#"{"resourceProfiles":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"svc"}}]},"scopeProfiles":[{"profiles":[{"sampleType":{"typeStrindex":1,"unitStrindex":2},"samples":[{"stackIndex":1,"values":["5"],"timestampsUnixNano":["1700000000000000000"]}],"timeUnixNano":"1700000000000000000"}]}]}],"dictionary":{"stringTable":["","cpu","nanoseconds"],"stackTable":[{},{"locationIndices":[1]}]}}"#;
        let req: ExportProfilesServiceRequest = from_json(json).unwrap();
        let attr = &req.resource_profiles[0]
            .resource
            .as_ref()
            .unwrap()
            .attributes[0];
        assert_eq!(attr.key, "service.name");
        assert_eq!(
            attr.value.as_ref().unwrap().value,
            Some(Value::StringValue("svc".to_owned()))
        );
        let profile = &req.resource_profiles[0].scope_profiles[0].profiles[0];
        assert_eq!(profile.samples[0].values, vec![5]);
        assert_eq!(profile.time_unix_nano, 1_700_000_000_000_000_000);
        let dictionary = req.dictionary.as_ref().unwrap();
        assert_eq!(dictionary.stack_table[1].location_indices, vec![1]);
        let back = to_json(&req).unwrap();
        assert_eq!(
            from_json::<ExportProfilesServiceRequest>(&back).unwrap(),
            req
        );
    }
}
