//! Short mutation runs of every fuzz harness (fuzz/harness.rs) on the stable toolchain, for CI:
//! each seed of the checked-in corpus (fuzz/seeds/TARGET, made from real captures by
//! fuzz/make_corpus.py) as it is, then random mutations of them (bit flips, bytes set to
//! boundary values, ranges cut, duplicated or spliced from another seed) for
//! `GRPCTAP_FUZZ_SECONDS` per target (default 2). Not coverage-guided: the long runs are
//! `cargo fuzz` (fuzz/README.md). A panic fails the test and leaves the input in
//! target/fuzz-failures/TARGET-SEED to replay with `cargo fuzz run TARGET FILE`.

#[path = "../fuzz/harness.rs"]
mod harness;

mod common;

use std::time::{Duration, Instant};

/// xorshift64*: a fixed sequence per run seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            usize::try_from(self.next() % n as u64).unwrap_or(0)
        }
    }
}

fn mutate(rng: &mut Rng, seed: &[u8], other: &[u8]) -> Vec<u8> {
    let mut d = seed.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(d.len());
        match rng.below(6) {
            0 if !d.is_empty() => d[at] ^= 1 << rng.below(8),
            1 if !d.is_empty() => d[at] = [0, 0xff, 0x7f, 0x80, 1][rng.below(5)],
            2 if !d.is_empty() => {
                let end = (at + 1 + rng.below(64)).min(d.len());
                d.drain(at..end);
            }
            3 => {
                let end = (at + 1 + rng.below(64)).min(d.len());
                let piece = d[at..end].to_vec();
                let to = rng.below(d.len());
                d.splice(to..to, piece);
            }
            4 if !other.is_empty() => {
                let from = rng.below(other.len());
                let end = (from + 1 + rng.below(256)).min(other.len());
                d.splice(at..at, other[from..end].iter().copied());
            }
            _ => {
                let n = rng.below(8);
                for _ in 0..n {
                    d.insert(at.min(d.len()), (rng.next() & 0xff) as u8);
                }
            }
        }
    }
    d
}

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = common::root().join("fuzz/seeds").join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| std::fs::read(f).expect("seed"))
        .collect()
}

fn run_one(target: &str, f: fn(&[u8]), input: &[u8], tag: &str) {
    if std::panic::catch_unwind(|| f(input)).is_err() {
        let dir = common::root().join("target/fuzz-failures");
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join(format!("{target}-{tag}"));
        let _ = std::fs::write(&path, input);
        panic!(
            "{target} panicked on {} ({} bytes)",
            path.display(),
            input.len()
        );
    }
}

#[test]
fn every_harness_survives_its_corpus_and_mutations_of_it() {
    let secs: f64 = std::env::var("GRPCTAP_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    let seed: u64 = std::env::var("GRPCTAP_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x9e37_79b9_7f4a_7c15);
    let mut report = Vec::new();
    for (target, f) in harness::TARGETS {
        let seeds = corpus(target);
        assert!(!seeds.is_empty(), "{target}: a corpus");
        for (i, s) in seeds.iter().enumerate() {
            run_one(target, f, s, &format!("seed{i}"));
        }
        let mut rng = Rng(seed ^ target.len() as u64);
        let until = Instant::now() + Duration::from_secs_f64(secs);
        let mut runs = 0u64;
        while Instant::now() < until {
            let a = &seeds[rng.below(seeds.len())];
            let b = &seeds[rng.below(seeds.len())];
            let input = mutate(&mut rng, a, b);
            run_one(target, f, &input, &format!("{seed}-{runs}"));
            runs += 1;
        }
        report.push(format!("{target}: {} seeds, {runs} mutations", seeds.len()));
    }
    eprintln!("{}", report.join("; "));
}
