//! Is anything answering at all? Run first, so a dead server reads as one clear failure.

use std::time::Duration;

use reqwest::Method;

use super::Config;
use crate::{client, outcome::Outcome};

/// A one-line stream answers with 200 within five seconds.
pub async fn reachable(cfg: &Config) -> Outcome {
    let path = crate::checks::stream_path(1, Duration::ZERO);
    let got = client::fetch(&cfg.target, Method::GET, &path, Duration::from_secs(5), false).await;
    if let Some(error) = got.unanswered() {
        return Outcome::fail(format!("cannot reach {}: {error}", cfg.target.base))
            .with(got.evidence);
    }
    let status = got.status().unwrap_or_default();
    Outcome::judge(
        status == 200,
        format!("{} answers 200", cfg.target.base),
        format!("GET {path} answered {status}, expected 200"),
    )
    .with(got.evidence)
}
