//! The docs cannot drift from the code. Every listing of project code in README.md and the book
//! (`docs/src`) is an mdBook `{{#include}}` of a file or anchored region that `cargo test`
//! builds or uses, or, in the README (which GitHub shows without includes), a copy kept
//! byte-identical to the region its marker names. The four examples share their anchors, their
//! `params.rs` and their `index.html`.
//!
//! After changing an anchored region, rewrite the README's copies with
//! `SYNC_DOCS=1 cargo test -p conformance --test docs`.
//!
//! Each check also runs on a temporary copy of the tree with one fault put in, and must name
//! the file and the region. The commands and transcripts the docs show are `commands.rs`.

mod commands;
mod layers;

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU32, Ordering},
};

/// The example crates, whose shape is the same.
const EXAMPLES: [&str; 4] = ["examples-axum", "examples-actix", "examples-rocket", "examples-warp"];
/// The anchors every example has, and the file each is in.
const ANCHORS: [(&str, &str); 6] = [
    ("src/main.rs", "app"),
    ("src/main.rs", "stream"),
    ("src/main.rs", "stream_html"),
    ("src/main.rs", "events"),
    ("src/main.rs", "ticks"),
    ("src/serve.rs", "serve"),
];
/// Files that some examples each keep a copy of, identical in all of them: the contract's
/// parameters, the page and the plumbing in all four; the rustls config in the three that build
/// one; the hyper listener and connection in the two that run hyper themselves.
const SHARED: [(&[&str], &str); 5] = [
    (&EXAMPLES, "src/params.rs"),
    (&EXAMPLES, "src/index.html"),
    (&EXAMPLES, "src/serve/setup.rs"),
    (&["examples-axum", "examples-actix", "examples-warp"], "src/serve/tls.rs"),
    (&["examples-axum", "examples-warp"], "src/serve/connection.rs"),
];
const MAX_REGION_LINES: usize = 40;
const MAX_MAIN_LINES: usize = 150;
/// Fenced blocks in these languages show project code or config: in the book they must be an
/// include, in the README a marked copy.
const CODE_LANGUAGES: [&str; 13] = [
    "rust",
    "toml",
    "nginx",
    "apache",
    "apacheconf",
    "html",
    "js",
    "javascript",
    "conf",
    "python",
    "caddyfile",
    "haproxy",
    "vcl",
];
/// The README marker that names the region a copy is of: `<!-- copy of FILE:ANCHOR -->`.
const COPY_MARKER: &str = "<!-- copy of ";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace").to_owned()
}

/// The anchored regions of `text`, as mdBook cuts them: the lines between `ANCHOR: name` and
/// `ANCHOR_END: name` (in any comment syntax), without the lines of nested markers.
fn regions(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut open: Vec<(String, Vec<&str>)> = Vec::new();
    let mut done = BTreeMap::new();
    for (number, line) in text.lines().enumerate() {
        if let Some(name) = marker(line, "ANCHOR_END:") {
            let Some(at) = open.iter().position(|(open, _)| *open == name) else {
                return Err(format!("line {}: ANCHOR_END: {name} without its ANCHOR", number + 1));
            };
            let (name, lines) = open.remove(at);
            if done.insert(name.clone(), lines.join("\n")).is_some() {
                return Err(format!("anchor {name} appears twice"));
            }
        } else if let Some(name) = marker(line, "ANCHOR:") {
            open.push((name, Vec::new()));
        } else {
            open.iter_mut().for_each(|(_, lines)| lines.push(line));
        }
    }
    match open.first() {
        Some((name, _)) => Err(format!("ANCHOR: {name} has no ANCHOR_END")),
        None => Ok(done),
    }
}

/// The anchor name after `keyword` on `line`, as mdBook's `[\w_-]+`.
fn marker(line: &str, keyword: &str) -> Option<String> {
    let rest = line[line.find(keyword)? + keyword.len()..].trim_start();
    let name: String =
        rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '-').collect();
    (!name.is_empty()).then_some(name)
}

