//! Generates the tonic/prost code from `proto/*.proto` with a vendored protoc
//! (no system `protoc` needed).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    // Messages that carry secret values get a redacting `Debug` (src/lib.rs).
    config.skip_debug(["infra.v1.ContainerSpec", "infra.v1.DeployRequest"]);
    println!("cargo:rerun-if-changed=proto");
    tonic_prost_build::configure().compile_with_config(
        config,
        &["proto/infra.proto"],
        &["proto"],
    )?;
    Ok(())
}
