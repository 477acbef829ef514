//! The verdict on one response, from when its items arrived and nothing else: the server's
//! schedule is unknown, so the rule looks at how the items spread over the response's duration.

use serde::Serialize;

use super::{
    items::{self, Burst, Item},
    thresholds::{FLOW_MS, MIN_DURATION_MS, MIN_ITEMS, TOGETHER_MS},
};
use crate::client::{Fetched, Framing};

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

/// The verdict and what it rests on.
#[derive(Debug, Clone, Serialize)]
pub struct Judgement {
    pub verdict: Verdict,
    pub reason: String,
    /// From sending the request to the end of the body (or to `--max-time`).
    pub duration_ms: f64,
    pub item_kind: &'static str,
    /// How the body was read into items, and why.
    pub reading: String,
    pub items: Vec<Item>,
    pub bursts: Vec<Burst>,
}

/// Judges one response. `duration_ms` runs from sending the request to the end of the body,
/// or to the deadline for a body that had not ended.
pub fn judge(got: &Fetched, framing: Framing, deadline_ms: f64) -> Judgement {
    let (reading, items) = items::read(got, framing);
    let bursts = items::bursts(got, &items);
    let duration_ms = got.evidence.end_ms.unwrap_or(deadline_ms);
    let (verdict, reason) = rule(reading.kind, &items, &bursts, duration_ms);
    let item_kind = reading.kind;
    Judgement { verdict, reason, duration_ms, item_kind, reading: reading.how, items, bursts }
}

/// The rule, step by step: too little to judge, a fast stream, everything together, a held
/// start, batches; else it streams.
fn rule(kind: &str, items: &[Item], bursts: &[Burst], duration_ms: f64) -> (Verdict, String) {
    let shape = Shape {
        kind,
        n: items.len(),
        bursts: bursts.iter().filter(|b| b.items > 0).collect(),
        duration_ms,
    };
    too_little(&shape)
        .or_else(|| fast_stream(&shape))
        .or_else(|| all_together(&shape))
        .or_else(|| start_held(&shape))
        .or_else(|| batched(&shape))
        .unwrap_or_else(|| streams(&shape))
}

/// What the rule reads: how many items of which kind, the bursts that carried items, and how
/// long the response took.
struct Shape<'a> {
    kind: &'a str,
    n: usize,
    bursts: Vec<&'a Burst>,
    duration_ms: f64,
}

type Said = Option<(Verdict, String)>;

/// No body, too short a response, or too few items.
fn too_little(s: &Shape) -> Said {
    let (n, kind, duration_ms) = (s.n, s.kind, s.duration_ms);
    let reason = if n == 0 {
        format!(
            "no body arrived in {duration_ms:.0} ms; if the server did send some, something \
             holds it (compare with the origin: --compare URL)"
        )
    } else if duration_ms < MIN_DURATION_MS {
        format!(
            "the whole response took {duration_ms:.0} ms, too quick to tell streaming from \
             buffering: ask for a slower or longer response"
        )
    } else if n < MIN_ITEMS {
        format!(
            "only {n} {kind}{} in {duration_ms:.0} ms: ask for a response with more items, or \
             give it longer (--max-time)",
            if n == 1 { "" } else { "s" }
        )
    } else {
        return None;
    };
    Some((Verdict::Inconclusive, reason))
}

/// Most items came in bursts that kept flowing: a fast stream, which a big one may be cut into
/// by short pauses; holding back cannot be told from its pace.
fn fast_stream(s: &Shape) -> Said {
    let flows: Vec<&&Burst> = s.bursts.iter().filter(|b| b.until_ms - b.at_ms > FLOW_MS).collect();
    let flowing: usize = flows.iter().map(|b| b.items).sum();
    (flowing * 2 > s.n).then(|| {
        (
            Verdict::Inconclusive,
            format!(
                "{flowing} of {} {}s came less than {TOGETHER_MS} ms apart, for {:.0} ms in {} \
                 stretch{} (a fast stream): holding back cannot be told from the server's own \
                 pace; ask for a slower stream",
                s.n,
                s.kind,
                flows.iter().map(|b| b.until_ms - b.at_ms).sum::<f64>(),
                flows.len(),
                if flows.len() == 1 { "" } else { "es" }
            ),
        )
    })
}

/// Every item in one burst.
fn all_together(s: &Shape) -> Said {
    let first = s.bursts[0];
    (s.bursts.len() == 1).then(|| {
        (
            Verdict::Buffered,
            format!(
                "all {} {}s ({} bytes) arrived together at {:.0} ms; the response lasted {:.0} ms",
                s.n, s.kind, first.decoded, first.at_ms, s.duration_ms
            ),
        )
    })
}

/// Several items together at first, then one at a time.
fn start_held(s: &Shape) -> Said {
    let first = s.bursts[0];
    (first.items >= 2 && s.bursts[1..].iter().all(|b| b.items == 1)).then(|| {
        (
            Verdict::Buffered,
            format!(
                "the first {} {}s ({} bytes) arrived together at {:.0} ms, then one at a time: \
                 the start was held until {} bytes had accumulated",
                first.items, s.kind, first.decoded, first.at_ms, first.decoded
            ),
        )
    })
}

/// Bursts of typically two or more.
fn batched(s: &Shape) -> Said {
    let mut per_burst: Vec<usize> = s.bursts.iter().map(|b| b.items).collect();
    per_burst.sort_unstable();
    let median = per_burst[per_burst.len() / 2];
    if median < 2 {
        return None;
    }
    let mut sizes: Vec<usize> = s.bursts.iter().map(|b| b.decoded).collect();
    sizes.sort_unstable();
    Some((
        Verdict::Batched,
        format!(
            "{} {}s arrived in {} bursts of typically {median} (burst sizes: median {} bytes, \
             largest {} bytes) over {:.0} ms",
            s.n,
            s.kind,
            s.bursts.len(),
            sizes[sizes.len() / 2],
            sizes[sizes.len() - 1],
            s.duration_ms
        ),
    ))
}

/// One item at a time.
fn streams(s: &Shape) -> (Verdict, String) {
    let gaps = s.bursts.windows(2).map(|w| w[1].at_ms - w[0].until_ms);
    let longest = gaps.fold(0.0, f64::max);
    (
        Verdict::Streams,
        format!(
            "{} {}s in {} bursts over {:.0} ms, one at a time (first at {:.0} ms, longest gap \
             {longest:.0} ms)",
            s.n,
            s.kind,
            s.bursts.len(),
            s.duration_ms,
            s.bursts[0].at_ms
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
            got.evidence.lines.push(crate::outcome::LineArrival { text, at_ms });
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
