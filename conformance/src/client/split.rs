//! Cutting a decoded body into the items whose arrival is timed: lines, `<div>`s, or
//! Server-Sent Events, parsed as the EventSource parser reads them.

use std::time::Instant;

use super::{Fetched, ms};
use crate::outcome::LineArrival;

/// How a body is cut into the items whose arrival is timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// One item per `\n`-terminated line.
    Lines,
    /// One item per `<div>…</div>`, arriving with its `</div>`.
    Divs,
    /// One item per Server-Sent Event, arriving with the blank line that ends it.
    Events,
    /// Events for `text/event-stream`, lines otherwise (decided when the head is in).
    Auto,
}

/// One dispatched Server-Sent Events message (the fields up to a blank line).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SseMessage {
    pub at_ms: f64,
    pub id: Option<String>,
    pub data: Option<String>,
    pub retry: Option<String>,
    pub event: Option<String>,
}

/// Cuts a (decoded) body into items as bytes arrive, stamping each item with the arrival of
/// the bytes that complete it.
#[derive(Debug)]
pub(crate) struct Splitter {
    sent: Instant,
    framing: Framing,
    pending: Vec<u8>,
    /// The SSE message being assembled.
    message: SseMessage,
}

impl Splitter {
    pub(crate) fn new(sent: Instant, framing: Framing) -> Self {
        Self { sent, framing, pending: Vec::new(), message: SseMessage::default() }
    }

    pub(crate) fn framing(&self) -> Framing {
        self.framing
    }

    pub(crate) fn push(&mut self, bytes: &[u8], out: &mut Fetched) {
        self.push_at(bytes, ms(self.sent.elapsed()), out);
    }

    /// As [`Splitter::push`], for bytes that arrived at `at_ms`.
    fn push_at(&mut self, bytes: &[u8], at_ms: f64, out: &mut Fetched) {
        match self.framing {
            Framing::Lines | Framing::Auto => {
                for &byte in bytes {
                    if byte == b'\n' {
                        let text = String::from_utf8_lossy(&self.pending).into_owned();
                        out.evidence.lines.push(LineArrival { text, at_ms });
                        self.pending.clear();
                    } else {
                        self.pending.push(byte);
                    }
                }
            }
            Framing::Divs => {
                self.pending.extend_from_slice(bytes);
                while let Some(end) = find(&self.pending, b"</div>") {
                    let before = &self.pending[..end];
                    let text = match before.windows(5).rposition(|w| w == b"<div>") {
                        Some(open) => String::from_utf8_lossy(&before[open + 5..]).into_owned(),
                        None => String::from_utf8_lossy(before).into_owned(),
                    };
                    out.evidence.lines.push(LineArrival { text, at_ms });
                    self.pending.drain(..end + 6);
                }
            }
            Framing::Events => {
                for &byte in bytes {
                    if byte != b'\n' {
                        self.pending.push(byte);
                        continue;
                    }
                    let line = String::from_utf8_lossy(&self.pending).into_owned();
                    self.pending.clear();
                    self.sse_line(line.strip_suffix('\r').unwrap_or(&line), at_ms, out);
                }
            }
        }
    }

    /// One SSE line, as the EventSource parser reads it.
    fn sse_line(&mut self, line: &str, at_ms: f64, out: &mut Fetched) {
        if line.is_empty() {
            let message = std::mem::take(&mut self.message);
            if message != SseMessage::default() {
                if let Some(data) = &message.data {
                    out.evidence.lines.push(LineArrival { text: data.clone(), at_ms });
                }
                out.events.push(SseMessage { at_ms, ..message });
            }
            return;
        }
        if line.starts_with(':') {
            out.comments_ms.push(at_ms);
            return;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value).to_owned();
        let message = &mut self.message;
        match field {
            "id" => message.id = Some(value),
            "data" => match &mut message.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(&value);
                }
                None => message.data = Some(value),
            },
            "retry" => message.retry = Some(value),
            "event" => message.event = Some(value),
            _ => out.evidence.notes.push(format!("unknown SSE field {field:?}")),
        }
    }

    /// Whatever is left: a last line without `\n` is kept (it is wrong, and the content check
    /// should see it).
    pub(crate) fn finish(&mut self, out: &mut Fetched) {
        self.finish_at(ms(self.sent.elapsed()), out);
    }

    fn finish_at(&mut self, at_ms: f64, out: &mut Fetched) {
        if self.pending.is_empty() || !matches!(self.framing, Framing::Lines | Framing::Auto) {
            return;
        }
        let text = String::from_utf8_lossy(&self.pending).into_owned();
        out.evidence.notes.push(format!("body ends without a newline after {text:?}"));
        out.evidence.lines.push(LineArrival { text, at_ms });
        self.pending.clear();
    }
}

/// The body of `got` cut again with `framing`, each item stamped with the arrival of the piece
/// of body that completed it, as if it had been read that way.
pub fn replay(got: &Fetched, framing: Framing) -> Fetched {
    let mut out = Fetched::default();
    let mut splitter = Splitter::new(Instant::now(), framing);
    let (mut offset, mut last_ms) = (0, 0.0);
    for chunk in got.chunks.iter().filter(|c| c.decoded > 0) {
        let end = (offset + chunk.decoded).min(got.body.len());
        splitter.push_at(&got.body[offset..end], chunk.at_ms, &mut out);
        (offset, last_ms) = (end, chunk.at_ms);
    }
    splitter.finish_at(last_ms, &mut out);
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(framing: Framing, parts: &[&[u8]]) -> Fetched {
        let mut splitter = Splitter::new(Instant::now(), framing);
        let mut out = Fetched::default();
        for part in parts {
            splitter.push(part, &mut out);
        }
        splitter.finish(&mut out);
        out
    }

    fn texts(out: &Fetched) -> Vec<&str> {
        out.lines().iter().map(|l| l.text.as_str()).collect()
    }

    #[test]
    fn lines_are_stamped_when_their_newline_arrives() {
        let out = split(Framing::Lines, &[b"1\n2", b"\n3\n4"]);
        assert_eq!(texts(&out), ["1", "2", "3", "4"]);
        assert_eq!(out.evidence.notes.len(), 1, "a last line without newline is noted");
    }

    #[test]
    fn divs_arrive_with_their_closing_tag() {
        let out = split(
            Framing::Divs,
            &[b"<!doctype html><html><body><div>1</d", b"iv>  <div>2</div>", b"</body>"],
        );
        assert_eq!(texts(&out), ["1", "2"]);
    }

    #[test]
    fn events_are_parsed_as_eventsource_does() {
        let out = split(
            Framing::Events,
            &[b"retry: 1000\nid: 1\ndata: 1\n\n:\n\nid:2\r\ndata: 2\r\n", b"\r\n"],
        );
        assert_eq!(texts(&out), ["1", "2"]);
        assert_eq!(out.events[0].retry.as_deref(), Some("1000"));
        assert_eq!(out.events[1].id.as_deref(), Some("2"));
        assert_eq!(out.comments_ms.len(), 1);
    }
}
