//! The catalogue: one module per concern, each check a small function that asks the client
//! and hands what it saw to the judge ([`judge`]); then running them and the report.

pub(crate) mod judge;
pub mod report;
mod run;

mod bad_input;
mod compression;
mod content;
pub(crate) mod endpoint;
mod failure;
mod faults;
mod head;
mod headers;
mod html;
mod http10;
pub(crate) mod http1_limits;
mod http2;
pub(crate) mod http2_limits;
mod reachability;
mod routing;
mod shutdown;
mod sse;
mod timing;

use std::{future::Future, pin::Pin, time::Duration};

pub use run::{Progress, run, run_observed};

use crate::{
    client::Target,
    outcome::Outcome,
    servers::{Launch, ServerLog, Spawned},
};

/// Lines per stream in the timing checks, unless told otherwise.
pub const DEFAULT_COUNT: u32 = 5;
/// Interval between lines in the timing checks, unless told otherwise.
pub const DEFAULT_INTERVAL_MS: u64 = 300;

/// Where to point the checks, and the stream shape the timing checks ask for.
#[derive(Debug, Clone)]
pub struct Config {
    /// The server's base URL (`http://host:port`, maybe with a path) and transport.
    pub target: Target,
    /// Lines per stream in the timing checks.
    pub count: u32,
    /// Interval between lines in the timing checks.
    pub interval: Duration,
    /// How far an arrival may be from its due time.
    pub tolerance: Duration,
    /// What is known about the server beyond its URL, when the checker started it.
    pub local: Local,
}

/// What the checker knows about a server it started itself. The checks of logging, memory and
/// shutdown need it; against a bare URL they warn that they could not run.
#[derive(Debug, Clone, Default)]
pub struct Local {
    /// To read its resident memory from `/proc`.
    pub pid: Option<u32>,
    /// Its stderr.
    pub log: Option<ServerLog>,
    /// How to start more instances (the shutdown checks signal their own).
    pub launch: Option<Launch>,
}

impl Local {
    /// What the checker knows about `server`, which it started; `launch` starts more like it.
    pub fn of(server: &Spawned, launch: Option<Launch>) -> Self {
        Self { pid: Some(server.pid()), log: Some(server.log.clone()), launch }
    }
}

impl Config {
    /// Defaults for a server you are looking at: 5 lines, 300 ms apart, ±150 ms.
    pub fn new(base: &str) -> Self {
        Self::with_timing(base, DEFAULT_COUNT, Duration::from_millis(DEFAULT_INTERVAL_MS))
    }

    /// `count` lines `interval` apart, with a tolerance of half an interval.
    pub fn with_timing(base: &str, count: u32, interval: Duration) -> Self {
        Self {
            target: Target::new(base),
            count,
            interval,
            tolerance: interval / 2,
            local: Local::default(),
        }
    }

    /// `/stream?count=…&interval_ms=…` for the configured timing.
    pub fn stream_path(&self) -> String {
        stream_path(self.count, self.interval)
    }

    /// How long a well-behaved server needs for the configured stream, plus generous slack:
    /// past this, a check stops waiting.
    pub fn deadline(&self) -> Duration {
        deadline_for(self.count, self.interval, self.tolerance)
    }
}

/// The server a check measures (its CPU time, its memory) and the URL to attack it at.
pub(crate) struct Measured {
    pub(crate) pid: u32,
    pub(crate) target: Target,
    /// Started for this check alone.
    _own: Option<Spawned>,
}

/// An instance of the server for one check alone when the checker can start one, so that
/// nothing but the check's own traffic shows in what it measures, nor its traffic in what the
/// other checks measure (in the matrix, a stream flood beside `backpressure_bounded` made
/// Rocket's memory grow 17.9 MiB in a stall that grows it by 4). Else the server under test,
/// when its pid is known; `Err` says what is missing against a bare URL.
pub(crate) fn measured(cfg: &Config) -> Result<Measured, String> {
    if let Some(launch) = &cfg.local.launch {
        let server =
            launch.spawn(&[]).map_err(|e| format!("cannot start another instance: {e}"))?;
        let target = Target { base: server.base.clone(), transport: cfg.target.transport.clone() };
        return Ok(Measured { pid: server.pid(), target, _own: Some(server) });
    }
    match cfg.local.pid {
        Some(pid) => Ok(Measured { pid, target: cfg.target.clone(), _own: None }),
        None => Err("needs the server's pid (run it from the test suite or `matrix`)".into()),
    }
}

pub(crate) fn stream_path(count: u32, interval: Duration) -> String {
    format!("/stream?count={count}&interval_ms={}", interval.as_millis())
}

pub(crate) fn deadline_for(count: u32, interval: Duration, tolerance: Duration) -> Duration {
    interval * count.saturating_sub(1) + tolerance * 4 + Duration::from_secs(3)
}

type CheckFuture<'a> = Pin<Box<dyn Future<Output = Outcome> + Send + 'a>>;

/// A check's name as a value the compiler knows: use the constants of [`ids`], so that a
/// renamed check is a compile error wherever it is named (the proxy plan, the known limits, the
/// negative controls).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CheckId(&'static str);

