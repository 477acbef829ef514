//! The verdict on one response, from when its items arrived and nothing else: the server's
//! schedule is unknown, so the rule looks at how the items spread over the response's duration.

use serde::Serialize;

use crate::client::{Fetched, Framing};

/// Items whose bytes arrive within this long of the previous ones arrived together: one read,
/// or one flushed buffer.
pub const TOGETHER_MS: f64 = 10.0;
/// A response shorter than this is too quick to tell streaming from buffering.
pub const MIN_DURATION_MS: f64 = 500.0;
/// Fewer items than this give no spread to judge.
pub const MIN_ITEMS: usize = 3;
/// Bursts whose items keep coming, less than [`TOGETHER_MS`] apart, for longer than this are a
/// fast stream, not a released buffer.
pub const FLOW_MS: f64 = 100.0;

/// The rule, as the output and the docs state it.
pub const RULE: &str = "Items that arrive within 10 ms of each other arrived together (a burst). \
    Inconclusive: fewer than 3 items, a response shorter than 500 ms, or most items in bursts \
    that kept flowing for over 100 ms (a fast stream). Buffered: all items in one burst, \
    or several items in the first burst and one at a time after it (the start was held). \
    Batched: the typical burst holds two items or more. Streams: most items arrive on their own.";

/// What a browser would get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Streams,
    Buffered,
    Batched,
    Inconclusive,
}

impl Verdict {
    /// Held back in some way: what the findings look for a cause of.
    pub fn held(self) -> bool {
        matches!(self, Self::Buffered | Self::Batched)
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Streams => "streams",
            Self::Buffered => "buffered",
            Self::Batched => "batched",
            Self::Inconclusive => "inconclusive",
        })
    }
}

/// One item: an SSE event, a line, or (for a body without lines) a piece of body.
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

/// The verdict and what it rests on.
#[derive(Debug, Clone, Serialize)]
pub struct Judgement {
    pub verdict: Verdict,
    pub reason: String,
    /// From sending the request to the end of the body (or to `--max-time`).
    pub duration_ms: f64,
    pub item_kind: &'static str,
    pub items: Vec<Item>,
    pub bursts: Vec<Burst>,
}

/// The items of a response: SSE events for `text/event-stream`, else lines, else (a body
/// without line ends) each piece of body as it came.
pub fn items(got: &Fetched, framing: Framing) -> (&'static str, Vec<Item>) {
    if framing == Framing::Events {
        // As EventSource: an event without data is not dispatched (a lone `retry:`, say).
        let events = got.events.iter().filter_map(|e| {
            let text = e.data.clone()?;
            Some(Item { at_ms: e.at_ms, bytes: text.len(), text })
        });
        return ("event", events.collect());
    }
    if is_html(got.header("content-type")) {
        return ("element", html_items(got));
    }
    if got.body.contains(&b'\n') {
        let lines = got.lines().iter().map(|l| Item {
            at_ms: l.at_ms,
            bytes: l.text.len() + 1,
            text: l.text.clone(),
        });
        return ("line", lines.collect());
    }
    // No item boundaries to go by: each burst of bytes is one piece.
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
    ("piece", pieces)
}

fn is_html(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|t| t.trim().to_ascii_lowercase().starts_with("text/html"))
}

