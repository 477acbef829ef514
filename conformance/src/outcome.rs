//! What a check returns: a level, a reason a person can act on, and the evidence it saw.

use std::fmt;

use serde::Serialize;

/// Three levels, as in the TechEmpower verifier: a run fails if any check fails. A fourth says
/// the check does not apply over this transport (the chunked and HTTP/1.0 checks over h2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    #[serde(rename = "n/a")]
    NotApplicable,
    Pass,
    Warn,
    Fail,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::NotApplicable => "N/A",
            Level::Pass => "PASS",
            Level::Warn => "WARN",
            Level::Fail => "FAIL",
        })
    }
}

/// One line of a body and when its last byte arrived, in milliseconds after the request was sent.
#[derive(Debug, Clone, Serialize)]
pub struct LineArrival {
    pub text: String,
    pub at_ms: f64,
}

/// What the client saw: enough to judge the verdict without rerunning it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Evidence {
    /// The request, e.g. `GET /stream?count=5&interval_ms=200 HTTP/1.1`.
    pub request: String,
    pub status: Option<u16>,
    pub headers: Vec<(String, String)>,
    /// When the response head arrived (ms after sending).
    pub head_ms: Option<f64>,
    pub lines: Vec<LineArrival>,
    /// When the body ended (ms after sending), if it did.
    pub end_ms: Option<f64>,
    /// Free-form observations (bodies of error responses, per-case results, …).
    pub notes: Vec<String>,
}

impl Evidence {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// The verdict of one check.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub level: Level,
    pub reason: String,
    pub evidence: Vec<Evidence>,
}

impl Outcome {
    pub fn pass(reason: impl Into<String>) -> Self {
        Self::new(Level::Pass, reason)
    }
    pub fn warn(reason: impl Into<String>) -> Self {
        Self::new(Level::Warn, reason)
    }
    pub fn fail(reason: impl Into<String>) -> Self {
        Self::new(Level::Fail, reason)
    }
    /// The check does not apply here; the reason says why.
    pub fn not_applicable(reason: impl Into<String>) -> Self {
        Self::new(Level::NotApplicable, reason)
    }
    fn new(level: Level, reason: impl Into<String>) -> Self {
        Self { level, reason: reason.into(), evidence: Vec::new() }
    }
    pub fn with(mut self, evidence: Evidence) -> Self {
        self.evidence.push(evidence);
        self
    }
    /// Pass with the `pass` reason if `ok`, else fail with the `fail` reason.
    pub fn judge(ok: bool, pass: impl Into<String>, fail: impl Into<String>) -> Self {
        if ok { Self::pass(pass) } else { Self::fail(fail) }
    }
}

impl fmt::Display for Evidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "  > {}", self.request)?;
        if let Some(status) = self.status {
            let at = self.head_ms.map(|ms| format!(" (head after {ms:.0} ms)"));
            writeln!(f, "  < status {status}{}", at.unwrap_or_default())?;
        }
        for (name, value) in &self.headers {
            writeln!(f, "  < {name}: {value}")?;
        }
        for line in &self.lines {
            writeln!(f, "  {:>9.1} ms  {:?}", line.at_ms, line.text)?;
        }
        if let Some(end) = self.end_ms {
            writeln!(f, "  {end:>9.1} ms  (end of body)")?;
        }
        for note in &self.notes {
            writeln!(f, "  note: {note}")?;
        }
        Ok(())
    }
}
