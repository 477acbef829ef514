//! A deliberately broken counting-stream server: correct with `Fault::None`, and with one fault
//! switched on, wrong in exactly the way one conformance check must catch.
//!
//! It writes HTTP by hand on purpose: the faults (chunked to HTTP/1.0, a body after HEAD, a
//! Content-Length on a stream, …) are things a good HTTP library will not let you do.

use std::{net::SocketAddr, time::Duration};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    time::{Instant, sleep, sleep_until},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Fault {
    /// Follows the contract.
    None,
    /// Nothing listens on the address.
    NotListening,
    /// Collects the whole body, then sends it.
    Buffered,
    /// Sets Content-Length (and streams the bytes without chunking).
    ContentLength,
    Etag,
    LastModified,
    NoCacheControl,
    NoAccelBuffering,
    NoNosniff,
    WrongContentType,
    /// Close-delimited instead of chunked on HTTP/1.1.
    NotChunked,
    /// Counts from 0.
    WrongContent,
    /// Starts the whole schedule one interval late.
    FirstLineLate,
    /// Lines come 0.6 intervals apart.
    FastSchedule,
    /// Every even line is held back and sent with the next one.
    Pairs,
    /// Sleeps interval + a third after each line instead of until a deadline.
    Drift,
    /// Keeps the body open one interval after the last line.
    Linger,
    /// Sends the body on HEAD too.
    HeadBody,
    /// Runs the generator for HEAD and answers when it is done.
    HeadRunsGenerator,
    /// HEAD leaves out the caching headers.
    HeadMissingHeaders,
    /// Sends chunked encoding to HTTP/1.0 clients.
    ChunkedToHttp10,
    /// Buffers the body for HTTP/1.0 clients.
    BufferedForHttp10,
    /// Ignores bad parameters and streams the defaults.
    AcceptsBadInput,
    /// Answers 400 with an empty body.
    SilentBadInput,
    /// Answers 400 naming the parameter and value, but not the allowed range.
    VagueBadInput,
    /// Stops accepting connections after the first bad request.
    DiesAfterBadInput,
    /// Serves the stream on every path.
    NoNotFound,
    /// 405 without an Allow header.
    NoAllow,
    /// 404 on `/`.
    NoIndex,
    /// Defaults to 3 lines.
    WrongDefaults,
}

/// Binds 127.0.0.1:0 and serves with `fault` until the runtime ends.
pub async fn start(fault: Fault) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    if fault == Fault::NotListening {
        return addr; // the listener is dropped here: connections are refused
    }
    tokio::spawn(serve(listener, fault));
    addr
}

pub async fn serve(listener: TcpListener, fault: Fault) {
    if fault == Fault::NotListening {
        return;
    }
    let (died_tx, mut died) = tokio::sync::mpsc::channel::<()>(1);
    loop {
        let (tcp, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(_) => continue,
            },
            _ = died.recv() => return, // drops the listener: connections are refused
        };
        let died = died_tx.clone();
        tokio::spawn(async move {
            if let Ok(Answer::BadInput) = handle(tcp, fault).await
                && fault == Fault::DiesAfterBadInput
            {
                let _ = died.send(()).await;
            }
        });
    }
}

enum Answer {
    Ok,
    BadInput,
}

struct Request {
    method: String,
    path: String,
    query: String,
    http10: bool,
}

async fn read_request(tcp: &mut TcpStream) -> std::io::Result<Request> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tcp.read(&mut chunk).await?;
        if n == 0 || buf.len() > 64 * 1024 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    req.parse(&buf).map_err(std::io::Error::other)?;
    let target = req.path.unwrap_or("/");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    Ok(Request {
        method: req.method.unwrap_or("GET").to_owned(),
        path: path.to_owned(),
        query: query.to_owned(),
        http10: req.version == Some(0),
    })
}

fn parse(query: &str, fault: Fault) -> Result<(u32, Duration), String> {
    let default_count = if fault == Fault::WrongDefaults { 3 } else { 10 };
    let (mut count, mut interval) = (None, None);
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        let (slot, min, max) = match &*name {
            "count" => (&mut count, 1, 1_000_000),
            "interval_ms" => (&mut interval, 0, 60_000),
            _ => return Err(format!("unknown parameter {name:?}")),
        };
        if slot
            .replace(value.parse::<u32>().unwrap_or(u32::MAX))
            .is_some()
        {
            return Err(format!("{name} given twice: give it once, {min}..={max}"));
        }
        if !(min..=max).contains(&slot.unwrap_or_default()) {
            return Err(if fault == Fault::VagueBadInput {
                format!("bad {name}: {value:?}")
            } else {
                format!("invalid {name}: expected {min}..={max}, got {value:?}")
            });
        }
    }
    Ok((
        count.unwrap_or(default_count),
        Duration::from_millis(interval.unwrap_or(1000).into()),
    ))
}

