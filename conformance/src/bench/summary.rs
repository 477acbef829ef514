//! A run's figures, each beside the floor's, the targets, and the markdown summary.

use std::fmt::Write as _;

use serde::Serialize;

use super::{Concurrency, FLOOR, Handshakes, Results, ServerResults, Throughput};
use crate::harness::transports::Serving;

/// How a scenario's connections were made, as its name says it; nothing for plain HTTP/1.1.
pub fn transport_label(transport: Serving, connections: u32) -> String {
    match transport {
        Serving::Http1 => String::new(),
        Serving::Https => "HTTP/1.1 over TLS".into(),
        Serving::H2 if connections > 1 => format!("h2 on {connections} TLS connections"),
        Serving::H2 | Serving::H2c => "h2 over TLS".into(),
    }
}

/// `base`, with the transport after a comma where it is not plain HTTP/1.1.
fn named(base: String, transport: Serving, connections: u32) -> String {
    match transport_label(transport, connections) {
        label if label.is_empty() => base,
        label => format!("{base}, {label}"),
    }
}

/// The distinct values of `key` over `items`, in order of first appearance.
fn groups<T, K: PartialEq + Copy>(items: &[T], key: impl Fn(&T) -> K) -> Vec<K> {
    let mut keys = Vec::new();
    for item in items {
        if !keys.contains(&key(item)) {
            keys.push(key(item));
        }
    }
    keys
}

/// One measured figure and its ratio to the floor's in the same scenario.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    pub server: String,
    pub scenario: String,
    pub metric: &'static str,
    pub unit: &'static str,
    pub value: f64,
    /// `value / floor`, where both are positive.
    pub ratio_to_floor: Option<f64>,
}

/// The median, or `None` for no values.
fn median(mut values: Vec<f64>) -> Option<f64> {
    values.retain(|v| v.is_finite());
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied()
}

/// The figures of one server, in table order: (scenario, metric, unit, median over the runs).
fn own_figures(server: &ServerResults) -> Vec<(String, &'static str, &'static str, f64)> {
    let mut figures = Vec::new();
    for (transport, streams, connections) in
        groups(&server.concurrency, |c| (c.transport, c.streams, c.connections))
    {
        let runs: Vec<&Concurrency> = server
            .concurrency
            .iter()
            .filter(|c| c.streams == streams && c.transport == transport)
            .collect();
        let connections = if transport == Serving::H2 { connections } else { 1 };
        let scenario = named(format!("{streams} slow streams"), transport, connections);
        // Completion counts from the worst run, not the median.
        if let Some(worst) = runs.iter().map(|c| c.completed).min() {
            figures.push((scenario.clone(), "completed", "streams", worst.into()));
            figures.push((scenario.clone(), "errors", "streams", (streams - worst).into()));
        }
        let mut add = |metric, unit, value: &dyn Fn(&Concurrency) -> Option<f64>| {
            if let Some(m) = median(runs.iter().filter_map(|c| value(c)).collect()) {
                figures.push((scenario.clone(), metric, unit, m));
            }
        };
        add("first line p50", "ms", &|c| c.first_line_ms.map(|q| q.p50));
        add("first line p99", "ms", &|c| c.first_line_ms.map(|q| q.p99));
        add("lateness p50", "ms", &|c| c.lateness_ms.map(|q| q.p50));
        add("lateness p99", "ms", &|c| c.lateness_ms.map(|q| q.p99));
        add("lateness max", "ms", &|c| c.lateness_ms.map(|q| q.max));
        add("memory per stream", "KiB", &|c| c.kib_per_stream);
        add("server CPU", "ms", &|c| Some(c.server_cpu_ms));
    }
    for (transport, streams) in groups(&server.throughput, |t| (t.transport, t.streams)) {
        let runs: Vec<&Throughput> = server
            .throughput
            .iter()
            .filter(|t| t.streams == streams && t.transport == transport)
            .collect();
        let scenario = named(format!("{streams} fast streams"), transport, 1);
        let mut add = |metric, unit, value: &dyn Fn(&Throughput) -> f64| {
            if let Some(m) = median(runs.iter().map(|t| value(t)).collect()) {
                figures.push((scenario.clone(), metric, unit, m));
            }
        };
        add("lines/s", "lines/s", &|t| t.lines_per_s);
        add("MB/s", "MB/s", &|t| t.mb_per_s);
        add("server CPU", "ms", &|t| t.server_cpu_ms);
        let worst = runs.iter().map(|t| t.completed).min().unwrap_or(0);
        figures.push((scenario.clone(), "errors", "streams", (streams - worst).into()));
    }
    for transport in groups(&server.handshakes, |h| h.transport) {
        let runs: Vec<&Handshakes> =
            server.handshakes.iter().filter(|h| h.transport == transport).collect();
        let n = runs.first().map_or(0, |h| h.connections);
        let scenario = named(format!("{n} new connections"), transport, 1);
        let mut add = |metric, unit, value: &dyn Fn(&Handshakes) -> Option<f64>| {
            if let Some(m) = median(runs.iter().filter_map(|h| value(h)).collect()) {
                figures.push((scenario.clone(), metric, unit, m));
            }
        };
        add("connections/s", "conn/s", &|h| Some(h.per_s));
        add("answer p50", "ms", &|h| h.answer_ms.map(|q| q.p50));
        add("answer p99", "ms", &|h| h.answer_ms.map(|q| q.p99));
        add("memory per connection", "KiB", &|h| h.kib_per_connection);
        add("server CPU per connection", "µs", &|h| {
            (h.completed > 0).then(|| h.server_cpu_ms * 1e3 / f64::from(h.completed))
        });
        let worst = runs.iter().map(|h| h.completed).min().unwrap_or(0);
        figures.push((scenario.clone(), "errors", "connections", (n - worst).into()));
    }
    if let Some(m) = median(server.startup_ms.clone()) {
        figures.push(("start-up".into(), "spawn to listening", "ms", m));
    }
    figures
}

