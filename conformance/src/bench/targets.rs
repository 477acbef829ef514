//! The targets, stated once: what each framework's figures must be against the floor's in the
//! same run, and what the floor's own figure must stay at, so that a floor that moves with the
//! code it measures is noticed.

use serde::Serialize;

use super::{
    FLOOR,
    summary::{Figure, number},
};

/// Memory per open stream, at most this ratio to the floor's over the same transport. The first
/// bench issue asked for 1.5×, which let a 1.6× regression pass; issue 20 asks for 1.10×.
pub const MEMORY_PER_STREAM: f64 = 1.10;
/// Lateness of the largest plain HTTP/1.1 slow-stream scenario under [`MANY`] streams, in ms.
pub const LATENESS_P99_MS: f64 = 5.0;
pub const LATENESS_MAX_MS: f64 = 50.0;
/// Lateness p99 of a many-streams scenario, in ms (no max: on 2 cores the client's tasks share
/// the machine with the server).
pub const MANY_LATENESS_P99_MS: f64 = 5.0;
/// Lines per second of the fewest fast streams, at least this ratio to the floor's.
pub const FAST_LINES_PER_S: f64 = 0.8;
/// The floor's memory per plain HTTP/1.1 stream as measured on 2026-12-01 (11.1 KiB at 1 000
/// and at 10 000 streams), before TLS in the same connection task took it to 14.5 KiB and hid
/// a 44 % regression in axum and warp. A run whose floor is not within [`FLOOR_DRIFT`] of it
/// says so: its ratios are not comparable with the committed ones.
pub const FLOOR_KIB_PER_STREAM: f64 = 11.1;
pub const FLOOR_DRIFT: f64 = 0.05;
/// Streams from which a slow-stream scenario is a many-streams one, with targets of its own.
pub const MANY: u32 = 50_000;

/// One target, judged for one server.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub server: String,
    pub target: String,
    pub measured: String,
    pub met: bool,
}

/// `"10000 slow streams, h2 on 100 TLS connections"` → (10000, true if plain HTTP/1.1).
fn slow_scenario(scenario: &str) -> Option<(u32, bool)> {
    let (streams, rest) = scenario.split_once(" slow streams")?;
    Some((streams.parse().ok()?, rest.is_empty()))
}

/// Judged on medians: the floor's plain HTTP/1.1 memory per stream against its pinned figure;
/// for every other server, the largest slow-stream scenario under [`MANY`] streams over each
/// transport (all complete, memory per stream; lateness over plain HTTP/1.1), every one of
/// [`MANY`] or more, and the fewest fast streams.
pub fn targets(figures: &[Figure]) -> Vec<Target> {
    let (judged, fast) = judged(figures);
    let mut servers: Vec<&str> = figures.iter().map(|f| f.server.as_str()).collect();
    servers.dedup();
    let mut targets = floor_targets(figures, &judged);
    for server in servers.into_iter().filter(|s| *s != FLOOR) {
        targets.extend(server_targets(figures, server, &judged, fast));
    }
    targets
}

/// The slow-stream scenarios judged (the largest under [`MANY`], and every one of [`MANY`] or
/// more), and the fast-stream scenario with the fewest streams.
fn judged(figures: &[Figure]) -> (Vec<&str>, Option<&str>) {
    let slow = |f: &Figure| slow_scenario(&f.scenario);
    let largest = figures.iter().filter_map(slow).map(|(n, _)| n).filter(|&n| n < MANY).max();
    let mut judged: Vec<&str> = Vec::new();
    for f in
        figures.iter().filter(|f| slow(f).is_some_and(|(n, _)| Some(n) == largest || n >= MANY))
    {
        if !judged.contains(&f.scenario.as_str()) {
            judged.push(&f.scenario);
        }
    }
    let fast = figures
        .iter()
        .filter_map(|f| {
            let n: u32 = f.scenario.strip_suffix(" fast streams")?.parse().ok()?;
            Some((n, f.scenario.as_str()))
        })
        .min()
        .map(|(_, name)| name);
    (judged, fast)
}

