//! Compiles the `.proto` contracts with `protox` (pure Rust, so no `protoc`
//! is needed to build Depot) and generates the prost types from them.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/depot/wire/v1/wire.proto",
        "proto/depot/storage/v1/storage.proto",
    ];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    prost_build::Config::new()
        // Payloads as `Bytes`: decoding a frame or a record then slices it
        // instead of copying every payload.
        .bytes(["."])
        .compile_fds(descriptors)?;
    Ok(())
}
