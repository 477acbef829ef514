//! An EventSource as browsers run one (the HTML standard's server-sent events): it reads
//! `text/event-stream`, remembers the last `id:` and the last `retry:`, and when the connection
//! ends or breaks it waits `retry` and asks again with `Last-Event-ID`. It stops for good on
//! `204 No Content`, and on any other answer that is not a 200 event stream (a browser "fails
//! the connection" then). This is the client that must come through a failover.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::sync::Semaphore;

use super::{Ask, Exchange, Framing, Target};

/// How the session reads and reconnects.
#[derive(Debug, Clone)]
pub struct Options {
    /// Until the first `retry:` arrives. Browsers wait about 3 s.
    pub initial_retry: Duration,
    /// The whole session gives up after this.
    pub limit: Duration,
    /// A response header that names who answered (a balancer's upstream address), kept per
    /// connection.
    pub served_by: Option<String>,
    /// A permit is held while the first connection is being opened (see [`Ask::opening`]):
    /// bounds how many clients connect at once at the start. Reconnections do not wait, as a
    /// browser's do not.
    pub opening: Option<Arc<Semaphore>>,
    /// Counts the events received, for whoever waits on the session's progress.
    pub received: Arc<AtomicUsize>,
}

impl Options {
    pub fn new(limit: Duration) -> Self {
        Self {
            initial_retry: Duration::from_secs(3),
            limit,
            served_by: None,
            opening: None,
            received: Arc::default(),
        }
    }
}

/// One event with an id, as dispatched.
#[derive(Debug, Clone)]
pub struct Received {
    pub id: String,
    pub data: String,
    pub at: Instant,
    /// Index into [`Session::connections`].
    pub connection: usize,
}

/// One request of the session and how it went.
#[derive(Debug, Clone)]
pub struct Connection {
    pub started: Instant,
    /// When its body ended or broke off (or the request failed).
    pub ended: Instant,
    /// The `Last-Event-ID` it was sent with.
    pub last_event_id: Option<String>,
    pub status: Option<u16>,
    /// The [`Options::served_by`] header's value.
    pub served_by: Option<String>,
    /// Why it ended: "ended" (a complete body), or the error.
    pub end: String,
    pub events: usize,
}

/// How the session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Closed {
    /// `204 No Content`: the server says nothing is left.
    NoContent,
    /// An answer that is not a 200 event stream: the session is over, as in a browser.
    Failed(String),
    /// [`Options::limit`] passed.
    GaveUp,
}

/// Everything one EventSource received, and every connection it made.
#[derive(Debug, Clone)]
pub struct Session {
    pub started: Instant,
    pub events: Vec<Received>,
    pub connections: Vec<Connection>,
    pub closed: Closed,
    /// The last `retry:` hint, in ms.
    pub retry_ms: Option<u64>,
}

impl Session {
    /// For every connection that delivered events after an earlier one ended: ms from that
    /// end (the cut) to its first event, and whether it was served by someone else.
    pub fn resumes(&self) -> Vec<(f64, bool)> {
        let mut resumes = Vec::new();
        let mut cut: Option<&Connection> = None;
        for (i, connection) in self.connections.iter().enumerate() {
            let first = self.events.iter().find(|e| e.connection == i);
            if let (Some(previous), Some(first)) = (cut, first) {
                let ms = first.at.duration_since(previous.ended).as_secs_f64() * 1e3;
                resumes.push((ms, previous.served_by != connection.served_by));
            }
            if connection.events > 0 {
                cut = Some(connection);
            }
        }
        resumes
    }
}

