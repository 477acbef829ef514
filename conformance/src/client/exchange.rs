//! Exchanges through reqwest: one shared client per transport, a request sent, and its body
//! read piece by piece, decoded and cut into timed items as it arrives.

use std::{
    sync::{Mutex, Once},
    time::{Duration, Instant},
};

use reqwest::Method;

use super::{
    Ask, Chunk, Decoder, Fetched, Framing, Protocol, Target, Transport, ms, split::Splitter, tls,
};

/// A client for `transport`, made once per transport and timeout: building one loads the
/// system's root certificates, which 200 requests at once (the load check) made a measurable
/// load on the server under test. Fails only on certificates that do not parse.
pub fn client_for(transport: &Transport, timeout: Duration) -> Result<reqwest::Client, String> {
    static CLIENTS: Mutex<Vec<(Transport, Duration, reqwest::Client)>> = Mutex::new(Vec::new());
    let mut clients = CLIENTS.lock().expect("not poisoned");
    if let Some((.., client)) = clients.iter().find(|(t, d, _)| t == transport && *d == timeout) {
        return Ok(client.clone());
    }
    let client = build_client(transport, timeout)?;
    clients.push((transport.clone(), timeout, client.clone()));
    Ok(client)
}

/// ring, as named in Cargo.toml; installed once so reqwest and every rustls config agree.
pub(crate) fn install_provider() {
    static PROVIDER: Once = Once::new();
    PROVIDER.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

fn build_client(transport: &Transport, timeout: Duration) -> Result<reqwest::Client, String> {
    install_provider();
    let mut builder = reqwest::Client::builder()
        // Environment proxy settings would apply even to 127.0.0.1, and would add a layer.
        .no_proxy()
        .connect_timeout(Duration::from_secs(5))
        .read_timeout(timeout)
        // Every request gets a fresh connection of its own (the client is shared).
        .pool_max_idle_per_host(0)
        // As curl without -L: a redirect is an answer to report, not to follow.
        .redirect(reqwest::redirect::Policy::none());
    builder = match transport.protocol {
        Protocol::Auto => builder,
        Protocol::Http1 => builder.http1_only(),
        Protocol::Http2 => builder.http2_prior_knowledge(),
    };
    // The same trust as the raw and h2 connections: curl's (see `tls`).
    builder = builder.tls_backend_preconfigured(tls::for_reqwest(transport)?);
    builder.build().map_err(|e| format!("cannot set up the client: {}", describe(&e)))
}

/// `method path`, reading the body until it ends or `deadline` passes.
/// With `head_only`, stops (and hangs up) as soon as the response head is in.
pub async fn fetch(
    target: &Target, method: Method, path: &str, deadline: Duration, head_only: bool,
) -> Fetched {
    let mut ask = Ask::get(path, deadline);
    ask.method = method;
    ask.head_only = head_only;
    send(target, ask).await
}

/// Sends `ask` and reads the answer: a body with a Content-Encoding is decoded as it arrives,
/// and the decoded items are timed.
pub async fn send(target: &Target, ask: Ask) -> Fetched {
    match Exchange::start(target, ask).await {
        Ok(mut exchange) => {
            while exchange.next().await {}
            exchange.finish()
        }
        Err(fetched) => fetched,
    }
}

/// A response being read: [`Exchange::next`] takes in one more piece of body, so a caller can
/// show items the moment they arrive.
pub struct Exchange {
    pub out: Fetched,
    sent: Instant,
    end: Instant,
    deadline: Duration,
    response: reqwest::Response,
    decoder: Decoder,
    splitter: Splitter,
}

impl Exchange {
    /// Sends the request and waits for the response head. On failure, what is known so far.
    pub async fn start(target: &Target, ask: Ask) -> Result<Self, Fetched> {
        let mut out = Fetched::default();
        out.evidence.request = format!("{} {}", ask.method, ask.path);
        for (name, value) in &ask.headers {
            out.evidence.request.push_str(&format!(" [{name}: {value}]"));
        }
        let client = match client_for(&target.transport, ask.deadline) {
            Ok(client) => client,
            Err(error) => {
                out.error = Some(error);
                return Err(out);
            }
        };
        let mut request = client.request(ask.method, format!("{}{}", target.base, ask.path));
        for (name, value) in &ask.headers {
            request = request.header(name, value);
        }
        if let Some(body) = ask.body {
            request = request.body(body);
        }
        let permit = match ask.opening {
            Some(gate) => Some(gate.acquire_owned().await.expect("the gate is never closed")),
            None => None,
        };
        let sent = Instant::now();
        let answer = tokio::time::timeout(ask.deadline, request.send()).await;
        drop(permit);
        let response = match answer {
            Ok(Ok(response)) => response,
            Ok(Err(err)) => {
                out.error = Some(failed(&err, target));
                return Err(out);
            }
            Err(_) => {
                out.error =
                    Some(format!("no response head within {} ms", ask.deadline.as_millis()));
                return Err(out);
            }
        };
        out.evidence.head_ms = Some(ms(sent.elapsed()));
        read_head(&response, &mut out);
        if ask.head_only {
            return Err(out);
        }
        let decoder = match Decoder::new(out.header("content-encoding")) {
            Ok(decoder) => decoder,
            Err(error) => {
                out.error = Some(error);
                return Err(out);
            }
        };
        let framing = match ask.framing {
            Framing::Auto if is_event_stream(out.header("content-type")) => Framing::Events,
            Framing::Auto => Framing::Lines,
            framing => framing,
        };
        Ok(Self {
            out,
            sent,
            end: sent + ask.deadline,
            deadline: ask.deadline,
            response,
            decoder,
            splitter: Splitter::new(sent, framing),
        })
    }

    /// When the request was sent: every `at_ms` counts from here.
    pub fn sent(&self) -> Instant {
        self.sent
    }

    /// The framing the body is read with (`Auto` resolved by the content type).
    pub fn framing(&self) -> Framing {
        self.splitter.framing()
    }

    /// Reads one more piece of body. False once the body has ended, broken off or run past
    /// the deadline (then `out.error` says which).
    pub async fn next(&mut self) -> bool {
        let out = &mut self.out;
        let piece = tokio::time::timeout_at(self.end.into(), self.response.chunk()).await;
        let (bytes, decoded) = match piece {
            Ok(Ok(Some(chunk))) => (chunk.len(), self.decoder.push(&chunk)),
            Ok(Ok(None)) => {
                out.evidence.end_ms = Some(ms(self.sent.elapsed()));
                match self.decoder.finish() {
                    Ok(rest) if !rest.is_empty() => {
                        out.chunks.push(Chunk {
                            at_ms: ms(self.sent.elapsed()),
                            bytes: 0,
                            decoded: rest.len(),
                        });
                        out.body.extend_from_slice(&rest);
                        self.splitter.push(&rest, out);
                    }
                    Ok(_) => {}
                    Err(error) => out.error = Some(error),
                }
                return false;
            }
            Ok(Err(err)) => {
                out.error = Some(format!("body broke off: {}", describe(&err)));
                return false;
            }
            Err(_) => {
                out.error =
                    Some(format!("body did not end within {} ms", self.deadline.as_millis()));
                return false;
            }
        };
        match decoded {
            Ok(decoded) => {
                let at_ms = ms(self.sent.elapsed());
                out.chunks.push(Chunk { at_ms, bytes, decoded: decoded.len() });
                out.body.extend_from_slice(&decoded);
                self.splitter.push(&decoded, out);
                true
            }
            Err(error) => {
                out.error = Some(error);
                false
            }
        }
    }

    /// What was read, the last unterminated line included.
    pub fn finish(mut self) -> Fetched {
        self.splitter.finish(&mut self.out);
        self.out
    }
}

pub(crate) fn is_event_stream(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|t| t.trim().to_ascii_lowercase().starts_with("text/event-stream"))
}

