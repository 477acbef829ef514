//! A run's results: a table for people, JSON for machines, and a framework × check matrix.

use std::fmt::Write as _;

use serde::Serialize;

use super::{Check, CheckId, ids};
use crate::outcome::{Level, Outcome};

#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    pub check: &'static str,
    pub concern: &'static str,
    #[serde(flatten)]
    pub outcome: Outcome,
}

impl CheckResult {
    pub fn new(check: &Check, outcome: Outcome) -> Self {
        Self { check: check.name, concern: check.concern, outcome }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub target: String,
    pub results: Vec<CheckResult>,
}

impl Report {
    pub fn new(target: &str, results: Vec<CheckResult>) -> Self {
        Self { target: target.to_owned(), results }
    }

    pub fn failed(&self) -> bool {
        self.results.iter().any(|r| r.outcome.level == Level::Fail)
    }

    pub fn count(&self, level: Level) -> usize {
        self.results.iter().filter(|r| r.outcome.level == level).count()
    }

    /// The width of the longest check name, to align columns.
    fn name_width(&self) -> usize {
        self.results.iter().map(|r| r.check.len()).max().unwrap_or(0)
    }

    /// One row per check, then the evidence of every check that did not pass.
    pub fn table(&self) -> String {
        let width = self.name_width();
        let mut out = format!("conformance of {}\n\n", self.target);
        for r in &self.results {
            let _ = writeln!(out, "{}  {:<width$}  {}", r.outcome.level, r.check, r.outcome.reason);
        }
        out.push_str(&self.details());
        let _ = write!(
            out,
            "\n{} passed, {} warned, {} failed",
            self.count(Level::Pass),
            self.count(Level::Warn),
            self.count(Level::Fail)
        );
        match self.count(Level::NotApplicable) {
            0 => out.push('\n'),
            n => {
                let _ = writeln!(out, ", {n} do not apply over this transport");
            }
        }
        out
    }

    /// The evidence behind every warning and failure.
    pub fn details(&self) -> String {
        let mut out = String::new();
        let noted = |level: Level| !matches!(level, Level::Pass | Level::NotApplicable);
        for r in self.results.iter().filter(|r| noted(r.outcome.level)) {
            let _ = writeln!(out, "\n{} {}: {}", r.outcome.level, r.check, r.outcome.reason);
            for evidence in &r.outcome.evidence {
                let _ = write!(out, "{evidence}");
            }
        }
        out
    }
}

/// Checks down, targets across; the failures' reasons follow.
/// Checks whose pass reasons carry measurements (first-line time, gaps, lateness).
const FIGURES: [CheckId; 7] = [
    ids::classic_defaults,
    ids::streams_without_accept_encoding,
    ids::streams_with_identity,
    ids::streams_with_gzip,
    ids::streams_with_br,
    ids::streams_with_zstd,
    ids::streams_with_deflate,
];

pub fn matrix(reports: &[(String, Report)]) -> String {
    let Some((_, first)) = reports.first() else {
        return String::new();
    };
    let width = first.name_width();
    let columns: Vec<usize> = reports.iter().map(|(name, _)| name.len().max(8)).collect();
    let mut out = format!("{:<width$}", "check");
    for ((name, _), column) in reports.iter().zip(&columns) {
        let _ = write!(out, "  {name:<column$}");
    }
    out.push('\n');
    for (i, r) in first.results.iter().enumerate() {
        let _ = write!(out, "{:<width$}", r.check);
        for ((_, report), column) in reports.iter().zip(&columns) {
            let level = report.results.get(i).map(|r| r.outcome.level.to_string());
            let _ = write!(out, "  {:<column$}", level.unwrap_or_default());
        }
        out.push('\n');
    }
    // The figures of the classic run and of each encoding are worth seeing even when they pass.
    for check in FIGURES {
        for (name, report) in reports {
            if let Some(result) = report.results.iter().find(|r| r.check == check.name()) {
                let _ = write!(out, "\n{check} {name}: {}", result.outcome.reason);
            }
        }
    }
    out.push('\n');
    for (name, report) in reports {
        let details = report.details();
        if !details.is_empty() {
            let _ = write!(out, "\n== {name} ({}){details}", report.target);
        }
    }
    out
}
