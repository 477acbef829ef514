//! The console transcripts of the README and the book, run for real: each `$ command` of a
//! `console` block with the output shown under it. Figures and runs of spaces may differ
//! (ports, timings), a shown line that ends in `…` stands for any line that starts as it
//! does, and a line that is only `…` for any number of lines.

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use crate::servers::Spawned;

/// One `console` block: its commands, each with the output shown under it.
#[derive(Debug, Clone, PartialEq)]
pub struct Transcript {
    /// `README.md:31`: the file and the line of the opening fence.
    pub at: String,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The command after `$ `, continuation lines joined.
    pub command: String,
    pub output: Vec<String>,
}

impl Step {
    /// The command's words, as a POSIX shell splits them.
    pub fn words(&self) -> Result<Vec<String>, String> {
        shell_words(&self.command).map_err(|e| format!("`{}`: {e}", self.command))
    }
}

/// The command lines of a `sh` block or a `$ ` line: continuations joined, comments dropped.
pub fn shell_words(command: &str) -> Result<Vec<String>, String> {
    let joined = command.replace("\\\n", " ");
    let mut words = shlex::split(&joined).ok_or("unbalanced quotes")?;
    if let Some(comment) = words.iter().position(|w| w.starts_with('#')) {
        words.truncate(comment);
    }
    Ok(words)
}

/// A fenced code block of a markdown file.
#[derive(Debug, Clone)]
pub struct Fenced {
    /// The info string's first word: `rust`, `console`, …
    pub language: String,
    /// Its lines, joined.
    pub body: String,
    /// 1-based line of the opening fence.
    pub line: usize,
    /// The nearest non-blank line above the fence.
    pub above: String,
}

/// The fenced code blocks of `markdown`, in order.
pub fn fenced(markdown: &str) -> Vec<Fenced> {
    let lines: Vec<&str> = markdown.lines().collect();
    let mut found = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some(info) = lines[i].trim_start().strip_prefix("```") else {
            i += 1;
            continue;
        };
        let end = (i + 1..lines.len()).find(|&j| lines[j].trim_start().starts_with("```"));
        let end = end.unwrap_or(lines.len());
        let above = lines[..i].iter().rev().find(|l| !l.trim().is_empty());
        found.push(Fenced {
            language: info.split([',', ' ']).next().unwrap_or_default().to_owned(),
            body: lines[i + 1..end].join("\n"),
            line: i + 1,
            above: above.map(|l| l.trim().to_owned()).unwrap_or_default(),
        });
        i = end + 1;
    }
    found
}

/// The fenced blocks of `markdown` in `language`: the line of each opening fence, and its
/// lines.
fn blocks(markdown: &str, language: &str) -> Vec<(usize, Vec<String>)> {
    let blocks = fenced(markdown).into_iter().filter(|b| b.language == language);
    blocks.map(|b| (b.line, b.body.lines().map(str::to_owned).collect())).collect()
}

/// The commands of every `sh` block (continuations joined), with the line each starts on.
pub fn sh_commands(markdown: &str) -> Vec<(usize, String)> {
    let mut commands = Vec::new();
    for (fence, lines) in blocks(markdown, "sh") {
        let mut pending: Option<(usize, String)> = None;
        for (i, line) in lines.iter().enumerate() {
            let (start, mut text) = pending.take().unwrap_or((fence + 1 + i, String::new()));
            text.push_str(line);
            if let Some(open) = text.strip_suffix('\\') {
                pending = Some((start, format!("{open}\n")));
            } else if !text.trim().is_empty() && !text.trim_start().starts_with('#') {
                commands.push((start, text.replace('\n', " ")));
            }
        }
    }
    commands
}

/// Every `console` block of `markdown` (from `file`) as a transcript.
pub fn transcripts(file: &str, markdown: &str) -> Vec<Transcript> {
    let mut found = Vec::new();
    for (fence, lines) in blocks(markdown, "console") {
        let mut steps: Vec<Step> = Vec::new();
        for line in lines {
            match (line.strip_prefix("$ "), steps.last_mut()) {
                (Some(command), _) => {
                    steps.push(Step { command: command.to_owned(), output: Vec::new() })
                }
                (None, Some(step)) => step.output.push(line),
                (None, None) => {}
            }
        }
        found.push(Transcript { at: format!("{file}:{fence}"), steps });
    }
    found
}

/// Digits and runs of spaces vary from run to run; the rest of the output must not.
pub fn shape(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            while chars.peek().is_some_and(|c| c.is_ascii_digit() || *c == '.') {
                chars.next();
            }
            out.push('#');
        } else if c == ' ' {
            while chars.peek() == Some(&' ') {
                chars.next();
            }
            out.push(' ');
        } else {
            out.push(c);
        }
    }
    out.trim_end().to_owned()
}

