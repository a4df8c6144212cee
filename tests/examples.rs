//! Every example in `--help`, the README and docs/ runs as written: each command line that
//! invokes grpctap in a code block (or a `grpctap ...` code span) names a verb that exists and
//! only options that verb takes; those that replay files of the repository (no UI, no server)
//! are run and must succeed.

use std::collections::HashMap;
use std::process::Command;

mod common;

fn grpctap(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_grpctap"))
        .current_dir(common::root())
        .args(args)
        .output()
        .expect("run grpctap")
}

/// The help text of a verb (`""`: the top level).
fn help(verb: &str, cache: &mut HashMap<String, String>) -> String {
    cache
        .entry(verb.to_owned())
        .or_insert_with(|| {
            let args: Vec<&str> = [verb, "--help"]
                .into_iter()
                .filter(|a| !a.is_empty())
                .collect();
            let out = grpctap(&args);
            assert!(out.status.success(), "grpctap {verb} --help");
            String::from_utf8_lossy(&out.stdout).into_owned()
        })
        .clone()
}

/// Words of a shell line (quotes kept together, a `#` comment cut).
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote = None;
    let mut any = false;
    for c in line.chars() {
        match (quote, c) {
            (None, '#') if cur.is_empty() => break,
            (None, '\'' | '"') => {
                quote = Some(c);
                any = true;
            }
            (Some(q), c) if c == q => quote = None,
            (None, c) if c.is_whitespace() => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                any = false;
            }
            (_, c) => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The grpctap part of a command line, as arguments (after the program), if it has one.
fn invocation(line: &str) -> Option<(Vec<String>, bool)> {
    let line = line.trim().trim_start_matches("$ ");
    let segments: Vec<&str> = line.split(" | ").collect();
    let (k, seg) = segments.iter().enumerate().find(|(_, s)| {
        let w = words(s);
        let mut w = w.iter().map(String::as_str).skip_while(|w| *w == "sudo");
        match w.next() {
            Some("cargo") => s.contains("cargo run --release -- "),
            Some(p) => p == "grpctap" || p.ends_with("/grpctap"),
            None => false,
        }
    })?;
    let w = words(seg);
    let start = match w.iter().position(|x| x == "--") {
        Some(i) if w.first().is_some_and(|x| x == "cargo") => i + 1,
        _ => {
            w.iter()
                .position(|x| x == "grpctap" || x.ends_with("/grpctap"))?
                + 1
        }
    };
    // Fed by a pipe: not run (its input is another program's).
    Some((w[start..].to_vec(), k > 0))
}

/// Every example command line: (where, arguments, fed by a pipe).
fn examples(cache: &mut HashMap<String, String>) -> Vec<(String, Vec<String>, bool)> {
    let mut out = Vec::new();
    for verb in ["", "replay", "capture"] {
        let text = help(verb, cache);
        let mut on = false;
        for line in text.lines() {
            if line.starts_with("Examples:") {
                on = true;
            } else if on && let Some((args, piped)) = invocation(line) {
                out.push((format!("grpctap {verb} --help"), args, piped));
            }
        }
    }
    let mut docs = vec![common::root().join("README.md")];
    let mut pages: Vec<_> = std::fs::read_dir(common::root().join("docs"))
        .expect("docs")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    pages.sort();
    docs.extend(pages);
    for doc in docs {
        let name = doc
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let text = std::fs::read_to_string(&doc).expect("doc");
        let mut in_block = false;
        let mut pending = String::new();
        for (n, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("```") {
                in_block = !in_block;
                continue;
            }
            let candidates: Vec<String> = if in_block {
                // Continued lines (`\` at the end) are one command.
                pending.push_str(line.trim_end_matches('\\'));
                if line.ends_with('\\') {
                    pending.push(' ');
                    continue;
                }
                vec![std::mem::take(&mut pending)]
            } else {
                line.split('`')
                    .skip(1)
                    .step_by(2)
                    .filter(|s| s.starts_with("grpctap ") && !s.contains("...") && !s.contains('['))
                    .map(str::to_owned)
                    .collect()
            };
            for c in candidates {
                if let Some((args, piped)) = invocation(&c) {
                    out.push((format!("{name}:{}", n + 1), args, piped));
                }
            }
        }
    }
    out
}

/// Whether the help text offers `flag` (`--name` or `-x`).
fn offers(help: &str, flag: &str) -> bool {
    help.split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == ']' || c == '=')
        .any(|w| w.trim_end_matches("...") == flag)
}

#[test]
fn every_example_names_real_options_and_the_runnable_ones_succeed() {
    let mut cache = HashMap::new();
    let all = examples(&mut cache);
    assert!(all.len() > 15, "examples found: {}", all.len());
    let top = help("", &mut cache);
    let mut ran = 0;
    for (at, args, piped) in &all {
        let Some(verb) = args.first() else {
            panic!("{at}: grpctap without a verb");
        };
        assert!(
            offers(&top, verb) || verb == "--help" || verb == "--version",
            "{at}: no verb {verb:?}"
        );
        let text = help(verb, &mut cache);
        let mut options_end = false;
        for a in &args[1..] {
            if a == "--" {
                options_end = true;
            }
            if options_end || !a.starts_with('-') || a == "-" {
                continue;
            }
            let flags: Vec<String> = if a.starts_with("--") {
                vec![a.split('=').next().unwrap_or(a).to_owned()]
            } else if a[1..].chars().all(|c| c.is_ascii_digit()) {
                Vec::new() // a negative number, a value
            } else {
                a[1..].chars().map(|c| format!("-{c}")).collect()
            };
            for f in flags {
                assert!(
                    offers(&text, &f),
                    "{at}: `grpctap {verb}` has no option {f} ({args:?})"
                );
            }
        }
        // Replays of the repository's own files, without a terminal UI or a server: run them.
        let files_here = args[1..]
            .iter()
            .filter(|a| a.contains("testdata/") || a.ends_with(".pcap") || a.ends_with(".gz"))
            .all(|a| common::root().join(a).exists());
        let runnable = verb == "replay"
            && !piped
            && files_here
            && args.iter().any(|a| a.contains("testdata/"))
            && !args
                .iter()
                .any(|a| a == "--tui" || a == "--metrics" || a.starts_with("--openmetrics"));
        if runnable {
            let argv: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = grpctap(&argv);
            assert!(
                out.status.success(),
                "{at}: grpctap {}: {}",
                argv.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
            ran += 1;
        }
    }
    eprintln!("{} examples, {ran} run", all.len());
    assert!(ran >= 3, "examples run: {ran}");
}

#[test]
fn the_example_reader_finds_a_wrong_option() {
    // The check itself: an example with an option replay does not have is caught.
    let mut cache = HashMap::new();
    let text = help("replay", &mut cache);
    assert!(!offers(&text, "--json"));
    assert!(offers(&text, "--calls") && offers(&text, "--call-filter"));
    let (args, piped) =
        invocation("tcpdump -w - | grpctap replay --json - x.pcap # c").expect("found");
    assert_eq!(args, ["replay", "--json", "-", "x.pcap"]);
    assert!(piped);
    let (args, _) = invocation("cargo run --release -- replay 'a b.pcap'").expect("found");
    assert_eq!(args, ["replay", "a b.pcap"]);
}
