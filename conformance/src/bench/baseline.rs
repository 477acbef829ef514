//! `bench --baseline FILE`: this run's figures against those of an earlier run (its bench.json),
//! scenario by scenario, so that a change that costs memory or CPU is seen before it lands.
//!
//! A framework's figures are compared as ratios to the floor measured in the same run, which
//! holds across machines; the floor's own figures as they are (on another machine they say
//! that the machine differs). A figure regressed when it is worse than the baseline's by more
//! than the spread measured between runs of the same build ([`COMPARED`]).

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use super::{
    FLOOR,
    summary::{Figure, table},
};

/// Which way a figure gets worse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Worse {
    Higher,
    Lower,
}

/// The figures compared, and how far each may move before it counts: the largest spread
/// between the three runs of one build measured on 2026-12-02 (docs/src/bench, every server
/// and transport), rounded up. Memory moved by at most 2.3 %, a fast stream's lines/s by 29 %
/// and its CPU by 32 %, first-line p99 by up to 140 % (it is a 1 s SYN retry or not).
pub const COMPARED: [(&str, &str, Worse, f64); 4] = [
    ("slow streams", "memory per stream", Worse::Higher, 0.03),
    ("slow streams", "first line p99", Worse::Higher, 1.5),
    ("fast streams", "lines/s", Worse::Lower, 0.30),
    ("fast streams", "CPU per line", Worse::Higher, 0.35),
];
/// A first-line p99 under this is not a regression, whatever its ratio (ms).
const FIRST_LINE_NOISE_MS: f64 = 20.0;

/// The parts of a bench.json that are compared.
#[derive(Debug, Deserialize)]
pub struct Baseline {
    pub date: String,
    options: BaselineOptions,
    figures: Vec<BaselineFigure>,
}

#[derive(Debug, Deserialize)]
struct BaselineOptions {
    fast_lines: u32,
}

#[derive(Debug, Deserialize)]
struct BaselineFigure {
    server: String,
    scenario: String,
    metric: String,
    value: f64,
    ratio_to_floor: Option<f64>,
}

impl Baseline {
    /// Reads a bench.json written by `bench`; says what is wrong with any other file.
    pub fn read(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("--baseline {}: cannot read it: {e}", path.display()))?;
        let baseline: Self = serde_json::from_str(&text).map_err(|e| {
            format!(
                "--baseline {}: not a bench.json written by `conformance bench` ({e})",
                path.display()
            )
        })?;
        if baseline.figures.is_empty() {
            return Err(format!("--baseline {}: it has no figures", path.display()));
        }
        Ok(baseline)
    }
}

/// This run against an earlier one.
#[derive(Debug, Serialize)]
pub struct BaselineComparison {
    pub path: PathBuf,
    pub date: String,
    pub figures: Vec<Comparison>,
}

impl BaselineComparison {
    pub fn regressed(&self) -> bool {
        self.figures.iter().any(|c| c.regressed)
    }
}

/// One figure of this run against the baseline's.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub server: String,
    pub scenario: String,
    pub metric: String,
    /// "× floor" for a ratio to the floor, else the unit.
    pub basis: String,
    pub baseline: f64,
    pub now: f64,
    /// `now / baseline - 1`.
    pub change: f64,
    pub tolerance: f64,
    pub regressed: bool,
}

/// (value, ratio to the floor) of a figure, with CPU per line made from a fast scenario's
/// server CPU and its lines.
fn comparable(
    metric: &str, scenario: &str, value: f64, ratio: Option<f64>, fast_lines: u32,
) -> Option<(&'static str, f64, Option<f64>)> {
    let (_, name, ..) = COMPARED.iter().find(|(kind, name, ..)| {
        let cpu = *name == "CPU per line" && metric == "server CPU";
        scenario.contains(kind) && (*name == metric || cpu)
    })?;
    match *name {
        "CPU per line" => {
            let streams: f64 = scenario.split(' ').next()?.parse().ok()?;
            Some((name, value * 1e3 / (f64::from(fast_lines) * streams), ratio))
        }
        _ => Some((name, value, ratio)),
    }
}

