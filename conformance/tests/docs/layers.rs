//! The checker's layers are what its imports show. The `# Layout` table in
//! `conformance/src/lib.rs` lists them from the bottom up; here each file's `crate::` paths are
//! read against it: a path must name a layer's module (never an item the crate root
//! re-exports), that layer must not be above the file's own, and no two files may `use` each
//! other.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
};

/// The layers from the bottom up, as the table in lib.rs lists them.
const LAYERS: [&str; 8] =
    ["outcome", "client", "servers", "checks", "diagnose", "harness", "bench", "cli"];

/// The layering problems of the crate whose sources are in `src`, each naming the file.
pub fn layer_problems(src: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let table = table_modules(&fs::read_to_string(src.join("lib.rs")).unwrap_or_default());
    if table != LAYERS {
        problems.push(format!(
            "lib.rs: the # Layout table lists {table:?}; the layers read here are {LAYERS:?}"
        ));
    }
    let mut uses: BTreeMap<PathBuf, BTreeSet<PathBuf>> = BTreeMap::new();
    for file in sources(src) {
        let rel = file.strip_prefix(src).unwrap_or(&file).to_path_buf();
        let top = rel.components().next().map(|c| c.as_os_str().to_string_lossy().into_owned());
        let Some(own) = top.map(|t| t.trim_end_matches(".rs").to_owned()) else { continue };
        let Some(own_layer) = LAYERS.iter().position(|l| *l == own) else { continue };
        let code = without_tests(&without_comments(&fs::read_to_string(&file).unwrap_or_default()));
        let module = module_path(&rel);
        for path in paths_after(&code, "crate::") {
            let first = &path[0];
            match LAYERS.iter().position(|l| l == first) {
                None => problems.push(format!(
                    "{}: `crate::{}` reaches through the crate root; use it by its module's path",
                    rel.display(),
                    path.join("::")
                )),
                Some(layer) if layer > own_layer => problems.push(format!(
                    "{}: `crate::{}` is in {first}, a layer above {own}",
                    rel.display(),
                    path.join("::")
                )),
                Some(_) => {}
            }
        }
        let children = children(&code);
        for tree in use_trees(&code) {
            let (paths, _) = parse_tree(tree);
            for path in paths {
                let full = match path.first().map(String::as_str) {
                    Some("crate") => path[1..].to_vec(),
                    Some("super") => {
                        [&module[..module.len().saturating_sub(1)], &path[1..]].concat()
                    }
                    Some("self") => [&module[..], &path[1..]].concat(),
                    Some(first) if children.iter().any(|c| c == first) => {
                        [&module[..], &path].concat()
                    }
                    _ => continue,
                };
                add_use(&mut uses, src, &rel, &full);
            }
        }
    }
    for (a, used) in &uses {
        for b in used {
            if a < b && uses.get(b).is_some_and(|back| back.contains(a)) {
                problems.push(format!("{} and {} use each other", a.display(), b.display()));
            }
        }
    }
    problems
}

/// The modules of the `# Layout` table's rows, in order: `[`client`]` or `` `outcome.rs` ``.
fn table_modules(lib: &str) -> Vec<String> {
    lib.lines()
        .filter_map(|line| line.strip_prefix("//! | "))
        .filter_map(|row| row.split(" | ").nth(1))
        .map(|module| module.trim_matches(|c| "[]`".contains(c)).trim_end_matches(".rs").to_owned())
        .filter(|module| module != "module" && !module.starts_with('-'))
        .collect()
}

fn add_use(
    uses: &mut BTreeMap<PathBuf, BTreeSet<PathBuf>>, src: &Path, from: &Path, path: &[String],
) {
    if let Some(to) = file_of(src, path).filter(|to| to != from) {
        uses.entry(from.to_path_buf()).or_default().insert(to);
    }
}