fn find<'a>(
    figures: &'a [Figure], server: &str, scenario: &str, metric: &str,
) -> Option<&'a Figure> {
    figures.iter().find(|f| f.server == server && f.scenario == scenario && f.metric == metric)
}

/// The floor's own target: its plain HTTP/1.1 memory per stream, near its pinned figure.
fn floor_targets(figures: &[Figure], judged: &[&str]) -> Vec<Target> {
    let mut targets = Vec::new();
    for scenario in judged.iter().filter(|s| slow_scenario(s).is_some_and(|(_, plain)| plain)) {
        if let Some(f) = find(figures, FLOOR, scenario, "memory per stream") {
            let drift = f.value / FLOOR_KIB_PER_STREAM - 1.0;
            targets.push(Target {
                server: FLOOR.to_owned(),
                target: format!(
                    "{scenario} memory per stream within {:.0} % of {FLOOR_KIB_PER_STREAM} KiB \
                     (2026-12-01)",
                    FLOOR_DRIFT * 100.0
                ),
                measured: format!("{:.1} KiB ({:+.1} %)", f.value, drift * 100.0),
                met: drift.abs() <= FLOOR_DRIFT,
            });
        }
    }
    targets
}

/// A server's targets: in each judged slow-stream scenario, all complete, lateness (plain
/// HTTP/1.1) and memory per stream against the floor's; a fast stream's lines/s.
fn server_targets(
    figures: &[Figure], server: &str, judged: &[&str], fast: Option<&str>,
) -> Vec<Target> {
    let mut targets = Vec::new();
    let mut judge = |target: String, measured: String, met: bool| {
        targets.push(Target { server: server.to_owned(), target, measured, met });
    };
    // A figure's ratio to the floor's against `limit`: (target, measured, met).
    let relative = |scenario: &str, metric: &str, bound: &str, limit: f64| {
        let f = find(figures, server, scenario, metric)?;
        let ratio = f.ratio_to_floor?;
        Some((
            format!("{scenario} {metric} {bound} {limit:.2}× floor"),
            format!("{} {} = {ratio:.2}× floor", number(f.value, f.unit), f.unit),
            if bound == "≤" { ratio <= limit } else { ratio >= limit },
        ))
    };
    for &scenario in judged {
        let Some((streams, plain)) = slow_scenario(scenario) else { continue };
        if let Some(done) = find(figures, server, scenario, "completed") {
            judge(
                format!("{scenario}: all complete"),
                format!("{} of {streams}", done.value),
                done.value == f64::from(streams),
            );
        }
        let lateness: &[(&str, f64)] = match (plain, streams >= MANY) {
            (true, false) => {
                &[("lateness p99", LATENESS_P99_MS), ("lateness max", LATENESS_MAX_MS)]
            }
            (true, true) => &[("lateness p99", MANY_LATENESS_P99_MS)],
            (false, _) => &[],
        };
        for &(metric, limit) in lateness {
            if let Some(f) = find(figures, server, scenario, metric) {
                let target = format!("{scenario} {metric} ≤ {limit} ms");
                judge(target, format!("{:.1} ms", f.value), f.value <= limit);
            }
        }
        if let Some((target, measured, met)) =
            relative(scenario, "memory per stream", "≤", MEMORY_PER_STREAM)
        {
            judge(target, measured, met);
        }
    }
    if let Some((target, measured, met)) =
        fast.and_then(|fast| relative(fast, "lines/s", "≥", FAST_LINES_PER_S))
    {
        judge(target, measured, met);
    }
    targets
}

#[cfg(test)]
mod tests {
    fn figure(
        server: &str, scenario: &str, metric: &'static str, value: f64, ratio: Option<f64>,
    ) -> super::Figure {
        super::Figure {
            server: server.into(),
            scenario: scenario.into(),
            metric,
            unit: "",
            value,
            ratio_to_floor: ratio,
        }
    }

