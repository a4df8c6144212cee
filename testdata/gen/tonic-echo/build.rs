//! Generates the Echo service from testdata/proto/echo.proto with protox (no protoc needed).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let fds = protox::compile(["echo.proto"], ["../../proto"])?;
    tonic_prost_build::configure().compile_fds(fds)?;
    println!("cargo:rerun-if-changed=../../proto/echo.proto");
    Ok(())
}
