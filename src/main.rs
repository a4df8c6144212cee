//! grpctap: a passive gRPC tap. This binary wires the crates together: packet sources feed
//! `capture`, whose stream events feed `decoder`, whose calls feed the outputs.

mod bpf;
mod calls_json;
mod cli;
mod connections;
mod decode;
mod extract;
mod fanout;
mod files;
mod keylog;
mod live;
mod pipeline;
mod progress;
mod replay;
mod report;
mod run;
mod schemas;
mod summary;
mod threads;
mod timespec;
#[cfg(test)]
mod tui_tests;
mod watch;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    let result = match cli.command {
        cli::Command::Replay(args) => replay::run(&args),
        cli::Command::Capture(args) => live::run(&args),
        cli::Command::Interfaces => live::interfaces(),
    };
    match result {
        Ok(code) => code,
        // The reader of stdout went away (`| head`): nothing more to say to anyone.
        Err(e) if files::is_broken_pipe(&e) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("grpctap: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