/// Every figure that both runs have, compared; `fast_lines` is this run's lines per fast stream.
pub fn compare(figures: &[Figure], fast_lines: u32, baseline: &Baseline) -> Vec<Comparison> {
    let mut out = Vec::new();
    for f in figures {
        let Some((metric, value, ratio)) =
            comparable(f.metric, &f.scenario, f.value, f.ratio_to_floor, fast_lines)
        else {
            continue;
        };
        let old = baseline
            .figures
            .iter()
            .find(|b| b.server == f.server && b.scenario == f.scenario && b.metric == f.metric);
        let Some(old) = old else { continue };
        let Some((_, old_value, old_ratio)) = comparable(
            &old.metric,
            &old.scenario,
            old.value,
            old.ratio_to_floor,
            baseline.options.fast_lines,
        ) else {
            continue;
        };
        let (&(_, _, worse, tolerance), floor) =
            (COMPARED.iter().find(|c| c.1 == metric).expect("comparable"), f.server == FLOOR);
        let (basis, then, now) = match (old_ratio, ratio) {
            (Some(then), Some(now)) if !floor => ("× floor".to_owned(), then, now),
            _ if floor => (unit(metric).to_owned(), old_value, value),
            // A framework without a floor to compare with in one of the runs.
            _ => continue,
        };
        if then <= 0.0 || !then.is_finite() || !now.is_finite() {
            continue;
        }
        let change = now / then - 1.0;
        let beyond = match worse {
            Worse::Higher => change > tolerance,
            Worse::Lower => change < -tolerance,
        };
        let noise = metric == "first line p99" && f.value < FIRST_LINE_NOISE_MS;
        out.push(Comparison {
            server: f.server.clone(),
            scenario: f.scenario.clone(),
            metric: metric.to_owned(),
            basis,
            baseline: then,
            now,
            change,
            tolerance,
            regressed: beyond && !noise,
        });
    }
    out
}

fn unit(metric: &str) -> &'static str {
    match metric {
        "memory per stream" => "KiB",
        "first line p99" => "ms",
        "lines/s" => "lines/s",
        _ => "µs",
    }
}

/// The comparison as a table, after a line that says whether anything got worse.
pub fn markdown(comparison: &BaselineComparison) -> String {
    let mut out = String::new();
    let comparisons = &comparison.figures;
    let regressed: Vec<&Comparison> = comparisons.iter().filter(|c| c.regressed).collect();
    let _ = writeln!(
        out,
        "**Against the baseline** {} (run {}): {} figures compared, {}\n",
        comparison.path.display(),
        comparison.date,
        comparisons.len(),
        match regressed.len() {
            0 => "none worse beyond the run-to-run spread".to_owned(),
            n => format!("{n} worse beyond the run-to-run spread"),
        }
    );
    let header = ["server", "scenario", "figure", "baseline", "now", "change", "spread", ""]
        .map(String::from);
    let rows: Vec<Vec<String>> = comparisons
        .iter()
        .map(|c| {
            let figure = |v: f64| match c.basis.as_str() {
                "× floor" => format!("{v:.2}× floor"),
                "lines/s" => format!("{:.0} k lines/s", v / 1e3),
                unit => format!("{v:.2} {unit}"),
            };
            vec![
                c.server.clone(),
                c.scenario.clone(),
                c.metric.clone(),
                figure(c.baseline),
                figure(c.now),
                format!("{:+.1} %", c.change * 100.0),
                format!("±{:.0} %", c.tolerance * 100.0),
                if c.regressed { "WORSE".into() } else { String::new() },
            ]
        })
        .collect();
    table(&mut out, &header, &rows);
    out
}

#[cfg(test)]
mod tests {
    use super::{Baseline, Figure, compare};

