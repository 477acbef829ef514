//! `conformance abuse`: the limits per connection measured on the floor and the four examples,
//! release builds, a fresh instance for every attack: a stream flood on one HTTP/2 connection
//! (what the server advertised, answered and refused, and the memory it grew by), rapid reset,
//! the CONTINUATION flood and empty DATA frames (what ended them, after how much), and a
//! pipelining client that never reads (the CPU it cost). The checks `http2_limits` and `http1_limits` judge the same
//! attacks at the suite's size; this measures them at the size a report quotes.

use std::path::Path;

use crate::{
    checks::{
        Config,
        http1_limits::{Pipelined, pipeline},
        http2_limits::{Flooded, continuation_flood, empty_frame_flood, flood, rapid_reset},
    },
    harness::transports::{Certificates, Serving},
};

use super::{FLOOR, Framework};

#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Frameworks to measure; the floor always runs.
    #[arg(long, value_enum, value_delimiter = ',', default_values = ["axum", "actix", "rocket", "warp"])]
    pub frameworks: Vec<Framework>,
    /// Streams the flood opens on one HTTP/2 connection, with a zero window.
    #[arg(long, default_value_t = 5_100, value_parser = clap::value_parser!(u32).range(100..=100_000))]
    pub streams: u32,
    /// Requests the pipelining client writes without reading, 1 000 at a time.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u32).range(1_000..=1_000_000))]
    pub pipelined: u32,
    /// (HEADERS, RST_STREAM) pairs the rapid reset sends at most.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u32).range(1_000..=1_000_000))]
    pub resets: u32,
}

/// The markdown tables: HTTP/2 over h2c and h2 (the floor speaks h2 over TLS only), then
/// pipelining over plain HTTP/1.1.
pub async fn run(options: &Options) -> Result<String, String> {
    let programs = super::build(&options.frameworks).await?;
    let tls = Certificates::new("abuse")?;
    let mut h2 = format!(
        "| server | over | MAX_CONCURRENT_STREAMS | {} streams on one connection | memory | \
         rapid reset | CONTINUATION flood | empty DATA frames |\n|---|---|---|---|---|---|---|---|\n",
        options.streams
    );
    let mut h1 = format!(
        "| server | {} pipelined requests, never read | CPU, whole attack | CPU, 2 s hold | \
         memory |\n|---|---|---|---|---|\n",
        options.pipelined
    );
    for (name, program) in &programs {
        for serving in [Serving::H2c, Serving::H2] {
            if name == FLOOR && serving == Serving::H2c {
                continue;
            }
            eprintln!("{name} over {}…", serving.name());
            h2.push_str(&http2_row(name, program, serving, &tls, options).await?);
        }
        eprintln!("{name}: pipelining…");
        h1.push_str(&http1_row(name, program, &tls, options).await?);
    }
    Ok(format!("{h2}\n{h1}"))
}

/// A config for a fresh instance of `program` over `serving`, with its pid.
async fn fresh(
    program: &Path, serving: Serving, tls: &Certificates,
) -> Result<(crate::servers::Spawned, Config), String> {
    let (spawned, _) = super::start(program, serving, Some(tls)).await?;
    let mut cfg = Config::new(&spawned.base);
    cfg.target.transport = serving.transport(tls);
    cfg.local.pid = Some(spawned.pid());
    Ok((spawned, cfg))
}

async fn http2_row(
    name: &str, program: &Path, serving: Serving, tls: &Certificates, options: &Options,
) -> Result<String, String> {
    let path = crate::checks::stream_path(10, std::time::Duration::from_millis(200));
    let (server, cfg) = fresh(program, serving, tls).await?;
    let Flooded { limit, heads, refused, ended, grown_kib } =
        flood(&cfg.target, cfg.local.pid, options.streams).await?;
    super::stop(server).await;
    let (server, cfg) = fresh(program, serving, tls).await?;
    let (reset, pairs) = rapid_reset(&cfg.target, &path, options.resets).await?;
    super::stop(server).await;
    let (server, cfg) = fresh(program, serving, tls).await?;
    let (continued, frames) = continuation_flood(&cfg.target, &path, 10_000).await?;
    super::stop(server).await;
    let (server, cfg) = fresh(program, serving, tls).await?;
    let long = crate::checks::stream_path(1_000_000, std::time::Duration::from_secs(1));
    let (emptied, empties) = empty_frame_flood(&cfg.target, &long, 100_000).await?;
    super::stop(server).await;
    let limit = limit.map_or("none".into(), |limit| limit.to_string());
    let ended = ended.map_or(String::new(), |answer| format!(", then {answer}"));
    let memory = grown_kib.map_or("?".into(), |kib| format!("+{:.1} MiB", kib as f64 / 1024.0));
    Ok(format!(
        "| {name} | {} | {limit} | {heads} answered, {refused} refused{ended} | {memory} | \
         {reset} after {pairs} pairs | {continued} after {frames} frames | {emptied} after \
         {empties} frames |\n",
        serving.name()
    ))
}

async fn http1_row(
    name: &str, program: &Path, tls: &Certificates, options: &Options,
) -> Result<String, String> {
    let (server, cfg) = fresh(program, Serving::Http1, tls).await?;
    let Pipelined { sent, ended, hold_cpu_ms, total_cpu_ms, grown_kib } =
        pipeline(server.pid(), &cfg.target, options.pipelined).await?;
    super::stop(server).await;
    let written = match sent == options.pipelined {
        true => ended,
        false => format!("{sent} written, {ended}"),
    };
    Ok(format!(
        "| {name} | {written} | {total_cpu_ms:.0} ms | {hold_cpu_ms:.0} ms | \
         +{:.1} MiB |\n",
        grown_kib as f64 / 1024.0
    ))
}