/// What `file:anchor` (or a whole `file`) holds, `file` relative to `base`.
fn region(base: &Path, spec: &str) -> Result<String, String> {
    let (file, anchor) = match spec.split_once(':') {
        Some((_, anchor)) if anchor.parse::<usize>().is_ok() || anchor.contains(':') => {
            return Err(format!("{spec}: name an anchor, not line numbers, which drift"));
        }
        Some((file, anchor)) => (file, Some(anchor)),
        None => (spec, None),
    };
    let path = base.join(file);
    let text = fs::read_to_string(&path).map_err(|e| format!("{file}: {e}"))?;
    let Some(anchor) = anchor else {
        // A whole file, as a fenced block shows it: without its last line end.
        return Ok(text.strip_suffix('\n').unwrap_or(&text).to_owned());
    };
    regions(&text)
        .map_err(|e| format!("{file}: {e}"))?
        .remove(anchor)
        .ok_or_else(|| format!("{file} has no anchor {anchor:?}"))
}

/// The `{{#include …}}` and `{{#rustdoc_include …}}` directives in `markdown`.
fn includes(markdown: &str) -> Vec<String> {
    let mut found = Vec::new();
    for directive in ["{{#include ", "{{#rustdoc_include "] {
        let mut rest = markdown;
        while let Some(at) = rest.find(directive) {
            // `\{{#include …}}` is mdBook's way to show a directive without running it.
            let escaped = rest[..at].ends_with('\\');
            rest = &rest[at + directive.len()..];
            let end = rest.find("}}").unwrap_or(rest.len());
            if !escaped {
                found.push(rest[..end].trim().to_owned());
            }
        }
    }
    found
}

