//! The rest of the surface: an index at `/`, 404 for unknown paths, 405 with `Allow` for methods
//! the streaming paths do not answer.

use std::time::Duration;

use reqwest::Method;

use super::{Config, endpoint};
use crate::{client, outcome::Outcome};

const QUICK: Duration = Duration::from_secs(5);

/// What the `/` page must contain: the three endpoints, the two browser APIs that read them,
/// and a line to try in a terminal.
const INDEX_MENTIONS: [&str; 6] =
    ["/stream", "/stream.html", "/events", "fetch(", "EventSource", "curl -N"];

pub async fn index_names_endpoints(cfg: &Config) -> Outcome {
    let got = client::fetch(&cfg.target, Method::GET, "/", QUICK, false).await;
    let body = String::from_utf8_lossy(&got.body).into_owned();
    let outcome = match got.status() {
        Some(200) => {
            let content_type = got.header("content-type").unwrap_or_default();
            let missing: Vec<&str> =
                INDEX_MENTIONS.into_iter().filter(|needle| !body.contains(needle)).collect();
            if !content_type.to_ascii_lowercase().starts_with("text/html") {
                Outcome::fail(format!(
                    "GET / is {content_type:?}, expected an HTML page (text/html)"
                ))
            } else {
                Outcome::judge(
                    missing.is_empty(),
                    "an HTML page that reads /stream with fetch() and /events with EventSource, \
                     links /stream.html and gives a curl -N line",
                    format!("the index page does not mention {}", missing.join(" or ")),
                )
            }
        }
        Some(status) => Outcome::fail(format!("GET / answered {status}, expected 200")),
        None => Outcome::fail(format!("no response: {}", got.error.clone().unwrap_or_default())),
    };
    outcome.with(got.evidence)
}

pub async fn unknown_path_404(cfg: &Config) -> Outcome {
    let path = "/no-such-path/stream";
    let got = client::fetch(&cfg.target, Method::GET, path, QUICK, true).await;
    let status = got.status();
    Outcome::judge(
        status == Some(404),
        "404",
        format!("GET {path} answered {status:?}, expected 404"),
    )
    .with(got.evidence)
}

pub async fn other_methods_405_with_allow(cfg: &Config) -> Outcome {
    let methods = [Method::POST, Method::PUT, Method::DELETE, Method::PATCH];
    let asks: Vec<(Method, String)> = endpoint::ALL
        .iter()
        .flat_map(|e| {
            let path = e.path(1, Duration::ZERO);
            methods.iter().map(move |m| (m.clone(), path.clone()))
        })
        .collect();
    let answers = futures_util::future::join_all(
        asks.iter()
            .map(|(method, path)| client::fetch(&cfg.target, method.clone(), path, QUICK, true)),
    )
    .await;
    let mut problems = Vec::new();
    for ((method, path), got) in asks.iter().zip(&answers) {
        match (got.status(), got.header("allow")) {
            (Some(405), Some(allow)) if allow.to_ascii_uppercase().contains("GET") => {}
            (Some(405), allow) => problems
                .push(format!("{method} {path}: 405 with Allow {allow:?}, expected GET listed")),
            (status, _) => problems.push(format!("{method} {path}: {status:?}, expected 405")),
        }
    }
    let mut outcome = Outcome::judge(
        problems.is_empty(),
        "POST, PUT, DELETE, PATCH on /stream, /stream.html, /events: 405 with Allow",
        problems.join("; "),
    );
    outcome.evidence = answers.into_iter().map(|got| got.evidence).collect();
    outcome
}
