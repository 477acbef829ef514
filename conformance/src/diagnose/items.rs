//! From a body to the items whose arrival is judged. The content type proposes how to cut the
//! body; the body decides. Each reading that fits the body (events, HTML elements, the
//! elements of a JSON array, a sequence of JSON values, lines) is tried, and the one whose
//! items mark the most separate arrivals wins, the proposed one on a tie: Django's
//! `StreamingHttpResponse` is `text/html` by default, and its body `1\n2\n…` has lines, not
//! elements. A body with no boundary at all is read as pieces, the bytes of one burst each.

use serde::{Serialize, de::IgnoredAny};

use super::thresholds::{MIN_ITEMS, TOGETHER_MS};
use crate::client::{Fetched, Framing, replay};

/// One item: an SSE event, an element, a record, a line, or a piece of body.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    pub at_ms: f64,
    /// Decoded bytes.
    pub bytes: usize,
    pub text: String,
}

/// Bytes that arrived together.
#[derive(Debug, Clone, Serialize)]
pub struct Burst {
    pub at_ms: f64,
    pub until_ms: f64,
    /// Bytes on the wire (before content decoding).
    pub bytes: usize,
    /// Bytes after decoding.
    pub decoded: usize,
    /// Items completed in this burst.
    pub items: usize,
}

/// How the body was read, as the output says it.
#[derive(Debug, Clone, Serialize)]
pub struct Reading {
    /// `event`, `element`, `array element`, `record`, `line` or `piece`.
    pub kind: &'static str,
    /// What was proposed and what was done: "`text/html`, but no closing tags: read as lines".
    pub how: String,
}

/// The ways to cut a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    /// Server-Sent Events, as EventSource dispatches them (an event without data is none).
    Events,
    /// HTML: everything up to and including a closing tag.
    Elements,
    /// The top-level elements of a JSON array, streamed as `[{…},{…}` (as some LLM APIs do).
    ArrayElements,
    /// JSON values one after another: NDJSON, JSON text sequences (RFC 7464), or concatenated.
    Records,
    /// `\n`-terminated lines that are not blank.
    Lines,
}

impl Cut {
    fn kind(self) -> &'static str {
        match self {
            Cut::Events => "event",
            Cut::Elements => "element",
            Cut::ArrayElements => "array element",
            Cut::Records => "record",
            Cut::Lines => "line",
        }
    }

    /// What marks an item's end, for saying why another reading won.
    fn marks(self) -> &'static str {
        match self {
            Cut::Events => "events",
            Cut::Elements => "closing tags",
            Cut::ArrayElements => "array elements",
            Cut::Records => "JSON values",
            Cut::Lines => "line ends",
        }
    }

    /// Why the body does not fit this reading at all.
    fn absent(self) -> &'static str {
        match self {
            Cut::Events => "no events",
            Cut::Elements => "no closing tags",
            Cut::ArrayElements => "not a JSON array",
            Cut::Records => "not a sequence of JSON values",
            Cut::Lines => "no line ends",
        }
    }

    /// The items of `got` in this reading; none if the body does not fit it.
    fn items(self, got: &Fetched, framing: Framing, timeline: &Timeline) -> Vec<Item> {
        match self {
            Cut::Events => {
                let replayed;
                let events = if framing == Framing::Events {
                    &got.events
                } else {
                    replayed = replay(got, Framing::Events);
                    &replayed.events
                };
                let data = events.iter().filter_map(|e| e.data.clone().map(|d| (e.at_ms, d)));
                data.map(|(at_ms, text)| Item { at_ms, bytes: text.len(), text }).collect()
            }
            Cut::Lines => {
                let replayed;
                let lines = if framing == Framing::Lines {
                    got.lines()
                } else {
                    replayed = replay(got, Framing::Lines);
                    replayed.lines()
                };
                let text = lines.iter().filter(|l| !l.text.trim().is_empty());
                text.map(|l| Item { at_ms: l.at_ms, bytes: l.text.len() + 1, text: l.text.clone() })
                    .collect()
            }
            Cut::Elements => elements(&got.body, timeline),
            Cut::ArrayElements => array_elements(&got.body, timeline),
            Cut::Records => records(&got.body, timeline),
        }
    }
}