impl CheckId {
    pub fn name(self) -> &'static str {
        self.0
    }
}

impl std::fmt::Display for CheckId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// One entry of the catalogue.
#[derive(Clone, Copy)]
pub struct Check {
    pub id: CheckId,
    /// Also the test name: a failure reads like `actix::head_is_prompt`.
    pub name: &'static str,
    /// The module (concern) it belongs to: reachability, headers, timing, …
    pub concern: &'static str,
    run: for<'a> fn(&'a Config) -> CheckFuture<'a>,
}

impl std::fmt::Debug for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}::{}", self.concern, self.name)
    }
}

impl Check {
    pub async fn run(&self, cfg: &Config) -> Outcome {
        (self.run)(cfg).await
    }
}

/// The whole catalogue in one list, in the order a report shows it. Called with a macro name,
/// it hands that macro the list; `catalogue()` and the per-framework test suite ([`suite!`])
/// are both made from it, so they cannot drift apart.
#[doc(hidden)]
#[macro_export]
macro_rules! __with_catalogue {
    ($callback:path; $($args:tt)*) => {
        $callback! { $($args)* [
            reachability::reachable,
            headers::content_type_is_text_plain_utf8,
            headers::cache_control_no_cache,
            headers::x_accel_buffering_no,
            headers::nosniff,
            headers::no_content_length,
            headers::no_etag,
            headers::no_last_modified,
            headers::chunked_on_http11,
            content::body_counts_lines,
            content::classic_defaults,
            timing::first_line_is_prompt,
            timing::no_line_early,
            timing::gaps_hold_interval,
            timing::no_accumulated_drift,
            timing::ends_after_last_line,
            head::head_matches_get_headers,
            head::head_has_no_body,
            head::head_is_prompt,
            html::html_content_type,
            html::html_body_and_padding,
            html::html_streams_div_by_div,
            sse::events_content_type,
            sse::events_ids_and_data,
            sse::events_retry_hint,
            sse::events_stream_event_by_event,
            sse::events_resume_after_last_event_id,
            sse::events_bad_last_event_id,
            sse::events_keepalive,
            compression::streams_with_gzip,
            compression::streams_with_br,
            compression::streams_with_zstd,
            compression::streams_with_deflate,
            compression::streams_with_identity,
            compression::streams_without_accept_encoding,
            compression::ordinary_responses_negotiated,
            failure::failed_stream_is_cut,
            failure::failed_stream_is_cut_compressed,
            failure::events_failure_resumed,
            http10::http10_close_delimited,
            http10::http10_streams,
            http10::http10_compressed_close_delimited,
            http10::http10_failed_stream_closes,
            http2::h2_headers_first,
            http2::h2_item_per_data_frame,
            http2::h2_100_streams_one_connection,
            http2::h2_reset_stops_only_its_stream,
            http2::h2_failed_stream_spares_others,
            http2::h2_shutdown_goaway,
            http2_limits::h2_rapid_reset_goaway,
            http2_limits::h2_continuation_flood_goaway,
            http2_limits::h2_empty_frames_goaway,
            http2_limits::h2_stream_flood_bounded,
            bad_input::bad_input_rejected,
            bad_input::bad_input_explained,
            bad_input::streams_after_bad_input,
            bad_input::malformed_requests_refused,
            http1_limits::pipelining_bounded,
            http1_limits::request_smuggling_refused,
            faults::disconnect_stops_generator,
            faults::backpressure_bounded,
            faults::load_200_streams,
            shutdown::shutdown_drains_streams,
            shutdown::shutdown_bounded_by_grace,
            routing::index_names_endpoints,
            routing::unknown_path_404,
            routing::other_methods_405_with_allow,
        ] }
    };
}

macro_rules! define_catalogue {
    ([$($concern:ident :: $check:ident),* $(,)?]) => {
        /// Every check's id, named as the check.
        #[allow(non_upper_case_globals)]
        pub mod ids {
            use super::CheckId;
            $(pub const $check: CheckId = CheckId(stringify!($check));)*
        }

        /// Every check, reachability first.
        pub fn catalogue() -> Vec<Check> {
            vec![$(Check {
                id: ids::$check,
                name: stringify!($check),
                concern: stringify!($concern),
                run: |cfg| Box::pin($concern::$check(cfg)),
            }),*]
        }
    };
}
__with_catalogue!(define_catalogue;);

/// Looks a check up by name (as a user types it).
pub fn check(name: &str) -> Option<Check> {
    catalogue().into_iter().find(|c| c.name == name)
}

/// The catalogue entry of `id`.
pub fn entry(id: CheckId) -> Check {
    catalogue().into_iter().find(|c| c.id == id).expect("every id is in the catalogue")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_requests_keep_the_base_path() {
        let cfg = Config::new("http://127.0.0.1:8080/behind/proxy/");
        assert_eq!(cfg.target.host_port(), "127.0.0.1:8080");
        assert_eq!(cfg.target.path("/stream"), "/behind/proxy/stream");
        assert_eq!(Config::new("http://[::1]:3000").target.path("/stream"), "/stream");
    }
}