/// Opens `path` on `target` as an EventSource and follows it until it closes.
pub async fn follow(target: &Target, path: &str, options: &Options) -> Session {
    let started = Instant::now();
    let end = started + options.limit;
    let mut session = Session {
        started,
        events: Vec::new(),
        connections: Vec::new(),
        closed: Closed::GaveUp,
        retry_ms: None,
    };
    let mut last_id: Option<String> = None;
    while Instant::now() < end {
        let ask = request(path, options, last_id.as_deref(), session.connections.is_empty());
        let mut connection = Connection {
            started: Instant::now(),
            ended: Instant::now(),
            last_event_id: last_id.clone(),
            status: None,
            served_by: None,
            end: String::new(),
            events: 0,
        };
        let started = tokio::time::timeout_at(end.into(), Exchange::start(target, ask)).await;
        let Ok(started) = started else {
            return session;
        };
        match started {
            Err(fetched) => {
                connection.ended = Instant::now();
                connection.status = fetched.status();
                connection.end = fetched.error.clone().unwrap_or_else(|| "no response".into());
                let answered = fetched.status().is_some();
                session.connections.push(connection);
                if answered {
                    // An answer with a status but no readable body is not a network error.
                    let end = session.connections.last().map(|c| c.end.clone());
                    session.closed = Closed::Failed(end.unwrap_or_default());
                    return session;
                }
            }
            Ok(mut exchange) => {
                if let Some(closed) = head(&exchange, &mut connection, options) {
                    session.connections.push(connection);
                    session.closed = closed;
                    return session;
                }
                read_events(
                    &mut exchange,
                    &mut session,
                    &mut connection,
                    end,
                    options,
                    &mut last_id,
                )
                .await;
                connection.ended = Instant::now();
                connection.end = exchange.out.error.clone().unwrap_or_else(|| "ended".into());
                session.connections.push(connection);
            }
        }
        let retry = session.retry_ms.map_or(options.initial_retry, Duration::from_millis);
        tokio::time::sleep_until((Instant::now() + retry).min(end).into()).await;
    }
    session
}

/// The request an EventSource makes: with the last id it saw, and through the opening gate
/// the first time.
fn request(path: &str, options: &Options, last_id: Option<&str>, first: bool) -> Ask {
    // The same deadline for every request: the client behind `Exchange` is made once per
    // deadline, and making one loads the system's roots. With the time left instead, a
    // storm of 1 000 reconnections built 1 000 clients and took 1.5 s longer to resume.
    let mut ask = Ask::get(path, options.limit)
        .framing(Framing::Events)
        .header("accept", "text/event-stream")
        .header("cache-control", "no-cache");
    if let Some(id) = last_id {
        ask = ask.header("last-event-id", id.to_owned());
    }
    if let Some(gate) = options.opening.as_ref().filter(|_| first) {
        ask = ask.opening(gate.clone());
    }
    ask
}

/// Reads the response head into `connection`; how the session ends if it ends here: 204, or
/// anything but a 200 event stream.
fn head(exchange: &Exchange, connection: &mut Connection, options: &Options) -> Option<Closed> {
    let status = exchange.out.status();
    connection.status = status;
    connection.served_by =
        options.served_by.as_deref().and_then(|name| exchange.out.header(name)).map(str::to_owned);
    if status == Some(204) {
        connection.end = "204 No Content".into();
        return Some(Closed::NoContent);
    }
    let event_stream = super::is_event_stream(exchange.out.header("content-type"));
    if status != Some(200) || !event_stream {
        connection.end = format!(
            "answered {} {:?}, not a 200 event stream",
            status.unwrap_or(0),
            exchange.out.header("content-type").unwrap_or("")
        );
        return Some(Closed::Failed(connection.end.clone()));
    }
    None
}

/// The events of one connection, as they come, until it ends or `end` comes.
async fn read_events(
    exchange: &mut Exchange, session: &mut Session, connection: &mut Connection, end: Instant,
    options: &Options, last_id: &mut Option<String>,
) {
    let index = session.connections.len();
    let sent = exchange.sent();
    let mut seen = 0;
    loop {
        let more = tokio::time::timeout_at(end.into(), exchange.next()).await.unwrap_or(false);
        for message in &exchange.out.events[seen..] {
            if let Some(retry) = message.retry.as_deref().and_then(|r| r.parse().ok()) {
                session.retry_ms = Some(retry);
            }
            if let Some(id) = &message.id {
                *last_id = Some(id.clone());
            }
            if let (Some(id), Some(data)) = (&message.id, &message.data) {
                let at = sent + Duration::from_secs_f64(message.at_ms / 1e3);
                session.events.push(Received {
                    id: id.clone(),
                    data: data.clone(),
                    at,
                    connection: index,
                });
                connection.events += 1;
                options.received.fetch_add(1, Ordering::Relaxed);
            }
        }
        seen = exchange.out.events.len();
        if !more {
            break;
        }
    }
}
