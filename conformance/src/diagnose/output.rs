//! What a person sees (items live behind a spinner, then a timeline and the findings) and
//! what a machine reads (`--json`).

use std::{fmt::Write as _, time::Duration};

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use super::{Diagnosis, Plan, RequestResult, verdict::RULE};
use crate::client::{Fetched, Framing};

/// Live output of the main request; silent with `--json`.
pub struct Live {
    text: bool,
    spinner: Option<ProgressBar>,
    shown: usize,
    shown_chunks: usize,
}

impl Live {
    /// `text`: print as it goes (false for `--json`).
    pub fn new(text: bool) -> Self {
        Self { text, spinner: None, shown: 0, shown_chunks: 0 }
    }

    fn say(&self, line: &str) {
        if !self.text {
            return;
        }
        match &self.spinner {
            Some(spinner) => spinner.suspend(|| println!("{line}")),
            None => println!("{line}"),
        }
    }

    pub(super) fn start(&mut self, plan: &Plan) {
        self.say(&format!("{} {}  (as a browser asks)", plan.ask.method, plan.url));
        for note in &plan.notes {
            self.say(&format!("note: {note}"));
        }
        if self.text {
            // Drawn on stderr, and hidden when stderr is not a terminal.
            let spinner = ProgressBar::new_spinner();
            spinner.set_style(
                ProgressStyle::with_template("{spinner} {msg} {elapsed}").expect("a template"),
            );
            spinner.set_message("waiting for the response head");
            spinner.enable_steady_tick(Duration::from_millis(100));
            self.spinner = Some(spinner);
        }
    }

    pub(super) fn stop(&mut self) {
        if let Some(spinner) = self.spinner.take() {
            spinner.finish_and_clear();
        }
    }

    pub(super) fn head(&mut self, got: &Fetched) {
        let mut line = format!(
            "{:>8.0} ms  head: {} {}",
            got.evidence.head_ms.unwrap_or_default(),
            got.status().unwrap_or_default(),
            got.version.as_deref().unwrap_or("?")
        );
        for name in ["content-type", "content-encoding", "content-length", "server"] {
            if let Some(value) = got.header(name) {
                let _ = write!(line, ", {name}: {value}");
            }
        }
        self.say(&line);
        if let Some(spinner) = &self.spinner {
            spinner.set_message("reading the body");
        }
    }

    pub(super) fn progress(&mut self, got: &Fetched, framing: Framing) {
        if framing == Framing::Events {
            for event in &got.events[self.shown.min(got.events.len())..] {
                let mut line = format!("{:>8.0} ms  event", event.at_ms);
                if let Some(id) = &event.id {
                    let _ = write!(line, " id={id}");
                }
                if let Some(name) = &event.event {
                    let _ = write!(line, " event={name}");
                }
                let _ = write!(line, " data={:?}", shorten(event.data.as_deref().unwrap_or("")));
                self.say(&line);
            }
            self.shown = got.events.len();
        } else {
            let lines = got.lines();
            for item in &lines[self.shown.min(lines.len())..] {
                self.say(&format!("{:>8.0} ms  line {:?}", item.at_ms, shorten(&item.text)));
            }
            self.shown = lines.len();
            if lines.is_empty() {
                for chunk in &got.chunks[self.shown_chunks..] {
                    if chunk.decoded > 0 {
                        let line = format!(
                            "{:>8.0} ms  +{} bytes (no line end yet)",
                            chunk.at_ms, chunk.decoded
                        );
                        self.say(&line);
                    }
                }
            }
        }
        self.shown_chunks = got.chunks.len();
        if let Some(spinner) = &self.spinner {
            spinner.set_message(format!("reading the body: {} bytes", got.body.len()));
        }
    }

    pub(super) fn done(&mut self, got: &Fetched) {
        let line = match (got.evidence.end_ms, &got.error) {
            (Some(end), _) => format!("{end:>8.0} ms  end of body"),
            (None, Some(error)) => format!("          stopped: {error}"),
            (None, None) => "          stopped".to_owned(),
        };
        self.say(&line);
        self.stop();
    }
}

fn shorten(text: &str) -> String {
    if text.chars().count() <= 60 {
        return text.to_owned();
    }
    let mut short: String = text.chars().take(57).collect();
    short.push('…');
    short
}

const COLUMNS: usize = 60;

/// One row: a digit per column for the items completed in it (`#` for ten or more), `.` for
/// bytes without an item, a space for nothing.
fn timeline_row(result: &RequestResult, column_ms: f64) -> String {
    let mut items = [0usize; COLUMNS];
    let mut bytes = [false; COLUMNS];
    let column = |at: f64| ((at / column_ms) as usize).min(COLUMNS - 1);
    for item in &result.judgement.items {
        items[column(item.at_ms)] += 1;
    }
    for chunk in &result.fetched.chunks {
        bytes[column(chunk.at_ms)] = true;
    }
    (0..COLUMNS)
        .map(|i| match items[i] {
            0 if bytes[i] => '.',
            0 => ' ',
            n @ 1..=9 => char::from_digit(n as u32, 10).expect("a digit"),
            _ => '#',
        })
        .collect()
}

