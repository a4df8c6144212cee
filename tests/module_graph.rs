//! No two modules of a crate import each other, directly or in a loop: each stage of the data
//! flow reads only the stages before it. The check reads the `use` statements and the
//! `crate::` / `super::` / `self::` paths of every non-test source file and looks for a cycle
//! among the modules they name.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

mod common;

/// Module path ("calls::tracker"; "" for the crate root) of a source file.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("under src");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts.join("::")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The source without comment lines and without items under `#[cfg(test)]`.
fn code_of(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect();
    let mut out = String::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim() == "#[cfg(test)]" {
            // Skip further attributes, then the item: to its `;` or its closing brace.
            i += 1;
            while i < lines.len() && lines[i].trim_start().starts_with("#[") {
                i += 1;
            }
            let mut depth = 0isize;
            let mut opened = false;
            while i < lines.len() {
                let l = lines[i];
                depth +=
                    l.matches('{').count().cast_signed() - l.matches('}').count().cast_signed();
                opened |= l.contains('{');
                i += 1;
                if (opened && depth <= 0) || (!opened && l.trim_end().ends_with(';')) {
                    break;
                }
            }
            continue;
        }
        out.push_str(lines[i]);
        out.push('\n');
        i += 1;
    }
    out
}

/// Every path a `use` statement names, braces expanded.
fn expand_use(tree: &str, prefix: &str, out: &mut Vec<String>) {
    let tree = tree.trim();
    if let Some(open) = tree.find('{') {
        let head = tree[..open].trim().trim_end_matches("::");
        let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
        let prefix = join(prefix, head);
        let mut depth = 0;
        let mut start = 0;
        for (i, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand_use(&inner[start..i], &prefix, out);
                    start = i + 1;
                }
                _ => {}
            }
        }
        expand_use(&inner[start..], &prefix, out);
    } else if !tree.is_empty() {
        let path = tree.split(" as ").next().unwrap_or(tree).trim();
        out.push(join(prefix, path));
    }
}

fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_owned(),
        (_, true) => a.to_owned(),
        _ => format!("{a}::{b}"),
    }
}

/// The paths of `code` that start at `crate`, `super` or `self`.
fn local_paths(code: &str) -> Vec<String> {
    let mut paths = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("use ") {
        let before = rest[..at].chars().last();
        let stmt_end = rest[at..].find(';').map_or(rest.len(), |e| at + e);
        if before.is_none_or(|c| !c.is_alphanumeric() && c != '_') {
            expand_use(&rest[at + 4..stmt_end], "", &mut paths);
        }
        rest = &rest[(at + 4).min(rest.len())..];
    }
    let bytes = code.as_bytes();
    for start in ["crate::", "super::", "self::"] {
        let mut from = 0;
        while let Some(i) = code[from..].find(start) {
            let i = from + i;
            from = i + start.len();
            if i > 0
                && (bytes[i - 1].is_ascii_alphanumeric()
                    || bytes[i - 1] == b'_'
                    || bytes[i - 1] == b':')
            {
                continue;
            }
            let end = code[i..]
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .map_or(code.len(), |e| i + e);
            paths.push(code[i..end].trim_end_matches(':').to_owned());
        }
    }
    paths
        .into_iter()
        .filter(|p| p.starts_with("crate") || p.starts_with("super") || p.starts_with("self"))
        .collect()
}

/// The module a path refers to (the longest prefix that is a module), seen from `module`.
fn resolve(path: &str, module: &str, modules: &BTreeSet<String>) -> Option<String> {
    let mut segs = path.split("::");
    let mut base: Vec<&str> = match segs.next()? {
        "crate" => Vec::new(),
        "self" => module.split("::").filter(|s| !s.is_empty()).collect(),
        "super" => {
            let mut m: Vec<&str> = module.split("::").filter(|s| !s.is_empty()).collect();
            m.pop();
            let mut rest = Vec::new();
            for s in segs.by_ref() {
                if s == "super" {
                    m.pop();
                } else {
                    rest.push(s);
                    break;
                }
            }
            let mut target = m.join("::");
            for s in rest.into_iter().chain(segs) {
                let next = join(&target, s);
                if modules.contains(&next) {
                    target = next;
                } else {
                    break;
                }
            }
            return Some(target);
        }
        _ => return None,
    };
    let mut target = base.join("::");
    for s in segs {
        base.push(s);
        let next = base.join("::");
        if modules.contains(&next) {
            target = next;
        } else {
            break;
        }
    }
    Some(target)
}

/// A cycle among `edges`, if there is one.
fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_owned(), 1);
        stack.push(n.to_owned());
        for m in edges.get(n).into_iter().flatten() {
            match state.get(m.as_str()).copied().unwrap_or(0) {
                1 => {
                    let from = stack.iter().position(|s| s == m).unwrap_or(0);
                    let mut cycle = stack[from..].to_vec();
                    cycle.push(m.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(m, edges, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(n.to_owned(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in edges.keys() {
        if state.get(n.as_str()).copied().unwrap_or(0) == 0
            && let Some(c) = visit(n, edges, &mut state, &mut Vec::new())
        {
            return Some(c);
        }
    }
    None
}

/// The module graph of the crate whose sources are in `src`.
fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.retain(|f| {
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        !(name == "tests.rs" || name.ends_with("_tests.rs"))
    });
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(src, f)).collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let module = module_of(src, f);
        let code = code_of(&std::fs::read_to_string(f).expect("read"));
        let entry = edges.entry(module.clone()).or_default();
        for p in local_paths(&code) {
            if let Some(t) = resolve(&p, &module, &modules)
                && t != module
            {
                entry.insert(t);
            }
        }
    }
    edges
}

#[test]
fn no_module_imports_a_module_that_imports_it() {
    let root = common::root();
    for krate in [
        "types/src",
        "capture/src",
        "decoder/src",
        "exporter/src",
        "tui/src",
        "src",
    ] {
        let g = graph(&root.join(krate));
        assert!(
            g.len() > 1 || krate == "types/src",
            "{krate}: no modules found"
        );
        assert_eq!(find_cycle(&g), None, "{krate}: modules import each other");
    }
}

#[test]
fn the_check_finds_cycles() {
    let modules: BTreeSet<String> = ["", "a", "a::x", "a::y", "b"].map(String::from).into();
    assert_eq!(
        resolve("super::y::Item", "a::x", &modules).as_deref(),
        Some("a::y")
    );
    assert_eq!(
        resolve("crate::a::x::f", "b", &modules).as_deref(),
        Some("a::x")
    );
    assert_eq!(resolve("crate::Thing", "b", &modules).as_deref(), Some(""));
    let mut paths = Vec::new();
    expand_use("crate::a::{x::{self, F}, y as z}", "", &mut paths);
    assert_eq!(
        paths,
        ["crate::a::x::self", "crate::a::x::F", "crate::a::y"]
    );
    let code = code_of("use crate::b;\n#[cfg(test)]\nmod tests {\n    use crate::a;\n}\n");
    assert_eq!(local_paths(&code), ["crate::b", "crate::b"]);
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    g.entry("a".into()).or_default().insert("b".into());
    g.entry("b".into()).or_default().insert("c".into());
    assert_eq!(find_cycle(&g), None);
    g.entry("c".into()).or_default().insert("a".into());
    assert_eq!(
        find_cycle(&g),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
}
