//! Reading a streaming response from Rust with reqwest: every line, or every Server-Sent Event,
//! printed the moment it arrives, with the milliseconds since the request was sent.
//!
//! Run with `cargo run -p conformance --example read_stream -- URL`, for example against
//! `cargo run -p examples-axum`: `… -- 'http://127.0.0.1:3000/stream?count=5'` prints lines,
//! and `… -- 'http://127.0.0.1:3000/events?count=5'` prints events, then reconnects with
//! `Last-Event-ID` after the server's `retry`, as EventSource does, until the server answers
//! 204 No Content.

use std::{process::ExitCode, time::Duration};

use clap::Parser;
use reqwest::{Client, Response, StatusCode, header};
use tokio::time::Instant;

#[derive(Parser)]
struct Args {
    /// The URL to read (http:// or https://).
    url: reqwest::Url,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    // This workspace builds reqwest's rustls without a default crypto provider (Cargo.toml says
    // why); with reqwest's default features this line is not needed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    // `no_proxy`: proxy settings in the environment would apply to 127.0.0.1 too.
    let client = match Client::builder().no_proxy().build() {
        Ok(client) => client,
        Err(err) => return fail(err),
    };
    let sent = Instant::now();
    let response = match client.get(args.url.clone()).send().await {
        Ok(response) if response.status().is_success() => response,
        Ok(response) => {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            return fail(format!("{} answered {status}: {}", args.url, body.trim()));
        }
        Err(err) => return fail(err),
    };
    let content_type = response.headers().get(header::CONTENT_TYPE);
    let events = content_type.is_some_and(|ct| ct.as_bytes().starts_with(b"text/event-stream"));
    let read = match events {
        true => read_events(&client, args.url, response, sent).await.map_err(Into::into),
        false => read_lines(response, sent).await.map(|_| ()).map_err(Into::into),
    };
    read.map_or_else(|error: Box<dyn std::error::Error>| fail(error), |()| ExitCode::SUCCESS)
}

// ANCHOR: client_lines
/// Prints each line of the body as it arrives and returns how many came. A chunk is whatever
/// the network delivered: it can end in the middle of a line or hold several, so bytes wait in
/// `Lines` until their `\n`. A body that breaks off (no last chunk, a reset HTTP/2 stream, a
/// compressed stream without its end) is an error that says how many lines came before it.
async fn read_lines(mut response: Response, sent: Instant) -> Result<usize, BrokeOff> {
    let (mut lines, mut got) = (Lines::default(), 0);
    loop {
        let chunk = match response.chunk().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(error) => return Err(BrokeOff { lines: got, error }),
        };
        for line in lines.push(&chunk) {
            println!("{:8.1} ms  {line}", ms(sent));
            got += 1;
        }
    }
    if let Some(rest) = lines.rest() {
        println!("{:8.1} ms  {rest} (no newline at the end)", ms(sent));
    }
    Ok(got)
}

/// The body stopped before its end: the lines that came are only part of the stream.
#[derive(Debug)]
struct BrokeOff {
    lines: usize,
    error: reqwest::Error,
}

impl std::fmt::Display for BrokeOff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the stream broke off after {} lines, which are not all of it", self.lines)
    }
}

impl std::error::Error for BrokeOff {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// Splits bytes into lines across chunk boundaries.
#[derive(Default)]
struct Lines(Vec<u8>);

impl Lines {
    /// The lines that `chunk` completes, without their `\n` or `\r\n`.
    fn push(&mut self, chunk: &[u8]) -> Vec<String> {
        self.0.extend_from_slice(chunk);
        let Some(last) = self.0.iter().rposition(|&b| b == b'\n') else { return Vec::new() };
        let complete: Vec<u8> = self.0.drain(..=last).collect();
        let text = String::from_utf8_lossy(&complete[..last]);
        text.split('\n').map(|line| line.strip_suffix('\r').unwrap_or(line).to_owned()).collect()
    }

    /// What is left after the last `\n`, if anything.
    fn rest(self) -> Option<String> {
        (!self.0.is_empty()).then(|| String::from_utf8_lossy(&self.0).into_owned())
    }
}
// ANCHOR_END: client_lines

// ANCHOR: client_sse
/// Prints each event as it arrives. When the stream ends, or the connection drops, waits the
/// server's `retry` and reconnects with `Last-Event-ID`, until the server answers 204.
async fn read_events(
    client: &Client, url: reqwest::Url, mut response: Response, sent: Instant,
) -> reqwest::Result<()> {
    // EventSource's usual wait until the server says otherwise.
    let (mut last_id, mut retry) = (String::new(), Duration::from_secs(3));
    loop {
        let (mut lines, mut data) = (Lines::default(), Vec::new());
        // A failed read is a dropped connection: reconnect, as after the end.
        while let Ok(Some(chunk)) = response.chunk().await {
            for line in lines.push(&chunk) {
                let (field, value) = line.split_once(':').unwrap_or((&line, ""));
                match (field, value.strip_prefix(' ').unwrap_or(value)) {
                    // A blank line ends the event; `:` lines are comments (keep-alives).
                    ("", _) if line.is_empty() && !data.is_empty() => {
                        println!("{:8.1} ms  id={last_id} data={}", ms(sent), data.join("\n"));
                        data.clear();
                    }
                    ("id", id) => last_id = id.to_owned(),
                    ("data", value) => data.push(value.to_owned()),
                    ("retry", value) => retry = value.parse().map_or(retry, Duration::from_millis),
                    _ => {}
                }
            }
        }
        println!("{:8.1} ms  reconnecting in {retry:?}, Last-Event-ID: {last_id:?}", ms(sent));
        tokio::time::sleep(retry).await;
        let mut request = client.get(url.clone());
        if !last_id.is_empty() {
            request = request.header("last-event-id", &last_id);
        }
        response = request.send().await?;
        if response.status() == StatusCode::NO_CONTENT {
            println!("{:8.1} ms  204 No Content: the stream is over", ms(sent));
            return Ok(());
        }
        response = response.error_for_status()?;
    }
}
// ANCHOR_END: client_sse

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

/// Says what went wrong, with its causes (reqwest's own message names only the URL).
fn fail(error: impl Into<Box<dyn std::error::Error>>) -> ExitCode {
    let error = error.into();
    let mut message = format!("error: {error}");
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    eprintln!("{message}");
    ExitCode::FAILURE
}
