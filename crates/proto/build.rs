//! Compiles `proto/` with protox (pure Rust, no system `protoc`) and generates
//! prost messages plus tonic clients and servers. The file descriptor set is
//! also written to OUT_DIR so that the crate can transcode protobuf JSON
//! (Connect's JSON codec) through prost-reflect.

use std::path::PathBuf;

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    println!("cargo:rerun-if-changed={}", root.display());
    let files = [
        "types/v1/types.proto",
        "google/v1/profile.proto",
        "push/v1/push.proto",
        "querier/v1/querier.proto",
        "kiln/ingester/v1/ingester.proto",
        "kiln/metastore/v1/metastore.proto",
        "kiln/querier/v1/tasks.proto",
        "kiln/block/v1/block.proto",
        "opentelemetry/proto/common/v1/common.proto",
        "opentelemetry/proto/resource/v1/resource.proto",
        "opentelemetry/proto/profiles/v1development/profiles.proto",
        "opentelemetry/proto/collector/profiles/v1development/profiles_service.proto",
    ];
    for file in files {
        println!("cargo:rerun-if-changed={}", root.join(file).display());
    }
    let fds = protox::compile(files, [&root])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out_dir.join("descriptors.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}
