//! SVG charts of a benchmark run (plotters).
//!
//! [`lateness_chart`] plots, per server, how late the streamed lines arrived as a percentile
//! curve on a "nines" scale (HdrHistogram style), so the tail is as visible as the median.
//! [`timeline_chart`] follows one stream per server line by line: arrival time against the due
//! time on top, and each line's lateness below.

use std::fmt::Display;
use std::path::Path;

use plotters::{coord::Shift, prelude::*};

const FONT: &str = "sans-serif";

/// Series colours, in series order (Tableau 10 without its grey, which marks the due line).
const PALETTE: [RGBColor; 9] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];
const DUE_GREY: RGBColor = RGBColor(120, 120, 120);

/// Upper bound on the points plotted per percentile curve.
const MAX_POINTS: usize = 2000;

/// Above this many lines the timeline draws lines only: markers would merge into a smear.
const MAX_MARKED_LINES: i64 = 200;

const LATENESS_DESC: &str = "lateness (ms): arrival − due";

fn colour(index: usize) -> RGBColor {
    PALETTE[index % PALETTE.len()]
}

fn draw_error<E: Display>(path: &Path) -> impl Fn(E) -> String + '_ {
    move |e| format!("cannot draw {}: {e}", path.display())
}

/// Draws the lateness percentile plot of `series` (server name, lateness samples in ms) into
/// the SVG file `path`. Non-finite samples and empty series are left out.
pub fn lateness_chart(path: &Path, title: &str, series: &[(&str, &[f64])]) -> Result<(), String> {
    let err = draw_error(path);
    let curves: Vec<Curve> = series
        .iter()
        .enumerate()
        .filter_map(|(index, (name, samples))| {
            let mut sorted: Vec<f64> = samples.iter().copied().filter(|v| v.is_finite()).collect();
            sorted.sort_by(f64::total_cmp);
            let points = percentile_points(&sorted);
            (!points.is_empty()).then_some(Curve { index, name, points })
        })
        .collect();

    let x_last = curves.iter().filter_map(|c| c.points.last()).map(|&(x, _)| x).fold(0.0, f64::max);
    // Always show up to 99%, and leave room right of the max marker.
    let x_hi = (x_last + 0.15).max(2.0);
    let (y_lo, y_hi) = value_range(curves.iter().flat_map(|c| c.points.iter().map(|&(_, y)| y)));

    let root = SVGBackend::new(path, (900, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(&err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 22))
        .margin(15)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_hi, y_lo..y_hi)
        .map_err(&err)?;
    chart
        .configure_mesh()
        // One key point per whole nine: the range starts at 0, so they land on integers.
        .x_labels(x_hi.floor() as usize + 1)
        .x_label_formatter(&|x| nines_label(*x))
        .y_labels(8)
        .x_desc("percentile of lines")
        .y_desc(LATENESS_DESC)
        .axis_desc_style((FONT, 16))
        .label_style((FONT, 14))
        .draw()
        .map_err(&err)?;

    if y_lo < 0.0 {
        chart
            .draw_series(LineSeries::new([(0.0, 0.0), (x_hi, 0.0)], BLACK.mix(0.6)))
            .map_err(&err)?;
    }
    for curve in &curves {
        let c = colour(curve.index);
        let Some(&(max_x, max_y)) = curve.points.last() else {
            continue;
        };
        let name = curve.name;
        chart
            .draw_series(LineSeries::new(curve.points.iter().copied(), c.stroke_width(2)))
            .map_err(&err)?
            .label(format!("{name} (max {max_y:.1} ms)"))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], c.stroke_width(2)));
        chart.draw_series([Circle::new((max_x, max_y), 4, c.filled())]).map_err(&err)?;
    }
    if !curves.is_empty() {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .label_font((FONT, 14))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .draw()
            .map_err(&err)?;
    }
    root.present().map_err(&err)
}

