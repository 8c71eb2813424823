//! Code generated from `proto/`: the Pyroscope-compatible public API
//! (`push.v1`, `querier.v1`, `types.v1`, `google.v1` pprof) and Kiln's internal
//! APIs (`kiln.ingester.v1`, `kiln.metastore.v1`), plus the subset of the
//! OpenTelemetry profiles protocol (OTLP 1.8, `v1development`) that the
//! OTLP ingest path reads (`opentelemetry::proto::...`, including the
//! `ProfilesService/Export` gRPC service).
//!
//! Besides the prost messages and tonic services this crate offers [`json`],
//! the protobuf-JSON mapping used by Connect's JSON codec (lowerCamelCase
//! names, 64-bit integers as strings, enums by name), driven by the embedded
//! file descriptor set. No domain logic lives here.

#![allow(
    missing_debug_implementations,
    unreachable_pub,
    unused_qualifications,
    clippy::large_enum_variant,
    clippy::clone_on_ref_ptr,
    clippy::all,
    clippy::doc_lazy_continuation,
    reason = "generated code"
)]

pub mod types {
    pub mod v1 {
        tonic::include_proto!("types.v1");
    }
}

pub mod google {
    pub mod v1 {
        tonic::include_proto!("google.v1");
    }
}

pub mod push {
    pub mod v1 {
        tonic::include_proto!("push.v1");
    }
}

pub mod querier {
    pub mod v1 {
        tonic::include_proto!("querier.v1");
    }
}

pub mod kiln {
    pub mod ingester {
        pub mod v1 {
            tonic::include_proto!("kiln.ingester.v1");
        }
    }
    pub mod metastore {
        pub mod v1 {
            tonic::include_proto!("kiln.metastore.v1");
        }
    }
    pub mod block {
        pub mod v1 {
            tonic::include_proto!("kiln.block.v1");
        }
    }
    pub mod querier {
        pub mod v1 {
            tonic::include_proto!("kiln.querier.v1");
        }
    }
}

pub mod opentelemetry {
    pub mod proto {
        pub mod common {
            pub mod v1 {
                tonic::include_proto!("opentelemetry.proto.common.v1");
            }
        }
        pub mod resource {
            pub mod v1 {
                tonic::include_proto!("opentelemetry.proto.resource.v1");
            }
        }
        pub mod profiles {
            pub mod v1development {
                tonic::include_proto!("opentelemetry.proto.profiles.v1development");
            }
        }
        pub mod collector {
            pub mod profiles {
                pub mod v1development {
                    tonic::include_proto!("opentelemetry.proto.collector.profiles.v1development");
                }
            }
        }
    }
}

pub mod json;

/// Serialized `FileDescriptorSet` of every file in `proto/`.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptors.bin"));