/// Every `.rs` file below `src`, but the crate root and the binary.
fn sources(src: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![src.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs")
                && !(dir == src && (path.ends_with("lib.rs") || path.ends_with("main.rs")))
            {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The module path of a file: `checks/judge.rs` is `[checks, judge]`, `checks/mod.rs` `[checks]`.
fn module_path(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// The file that holds the deepest module of `path` (its items are in that file).
fn file_of(src: &Path, path: &[String]) -> Option<PathBuf> {
    let mut found = None;
    let mut dir = PathBuf::new();
    for segment in path {
        let file = dir.join(format!("{segment}.rs"));
        let module = dir.join(segment).join("mod.rs");
        if src.join(&file).is_file() {
            found = Some(file);
        } else if src.join(&module).is_file() {
            found = Some(module);
        } else {
            break;
        }
        dir.push(segment);
    }
    found
}

/// The trees of the file's `use` declarations: `use a::{b, c};` gives `a::{b, c}`. A `pub use`
/// is left out: it publishes a child's names from the parent, and uses nothing.
fn use_trees(code: &str) -> Vec<&str> {
    let mut trees = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("use ") {
        let before = rest[..at].chars().last();
        let reexport = rest[..at].trim_end().ends_with("pub") || rest[..at].ends_with(") ");
        let after = &rest[at + 4..];
        rest = after;
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') || reexport {
            continue;
        }
        if let Some(end) = after.find(';') {
            trees.push(&after[..end]);
        }
    }
    trees
}

/// The modules a file declares with `mod name;`.
fn children(code: &str) -> Vec<String> {
    code.lines()
        .filter_map(|line| {
            let line = line.trim().trim_start_matches("pub ").trim_start_matches("pub(crate) ");
            line.strip_prefix("mod ")?.strip_suffix(';').map(str::to_owned)
        })
        .collect()
}

/// The code without its `#[cfg(test)] mod … { … }` blocks: a test module's `super` is the file
/// itself, and what tests use is not the module's shape.
fn without_tests(code: &str) -> String {
    let mut out = String::new();
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        let Some(open) =
            after.find('{').filter(|&o| after[..o].contains("mod ") && !after[..o].contains(';'))
        else {
            out.push_str("#[cfg(test)]");
            rest = &after["#[cfg(test)]".len()..];
            continue;
        };
        let mut depth = 0;
        let mut end = after.len();
        for (i, c) in after[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                _ => {}
            }
            if depth == 0 {
                end = open + i + 1;
                break;
            }
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// The code without `//` comments (doc comments included); a `//` in a string such as
/// `"http://"` follows a `:` and is kept.
fn without_comments(text: &str) -> String {
    text.lines()
        .map(|line| {
            let bytes = line.as_bytes();
            let cut = (0..bytes.len().saturating_sub(1)).find(|&i| {
                bytes[i] == b'/' && bytes[i + 1] == b'/' && (i == 0 || bytes[i - 1] != b':')
            });
            &line[..cut.unwrap_or(line.len())]
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The paths that follow each `prefix` in `code`, with `{…}` groups expanded:
/// `crate::{a::{b, c}, d}` gives `[a, b]`, `[a, c]` and `[d]`.
fn paths_after(code: &str, prefix: &str) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find(prefix) {
        let before = rest[..at].chars().last();
        rest = &rest[at + prefix.len()..];
        // `$crate::` in a macro is the user's path to this crate; `a::crate::` cannot be.
        if before.is_some_and(|c| c == '$' || c == ':' || c.is_alphanumeric() || c == '_') {
            continue;
        }
        let (tree, _) = parse_tree(rest);
        paths.extend(tree);
    }
    paths
}

/// Parses one use-tree at the start of `text`: its paths and what follows it.
fn parse_tree(text: &str) -> (Vec<Vec<String>>, &str) {
    let text = text.trim_start();
    if let Some(inner) = text.strip_prefix('{') {
        let mut paths = Vec::new();
        let mut rest = inner;
        loop {
            rest = rest.trim_start();
            if let Some(after) = rest.strip_prefix('}') {
                return (paths, after);
            }
            let (tree, after) = parse_tree(rest);
            paths.extend(tree);
            rest = after.trim_start();
            rest = rest.strip_prefix(',').unwrap_or(rest);
            if rest.is_empty() {
                return (paths, rest);
            }
        }
    }
    let end = text.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(text.len());
    let (name, rest) = text.split_at(end);
    if name.is_empty() || name == "self" {
        // `*`, or `self` in a group: the group's own module.
        let rest = rest.strip_prefix('*').unwrap_or(rest);
        return (if name == "self" { vec![Vec::new()] } else { Vec::new() }, rest);
    }
    if let Some(after) = rest.strip_prefix("::") {
        let (tree, rest) = parse_tree(after);
        let tree = if tree.is_empty() { vec![Vec::new()] } else { tree };
        let paths = tree
            .into_iter()
            .map(|mut p| {
                p.insert(0, name.to_owned());
                p
            })
            .collect();
        return (paths, rest);
    }
    // `name as alias`
    let rest = match rest.trim_start().strip_prefix("as ") {
        Some(after) => {
            after.trim_start().trim_start_matches(|c: char| c.is_alphanumeric() || c == '_')
        }
        None => rest,
    };
    (vec![vec![name.to_owned()]], rest)
}

fn src() -> PathBuf {
    crate::repo().join("conformance/src")
}

#[test]
fn the_checker_is_layered_as_its_crate_docs_say() {
    let problems = layer_problems(&src());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn use_trees_are_read_whole() {
    let (paths, _) = parse_tree("{a::{b, c as d}, e::*, f, g::{self, h}};");
    let paths: Vec<String> = paths.iter().map(|p| p.join("::")).collect();
    assert_eq!(paths, ["a::b", "a::c", "e", "f", "g", "g::h"]);
}

/// A check that uses the bench, one that reaches through the crate root, and two files
/// that use each other are each caught, and named.
#[test]
fn a_planted_violation_fails_naming_it() {
    let tree = crate::Scratch::new();
    let timing = "conformance/src/checks/timing.rs";
    tree.edit(
        timing,
        "use super::{",
        "use crate::bench::Options;\nuse crate::Config;\nuse super::{",
    );
    let judge = "conformance/src/checks/judge.rs";
    tree.edit(
        judge,
        "use std::time::Duration;",
        "use std::time::Duration;\nuse crate::checks::timing::first_line_is_prompt;",
    );
    let problems = layer_problems(&tree.0.join("conformance/src"));
    let all = problems.join("\n");
    assert_eq!(problems.len(), 3, "{all}");
    assert!(
        all.contains("checks/timing.rs: `crate::bench::Options` is in bench, a layer above checks"),
        "{all}"
    );
    assert!(
        all.contains("checks/timing.rs: `crate::Config` reaches through the crate root"),
        "{all}"
    );
    assert!(all.contains("checks/judge.rs and checks/timing.rs use each other"), "{all}");
}

/// A `# Layout` table out of step with the layers read here is caught.
#[test]
fn a_layout_table_out_of_step_fails() {
    let tree = crate::Scratch::new();
    tree.edit("conformance/src/lib.rs", "| servers | [`servers`]", "| local | [`local`]");
    let problems = layer_problems(&tree.0.join("conformance/src"));
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].starts_with("lib.rs: the # Layout table lists"), "{problems:?}");
    assert!(problems[0].contains("\"local\""), "{problems:?}");
}