pub fn figures(servers: &[ServerResults]) -> Vec<Figure> {
    let floor = servers.iter().find(|s| s.name == FLOOR).map(own_figures);
    let floor_value = |scenario: &str, metric: &str| {
        floor.iter().flatten().find(|(s, m, ..)| s == scenario && *m == metric).map(|f| f.3)
    };
    servers
        .iter()
        .flat_map(|server| {
            own_figures(server).into_iter().map(|(scenario, metric, unit, value)| Figure {
                ratio_to_floor: floor_value(&scenario, metric)
                    .filter(|f| *f > 0.0 && value >= 0.0 && server.name != FLOOR)
                    .map(|f| value / f),
                server: server.name.clone(),
                scenario,
                metric,
                unit,
                value,
            })
        })
        .collect()
}

/// 1234567 → "1.23 M".
fn si(value: f64) -> String {
    match value.abs() {
        v if v >= 1e6 => format!("{:.2} M", value / 1e6),
        v if v >= 1e4 => format!("{:.1} k", value / 1e3),
        _ => format!("{value:.0}"),
    }
}

pub(super) fn number(value: f64, unit: &str) -> String {
    match unit {
        "lines/s" | "conn/s" => si(value),
        "streams" | "connections" => format!("{value:.0}"),
        _ if value.abs() >= 100.0 => format!("{value:.0}"),
        _ => format!("{value:.1}"),
    }
}

/// A markdown table with padded columns, readable on a terminal too.
pub(super) fn table(out: &mut String, header: &[String], rows: &[Vec<String>]) {
    let width = |i: usize| {
        rows.iter()
            .map(|r| r[i].chars().count())
            .chain([header[i].chars().count()])
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..header.len()).map(width).collect();
    let line = |out: &mut String, cells: &[String]| {
        for (cell, w) in cells.iter().zip(&widths) {
            let pad = w - cell.chars().count();
            let _ = write!(out, "| {cell}{} ", " ".repeat(pad));
        }
        out.push_str("|\n");
    };
    line(out, header);
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    line(out, &rule);
    for row in rows {
        line(out, row);
    }
    out.push('\n');
}

/// The servers' soft open-file limits: one number if they all had it.
fn servers_open_files(servers: &[ServerResults]) -> String {
    let limit = |s: &ServerResults| s.open_files.map_or("unknown".into(), |l| l.soft.to_string());
    let limits: Vec<String> = servers.iter().map(limit).collect();
    match limits.first() {
        Some(first) if limits.iter().all(|l| l == first) => format!("servers {first}"),
        _ => {
            let each = servers.iter().zip(&limits).map(|(s, l)| format!("{} {l}", s.name));
            format!("servers: {}", each.collect::<Vec<_>>().join(", "))
        }
    }
}

