//! The `/stream` query, validated as CONTRACT.md says: every parameter is checked and a typo is
//! an error, so `?interval=50` cannot silently become a ten-second stream.

use std::time::Duration;

/// What one stream will produce: `count` lines, `interval` apart.
#[derive(Debug, Clone, Copy)]
pub struct StreamParams {
    pub count: u32,
    pub interval: Duration,
}

impl StreamParams {
    /// Parses a raw (still percent-encoded) query string; the error is the one-line message
    /// for the 400 response.
    pub fn from_query(query: &str) -> Result<Self, String> {
        let (mut count, mut interval_ms) = (None, None);
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            let (slot, min, max) = match &*name {
                "count" => (&mut count, 1, 1_000_000),
                "interval_ms" => (&mut interval_ms, 0, 60_000),
                _ => {
                    return Err(format!(
                        "unknown parameter {name:?}: allowed are count (1..=1000000) \
                         and interval_ms (0..=60000)"
                    ));
                }
            };
            if slot.is_some() {
                return Err(format!(
                    "parameter {name} given more than once: give it once, an integer in {min}..={max}"
                ));
            }
            match value.parse::<u32>() {
                Ok(n) if (min..=max).contains(&n) => *slot = Some(n),
                _ => {
                    return Err(format!(
                        "invalid {name}: expected an integer in {min}..={max}, got {value:?}"
                    ));
                }
            }
        }
        Ok(Self {
            count: count.unwrap_or(10),
            interval: Duration::from_millis(interval_ms.unwrap_or(1000).into()),
        })
    }
}