    fn figure(
        server: &str, scenario: &str, metric: &'static str, value: f64, ratio: f64,
    ) -> Figure {
        Figure {
            server: server.into(),
            scenario: scenario.into(),
            metric,
            unit: "",
            value,
            ratio_to_floor: (server != "floor").then_some(ratio),
        }
    }

    /// A bench.json with the same figures as `figures`.
    fn baseline(figures: &[Figure], fast_lines: u32) -> Baseline {
        let json = serde_json::json!({
            "date": "then",
            "options": { "fast_lines": fast_lines },
            "figures": figures,
        });
        serde_json::from_value(json).expect("a baseline")
    }

    /// Each compared figure regresses beyond its spread and not within it; frameworks are
    /// compared by their ratio to the floor, the floor by its value; CPU per line allows for
    /// a different number of lines.
    #[test]
    fn regressions_beyond_the_spread_are_named() {
        let slow = "10000 slow streams";
        let then = [
            figure("floor", slow, "memory per stream", 11.1, 1.0),
            figure("axum", slow, "memory per stream", 11.8, 1.06),
            figure("warp", slow, "memory per stream", 12.1, 1.09),
            figure("axum", slow, "first line p99", 50.0, 1.0),
            figure("warp", slow, "first line p99", 10.0, 1.0),
            figure("axum", "1 fast streams", "lines/s", 1e6, 1.0),
            figure("axum", "1 fast streams", "server CPU", 1000.0, 1.0),
            figure("floor", "1 fast streams", "server CPU", 1000.0, 1.0),
        ];
        let now = [
            // The floor moved by 6 %: worse beyond 3 %.
            figure("floor", slow, "memory per stream", 11.8, 1.0),
            // 1.06 → 1.60× is the regression of 2026-12; warp's 2 % is within the spread.
            figure("axum", slow, "memory per stream", 18.9, 1.60),
            figure("warp", slow, "memory per stream", 12.3, 1.11),
            // 2.6× the first-line p99, and 3× one that stays under 20 ms (noise).
            figure("axum", slow, "first line p99", 130.0, 2.6),
            figure("warp", slow, "first line p99", 15.0, 3.0),
            figure("axum", "1 fast streams", "lines/s", 6e5, 0.6),
            // The same CPU ratio, and per line the floor spent twice as much (half the lines).
            figure("axum", "1 fast streams", "server CPU", 1000.0, 1.0),
            figure("floor", "1 fast streams", "server CPU", 1000.0, 1.0),
        ];
        let compared = compare(&now, 500_000, &baseline(&then, 1_000_000));
        let verdicts: Vec<(&str, &str, bool)> =
            compared.iter().map(|c| (c.server.as_str(), c.metric.as_str(), c.regressed)).collect();
        assert_eq!(
            verdicts,
            [
                ("floor", "memory per stream", true),
                ("axum", "memory per stream", true),
                ("warp", "memory per stream", false),
                ("axum", "first line p99", true),
                ("warp", "first line p99", false),
                ("axum", "lines/s", true),
                ("axum", "CPU per line", false),
                ("floor", "CPU per line", true),
            ]
        );
        assert_eq!(compared[1].basis, "× floor");
        assert_eq!(compared[0].basis, "KiB");
    }

    /// A file that is not a bench.json is refused with what it is not.
    #[test]
    fn other_files_are_refused() {
        let dir = std::env::temp_dir().join(format!("baseline-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (empty, other) = (dir.join("empty.json"), dir.join("other.json"));
        std::fs::write(&empty, r#"{"date": "d", "options": {"fast_lines": 1}, "figures": []}"#)
            .unwrap();
        std::fs::write(&other, r#"{"name": "not a bench"}"#).unwrap();
        let refused = |p| Baseline::read(p).expect_err("refused");
        assert!(refused(&empty).contains("has no figures"));
        assert!(refused(&other).contains("not a bench.json"));
        assert!(refused(&dir.join("missing.json")).contains("cannot read it"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
