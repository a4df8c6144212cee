//! `grpctap replay`: capture files read as one capture, through the one input loop; words
//! after the files are a BPF filter, as `tcpdump -r FILE FILTER` takes it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::cli::ReplayArgs;

/// Whether a word names a capture file: `-`, a path that exists, or a capture file's name.
fn is_file(word: &Path) -> bool {
    let name = word.to_string_lossy();
    name == "-"
        || word.exists()
        || [".pcap", ".pcapng", ".cap", ".gz", ".pcap.gz", ".pcapng.gz"]
            .iter()
            .any(|ext| name.ends_with(ext))
}

/// The files, then the filter: the first word that names no file and every word after it.
pub(crate) fn split(words: &[PathBuf]) -> (Vec<PathBuf>, Vec<String>) {
    let n = words
        .iter()
        .position(|w| !is_file(w))
        .unwrap_or(words.len());
    let filter = words[n..]
        .iter()
        .map(|w| w.to_string_lossy().into_owned())
        .collect();
    (words[..n].to_vec(), filter)
}

pub(crate) fn run(args: &ReplayArgs) -> anyhow::Result<ExitCode> {
    let (paths, filter) = split(&args.files);
    anyhow::ensure!(
        !paths.is_empty(),
        "{}: no such file (a BPF filter comes after the capture files)",
        filter.first().map_or("", String::as_str)
    );
    let max_block = args.out.limits.to_limits().max_block_size;
    let mut opts = crate::run::RunOptions::default();
    opts.key_files = Some(crate::keylog::KeyFiles::load(
        &args.out.tls_keylog,
        opts.keylog.clone(),
        None,
    )?);
    opts.files.clone_from(&paths);
    let mut files = capture::input::Files::new(paths, max_block)
        .with_secrets(crate::keylog::dsb_hook(opts.keylog.clone()));
    if !filter.is_empty() {
        let expr = filter.join(" ");
        opts.keep = Some(crate::bpf::bpf(&expr)?);
        opts.keep_expr = Some(expr);
    }
    crate::run::run(args, &mut files, opts)
}