async fn handle(mut tcp: TcpStream, fault: Fault) -> std::io::Result<Answer> {
    tcp.set_nodelay(true)?;
    let req = read_request(&mut tcp).await?;
    let stream_path = req.path == "/stream" || fault == Fault::NoNotFound;
    match (req.path.as_str(), req.method.as_str()) {
        ("/", "GET") if fault != Fault::NoIndex => {
            let body = "GET /stream\ncurl -N http://localhost/stream\n";
            simple(&mut tcp, "200 OK", &[], body).await?;
        }
        _ if !stream_path => simple(&mut tcp, "404 Not Found", &[], "not found\n").await?,
        (_, "GET" | "HEAD") => return stream(&mut tcp, &req, fault).await,
        _ => {
            let allow: &[&str] = if fault == Fault::NoAllow {
                &[]
            } else {
                &["allow: GET, HEAD"]
            };
            simple(
                &mut tcp,
                "405 Method Not Allowed",
                allow,
                "method not allowed\n",
            )
            .await?;
        }
    }
    Ok(Answer::Ok)
}

async fn simple(
    tcp: &mut TcpStream,
    status: &str,
    extra: &[&str],
    body: &str,
) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for header in extra {
        head.push_str(header);
        head.push_str("\r\n");
    }
    tcp.write_all(format!("{head}\r\n{body}").as_bytes()).await
}

async fn stream(tcp: &mut TcpStream, req: &Request, fault: Fault) -> std::io::Result<Answer> {
    let (count, interval) = match parse(&req.query, fault) {
        Ok(params) => params,
        Err(_) if fault == Fault::AcceptsBadInput => (10, Duration::from_secs(1)),
        Err(message) => {
            let body = if fault == Fault::SilentBadInput {
                String::new()
            } else {
                message + "\n"
            };
            simple(tcp, "400 Bad Request", &[], &body).await?;
            return Ok(Answer::BadInput);
        }
    };
    let head_request = req.method == "HEAD";
    let body: String = (1..=count)
        .map(|k| {
            if fault == Fault::WrongContent {
                k - 1
            } else {
                k
            }
        })
        .map(|k| format!("{k}\n"))
        .collect();
    let lines: Vec<&str> = body.split_inclusive('\n').collect();

    let chunked = match fault {
        Fault::ContentLength | Fault::NotChunked => false,
        Fault::ChunkedToHttp10 => true,
        _ => !req.http10,
    };
    let mut head = String::from("HTTP/1.1 200 OK\r\n");
    let mut header = |h: &str| {
        head.push_str(h);
        head.push_str("\r\n");
    };
    header(if fault == Fault::WrongContentType {
        "content-type: application/octet-stream"
    } else {
        "content-type: text/plain; charset=utf-8"
    });
    let head_faulty = head_request && fault == Fault::HeadMissingHeaders;
    if fault != Fault::NoCacheControl && !head_faulty {
        header("cache-control: no-cache");
    }
    if fault != Fault::NoAccelBuffering && !head_faulty {
        header("x-accel-buffering: no");
    }
    if fault != Fault::NoNosniff {
        header("x-content-type-options: nosniff");
    }
    match fault {
        Fault::Etag => header("etag: \"abc\""),
        Fault::LastModified => header("last-modified: Tue, 24 Nov 2026 10:00:00 GMT"),
        Fault::ContentLength => header(&format!("content-length: {}", body.len())),
        _ => {}
    }
    if chunked {
        header("transfer-encoding: chunked");
    }
    header("connection: close");
    head.push_str("\r\n");

    let start = Instant::now();
    let due = |k: usize| start + interval * k as u32;
    if head_request && fault == Fault::HeadRunsGenerator {
        sleep_until(due(lines.len() - 1)).await;
    }
    tcp.write_all(head.as_bytes()).await?;
    if head_request && fault != Fault::HeadBody {
        return Ok(Answer::Ok);
    }

    let frame = |text: &str| {
        if chunked {
            format!("{:x}\r\n{text}\r\n", text.len())
        } else {
            text.to_owned()
        }
    };
    let buffered = fault == Fault::Buffered || (req.http10 && fault == Fault::BufferedForHttp10);
    let mut pending = String::new();
    for (i, line) in lines.iter().enumerate() {
        match fault {
            Fault::FirstLineLate => sleep_until(due(i + 1)).await,
            Fault::FastSchedule => sleep_until(start + interval * 6 * i as u32 / 10).await,
            Fault::Drift if i > 0 => sleep(interval + interval / 3).await,
            Fault::Drift => {}
            _ => sleep_until(due(i)).await,
        }
        pending.push_str(line);
        let hold = buffered || (fault == Fault::Pairs && i % 2 == 1 && i + 1 < lines.len());
        if !hold {
            tcp.write_all(frame(&pending).as_bytes()).await?;
            pending.clear();
        }
    }
    if !pending.is_empty() {
        tcp.write_all(frame(&pending).as_bytes()).await?;
    }
    if fault == Fault::Linger {
        sleep(interval).await;
    }
    if chunked {
        tcp.write_all(b"0\r\n\r\n").await?;
    }
    tcp.shutdown().await?;
    Ok(Answer::Ok)
}
