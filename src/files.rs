//! Output files: a path, or `-` for stdout.

use std::io::Write;
use std::path::Path;

use anyhow::Context as _;
use serde::Serialize;

/// Opens PATH for writing, `-` meaning stdout.
pub(crate) fn writer(path: &Path) -> anyhow::Result<Box<dyn std::io::Write>> {
    if path == Path::new("-") {
        return Ok(Box::new(std::io::BufWriter::new(std::io::stdout())));
    }
    let f = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    Ok(Box::new(std::io::BufWriter::new(f)))
}

pub(crate) fn write_json(path: &Path, value: &impl Serialize) -> anyhow::Result<()> {
    let mut w = writer(path)?;
    serde_json::to_writer_pretty(&mut w, value)?;
    writeln!(w)?;
    w.flush()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