/// The markdown files whose listings must come from the code: README.md and the book.
fn markdown_files(root: &Path) -> Vec<PathBuf> {
    let mut files = vec![root.join("README.md")];
    let mut dirs = vec![root.join("docs/src")];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn shown(root: &Path, path: &Path) -> String {
    path.strip_prefix(root).unwrap_or(path).display().to_string()
}

/// Every problem with the listings of README.md and the book under `root`. With `sync`, the
/// README's copies are first rewritten from their regions.
fn listing_problems(root: &Path, sync: bool) -> Vec<String> {
    let mut problems = Vec::new();
    for path in markdown_files(root) {
        let name = shown(root, &path);
        let Ok(text) = fs::read_to_string(&path) else {
            problems.push(format!("{name}: cannot read it"));
            continue;
        };
        let base = path.parent().expect("a directory");
        let readme = path == root.join("README.md");
        for spec in includes(&text) {
            // The README may name a directive in prose; used as content, it would show raw.
            let as_content =
                text.lines().any(|l| l.trim().starts_with(&format!("{{{{#include {spec}")));
            if readme && as_content {
                problems.push(format!(
                    "{name}: {{{{#include {spec}}}}}: GitHub shows the README as it is; copy the \
                     region under a `{COPY_MARKER}{spec} -->` marker instead"
                ));
            } else if !readme && let Err(e) = region(base, &spec) {
                problems.push(format!("{name}: {{{{#include {spec}}}}}: {e}"));
            }
        }
        let mut synced = text.clone();
        for block in conformance::harness::transcripts::fenced(&text) {
            let code = CODE_LANGUAGES.contains(&block.language.as_str());
            let included = block.body.trim().starts_with("{{#");
            let copy_of = block.above.strip_prefix(COPY_MARKER).and_then(|m| m.strip_suffix("-->"));
            let at = format!("{name}:{} ({} block)", block.line, block.language);
            match (readme, copy_of.map(str::trim)) {
                (true, Some(spec)) => match region(base, spec) {
                    Err(e) => problems.push(format!("{at}: the copy of {spec}: {e}")),
                    Ok(want) if sync => synced = synced.replacen(&block.body, &want, 1),
                    Ok(want) if want != block.body => problems.push(format!(
                        "{at} differs from {spec}, which it is a copy of ({}); rewrite the copies \
                         with SYNC_DOCS=1 cargo test -p conformance --test docs",
                        first_difference(&want, &block.body)
                    )),
                    Ok(_) => {}
                },
                (true, None) if code => problems.push(format!(
                    "{at}: project code must be a copy of an anchored region, marked \
                     `{COPY_MARKER}FILE:ANCHOR -->` on the line above"
                )),
                (false, _) if code && !included => problems.push(format!(
                    "{at}: a listing must be an {{{{#include FILE:ANCHOR}}}} of code the tests \
                     build, not a copy"
                )),
                _ => {}
            }
        }
        if sync && synced != text {
            fs::write(&path, synced).expect("rewrite the README");
            println!("rewrote the copies in {name}");
        }
    }
    problems
}

fn first_difference(want: &str, got: &str) -> String {
    let line = want.lines().zip(got.lines()).position(|(a, b)| a != b);
    match line {
        Some(i) => format!("line {} of the region: {:?}", i + 1, want.lines().nth(i).unwrap_or("")),
        None => format!(
            "{} lines in the region, {} in the copy",
            want.lines().count(),
            got.lines().count()
        ),
    }
}

/// Every problem with the examples' shape: each has every anchor, each region within
/// [`MAX_REGION_LINES`], each `main.rs` within [`MAX_MAIN_LINES`], and the shared files alike.
fn example_problems(root: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    for example in EXAMPLES {
        for (file, anchor) in ANCHORS {
            let spec = format!("{example}/{file}:{anchor}");
            match region(root, &spec) {
                Err(e) => problems.push(format!("{example}: {e}")),
                Ok(text) if text.lines().count() > MAX_REGION_LINES => problems.push(format!(
                    "{spec} is {} lines; a region docs include is at most {MAX_REGION_LINES}",
                    text.lines().count()
                )),
                Ok(_) => {}
            }
        }
        let main = root.join(example).join("src/main.rs");
        let lines = fs::read_to_string(&main).map(|t| t.lines().count()).unwrap_or(0);
        if lines > MAX_MAIN_LINES {
            problems.push(format!(
                "{example}/src/main.rs is {lines} lines; the snippet is at most {MAX_MAIN_LINES}"
            ));
        }
    }
    for (examples, file) in SHARED {
        let [first, rest @ ..] = examples else { continue };
        let original = fs::read(root.join(first).join(file)).unwrap_or_default();
        for other in rest {
            let copy = fs::read(root.join(other).join(file)).unwrap_or_default();
            if original.is_empty() || copy != original {
                problems.push(format!(
                    "{other}/{file} differs from {first}/{file} (or is missing): the {} copies \
                     must be identical",
                    examples.len()
                ));
            }
        }
    }
    problems
}

#[test]
fn listings_come_from_the_code() {
    let sync = std::env::var("SYNC_DOCS").as_deref() == Ok("1");
    let problems = listing_problems(&repo(), sync);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn examples_share_their_shape() {
    let problems = example_problems(&repo());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn regions_are_cut_as_mdbook_cuts_them() {
    let text = "a\n// ANCHOR: outer\nb\n  # ANCHOR: inner\nc\n  # ANCHOR_END: inner\nd\n// ANCHOR_END: outer\n";
    let regions = regions(text).unwrap();
    assert_eq!(regions["outer"], "b\nc\nd");
    assert_eq!(regions["inner"], "c");
    assert!(self::regions("// ANCHOR: open\nx\n").unwrap_err().contains("open has no ANCHOR_END"));
    assert!(self::regions("x\n// ANCHOR_END: stray\n").unwrap_err().contains("stray"));
}

/// A temporary copy of the files the checks read, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("docs-check-{}-{n}", std::process::id()));
        let root = repo();
        let mut pending: Vec<PathBuf> = [
            "README.md",
            "CONTRACT.md",
            "docs/src",
            "conformance/examples",
            "conformance/src",
            "conformance/proxies",
            "conformance/zoo",
            "conformance/tests/support",
        ]
        .iter()
        .map(PathBuf::from)
        .chain(EXAMPLES.iter().flat_map(|e| [Path::new(e).join("src"), Path::new(e).join("tests")]))
        .collect();
        while let Some(relative) = pending.pop() {
            let from = root.join(&relative);
            let to = dir.join(&relative);
            if from.is_dir() {
                fs::create_dir_all(&to).unwrap();
                for entry in fs::read_dir(&from).unwrap().flatten() {
                    // Not the zoo's installed packages.
                    let name = entry.file_name();
                    if !["node_modules", ".venv", "__pycache__"].contains(&&*name.to_string_lossy())
                    {
                        pending.push(relative.join(name));
                    }
                }
            } else if from.is_file() {
                fs::create_dir_all(to.parent().unwrap()).unwrap();
                fs::copy(&from, &to).unwrap();
            }
        }
        Self(dir)
    }

    fn edit(&self, file: &str, from: &str, to: &str) {
        let path = self.0.join(file);
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{file} has no {from:?} to change");
        fs::write(&path, text.replacen(from, to, 1)).unwrap();
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn one_problem(problems: Vec<String>, mentions: &[&str]) {
    assert_eq!(problems.len(), 1, "expected one problem, got {problems:#?}");
    for needle in mentions {
        assert!(problems[0].contains(needle), "{:?} does not mention {needle:?}", problems[0]);
    }
}

/// The README's copy of axum's `stream` with one character changed is caught, and named.
#[test]
fn a_changed_copy_fails_naming_the_file_and_region() {
    let tree = Scratch::new();
    assert!(listing_problems(&tree.0, false).is_empty());
    tree.edit("examples-axum/src/main.rs", "\"no-cache\"", "\"no-cachE\"");
    let problems = listing_problems(&tree.0, false);
    one_problem(problems, &["README.md", "examples-axum/src/main.rs:stream", "no-cachE"]);
    // The documented command puts it right.
    listing_problems(&tree.0, true);
    assert!(listing_problems(&tree.0, false).is_empty(), "SYNC_DOCS did not rewrite the copy");
}

/// An anchor the book includes but the crate lacks is caught, and named.
#[test]
fn a_missing_anchor_fails_naming_the_file_and_region() {
    let tree = Scratch::new();
    tree.edit("examples-warp/src/main.rs", "// ANCHOR: events", "// events");
    tree.edit("examples-warp/src/main.rs", "// ANCHOR_END: events", "//");
    let listings = listing_problems(&tree.0, false);
    assert!(!listings.is_empty(), "the book includes examples-warp/src/main.rs:events");
    for problem in &listings {
        assert!(
            problem.contains("examples-warp/src/main.rs has no anchor \"events\""),
            "{problem}"
        );
    }
    one_problem(example_problems(&tree.0), &["examples-warp", "no anchor \"events\""]);
}

/// A `params.rs` that drifted in one crate is caught, and named.
#[test]
fn a_diverged_shared_file_fails_naming_it() {
    let tree = Scratch::new();
    tree.edit("examples-rocket/src/params.rs", "1_000_000", "1_000_001");
    one_problem(example_problems(&tree.0), &["examples-rocket/src/params.rs", "examples-axum"]);
}

/// The plumbing all four share, drifted in actix, is caught and named.
#[test]
fn a_diverged_setup_file_fails_naming_it() {
    let tree = Scratch::new();
    tree.edit("examples-actix/src/serve/setup.rs", "default_value_t = 30", "default_value_t = 31");
    one_problem(
        example_problems(&tree.0),
        &["examples-actix/src/serve/setup.rs", "examples-axum", "the 4 copies"],
    );
}

/// The connection file that axum and warp share, drifted in warp, is caught and named.
#[test]
fn a_diverged_connection_file_fails_naming_it() {
    let tree = Scratch::new();
    tree.edit("examples-warp/src/serve/connection.rs", "from_secs(30)", "from_secs(31)");
    one_problem(
        example_problems(&tree.0),
        &["examples-warp/src/serve/connection.rs", "examples-axum"],
    );
}

/// A region grown past 40 lines, a listing pasted into the book, and code in the README with
/// no marker are each caught.
#[test]
fn oversized_regions_and_unmarked_listings_fail() {
    let tree = Scratch::new();
    let long = format!("// ANCHOR: serve\n{}", "    //\n".repeat(MAX_REGION_LINES));
    tree.edit("examples-actix/src/serve.rs", "// ANCHOR: serve\n", &long);
    one_problem(example_problems(&tree.0), &["examples-actix/src/serve.rs:serve", "at most 40"]);

    let tree = Scratch::new();
    tree.edit("examples-actix/src/main.rs", "\n\n", &"\n".repeat(30));
    one_problem(example_problems(&tree.0), &["examples-actix/src/main.rs", "at most 150"]);

    let tree = Scratch::new();
    let chapter = tree.0.join("docs/src/pasted.md");
    fs::write(&chapter, "# Pasted\n\n```rust\nfn main() {}\n```\n").unwrap();
    one_problem(listing_problems(&tree.0, false), &["docs/src/pasted.md:3", "#include"]);

    let tree = Scratch::new();
    let readme = tree.0.join("README.md");
    let text = fs::read_to_string(&readme).unwrap();
    fs::write(&readme, format!("{text}\n```rust\nfn main() {{}}\n```\n")).unwrap();
    one_problem(listing_problems(&tree.0, false), &["README.md", "marked"]);
}
