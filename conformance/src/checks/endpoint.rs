//! The three streaming endpoints of the contract, and what each one's body must be.

use std::time::Duration;

use super::Config;
use crate::{
    client::{self, Ask, Fetched, Framing},
    outcome::Outcome,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// `/stream`: `1\n` … `count\n`.
    Stream,
    /// `/stream.html`: `<div>k</div>` plus padding per item.
    Html,
    /// `/events`: Server-Sent Events `id: k`, `data: k`.
    Events,
}

pub(crate) const ALL: [Endpoint; 3] = [Endpoint::Stream, Endpoint::Html, Endpoint::Events];
/// The endpoints that answer HEAD and carry `X-Content-Type-Options`.
pub(crate) const DOCUMENTS: [Endpoint; 2] = [Endpoint::Stream, Endpoint::Html];

/// `/stream.html`'s padding when none is asked for.
pub(crate) const DEFAULT_PAD: usize = 1024;

impl Endpoint {
    pub(crate) fn base(self) -> &'static str {
        match self {
            Self::Stream => "/stream",
            Self::Html => "/stream.html",
            Self::Events => "/events",
        }
    }

    pub(crate) fn framing(self) -> Framing {
        match self {
            Self::Stream => Framing::Lines,
            Self::Html => Framing::Divs,
            Self::Events => Framing::Events,
        }
    }

    /// The path for `count` items `interval` apart, with the endpoint's other parameters at
    /// their defaults.
    pub(crate) fn path(self, count: u32, interval: Duration) -> String {
        format!("{}?count={count}&interval_ms={}", self.base(), interval.as_millis())
    }

    /// A GET of the configured stream, read with this endpoint's framing.
    pub(crate) fn ask(self, cfg: &Config) -> Ask {
        Ask::get(self.path(cfg.count, cfg.interval), cfg.deadline()).framing(self.framing())
    }

    /// What is wrong with a 200 answer's (decoded) body, if anything.
    pub(crate) fn content_problem(self, got: &Fetched, count: u32) -> Option<String> {
        match self {
            Self::Stream => crate::checks::judge::content_problem(&got.body, count),
            Self::Html => html_problem(&got.body, count, DEFAULT_PAD),
            Self::Events => events_problem(got, 1, count),
        }
    }
}

/// Sends `ask` for `endpoint` and makes sure the answer is a 200 with the right items (ids
/// `1..=count`) before its timing is judged.
pub(crate) async fn fetch_items(
    cfg: &Config, endpoint: Endpoint, ask: Ask, count: u32,
) -> Result<Fetched, Outcome> {
    let got = client::send(&cfg.target, ask).await;
    if let Some(error) = got.unanswered() {
        return Err(Outcome::fail(format!("no response: {error}")).with(got.evidence));
    }
    let status = got.status().unwrap_or_default();
    if status != 200 {
        return Err(Outcome::fail(format!("{}: status {status}, expected 200", endpoint.base()))
            .with(got.evidence));
    }
    if let Some(problem) = endpoint.content_problem(&got, count) {
        let problem = match &got.error {
            Some(error) => format!("{}: {problem} ({error})", endpoint.base()),
            None => format!("{}: {problem}", endpoint.base()),
        };
        return Err(Outcome::fail(problem).with(got.evidence));
    }
    Ok(got)
}

/// `<!doctype html><html><body>`, `count` times `<div>k</div>` and `pad` spaces,
/// `</body></html>`: the first difference, if any.
pub(crate) fn html_problem(body: &[u8], count: u32, pad: usize) -> Option<String> {
    const PREFIX: &str = "<!doctype html><html><body>";
    const SUFFIX: &str = "</body></html>";
    let text = String::from_utf8_lossy(body);
    let Some(mut rest) = text.strip_prefix(PREFIX) else {
        return Some(format!(
            "the body starts {:?}, expected {PREFIX:?}",
            text.chars().take(40).collect::<String>()
        ));
    };
    for k in 1..=count {
        let div = format!("<div>{k}</div>");
        let Some(after) = rest.strip_prefix(&div) else {
            return Some(format!(
                "expected {div:?}, found {:?}",
                rest.chars().take(30).collect::<String>()
            ));
        };
        let spaces = after.len() - after.trim_start_matches(' ').len();
        if spaces != pad {
            return Some(format!("{div} is followed by {spaces} spaces, expected pad = {pad}"));
        }
        rest = &after[spaces..];
    }
    (rest != SUFFIX).then(|| {
        format!(
            "after the last div the body is {:?}, expected {SUFFIX:?}",
            rest.chars().take(40).collect::<String>()
        )
    })
}

/// The events must be ids `first..=last`, each with data equal to its id.
pub(crate) fn events_problem(got: &Fetched, first: u32, last: u32) -> Option<String> {
    let events: Vec<_> = got.events.iter().filter(|m| m.data.is_some()).collect();
    for (i, k) in (first..=last).enumerate() {
        let want = k.to_string();
        let Some(event) = events.get(i) else {
            return Some(format!("{} events, expected ids {first}..={last}", events.len()));
        };
        if event.id.as_deref() != Some(&want) || event.data.as_deref() != Some(&want) {
            return Some(format!(
                "event {} has id {:?} and data {:?}, expected id: {want} and data: {want}",
                i + 1,
                event.id,
                event.data
            ));
        }
    }
    (events.len() > (last + 1 - first) as usize)
        .then(|| format!("{} events, expected ids {first}..={last} and nothing more", events.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_problems_are_named() {
        let good = "<!doctype html><html><body><div>1</div>  <div>2</div>  </body></html>";
        assert_eq!(html_problem(good.as_bytes(), 2, 2), None);
        assert!(
            html_problem(good.as_bytes(), 2, 1024)
                .unwrap()
                .contains("followed by 2 spaces, expected pad = 1024")
        );
        assert!(html_problem(good.as_bytes(), 3, 2).unwrap().contains("<div>3</div>"));
    }
}