    /// Each target can be missed: one server misses them all, the other meets them all; over
    /// TLS and h2 only completion and memory are judged.
    #[test]
    fn targets_are_met_or_missed() {
        let mut figures = Vec::new();
        for (server, done, p99, max, memory, rate) in
            [("good", 100.0, 5.0, 50.0, 1.1, 0.8), ("bad", 99.0, 5.1, 50.1, 1.11, 0.7)]
        {
            let tls = "100 slow streams, HTTP/1.1 over TLS";
            figures.extend([
                figure(server, "10 slow streams", "completed", 10.0, None),
                figure(server, "100 slow streams", "completed", done, None),
                figure(server, "100 slow streams", "lateness p99", p99, None),
                figure(server, "100 slow streams", "lateness max", max, None),
                figure(server, "100 slow streams", "memory per stream", 1.0, Some(memory)),
                figure(server, tls, "completed", done, None),
                figure(server, tls, "lateness p99", 100.0, None),
                figure(server, tls, "memory per stream", 1.0, Some(memory)),
                figure(server, "1 fast streams", "lines/s", 1.0, Some(rate)),
                figure(server, "16 fast streams", "lines/s", 1.0, Some(0.1)),
            ]);
        }
        let targets = super::targets(&figures);
        assert_eq!(targets.len(), 14, "{targets:#?}");
        for t in &targets {
            assert_eq!(t.met, t.server == "good", "{t:?}");
        }
        assert_eq!(targets[0].target, "100 slow streams: all complete");
        assert_eq!(targets[3].target, "100 slow streams memory per stream ≤ 1.10× floor");
        assert_eq!(
            targets[5].target,
            "100 slow streams, HTTP/1.1 over TLS memory per stream ≤ 1.10× floor"
        );
        assert_eq!(targets[6].target, "1 fast streams lines/s ≥ 0.80× floor");
    }

    /// 50 000 streams are judged beside the largest scenario under them, on targets of their
    /// own: no lateness max.
    #[test]
    fn many_streams_have_targets_of_their_own() {
        let mut figures = Vec::new();
        for (server, done, p99, memory) in
            [("good", 50_000.0, 5.0, 1.1), ("bad", 49_999.0, 5.1, 1.11)]
        {
            figures.extend([
                figure(server, "10000 slow streams", "completed", 10_000.0, None),
                figure(server, "10000 slow streams", "lateness p99", 1.0, None),
                figure(server, "10000 slow streams", "lateness max", 10.0, None),
                figure(server, "10000 slow streams", "memory per stream", 1.0, Some(1.0)),
                figure(server, "50000 slow streams", "completed", done, None),
                figure(server, "50000 slow streams", "lateness p99", p99, None),
                figure(server, "50000 slow streams", "lateness max", 1000.0, None),
                figure(server, "50000 slow streams", "memory per stream", 1.0, Some(memory)),
            ]);
        }
        let targets = super::targets(&figures);
        let many: Vec<_> = targets.iter().filter(|t| t.server == "bad").skip(4).collect();
        assert_eq!(
            many.iter().map(|t| t.target.as_str()).collect::<Vec<_>>(),
            [
                "50000 slow streams: all complete",
                "50000 slow streams lateness p99 ≤ 5 ms",
                "50000 slow streams memory per stream ≤ 1.10× floor"
            ]
        );
        assert!(many.iter().all(|t| !t.met), "{many:#?}");
        assert!(targets.iter().filter(|t| t.server == "good").all(|t| t.met), "{targets:#?}");
        assert_eq!(targets.len(), 14);
    }

    /// The floor's plain HTTP/1.1 memory per stream is held to its pinned figure: 4.9 % off is
    /// still it, 6 % is not; its TLS figure is not pinned.
    #[test]
    fn the_floor_is_pinned() {
        let pinned = super::FLOOR_KIB_PER_STREAM;
        for (kib, met) in [(pinned, true), (pinned * 1.049, true), (pinned * 1.06, false)] {
            let figures = [
                figure("floor", "10000 slow streams", "memory per stream", kib, None),
                figure(
                    "floor",
                    "10000 slow streams, h2 on 100 TLS connections",
                    "memory per stream",
                    1.6,
                    None,
                ),
            ];
            let targets = super::targets(&figures);
            assert_eq!(targets.len(), 1, "{targets:#?}");
            assert_eq!(targets[0].met, met, "{targets:#?}");
            assert!(targets[0].target.contains("within 5 % of 11.1 KiB"), "{targets:#?}");
        }
    }
}
