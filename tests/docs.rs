//! The README and docs/ hold together: every relative link resolves to a
//! file of the repository (and, with a `#fragment`, to a heading in it).

use std::fs;
use std::path::{Path, PathBuf};

/// The Markdown files checked: the README and everything in docs/.
fn documents() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = vec![root.join("README.md")];
    for entry in fs::read_dir(root.join("docs")).expect("docs/ exists") {
        let path = entry.expect("list docs/").path();
        if path.extension().is_some_and(|e| e == "md") {
            out.push(path);
        }
    }
    out
}

/// The targets of `[text](target)` links in `text`, outside code spans.
fn links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_fence = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        let mut rest = line;
        while let Some(i) = rest.find("](") {
            let after = &rest[i + 2..];
            let Some(end) = after.find(')') else { break };
            out.push(after[..end].to_owned());
            rest = &after[end..];
        }
    }
    out
}

/// GitHub's anchor for a heading: lower case, spaces to dashes, most
/// punctuation dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

#[test]
fn every_relative_link_resolves() {
    let mut checked = 0;
    let mut broken = Vec::new();
    for doc in documents() {
        let text = fs::read_to_string(&doc).expect("read a document");
        for target in links(&text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (file, fragment) = target.split_once('#').unwrap_or((&target, ""));
            let path = if file.is_empty() {
                doc.clone()
            } else {
                doc.parent().expect("a folder").join(file)
            };
            checked += 1;
            if !path.exists() {
                broken.push(format!("{}: {target} (no such file)", doc.display()));
                continue;
            }
            if !fragment.is_empty() && path.extension().is_some_and(|e| e == "md") {
                let target_text = fs::read_to_string(&path).expect("read the target");
                let found = target_text
                    .lines()
                    .filter_map(|l| l.strip_prefix('#'))
                    .any(|h| anchor(h.trim_start_matches('#')) == fragment);
                if !found {
                    broken.push(format!("{}: {target} (no such heading)", doc.display()));
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
    assert!(
        checked >= 10,
        "only {checked} relative links found: is the parser right?"
    );
}

/// docs/benchmarks.md ends with what the last full `make bench` run
/// printed, after the line the bench writes below: the figures live
/// there, once, and come from a run, not from hand.
#[test]
fn benchmark_figures_come_from_a_bench_run() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/benchmarks.md");
    let doc = fs::read_to_string(path).expect("docs/benchmarks.md exists");
    let mark = "<!-- Everything below is written by `make bench`. -->";
    let (_, written) = doc
        .split_once(mark)
        .expect("docs/benchmarks.md has the line after which `make bench` writes");
    assert!(
        written.contains("## The last full run") && written.contains("```text"),
        "no run is written below the mark: run `make bench`"
    );
    for part in ["reference", "1000000 series", "HTTP front"] {
        assert!(
            written.contains(part),
            "the written run lacks its {part:?} part: a partial run?"
        );
    }
}
