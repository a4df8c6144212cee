//! `grpctap replay`: capture files read as one capture, through the one input loop.

use std::process::ExitCode;

use crate::cli::ReplayArgs;

pub(crate) fn run(args: &ReplayArgs) -> anyhow::Result<ExitCode> {
    let max_block = args.out.limits.to_limits().max_block_size;
    let mut files = capture::input::Files::new(args.files.clone(), max_block);
    crate::run::run(args, &mut files, crate::run::RunOptions::default())
}
