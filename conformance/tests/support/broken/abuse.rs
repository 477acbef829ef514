//! The faults of a server under abuse over HTTP/1.1: one that polls a connection in a loop
//! instead of waiting for it, and one that frames a request by its first Content-Length.

use std::io::ErrorKind;

use tokio::{io::AsyncWriteExt, net::TcpStream};

use super::Answer;

/// A short answer to every request, kept alive.
const OK: &[u8] =
    b"HTTP/1.1 200 OK\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 2\r\n\r\n1\n";

/// Answers pipelined requests by trying the socket over and over (read, write, yield) instead
/// of waiting for it to be readable or writable: a core busy for as long as the client holds
/// the connection without reading.
pub(super) async fn spin(tcp: TcpStream) -> std::io::Result<Answer> {
    let mut buf = vec![0u8; 64 * 1024];
    let (mut owed, mut pending, mut tail) = (0usize, Vec::new(), Vec::new());
    loop {
        match tcp.try_read(&mut buf) {
            Ok(0) => return Ok(Answer::Ok),
            Ok(n) => {
                // Requests end with an empty line; one may straddle two reads.
                tail.extend_from_slice(&buf[..n]);
                owed += tail.windows(4).filter(|w| w == b"\r\n\r\n").count();
                let keep = tail.len().saturating_sub(3);
                tail.drain(..keep);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        while owed > 0 && pending.len() < 64 * 1024 {
            pending.extend_from_slice(OK);
            owed -= 1;
        }
        match tcp.try_write(&pending) {
            Ok(n) => drop(pending.drain(..n)),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        tokio::task::yield_now().await;
    }
}

/// Reads requests one after another on a kept-alive connection, each body as long as its
/// first Content-Length says (Transfer-Encoding and any other length ignored), and answers
/// each: what follows the bytes it counted is read as the next request.
pub(super) async fn by_first_length(mut tcp: TcpStream) -> std::io::Result<Answer> {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            let n = tokio::io::AsyncReadExt::read(&mut tcp, &mut chunk).await?;
            if n == 0 {
                return Ok(Answer::Ok);
            }
            buf.extend_from_slice(&chunk[..n]);
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        let length = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length:"))
            .and_then(|value| value.trim().parse::<usize>().ok())
            .unwrap_or(0);
        let found = head.lines().next().is_some_and(|line| line.contains(" /stream"));
        let answer: &[u8] = match found {
            true => OK,
            false => b"HTTP/1.1 404 Not Found\r\ncontent-length: 10\r\n\r\nnot found\n",
        };
        tcp.write_all(answer).await?;
        buf.drain(..(end + 4 + length).min(buf.len()));
    }
}