/// Draws one stream per server (name, arrival times in ms since the request, of lines 1..=N)
/// into the SVG file `path`: arrivals on top, with the due times of the first series that has
/// any as a grey dashed line, and lateness per line below.
/// A line whose arrival is not finite is left out. Line k is due (k−1)·interval after the
/// stream's schedule began, as its most punctual line shows it.
pub fn timeline_chart(
    path: &Path, title: &str, interval_ms: f64, series: &[(&str, &[f64])],
) -> Result<(), String> {
    let err = draw_error(path);
    let interval_ms = if interval_ms.is_finite() { interval_ms } else { 0.0 };
    let streams: Vec<Stream> = series
        .iter()
        .enumerate()
        .filter_map(|(index, (name, arrivals))| Stream::new(index, name, arrivals, interval_ms))
        .collect();
    let lines = series.iter().map(|(_, a)| a.len()).max().unwrap_or(0);
    let last_line = i64::try_from(lines).unwrap_or(i64::MAX).max(2);

    // Due times of the first stream, in seconds. They are a straight line: its two ends suffice.
    let due = streams.first().map(|s| {
        let (first_line, first_ms) = s.first;
        let due_s = |line: i64| (first_ms + (line - first_line) as f64 * interval_ms) / 1000.0;
        [(first_line, due_s(first_line)), (last_line, due_s(last_line))]
    });

    let (top_lo, top_hi) = value_range(
        streams
            .iter()
            .flat_map(|s| s.arrivals.iter().map(|&(_, y)| y))
            .chain(due.iter().flatten().map(|&(_, y)| y)),
    );
    let (bottom_lo, bottom_hi) =
        value_range(streams.iter().flat_map(|s| s.lateness.iter().map(|&(_, y)| y)));
    let marker = if last_line <= MAX_MARKED_LINES { 2 } else { 0 };

    let root = SVGBackend::new(path, (900, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(&err)?;
    let root = root.margin(8, 0, 0, 0).titled(title, (FONT, 22)).map_err(&err)?;
    let height = root.dim_in_pixel().1;
    let (top, bottom) = root.split_vertically(height / 2);
    let lines = Lines { last: last_line, marker };
    arrivals_panel(&top, path, &streams, due, (top_lo, top_hi), lines)?;
    lateness_panel(&bottom, path, &streams, (bottom_lo, bottom_hi), lines)?;
    root.present().map_err(&err)
}

/// The x axis of a timeline: its last line, and the marker size (none when lines are many).
#[derive(Clone, Copy)]
struct Lines {
    last: i64,
    marker: u32,
}

/// The timeline's top panel: each stream's arrivals, and the due times.
fn arrivals_panel(
    area: &DrawingArea<SVGBackend, Shift>, path: &Path, streams: &[Stream],
    due: Option<[(i64, f64); 2]>, (lo, hi): (f64, f64), lines: Lines,
) -> Result<(), String> {
    let err = draw_error(path);
    let mut chart = ChartBuilder::on(area)
        .margin(15)
        .margin_top(5)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(1..lines.last, lo..hi)
        .map_err(&err)?;
    chart
        .configure_mesh()
        .x_desc("line number")
        .y_desc("seconds since the request")
        .axis_desc_style((FONT, 16))
        .label_style((FONT, 14))
        .draw()
        .map_err(&err)?;
    if let Some(due) = due {
        chart
            .draw_series(DashedLineSeries::new(due, 6, 4, DUE_GREY.stroke_width(1)))
            .map_err(&err)?
            .label("due")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], DUE_GREY.stroke_width(1)));
    }
    for s in streams {
        let c = colour(s.index);
        chart
            .draw_series(
                LineSeries::new(s.arrivals.iter().copied(), c.stroke_width(1))
                    .point_size(lines.marker),
            )
            .map_err(&err)?
            .label(s.name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], c.stroke_width(2)));
    }
    if !streams.is_empty() {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .label_font((FONT, 14))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .draw()
            .map_err(&err)?;
    }
    Ok(())
}

/// The timeline's bottom panel: each stream's lateness per line, around a zero line.
fn lateness_panel(
    area: &DrawingArea<SVGBackend, Shift>, path: &Path, streams: &[Stream], (lo, hi): (f64, f64),
    lines: Lines,
) -> Result<(), String> {
    let err = draw_error(path);
    let mut chart = ChartBuilder::on(area)
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(1..lines.last, lo..hi)
        .map_err(&err)?;
    chart
        .configure_mesh()
        .x_desc("line number")
        .y_desc(LATENESS_DESC)
        .axis_desc_style((FONT, 16))
        .label_style((FONT, 14))
        .draw()
        .map_err(&err)?;
    chart
        .draw_series(LineSeries::new([(1, 0.0), (lines.last, 0.0)], BLACK.mix(0.6)))
        .map_err(&err)?;
    for s in streams {
        chart
            .draw_series(
                LineSeries::new(s.lateness.iter().copied(), colour(s.index).stroke_width(1))
                    .point_size(lines.marker),
            )
            .map_err(&err)?;
    }
    Ok(())
}

/// One server's percentile curve, ready to plot.
struct Curve<'a> {
    /// Position in the caller's series, which picks the colour.
    index: usize,
    name: &'a str,
    /// (nines, lateness in ms), see [`percentile_points`].
    points: Vec<(f64, f64)>,
}

