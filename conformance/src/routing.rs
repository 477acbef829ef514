//! The rest of the surface: an index at `/`, 404 for unknown paths, 405 with `Allow` for methods
//! `/stream` does not answer.

use std::time::Duration;

use reqwest::Method;

use crate::{Config, Outcome, probe};

const QUICK: Duration = Duration::from_secs(5);

pub async fn index_names_endpoints(cfg: &Config) -> Outcome {
    let got = probe::fetch(cfg, Method::GET, "/", QUICK, false).await;
    let body = String::from_utf8_lossy(&got.body).into_owned();
    let outcome = match got.status() {
        Some(200) => {
            let missing: Vec<&str> = ["/stream", "curl -N"]
                .into_iter()
                .filter(|needle| !body.contains(needle))
                .collect();
            Outcome::judge(
                missing.is_empty(),
                "names /stream and a curl -N line",
                format!("the index does not mention {}", missing.join(" or ")),
            )
        }
        Some(status) => Outcome::fail(format!("GET / answered {status}, expected 200")),
        None => Outcome::fail(format!(
            "no response: {}",
            got.error.clone().unwrap_or_default()
        )),
    };
    outcome.with(got.evidence)
}

pub async fn unknown_path_404(cfg: &Config) -> Outcome {
    let path = "/no-such-path/stream";
    let got = probe::fetch(cfg, Method::GET, path, QUICK, true).await;
    let status = got.status();
    Outcome::judge(
        status == Some(404),
        "404",
        format!("GET {path} answered {status:?}, expected 404"),
    )
    .with(got.evidence)
}

pub async fn other_methods_405_with_allow(cfg: &Config) -> Outcome {
    let path = "/stream?count=1&interval_ms=0";
    let methods = [Method::POST, Method::PUT, Method::DELETE, Method::PATCH];
    let answers = futures_util::future::join_all(
        methods
            .iter()
            .map(|m| probe::fetch(cfg, m.clone(), path, QUICK, true)),
    )
    .await;
    let mut problems = Vec::new();
    for (method, got) in methods.iter().zip(&answers) {
        match (got.status(), got.header("allow")) {
            (Some(405), Some(allow)) if allow.to_ascii_uppercase().contains("GET") => {}
            (Some(405), allow) => problems.push(format!(
                "{method}: 405 with Allow {allow:?}, expected GET listed"
            )),
            (status, _) => problems.push(format!("{method}: {status:?}, expected 405")),
        }
    }
    let mut outcome = Outcome::judge(
        problems.is_empty(),
        "POST, PUT, DELETE, PATCH: 405 with Allow",
        problems.join("; "),
    );
    outcome.evidence = answers.into_iter().map(|got| got.evidence).collect();
    outcome
}
