//! Running `conformance diagnose --json` as a user does, and reading what it said.

use std::process::Command;

use conformance::diagnose::Cause;
use serde_json::Value;

/// What the CLI said: its exit code, its JSON and its stderr.
pub struct Said {
    pub code: i32,
    pub json: Value,
    pub stderr: String,
}

impl Said {
    pub fn causes(&self, role: &str) -> Vec<String> {
        let findings = self.json["findings"].as_array().cloned().unwrap_or_default();
        findings
            .iter()
            .filter(|f| f["role"] == role)
            .map(|f| f["cause"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

pub fn diagnose(args: &[&str]) -> Said {
    let out = Command::new(env!("CARGO_BIN_EXE_conformance"))
        .arg("diagnose")
        .arg("--json")
        .args(args)
        .output()
        .expect("the CLI runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    Said {
        code: out.status.code().unwrap_or(-1),
        json: serde_json::from_str(&stdout).unwrap_or_else(|e| {
            panic!("not JSON ({e}): {stdout}\n{}", String::from_utf8_lossy(&out.stderr))
        }),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The verdict, the exit code and the causes (role `cause`) and risks must be as expected.
pub fn expect(said: &Said, verdict: &str, causes: &[Cause], risks: &[Cause]) {
    let show = serde_json::to_string_pretty(&said.json).unwrap_or_default();
    assert_eq!(said.json["verdict"], verdict, "{show}\n{}", said.stderr);
    let code = match verdict {
        "streams" => 0,
        "buffered" | "batched" => 1,
        _ => 3,
    };
    assert_eq!(said.code, code, "exit code for {verdict}: {show}");
    let names = |list: &[Cause]| list.iter().map(|c| c.name().to_owned()).collect::<Vec<_>>();
    assert_eq!(said.causes("cause"), names(causes), "causes: {show}");
    assert_eq!(said.causes("risk"), names(risks), "risks: {show}");
    println!("{verdict}: {} {:?} {:?}", said.json["reason"], names(causes), names(risks));
}