/// An HTML body's items: everything up to and including a closing tag (`</…>`), stamped when
/// the piece of body that completes it arrived.
fn html_items(got: &Fetched) -> Vec<Item> {
    let mut items = Vec::new();
    let (mut offset, mut start) = (0usize, 0usize);
    for chunk in got.chunks.iter().filter(|c| c.decoded > 0) {
        let end = (offset + chunk.decoded).min(got.body.len());
        let mut i = offset;
        while i < end {
            if got.body[i] == b'>' && closes_a_tag(&got.body[start..=i]) {
                let text = String::from_utf8_lossy(&got.body[start..=i]).trim().to_owned();
                items.push(Item { at_ms: chunk.at_ms, bytes: i + 1 - start, text });
                start = i + 1;
            }
            i += 1;
        }
        offset = end;
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

/// Judges one response. `duration_ms` runs from sending the request to the end of the body,
/// or to the deadline for a body that had not ended.
pub fn judge(got: &Fetched, framing: Framing, deadline_ms: f64) -> Judgement {
    let (item_kind, items) = items(got, framing);
    let bursts = bursts(got, &items);
    let duration_ms = got.evidence.end_ms.unwrap_or(deadline_ms);
    let (verdict, reason) = rule(item_kind, &items, &bursts, duration_ms);
    Judgement { verdict, reason, duration_ms, item_kind, items, bursts }
}

fn rule(kind: &str, items: &[Item], bursts: &[Burst], duration_ms: f64) -> (Verdict, String) {
    use Verdict::*;
    let n = items.len();
    let with_items: Vec<&Burst> = bursts.iter().filter(|b| b.items > 0).collect();
    if n == 0 {
        return (
            Inconclusive,
            format!(
                "no {kind} arrived in {duration_ms:.0} ms; if the server did send some, \
                 something holds them (compare with the origin: --compare URL)"
            ),
        );
    }
    if duration_ms < MIN_DURATION_MS {
        return (
            Inconclusive,
            format!(
                "the whole response took {duration_ms:.0} ms, too quick to tell streaming \
                 from buffering: ask for a slower or longer response"
            ),
        );
    }
    if n < MIN_ITEMS {
        return (
            Inconclusive,
            format!(
                "only {n} {kind}{} in {duration_ms:.0} ms: ask for a response with more \
                 items, or give it longer (--max-time)",
                if n == 1 { "" } else { "s" }
            ),
        );
    }
    // Bursts that kept flowing: a fast stream, which a big one may be cut into by short pauses.
    let flows: Vec<&&Burst> =
        with_items.iter().filter(|b| b.until_ms - b.at_ms > FLOW_MS).collect();
    let flowing: usize = flows.iter().map(|b| b.items).sum();
    if flowing * 2 > n {
        return (
            Inconclusive,
            format!(
                "{flowing} of {n} {kind}s came less than {TOGETHER_MS} ms apart, for {:.0} ms in \
                 {} stretch{} (a fast stream): holding back cannot be told from the server's own \
                 pace; ask for a slower stream",
                flows.iter().map(|b| b.until_ms - b.at_ms).sum::<f64>(),
                flows.len(),
                if flows.len() == 1 { "" } else { "es" }
            ),
        );
    }
    let first = with_items[0];
    if with_items.len() == 1 {
        return (
            Buffered,
            format!(
                "all {n} {kind}s ({} bytes) arrived together at {:.0} ms; the response lasted \
                 {duration_ms:.0} ms",
                first.decoded, first.at_ms
            ),
        );
    }
    if first.items >= 2 && with_items[1..].iter().all(|b| b.items == 1) {
        return (
            Buffered,
            format!(
                "the first {} {kind}s ({} bytes) arrived together at {:.0} ms, then one at a \
                 time: the start was held until {} bytes had accumulated",
                first.items, first.decoded, first.at_ms, first.decoded
            ),
        );
    }
    let mut per_burst: Vec<usize> = with_items.iter().map(|b| b.items).collect();
    per_burst.sort_unstable();
    let median = per_burst[per_burst.len() / 2];
    if median >= 2 {
        let mut sizes: Vec<usize> = with_items.iter().map(|b| b.decoded).collect();
        sizes.sort_unstable();
        return (
            Batched,
            format!(
                "{n} {kind}s arrived in {} bursts of typically {median} (burst sizes: median \
                 {} bytes, largest {} bytes) over {duration_ms:.0} ms",
                with_items.len(),
                sizes[sizes.len() / 2],
                sizes[sizes.len() - 1]
            ),
        );
    }
    let gaps = with_items.windows(2).map(|w| w[1].at_ms - w[0].until_ms);
    let longest = gaps.fold(0.0, f64::max);
    (
        Streams,
        format!(
            "{n} {kind}s in {} bursts over {duration_ms:.0} ms, one at a time (first at {:.0} \
             ms, longest gap {longest:.0} ms)",
            with_items.len(),
            first.at_ms
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::Chunk;

    /// A body of lines `"k\n"` arriving at the given times, several at one time when repeated.
    fn got(at: &[f64], end_ms: f64) -> Fetched {
        let mut got = Fetched::default();
        for (i, &at_ms) in at.iter().enumerate() {
            let text = (i + 1).to_string();
            got.body.extend(format!("{text}\n").bytes());
            got.chunks.push(Chunk { at_ms, bytes: text.len() + 1, decoded: text.len() + 1 });
            got.evidence.lines.push(crate::LineArrival { text, at_ms });
        }
        got.evidence.end_ms = Some(end_ms);
        got
    }

    fn verdict(at: &[f64], end_ms: f64) -> Verdict {
        judge(&got(at, end_ms), Framing::Lines, 30_000.0).verdict
    }

    #[test]
    fn the_rule() {
        use Verdict::*;
        let steady = [1.0, 301.0, 602.0, 900.0, 1201.0];
        assert_eq!(verdict(&steady, 1202.0), Streams);
        assert_eq!(verdict(&[1200.0; 5], 1201.0), Buffered);
        assert_eq!(verdict(&[1.0, 301.0, 302.0, 900.0, 901.0], 1202.0), Batched);
        assert_eq!(verdict(&[301.0, 302.0, 602.0, 900.0, 1201.0], 1202.0), Buffered);
        assert_eq!(verdict(&[1.0, 2.0, 3.0, 4.0], 5.0), Inconclusive);
        assert_eq!(verdict(&[1.0, 900.0], 1200.0), Inconclusive);
        let fast: Vec<f64> = (0..300).map(|i| f64::from(i) * 2.0).collect();
        assert_eq!(verdict(&fast, 600.0), Inconclusive);
        // The same fast stream cut into four by pauses of 20 ms: still a fast stream.
        let cut: Vec<f64> =
            (0..300).map(|i| f64::from(i) * 2.0 + f64::from(i / 75) * 20.0).collect();
        assert_eq!(verdict(&cut, 700.0), Inconclusive);
    }
}