/// One server's stream, ready to plot.
struct Stream<'a> {
    index: usize,
    name: &'a str,
    /// Where its schedule starts: (line 1, the time it is due in ms since the request).
    first: (i64, f64),
    /// (line number, arrival in seconds).
    arrivals: Vec<(i64, f64)>,
    /// (line number, lateness in ms), lines 2.. only.
    lateness: Vec<(i64, f64)>,
}

impl<'a> Stream<'a> {
    fn new(index: usize, name: &'a str, arrivals_ms: &[f64], interval_ms: f64) -> Option<Self> {
        let numbered =
            || (1i64..).zip(arrivals_ms.iter().copied()).filter(|(_, ms)| ms.is_finite());
        numbered().next()?;
        // The schedule as the most punctual line shows it (see `Concurrency::lateness_ms`):
        // line k is due (k−1)·interval after this.
        let anchor = numbered()
            .map(|(line, ms)| ms - (line - 1) as f64 * interval_ms)
            .fold(f64::INFINITY, f64::min);
        let first = (1, anchor);
        let (first_line, first_ms) = first;
        Some(Stream {
            index,
            name,
            first,
            arrivals: numbered().map(|(line, ms)| (line, ms / 1000.0)).collect(),
            lateness: numbered()
                .filter(|&(line, _)| line > first_line)
                .map(|(line, ms)| {
                    let due = first_ms + (line - first_line) as f64 * interval_ms;
                    (line, ms - due)
                })
                .filter(|(_, late)| late.is_finite())
                .collect(),
        })
    }
}

/// Points (−log10(1 − p), value) of the percentile curve of `sorted` (ascending, finite), where
/// the i-th of n samples sits at p = i / n: the minimum at 0, the maximum at log10(n).
/// Long inputs are thinned to about [`MAX_POINTS`] on the nines scale, which keeps every point
/// of the tail (each of the last samples is a step of its own there) and always the maximum.
fn percentile_points(sorted: &[f64]) -> Vec<(f64, f64)> {
    let n = sorted.len();
    let x = |i: usize| (n as f64 / (n - i) as f64).log10();
    if n <= MAX_POINTS {
        return sorted.iter().enumerate().map(|(i, &v)| (x(i), v)).collect();
    }
    // Each bucket keeps the first and last sample that fall into it.
    let buckets = (MAX_POINTS / 2 - 1) as f64;
    let x_max = x(n - 1);
    let bucket = |i: usize| (x(i) / x_max * buckets) as usize;
    (0..n)
        .filter(|&i| {
            i == 0 || i == n - 1 || bucket(i) != bucket(i - 1) || bucket(i) != bucket(i + 1)
        })
        .map(|i| (x(i), sorted[i]))
        .collect()
}