/// The readings to try, the content type's proposal first.
fn proposed(content_type: Option<&str>) -> Vec<Cut> {
    use Cut::*;
    let essence = content_type
        .map(|t| t.split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
        .unwrap_or_default();
    match essence.as_str() {
        "text/event-stream" => vec![Events, Lines],
        "text/html" | "application/xhtml+xml" => vec![Elements, Lines, Records, ArrayElements],
        "application/x-ndjson"
        | "application/ndjson"
        | "application/jsonl"
        | "application/x-jsonlines"
        | "application/jsonlines"
        | "application/json-seq"
        | "application/stream+json" => vec![Records, Lines],
        t if t == "application/json" || t.ends_with("+json") => {
            vec![ArrayElements, Records, Lines]
        }
        _ => vec![Lines, Records, ArrayElements],
    }
}

/// Does the body start as Server-Sent Events do (a field, or a comment), with data in it?
fn looks_like_events(body: &[u8]) -> bool {
    let text = String::from_utf8_lossy(&body[..body.len().min(4096)]);
    let mut lines = text.lines().map(|l| l.trim_end_matches('\r')).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or_default();
    let field = ["data:", "event:", "id:", "retry:", ":"].iter().any(|f| first.starts_with(f));
    field && text.lines().any(|l| l.starts_with("data:"))
}

/// Reads the body of `got` (decoded, and framed as `framing` while it arrived) into items.
pub fn read(got: &Fetched, framing: Framing) -> (Reading, Vec<Item>) {
    let timeline = Timeline::of(got);
    let content_type = got.header("content-type");
    let label = match content_type {
        Some(t) => format!("`{t}`"),
        None => "no content type".to_owned(),
    };
    let mut order = proposed(content_type);
    let typed = order[0];
    if typed != Cut::Events && looks_like_events(&got.body) {
        order.insert(0, Cut::Events);
    }
    let mut best: Option<(Cut, Vec<Item>, usize)> = None;
    let mut typed_items = 0;
    for &cut in &order {
        let items = cut.items(got, framing, &timeline);
        if cut == typed {
            typed_items = items.len();
        }
        if items.is_empty() {
            continue;
        }
        let arrivals = bursts(got, &items).iter().filter(|b| b.items > 0).count();
        if best.as_ref().is_none_or(|(_, _, most)| arrivals > *most) {
            best = Some((cut, items, arrivals));
        }
    }
    let pieces = pieces(got);
    match best {
        Some((cut, items, _)) if items.len() >= MIN_ITEMS || items.len() >= pieces.len() => {
            let how = if cut == typed {
                format!("{label}: read as {}s", cut.kind())
            } else if cut == Cut::Events {
                format!("{label}, but the body is Server-Sent Events: read as events")
            } else if typed_items == 0 {
                format!("{label}, but {}: read as {}s", typed.absent(), cut.kind())
            } else {
                format!(
                    "{label}, but its {} mark fewer separate arrivals than its {}: read as {}s",
                    typed.marks(),
                    cut.marks(),
                    cut.kind()
                )
            };
            (Reading { kind: cut.kind(), how }, items)
        }
        _ => {
            let how = format!(
                "{label}, but no item boundary (no line ends): read as pieces, the bytes of one \
                 burst each"
            );
            (Reading { kind: "piece", how }, pieces)
        }
    }
}

/// When each decoded byte arrived: the pieces of body in order, with their decoded sizes.
struct Timeline {
    /// The offset after each piece, and when it arrived.
    ends: Vec<(usize, f64)>,
}

impl Timeline {
    fn of(got: &Fetched) -> Self {
        let mut offset = 0;
        let mut ends = Vec::new();
        for chunk in got.chunks.iter().filter(|c| c.decoded > 0) {
            offset += chunk.decoded;
            ends.push((offset, chunk.at_ms));
        }
        Self { ends }
    }

    /// When the byte at `offset` arrived.
    fn at(&self, offset: usize) -> f64 {
        let i = self.ends.partition_point(|&(end, _)| end <= offset);
        self.ends.get(i).or(self.ends.last()).map_or(0.0, |&(_, at)| at)
    }

    /// The item `body[start..end]`, stamped with the arrival of its last byte.
    fn item(&self, body: &[u8], start: usize, end: usize) -> Item {
        let text = String::from_utf8_lossy(&body[start..end]).trim().to_owned();
        Item { at_ms: self.at(end.saturating_sub(1)), bytes: end - start, text }
    }
}

/// HTML: everything up to and including a closing tag (`</…>`).
fn elements(body: &[u8], timeline: &Timeline) -> Vec<Item> {
    let mut items = Vec::new();
    let mut start = 0;
    for (i, &byte) in body.iter().enumerate() {
        if byte == b'>' && closes_a_tag(&body[start..=i]) {
            items.push(timeline.item(body, start, i + 1));
            start = i + 1;
        }
    }
    items
}

/// Does `segment` end with a closing tag, `</name>`?
fn closes_a_tag(segment: &[u8]) -> bool {
    let Some(open) = segment.iter().rposition(|&b| b == b'<') else {
        return false;
    };
    segment.get(open + 1) == Some(&b'/')
}

fn skip_whitespace(body: &[u8], mut at: usize) -> usize {
    while body.get(at).is_some_and(u8::is_ascii_whitespace) {
        at += 1;
    }
    at
}

/// The end (exclusive) of the one JSON value that starts at `body[at..]`, if one is complete.
fn value_end(body: &[u8], at: usize) -> Option<usize> {
    let mut values = serde_json::Deserializer::from_slice(&body[at..]).into_iter::<IgnoredAny>();
    match values.next() {
        Some(Ok(_)) => Some(at + values.byte_offset()),
        _ => None,
    }
}

/// The elements of a JSON array, each complete with its own last byte; none if the body is
/// not an array (an array cut short is read up to where it stops).
fn array_elements(body: &[u8], timeline: &Timeline) -> Vec<Item> {
    let mut at = skip_whitespace(body, 0);
    if body.get(at) != Some(&b'[') {
        return Vec::new();
    }
    at += 1;
    let mut items = Vec::new();
    loop {
        let start = skip_whitespace(body, at);
        if start >= body.len() || (body[start] == b']' && items.is_empty()) {
            return items;
        }
        let Some(end) = value_end(body, start) else {
            // A last element cut short is the end of what arrived; anything else is no array.
            let truncated = serde_json::from_slice::<IgnoredAny>(&body[start..])
                .err()
                .is_some_and(|e| e.is_eof());
            return if truncated { items } else { Vec::new() };
        };
        items.push(timeline.item(body, start, end));
        at = skip_whitespace(body, end);
        match body.get(at) {
            Some(b',') => at += 1,
            Some(b']') | None => return items,
            Some(_) => return Vec::new(),
        }
    }
}

/// JSON values one after another (NDJSON, RFC 7464's record separators, or none at all); at
/// least two, or the body is not a sequence of them.
fn records(body: &[u8], timeline: &Timeline) -> Vec<Item> {
    // RFC 7464 starts each record with RS (0x1E); as whitespace, offsets stay where they are.
    let spaced: Vec<u8> = body.iter().map(|&b| if b == 0x1e { b' ' } else { b }).collect();
    let mut values = serde_json::Deserializer::from_slice(&spaced).into_iter::<IgnoredAny>();
    let mut items = Vec::new();
    let mut start = 0;
    loop {
        match values.next() {
            None => break,
            Some(Ok(_)) => {
                let end = values.byte_offset();
                let from = skip_whitespace(&spaced, start);
                items.push(timeline.item(body, from, end));
                start = end;
            }
            // The last record cut short: what arrived before it stands.
            Some(Err(e)) if e.is_eof() => break,
            Some(Err(_)) => return Vec::new(),
        }
    }
    if items.len() < 2 { Vec::new() } else { items }
}

/// No item boundaries to go by: each burst of bytes is one piece.
fn pieces(got: &Fetched) -> Vec<Item> {
    let mut pieces: Vec<Item> = Vec::new();
    let mut last_at = f64::NEG_INFINITY;
    for chunk in got.chunks.iter().filter(|c| c.decoded > 0) {
        match pieces.last_mut() {
            Some(piece) if chunk.at_ms - last_at <= TOGETHER_MS => {
                piece.bytes += chunk.decoded;
                piece.at_ms = chunk.at_ms;
            }
            _ => {
                pieces.push(Item { at_ms: chunk.at_ms, bytes: chunk.decoded, text: String::new() })
            }
        }
        last_at = chunk.at_ms;
    }
    for piece in &mut pieces {
        piece.text = format!("{} bytes", piece.bytes);
    }
    pieces
}

/// Groups the pieces of body into bursts and counts the items each completed.
pub fn bursts(got: &Fetched, items: &[Item]) -> Vec<Burst> {
    let mut bursts: Vec<Burst> = Vec::new();
    for chunk in &got.chunks {
        match bursts.last_mut() {
            Some(b) if chunk.at_ms - b.until_ms <= TOGETHER_MS => {
                b.until_ms = chunk.at_ms;
                b.bytes += chunk.bytes;
                b.decoded += chunk.decoded;
            }
            _ => bursts.push(Burst {
                at_ms: chunk.at_ms,
                until_ms: chunk.at_ms,
                bytes: chunk.bytes,
                decoded: chunk.decoded,
                items: 0,
            }),
        }
    }
    // Both are in time order; an item is stamped just after the piece that completed it.
    let mut at = 0;
    for item in items {
        while at + 1 < bursts.len() && bursts[at + 1].at_ms <= item.at_ms + 0.5 {
            at += 1;
        }
        if let Some(b) = bursts.get_mut(at).filter(|b| b.at_ms <= item.at_ms + 0.5) {
            b.items += 1;
        }
    }
    bursts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::Chunk;

    /// A response of `content_type` whose body arrives in `parts`, `gap_ms` apart.
    fn got(content_type: Option<&str>, parts: &[&str], gap_ms: f64) -> Fetched {
        let mut got = Fetched::default();
        if let Some(t) = content_type {
            got.evidence.headers.push(("content-type".into(), t.into()));
        }
        for (i, part) in parts.iter().enumerate() {
            got.body.extend_from_slice(part.as_bytes());
            let at_ms = 1.0 + gap_ms * i as f64;
            got.chunks.push(Chunk { at_ms, bytes: part.len(), decoded: part.len() });
        }
        // As the client reads a body whose content type is not an event stream.
        let lines = replay(&got, Framing::Lines);
        got.evidence.lines = lines.evidence.lines;
        got
    }

    fn read_as(content_type: Option<&str>, parts: &[&str]) -> (Reading, Vec<String>) {
        let got = got(content_type, parts, 300.0);
        let (reading, items) = read(&got, Framing::Lines);
        (reading, items.into_iter().map(|i| i.text).collect())
    }

    #[test]
    fn html_without_closing_tags_is_read_as_lines() {
        let html = Some("text/html; charset=utf-8");
        let (reading, items) = read_as(html, &["1\n", "2\n", "3\n"]);
        assert_eq!(items, ["1", "2", "3"]);
        assert_eq!(reading.how, "`text/html; charset=utf-8`, but no closing tags: read as lines");
        // Our contract's page: elements, as proposed.
        let page = ["<!doctype html><body>\n<div>1</div>\n", "<div>2</div>\n", "<div>3</div>\n"];
        let (reading, items) = read_as(html, &page);
        assert_eq!(reading.kind, "element");
        assert_eq!(items.len(), 3);
        assert_eq!(items[1..], ["<div>2</div>", "<div>3</div>"]);
        // A head with closing tags, then lines: the lines mark more arrivals.
        let head = ["<html><head><title>t</title></head><body>\n", "1\n", "2\n", "3\n"];
        let (reading, items) = read_as(html, &head);
        assert_eq!(reading.kind, "line", "{}", reading.how);
        assert!(
            reading.how.contains("closing tags mark fewer separate arrivals"),
            "{}",
            reading.how
        );
        assert_eq!(items.len(), 4);
        // An element spread over lines stays one element.
        let (reading, _) = read_as(html, &["<p>\n1\n</p>\n", "<p>\n2\n</p>\n", "<p>\n3\n</p>\n"]);
        assert_eq!(reading.kind, "element");
    }

    #[test]
    fn json_arrays_are_read_by_their_elements() {
        let json = Some("application/json");
        let parts = ["[{\"t\": \"a\"}", ",\n{\"t\": \"b,]\"}", ",{\"t\": [1, 2]}", "]"];
        let (reading, items) = read_as(json, &parts);
        assert_eq!(reading.how, "`application/json`: read as array elements");
        assert_eq!(items, ["{\"t\": \"a\"}", "{\"t\": \"b,]\"}", "{\"t\": [1, 2]}"]);
        // Scalars end with their own last byte; an array cut short keeps what arrived.
        let (_, items) = read_as(json, &["[1", ",22", ",3", ",{\"cut"]);
        assert_eq!(items, ["1", "22", "3"]);
        // Pretty-printed: each element spans lines, and is still one item.
        let pretty = [
            "[\n  {\n    \"a\": 1\n  }",
            ",\n  {\n    \"a\": 2\n  }",
            ",\n  {\n    \"a\": 3\n  }\n]",
        ];
        let (reading, items) = read_as(json, &pretty);
        assert_eq!((reading.kind, items.len()), ("array element", 3));
    }

    #[test]
    fn records_and_events_whatever_the_label() {
        let (reading, items) =
            read_as(Some("application/x-ndjson"), &["{\"a\":1}\n", "{\"a\":2}\n", "{\"a\":3}\n"]);
        assert_eq!((reading.kind, items.len()), ("record", 3));
        let seq = ["\x1e{\"a\":1}\n", "\x1e{\"a\":2}\n", "\x1e{\"a\":3}\n"];
        let (reading, items) = read_as(Some("application/json-seq"), &seq);
        assert_eq!((reading.kind, items[2].as_str()), ("record", "{\"a\":3}"));
        // Concatenated objects without newlines, labelled text/plain: no lines, but records.
        let (reading, items) =
            read_as(Some("text/plain"), &["{\"a\":1}", "{\"a\":2}", "{\"a\":3}"]);
        assert_eq!((reading.kind, items.len()), ("record", 3), "{}", reading.how);
        // An event stream labelled text/plain.
        let sse = ["data: 1\n\n", "data: 2\n\n", "data: 3\n\n"];
        let (reading, items) = read_as(Some("text/plain"), &sse);
        assert_eq!(reading.how, "`text/plain`, but the body is Server-Sent Events: read as events");
        assert_eq!(items, ["1", "2", "3"]);
    }

    #[test]
    fn bodies_without_boundaries_are_read_as_pieces() {
        let (reading, items) = read_as(None, &["Once", " upon", " a", " time"]);
        assert_eq!(reading.kind, "piece", "{}", reading.how);
        assert_eq!(items.len(), 4);
        assert!(
            reading.how.starts_with("no content type, but no item boundary"),
            "{}",
            reading.how
        );
        // Blank lines are no items: a body of `1\n\n2\n\n` has two.
        let (_, items) = read_as(Some("text/plain"), &["1\n\n", "2\n\n"]);
        assert_eq!(items, ["1", "2"]);
    }
}