/// One scenario's table: a row per server, a column per metric, each figure with its ratio to
/// the floor.
fn scenario_table(out: &mut String, results: &Results, scenario: &str) {
    let figures: Vec<_> = results.figures.iter().filter(|f| f.scenario == scenario).collect();
    let mut metrics: Vec<(&str, &str)> = Vec::new();
    for f in &figures {
        if !metrics.contains(&(f.metric, f.unit)) {
            metrics.push((f.metric, f.unit));
        }
    }
    let header: Vec<String> = std::iter::once("server".to_owned())
        .chain(metrics.iter().map(|(m, u)| match *u {
            "streams" | "connections" | "lines/s" | "conn/s" | "MB/s" => (*m).to_owned(),
            _ => format!("{m} ({u})"),
        }))
        .collect();
    let cell = |server: &str, metric: &str| {
        figures.iter().find(|f| f.server == server && f.metric == metric).map_or(
            "—".into(),
            |f| match f.ratio_to_floor {
                Some(r) if !matches!(f.unit, "streams" | "connections") => {
                    format!("{} ({r:.2}×)", number(f.value, f.unit))
                }
                _ => number(f.value, f.unit),
            },
        )
    };
    let rows: Vec<Vec<String>> = results
        .servers
        .iter()
        .map(|server| {
            std::iter::once(server.name.clone())
                .chain(metrics.iter().map(|(metric, _)| cell(&server.name, metric)))
                .collect()
        })
        .collect();
    table(out, &header, &rows);
}

/// The summary: one table per scenario (each figure with its ratio to the floor), start-up,
/// and the targets.
pub fn markdown(results: &Results) -> String {
    let mut out = String::new();
    let m = &results.machine;
    let _ = writeln!(
        out,
        "Run {} on {} cores ({}), {} GiB, Linux {}; client build: {}.\n\
         Client and servers share the machine; one server runs at a time, started afresh for \
         each scenario, with request logging off.\n\
         Open-file limit: client {}; {}. Connections from {}.\n\n`{}`\n",
        results.date,
        m.cores,
        m.cpu,
        m.memory_gib,
        m.kernel,
        results.client_build,
        results.fd_limit,
        servers_open_files(&results.servers),
        results.source_addresses.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", "),
        results.command
    );
    let mut scenarios: Vec<&str> = Vec::new();
    for f in &results.figures {
        if !scenarios.contains(&f.scenario.as_str()) {
            scenarios.push(&f.scenario);
        }
    }
    for scenario in scenarios {
        let _ = writeln!(out, "**{scenario}**\n");
        scenario_table(&mut out, results, scenario);
    }
    if !results.targets.is_empty() {
        let _ = writeln!(out, "**Targets** (medians of {} runs)\n", results.options.runs);
        let rows: Vec<Vec<String>> = results
            .targets
            .iter()
            .map(|t| {
                vec![
                    t.server.clone(),
                    t.target.clone(),
                    t.measured.clone(),
                    if t.met { "met" } else { "MISSED" }.into(),
                ]
            })
            .collect();
        let header = ["server", "target", "measured", ""].map(String::from);
        table(&mut out, &header, &rows);
    }
    let storms: Vec<(&str, &super::storm::Storm)> =
        results.servers.iter().filter_map(|s| Some((s.name.as_str(), s.storm.as_ref()?))).collect();
    if !storms.is_empty() {
        out.push_str(&super::storm::markdown(&storms));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::Quantiles;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<f64> = (1..=1000).map(f64::from).collect();
        let q = Quantiles::of(&samples).unwrap();
        assert_eq!((q.min, q.p50, q.p99, q.p999, q.max), (1.0, 500.0, 990.0, 999.0, 1000.0));
        let one = Quantiles::of(&[f64::NAN, 7.0]).unwrap();
        assert_eq!((one.p50, one.p99, one.max), (7.0, 7.0, 7.0));
        assert!(Quantiles::of(&[]).is_none());
    }
}