fn summary(result: &RequestResult) -> String {
    let got = &result.fetched;
    let mut text = format!(
        "{} {}, {}",
        got.status().unwrap_or_default(),
        result.protocol(),
        got.header("content-encoding").unwrap_or("not compressed")
    );
    let _ = write!(
        text,
        ", head {:.0} ms, first byte {}: {} ({})",
        got.evidence.head_ms.unwrap_or_default(),
        got.chunks.first().map_or("none".into(), |c| format!("{:.0} ms", c.at_ms)),
        result.judgement.verdict,
        result.judgement.reason
    );
    text
}

/// The report after the live part: timeline, requests, verdict, findings, the rule.
pub fn text(diagnosis: &Diagnosis) -> String {
    let run = &diagnosis.run;
    let mut out = String::new();
    let longest = std::iter::once(&run.main)
        .chain(run.variants.iter().filter_map(|v| v.result.as_ref().ok()))
        .map(|r| r.judgement.duration_ms)
        .fold(1.0, f64::max);
    let column_ms = (longest / COLUMNS as f64).max(1.0);
    let _ = writeln!(
        out,
        "\ntimeline (one column = {column_ms:.0} ms; a digit counts the items completed, \
         '.' bytes without an item):"
    );
    let _ = writeln!(out, "  {:<9}|{}|", "main", timeline_row(&run.main, column_ms));
    for variant in &run.variants {
        if let Ok(result) = &variant.result {
            let _ = writeln!(out, "  {:<9}|{}|", variant.name, timeline_row(result, column_ms));
        }
    }
    let bursts: Vec<String> = run
        .main
        .judgement
        .bursts
        .iter()
        .take(12)
        .map(|b| format!("{:.0} ms: {} B", b.at_ms, b.decoded))
        .collect();
    let more = run.main.judgement.bursts.len().saturating_sub(12);
    let _ = writeln!(
        out,
        "  bursts (decoded bytes): {}{}",
        bursts.join(", "),
        if more > 0 { format!(", … {more} more") } else { String::new() }
    );
    let _ = writeln!(out, "\nrequests:");
    let _ = writeln!(out, "  main      as a browser asks: {}", summary(&run.main));
    for variant in &run.variants {
        let said = match &variant.result {
            Ok(result) => summary(result),
            Err(error) => error.clone(),
        };
        let _ = writeln!(out, "  {:<9} {}: {said}", variant.name, variant.description);
    }
    for skipped in &run.skipped {
        let _ = writeln!(out, "  skipped   {skipped}");
    }
    let _ = writeln!(out, "\nitems: {}", run.main.judgement.reading);
    let _ = writeln!(out, "\nverdict: {}", run.main.judgement.verdict);
    let _ = writeln!(out, "  {}", run.main.judgement.reason);
    if diagnosis.findings.is_empty() {
        let _ = writeln!(out, "\nfindings: none");
    } else {
        let _ = writeln!(out, "\nfindings:");
        for finding in &diagnosis.findings {
            let role = match finding.role {
                super::Role::Cause => "cause",
                super::Role::Risk => "risk",
                super::Role::Fault => "fault",
            };
            let _ = writeln!(out, "  [{role}] {}: {}", finding.cause, finding.evidence);
            let _ = writeln!(out, "      fix: {}", finding.fix);
            let _ = writeln!(out, "      see: {}", finding.docs);
        }
    }
    let _ = writeln!(out, "\nrule: {RULE}");
    out
}

fn request_json(name: &str, description: &str, result: &RequestResult) -> Value {
    let got = &result.fetched;
    let mut value = serde_json::to_value(result).expect("a request serializes");
    let object = value.as_object_mut().expect("an object");
    object.insert("name".into(), json!(name));
    object.insert("description".into(), json!(description));
    object.insert("protocol".into(), json!(got.version));
    object.insert("status".into(), json!(got.status()));
    object.insert("headers".into(), json!(got.evidence.headers));
    object.insert("head_ms".into(), json!(got.evidence.head_ms));
    object.insert("first_byte_ms".into(), json!(got.chunks.first().map(|c| c.at_ms)));
    object.insert("end_ms".into(), json!(got.evidence.end_ms));
    object.insert("error".into(), json!(got.error));
    value
}

/// The same as [`text`], as one document.
pub fn json(diagnosis: &Diagnosis) -> Value {
    let run = &diagnosis.run;
    let mut requests = vec![request_json("main", "as a browser asks", &run.main)];
    for variant in &run.variants {
        requests.push(match &variant.result {
            Ok(result) => request_json(variant.name, &variant.description, result),
            Err(error) => json!({
                "name": variant.name,
                "description": variant.description,
                "error": error,
            }),
        });
    }
    json!({
        "url": run.main.url,
        "verdict": run.main.judgement.verdict,
        "reason": run.main.judgement.reason,
        "exit_code": diagnosis.verdict().exit() as u8,
        "protocol": run.main.fetched.version,
        "requests": requests,
        "skipped": run.skipped,
        "findings": diagnosis.findings,
        "rule": RULE,
    })
}