fn version_name(version: reqwest::Version) -> &'static str {
    match version {
        reqwest::Version::HTTP_09 => "HTTP/0.9",
        reqwest::Version::HTTP_10 => "HTTP/1.0",
        reqwest::Version::HTTP_11 => "HTTP/1.1",
        reqwest::Version::HTTP_2 => "h2",
        reqwest::Version::HTTP_3 => "h3",
        _ => "unknown",
    }
}

/// The error and its causes on one line: reqwest's top-level message alone is rarely enough.
pub(crate) fn describe(err: &reqwest::Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The TLS refusal behind a failed request, if that is what it was: reqwest's connector
/// wraps rustls's error in an `io::Error`, within another.
fn tls_refusal(err: &reqwest::Error) -> Option<&rustls::Error> {
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        let mut inner: &(dyn std::error::Error + 'static) = cause;
        while let Some(io) = inner.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            inner = io;
        }
        if let Some(refused) = inner.downcast_ref::<rustls::Error>() {
            return Some(refused);
        }
        source = cause.source();
    }
    None
}

/// Why a request got no response head: the TLS refusal explained, or the error described.
fn failed(err: &reqwest::Error, target: &Target) -> String {
    match tls_refusal(err) {
        Some(refused) => {
            format!("TLS handshake failed: {}", tls::explain(refused, &target.transport))
        }
        None => describe(err),
    }
}

/// The response head's status, headers and HTTP version, into `out`.
fn read_head(response: &reqwest::Response, out: &mut Fetched) {
    out.evidence.status = Some(response.status().as_u16());
    out.evidence.headers = response
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into()))
        .collect();
    out.version = Some(version_name(response.version()).to_owned());
}
