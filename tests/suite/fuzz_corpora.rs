//! Replays every fuzz corpus file (`tests/fuzz/corpus/<target>/`) and every crash input
//! the fuzzers found (`tests/fuzz/regressions/<target>/`) through the same invariant
//! checks the libFuzzer targets run, so stable `cargo test` guards what fuzzing learned.
//! `scripts/fuzz.sh` grows and minimises the corpora.

use std::path::{Path, PathBuf};

type Target = fn(&[u8]);

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz")
}

/// The files of one directory, sorted; `None` if the directory does not exist.
fn files(dir: &Path) -> Option<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).ok()?;
    let mut files: Vec<PathBuf> = entries
        .map(|e| {
            e.unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .path()
        })
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    Some(files)
}

fn replay(target: &str, body: Target) {
    let corpus = fuzz_dir().join("corpus").join(target);
    let mut inputs = files(&corpus).unwrap_or_else(|| {
        panic!(
            "{} is missing: the corpus of fuzz target `{target}` must be in the repository",
            corpus.display()
        )
    });
    assert!(
        !inputs.is_empty(),
        "{} is empty: run scripts/fuzz.sh to regrow it",
        corpus.display()
    );
    let corpus_len = inputs.len();
    inputs.extend(files(&fuzz_dir().join("regressions").join(target)).unwrap_or_default());
    for path in &inputs {
        let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if std::panic::catch_unwind(|| body(&data)).is_err() {
            panic!(
                "fuzz target `{target}` fails on {} (replay: cargo +nightly fuzz run --fuzz-dir tests/fuzz {target} {})",
                path.display(),
                path.display()
            );
        }
    }
    eprintln!(
        "{target}: {corpus_len} corpus and {} regression inputs replayed",
        inputs.len() - corpus_len
    );
}

#[test]
fn fuzz_corpus_pop3_responses() {
    replay("pop3_responses", syncmail::fuzzing::pop3_responses);
}

#[test]
fn fuzz_corpus_utf7() {
    replay("utf7", syncmail::fuzzing::utf7);
}

#[test]
fn fuzz_corpus_maildir_name() {
    replay("maildir_name", syncmail::fuzzing::maildir_name);
}

#[test]
fn fuzz_corpus_folder_name() {
    replay("folder_name", syncmail::fuzzing::folder_name);
}

#[test]
fn fuzz_corpus_config() {
    replay("config", syncmail::fuzzing::config);
}