/// Axis range for finite `values`: from min(0, smallest) to a bit above the largest.
fn value_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((0.0f64, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if hi <= lo {
        return (0.0, 1.0);
    }
    let span = hi - lo;
    let range = (if lo < 0.0 { lo - 0.05 * span } else { 0.0 }, hi + 0.05 * span);
    // Only absurd values (near f64::MAX) overflow; plotters cannot lay out an infinite axis.
    if range.0.is_finite() && range.1.is_finite() { range } else { (0.0, 1.0) }
}

/// Tick label of a point on the nines scale: 0 → "0%", 1 → "90%", 2 → "99%", 3 → "99.9%"…
fn nines_label(x: f64) -> String {
    let nines = x.round();
    if (x - nines).abs() > 1e-6 || nines < 0.0 {
        return String::new();
    }
    match nines as usize {
        0 => "0%".to_owned(),
        1 => "90%".to_owned(),
        k => format!("99.{}%", "9".repeat(k - 2)).replace(".%", "%"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::time::{SystemTime, UNIX_EPOCH};

    fn scratch_dir(name: &str) -> PathBuf {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir()
            .join(format!("conformance-charts-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn read_svg(path: &Path) -> String {
        let svg = std::fs::read_to_string(path).unwrap();
        assert!(svg.contains("<svg"), "{} is not an SVG", path.display());
        assert!(svg.trim_end().ends_with("</svg>"), "{} is cut short", path.display());
        svg
    }

    /// A deterministic lateness distribution: mostly under a millisecond, with a long tail.
    fn synthetic_lateness(n: usize, scale: f64) -> Vec<f64> {
        (0..n)
            .map(|i| {
                let u = ((i * 7919) % n) as f64 / n as f64;
                scale * (0.2 + 0.5 * u + 0.02 / (1.0 - u * 0.999))
            })
            .collect()
    }

    #[test]
    fn lateness_chart_draws_every_non_empty_series() {
        let dir = scratch_dir("lateness");
        let path = dir.join("lateness.svg");
        let axum = synthetic_lateness(5000, 1.0);
        let mut actix = synthetic_lateness(300, 2.0);
        actix.push(-1.5);
        actix.push(f64::NAN);
        let empty: Vec<f64> = Vec::new();
        lateness_chart(
            &path,
            "lateness of lines",
            &[("axum", &axum), ("actix", &actix), ("rocket", &empty)],
        )
        .unwrap();
        let svg = read_svg(&path);
        for text in ["axum", "actix", "percentile of lines", LATENESS_DESC, "99.9%"] {
            assert!(svg.contains(text), "{text:?} missing from the chart");
        }
        assert!(!svg.contains("rocket"), "an empty series got a legend entry");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn timeline_chart_draws_every_non_empty_series() {
        let dir = scratch_dir("timeline");
        let path = dir.join("timeline.svg");
        let interval = 100.0;
        let warp: Vec<f64> = (0..50).map(|k| 3.0 + k as f64 * interval + 0.3).collect();
        let mut floor: Vec<f64> =
            (0..50).map(|k| 2.0 + k as f64 * interval + (k % 7) as f64).collect();
        floor[10] = f64::NAN;
        floor[20] -= 1.0; // earlier than due
        let empty: Vec<f64> = Vec::new();
        timeline_chart(
            &path,
            "one stream per server",
            interval,
            &[("warp", &warp), ("floor", &floor), ("rocket", &empty)],
        )
        .unwrap();
        let svg = read_svg(&path);
        for text in
            ["warp", "floor", "due", "line number", "seconds since the request", LATENESS_DESC]
        {
            assert!(svg.contains(text), "{text:?} missing from the chart");
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn charts_of_nothing_are_still_drawn() {
        let dir = scratch_dir("empty");
        let empty: Vec<f64> = Vec::new();
        let nan = [f64::NAN, f64::INFINITY];
        let lateness = dir.join("lateness.svg");
        lateness_chart(&lateness, "nothing", &[("axum", &empty), ("nan", &nan)]).unwrap();
        read_svg(&lateness);
        lateness_chart(&lateness, "no series", &[]).unwrap();
        read_svg(&lateness);
        let timeline = dir.join("timeline.svg");
        timeline_chart(&timeline, "nothing", f64::NAN, &[("axum", &empty), ("nan", &nan)]).unwrap();
        read_svg(&timeline);
        timeline_chart(&timeline, "one line", 100.0, &[("axum", &[5.0])]).unwrap();
        read_svg(&timeline);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn an_unwritable_path_is_an_error() {
        let path = Path::new("/nonexistent-dir/for/charts.svg");
        let e = lateness_chart(path, "t", &[]).unwrap_err();
        assert!(e.starts_with("cannot draw /nonexistent-dir"), "{e}");
        let e = timeline_chart(path, "t", 1.0, &[]).unwrap_err();
        assert!(e.starts_with("cannot draw /nonexistent-dir"), "{e}");
    }

    #[test]
    fn percentile_points_are_bounded_and_keep_the_tail() {
        let sorted: Vec<f64> = (0..100_000).map(f64::from).collect();
        let points = percentile_points(&sorted);
        assert!(points.len() <= MAX_POINTS, "{} points", points.len());
        assert_eq!(points[0], (0.0, 0.0));
        // The last 100 samples (above 99.9%) are all there, the maximum at log10(n).
        let tail: Vec<f64> = points[points.len() - 100..].iter().map(|p| p.1).collect();
        let expected: Vec<f64> = (99_900..100_000).map(f64::from).collect();
        assert_eq!(tail, expected);
        let &(x, _) = points.last().unwrap();
        assert!((x - 5.0).abs() < 1e-9, "max at {x}");
        assert!(points.windows(2).all(|w| w[0].0 < w[1].0));

        let few = percentile_points(&[1.0, 2.0]);
        assert_eq!(few.len(), 2);
        assert!(percentile_points(&[]).is_empty());
    }

    #[test]
    fn value_ranges() {
        assert_eq!(value_range([].into_iter()), (0.0, 1.0));
        assert_eq!(value_range([0.0, 0.0].into_iter()), (0.0, 1.0));
        assert_eq!(value_range([2.0, 10.0].into_iter()), (0.0, 10.5));
        assert_eq!(value_range([-10.0, 10.0].into_iter()), (-11.0, 11.0));
        assert_eq!(value_range([-f64::MAX, f64::MAX].into_iter()), (0.0, 1.0));
    }

    #[test]
    fn nines_labels() {
        let labels: Vec<String> =
            [0.0, 1.0, 2.0, 3.0, 4.0, 2.5].into_iter().map(nines_label).collect();
        assert_eq!(labels, ["0%", "90%", "99%", "99.9%", "99.99%", ""]);
    }
}
