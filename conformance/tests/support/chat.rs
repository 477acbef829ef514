//! Endpoints in the shape apps have, not the contract's: `POST /chat` streams Server-Sent
//! Events for a JSON body (an LLM-style token stream), `GET /logs` streams NDJSON, and
//! `GET /generate` streams one JSON array element by element, with no newline (as some LLM
//! APIs do). On hyper, so that `diagnose` is shown against a server that is not one of ours.

use std::{convert::Infallible, net::SocketAddr, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::{Request, Response, body::Frame};
use tokio::time::{Instant, sleep_until};

type Body = BoxBody<Bytes, Infallible>;

/// Binds 127.0.0.1:0 and serves until the runtime ends.
pub async fn start() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let io = hyper_util::rt::TokioIo::new(tcp);
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, hyper::service::service_fn(answer)),
            );
        }
    });
    addr
}

fn reply(status: u16, content_type: &str, body: Body) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("cache-control", "no-cache")
        .header("x-content-type-options", "nosniff")
        .body(body)
        .expect("a response")
}

fn text(status: u16, message: String) -> Response<Body> {
    reply(status, "text/plain; charset=utf-8", Full::new(Bytes::from(message)).boxed())
}

/// `items` produced one per `interval`, on a schedule.
fn paced(items: Vec<String>, interval: Duration) -> Body {
    let start = Instant::now();
    let stream = async_stream::stream! {
        for (i, item) in items.into_iter().enumerate() {
            sleep_until(start + interval * i as u32).await;
            yield Ok::<_, Infallible>(Frame::data(Bytes::from(item)));
        }
    };
    BodyExt::boxed(StreamBody::new(stream))
}

async fn answer(req: Request<hyper::body::Incoming>) -> Result<Response<Body>, Infallible> {
    let (parts, body) = req.into_parts();
    Ok(match (parts.method.as_str(), parts.uri.path()) {
        ("POST", "/chat") => {
            let body = match body.collect().await {
                Ok(body) => body.to_bytes(),
                Err(e) => return Ok(text(400, format!("cannot read the body: {e}\n"))),
            };
            let ask: serde_json::Value = match serde_json::from_slice(&body) {
                Ok(ask) => ask,
                Err(e) => return Ok(text(400, format!("the body is not JSON: {e}\n"))),
            };
            let tokens = ask["tokens"].as_u64().unwrap_or(5).min(1000);
            let interval = Duration::from_millis(ask["interval_ms"].as_u64().unwrap_or(300));
            let mut events: Vec<String> = (1..=tokens)
                .map(|k| {
                    format!("data: {}\n\n", serde_json::json!({ "token": format!("word{k} ") }))
                })
                .collect();
            events.push("data: [DONE]\n\n".into());
            reply(200, "text/event-stream", paced(events, interval))
        }
        ("GET", path @ ("/logs" | "/generate")) => {
            let query = parts.uri.query().unwrap_or("");
            let number = |name: &str, default: u64| {
                form_urlencoded::parse(query.as_bytes())
                    .find(|(n, _)| n == name)
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(default)
            };
            let count = number("count", 5).clamp(1, 1000);
            let interval = Duration::from_millis(number("interval_ms", 300));
            if path == "/logs" {
                let lines = (1..=count)
                    .map(|k| format!("{}\n", serde_json::json!({ "seq": k, "msg": "tick" })))
                    .collect();
                return Ok(reply(200, "application/x-ndjson", paced(lines, interval)));
            }
            // `[{…}`, then `,{…}` for each further element, then `]`.
            let mut elements: Vec<String> = (1..=count)
                .map(|k| {
                    let element = serde_json::json!({ "text": format!("word{k} ") });
                    format!("{}{element}", if k == 1 { "[" } else { "," })
                })
                .collect();
            elements.last_mut().expect("at least one").push(']');
            reply(200, "application/json", paced(elements, interval))
        }
        _ => text(404, "not found\n".into()),
    })
}
