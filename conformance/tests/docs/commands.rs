//! The commands the README and the book show: each parses as the CLI parses it, and the
//! transcripts with output are run and compared with what the commands print now.

use std::{fs, path::Path};

use super::{EXAMPLES, markdown_files, repo, shown};

/// What a `…` placeholder in a documented command stands for when it is parsed.
const PLACEHOLDER_URL: &str = "http://127.0.0.1:1/stream";

/// A documented command that would not run as shown: a package, an example or a flag that
/// does not exist (`cargo run -p conformance -- …` is parsed by the CLI's own parser).
fn command_problem(words: &[String]) -> Option<String> {
    let words: Vec<&str> = words.iter().map(String::as_str).filter(|w| *w != "&").collect();
    let conformance_args: Vec<String> = match words.as_slice() {
        ["conformance", args @ ..] => args.iter().map(|a| a.to_string()).collect(),
        ["cargo", "run", rest @ ..] => {
            let split = rest.iter().position(|w| *w == "--").unwrap_or(rest.len());
            let (cargo, args) = (&rest[..split], rest.get(split + 1..).unwrap_or_default());
            let flag = |name: &str| cargo.iter().position(|w| *w == name).map(|i| cargo.get(i + 1));
            let package = match flag("-p") {
                Some(Some(package)) if EXAMPLES.contains(package) || *package == "conformance" => {
                    *package
                }
                Some(Some(package)) => return Some(format!("no package {package:?} here")),
                _ => return Some("`cargo run` without `-p PACKAGE`".into()),
            };
            if let Some(example) = flag("--example") {
                let example = example.copied().unwrap_or_default();
                let file = repo().join(package).join("examples").join(format!("{example}.rs"));
                return (!file.is_file()).then(|| format!("{package} has no example {example:?}"));
            }
            if package != "conformance" {
                return None;
            }
            args.iter().map(|a| a.to_string()).collect()
        }
        _ => return None,
    };
    let args = conformance_args.iter().map(|a| if a == "…" { PLACEHOLDER_URL } else { a });
    match conformance::cli::parse(std::iter::once("conformance").chain(args)) {
        Ok(_) => None,
        Err(conformance::cli::Refused::Usage(message)) => Some(message),
        Err(conformance::cli::Refused::Clap(error)) => {
            Some(error.to_string().lines().next().unwrap_or_default().to_owned())
        }
    }
}

/// Every command the README and the book show (`sh` blocks and the `$ ` lines of `console`
/// blocks) names a package, example and flags that exist.
#[test]
fn documented_commands_parse() {
    use conformance::harness::transcripts::{sh_commands, shell_words, transcripts};
    let root = repo();
    let mut problems = Vec::new();
    let mut parsed = 0;
    for path in markdown_files(&root) {
        let name = shown(&root, &path);
        let text = fs::read_to_string(&path).unwrap_or_default();
        let steps = transcripts(&name, &text).into_iter().flat_map(|t| {
            let at = t.at.clone();
            t.steps.into_iter().map(move |s| (at.clone(), s.command))
        });
        let commands =
            sh_commands(&text).into_iter().map(|(line, c)| (format!("{name}:{line}"), c));
        for (at, command) in commands.chain(steps) {
            match shell_words(&command) {
                Err(e) => problems.push(format!("{at}: `{command}`: {e}")),
                Ok(words) => {
                    parsed += 1;
                    if let Some(problem) = command_problem(&words) {
                        problems.push(format!("{at}: `{command}`: {problem}"));
                    }
                }
            }
        }
    }
    println!("{parsed} documented commands");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn a_renamed_flag_in_the_docs_is_caught() {
    let words = |c: &str| conformance::harness::transcripts::shell_words(c).unwrap();
    let problem = command_problem(&words("cargo run -p conformance -- diagnose --maxtime 3 …"));
    assert!(problem.is_some_and(|p| p.contains("--maxtime")));
    let problem = command_problem(&words("cargo run -p conformance -- --url … --check nope"));
    assert!(problem.is_some_and(|p| p.contains("no check named \"nope\"")));
    assert!(command_problem(&words("cargo run -p examples-nope")).is_some());
    assert!(command_problem(&words("cargo run -p conformance --example nope")).is_some());
    assert!(command_problem(&words("cargo run -p conformance -- diagnose -m 3 …")).is_none());
}

/// The transcripts that show output in the README and the CLI chapter. The `curl` ones read
/// examples-axum, and its suite runs them (`readme_transcripts` in
/// `examples-axum/tests/conformance.rs`); those that start the broken server run here; any
/// other is a transcript no test runs, which fails.
#[test]
fn transcripts_show_what_the_commands_print() {
    use conformance::harness::transcripts::transcripts;
    let root = repo();
    let mut problems = Vec::new();
    for file in ["README.md", "docs/src/cli.md"] {
        let text = fs::read_to_string(root.join(file)).unwrap_or_default();
        for transcript in transcripts(file, &text) {
            let first = transcript.steps.first().map(|s| s.command.as_str()).unwrap_or_default();
            if transcript.steps.iter().all(|s| s.command.starts_with("curl ")) {
                continue;
            }
            if first.starts_with("cargo run -p conformance --example broken_server") {
                if let Err(e) = run_broken_server_transcript(&transcript) {
                    problems.push(format!("{}: {e}", transcript.at));
                }
                continue;
            }
            problems.push(format!("{}: no test runs this transcript", transcript.at));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The broken server started as the first step says, then each `cargo run -p conformance --`
/// step run with the shown address replaced by the real one.
fn run_broken_server_transcript(
    transcript: &conformance::harness::transcripts::Transcript,
) -> Result<(), String> {
    use conformance::harness::transcripts::compare;
    let exe = std::env::current_exe().expect("the test's path");
    let profile = exe.parent().and_then(Path::parent).expect("target/<profile>");
    let [start, rest @ ..] = transcript.steps.as_slice() else {
        return Err("an empty transcript".into());
    };
    let words = start.words()?;
    let args = words.iter().skip_while(|w| *w != "--").skip(1).map(String::as_str);
    let args: Vec<&str> = args.collect();
    let server = conformance::servers::Spawned::with_args(
        &profile.join("examples/broken_server"),
        &args,
        std::time::Duration::from_secs(60),
    )?;
    let listening = format!("listening on {}", server.base);
    compare(&start.output, &listening).map_err(|e| format!("`{}`: {e}", start.command))?;
    let shown_base = start
        .output
        .iter()
        .find_map(|l| l.strip_prefix("listening on "))
        .ok_or("the first step shows no `listening on` line")?;
    for step in rest {
        let words = step.words()?;
        let Some(split) = words.iter().position(|w| w == "--") else {
            return Err(format!(
                "`{}`: only `cargo run -p conformance -- …` runs here",
                step.command
            ));
        };
        let args: Vec<String> =
            words[split + 1..].iter().map(|w| w.replace(shown_base, &server.base)).collect();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_conformance"))
            .args(&args)
            .output()
            .map_err(|e| format!("cannot run the CLI: {e}"))?;
        let got = String::from_utf8_lossy(&out.stdout);
        compare(&step.output, &got).map_err(|e| format!("`{}`: {e}\n{got}", step.command))?;
    }
    Ok(())
}