/// Whether the output `got` is what `shown` shows (see the module docs); the first line that
/// is not, if any.
pub fn compare(shown: &[String], got: &str) -> Result<(), String> {
    let got: Vec<&str> = got.lines().collect();
    let mut at = 0;
    let mut skipping = false;
    for want in shown.iter().map(|l| l.trim_end()).filter(|l| !l.is_empty()) {
        if want == "…" {
            skipping = true;
            continue;
        }
        let fits = |line: &str| match want.strip_suffix('…') {
            Some(start) => shape(line).starts_with(&shape(start)),
            None => shape(line) == shape(want),
        };
        let found = if skipping {
            got[at..].iter().position(|l| fits(l)).map(|i| at + i)
        } else {
            got.get(at).filter(|l| fits(l)).map(|_| at)
        };
        match found {
            Some(i) => at = i + 1,
            None => {
                let instead = got.get(at).copied().unwrap_or("(the end of the output)");
                return Err(format!("shown {want:?}, but the output has {instead:?} there"));
            }
        }
        skipping = false;
    }
    let rest: Vec<&&str> = got[at..].iter().filter(|l| !l.trim().is_empty()).collect();
    match rest.first() {
        Some(extra) if !skipping => Err(format!("the output goes on with {extra:?}")),
        _ => Ok(()),
    }
}

/// The `console` blocks in `files` (relative to `root`) whose commands are `curl` against
/// `shown_host` (`localhost:3000`), run against `binary` started on an ephemeral port: curl's
/// output must be what the block shows. Identical blocks are run once. Panics with every
/// difference; returns how many blocks ran.
pub fn run_curl_transcripts(binary: &str, root: &Path, files: &[&str], shown_host: &str) -> usize {
    let server = Spawned::start(Path::new(binary), Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{binary}: {e}"));
    let host = server.base.trim_start_matches("http://").to_owned();
    let mut seen: Vec<Vec<Step>> = Vec::new();
    let mut problems = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(root.join(file))
            .unwrap_or_else(|e| panic!("cannot read {file}: {e}"));
        for transcript in transcripts(file, &text) {
            let curls = transcript.steps.iter().all(|s| s.command.starts_with("curl "));
            if !curls || seen.contains(&transcript.steps) {
                continue;
            }
            seen.push(transcript.steps.clone());
            for step in &transcript.steps {
                let words = step.words().unwrap_or_else(|e| panic!("{}: {e}", transcript.at));
                let args: Vec<String> =
                    words[1..].iter().map(|w| w.replace(shown_host, &host)).collect();
                let started = Instant::now();
                let out = Command::new("curl").args(&args).output().expect("curl runs");
                let got = String::from_utf8_lossy(&out.stdout);
                println!(
                    "{}: `{}` took {:.1} s",
                    transcript.at,
                    step.command,
                    started.elapsed().as_secs_f64()
                );
                if let Err(e) = compare(&step.output, &got) {
                    problems.push(format!("{} `{}`: {e}\n{got}", transcript.at, step.command));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{}\n--- server log ---\n{}",
        problems.join("\n"),
        server.stderr()
    );
    seen.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_owned).collect()
    }

    #[test]
    fn transcripts_compare_by_shape_with_elisions() {
        let shown = lines("listening on http://127.0.0.1:41234\n…\nFAIL  a  took 9016 ms: …\nend");
        assert!(
            compare(&shown, "listening on http://127.0.0.1:5\nx\ny\nFAIL a took 3 ms: why\nend")
                .is_ok()
        );
        let error =
            compare(&shown, "listening on http://127.0.0.1:5\nFAIL b took 3 ms\nend").unwrap_err();
        assert!(error.contains("FAIL  a"), "{error}");
        assert!(compare(&lines("1\n2"), "1\n2\n3").unwrap_err().contains("goes on with \"3\""));
        assert!(compare(&lines("1\n…"), "1\n2\n3").is_ok());
    }

    #[test]
    fn blocks_and_commands_are_read_as_a_reader_sees_them() {
        let markdown = "```sh\ncargo run -p a   # the server\ncargo run -p b -- \\\n    --x 'y z'\n```\n\n```console\n$ curl -N 'h:1/s'\n1\n2\n```\n";
        let commands = sh_commands(markdown);
        assert_eq!(commands[0], (2, "cargo run -p a   # the server".to_owned()));
        assert_eq!(
            shell_words(&commands[1].1).unwrap(),
            ["cargo", "run", "-p", "b", "--", "--x", "y z"]
        );
        assert_eq!(shell_words(&commands[0].1).unwrap(), ["cargo", "run", "-p", "a"]);
        let found = transcripts("F.md", markdown);
        assert_eq!(found[0].at, "F.md:7");
        assert_eq!(found[0].steps[0].output, ["1", "2"]);
    }
}
