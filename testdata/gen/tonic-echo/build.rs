//! Generates the Echo and Store services from testdata/proto/{echo,shared}.proto with protox (no
//! protoc needed).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let fds = protox::compile(["echo.proto", "shared.proto"], ["../../proto"])?;
    tonic_prost_build::configure().compile_fds(fds)?;
    println!("cargo:rerun-if-changed=../../proto/echo.proto");
    println!("cargo:rerun-if-changed=../../proto/shared.proto");
    Ok(())
}
