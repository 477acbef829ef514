//! What `conformance bench` takes: the frameworks, extra servers, the scenarios' sizes, the
//! transports and the source addresses.

use std::{net::Ipv4Addr, path::PathBuf};

use serde::Serialize;

use super::system;
use crate::harness::transports::Serving;

/// The servers besides the floor, and the packages whose binaries they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Framework {
    Axum,
    Actix,
    Rocket,
    Warp,
}

impl Framework {
    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Axum => "axum",
            Self::Actix => "actix",
            Self::Rocket => "rocket",
            Self::Warp => "warp",
        }
    }

    pub(super) fn package(self) -> String {
        format!("examples-{}", self.name())
    }
}

/// The floor's name in every table.
pub const FLOOR: &str = "floor";

#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct Options {
    /// Frameworks to measure; the floor always runs.
    #[arg(long, value_enum, value_delimiter = ',', default_values = ["axum", "actix", "rocket", "warp"])]
    pub frameworks: Vec<Framework>,
    /// Simultaneous slow streams, one scenario per number. 50000 and more (e.g.
    /// `--concurrency 50000`) is the many-streams scenario, with targets of its own; past one
    /// address's ephemeral ports the client spreads over 127.0.0.2, 127.0.0.3, … (see
    /// --source-addresses).
    #[arg(long, value_delimiter = ',', default_values = ["1000", "10000"],
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub concurrency: Vec<u32>,
    /// Lines per slow stream.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(2..=1000))]
    pub lines: u32,
    /// Interval between the lines of a slow stream, in ms.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(100..=60_000))]
    pub line_interval_ms: u64,
    /// Connections being set up at once in the slow-stream scenarios. Beyond a server's listen
    /// backlog, some wait for a SYN retry (1 s).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub connecting: u32,
    /// Lines per fast stream (`interval_ms=0`).
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub fast_lines: u32,
    /// Simultaneous fast streams, one scenario per number.
    #[arg(long, value_delimiter = ',', default_values = ["1", "16"],
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub fast_streams: Vec<u32>,
    /// New connections in the handshake scenario, each answering one short request and then
    /// held open (0 leaves the scenario out).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(0..=50_000))]
    pub handshakes: u32,
    /// Transports to run every scenario over: http1 (plain HTTP/1.1), https (HTTP/1.1 over TLS,
    /// a connection per stream), h2 (HTTP/2 over TLS).
    #[arg(long, value_enum, value_delimiter = ',', default_values = ["http1"])]
    pub transports: Vec<Serving>,
    /// TLS connections that the slow streams share over h2.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub h2_connections: u32,
    /// The reconnect storm: this many EventSources through nginx in front of three instances
    /// of each framework, every instance restarted in turn (0 leaves it out; it needs nginx).
    /// Once per framework, after the other scenarios.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=8000))]
    pub storm: u32,
    /// Many streams the way users run them: this many slow streams through nginx in front of
    /// three instances of each framework, the load client spread over processes of 17 000
    /// streams, each from a loopback address of its own (0 leaves it out; it needs nginx).
    /// Once per framework, after the other scenarios.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=100_000))]
    pub many: u32,
    /// Source addresses of the load client's connections, taken in turn: IPv4 loopback
    /// addresses such as 127.0.0.2,127.0.0.3. By default 127.0.0.1, and as many of 127.0.0.2,
    /// 127.0.0.3, … as the connections need when one address has too few ephemeral ports
    /// (net.ipv4.ip_local_port_range, less 1000 left to the machine).
    #[arg(long, value_delimiter = ',', value_parser = parse_source_address)]
    pub source_addresses: Vec<Ipv4Addr>,
    /// Also measure your own server (repeatable): PROGRAM must take `--addr 127.0.0.1:0`,
    /// print `listening on http://IP:PORT` first on stdout, and serve the same `/stream`.
    #[arg(long = "server", value_name = "NAME=PROGRAM", value_parser = parse_server)]
    pub servers: Vec<(String, PathBuf)>,
    /// Runs of every scenario; each figure is the median of the runs.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub runs: u32,
    /// Compare the run with an earlier one (its bench.json) and exit with status 3 if a figure
    /// got worse beyond the run-to-run spread: memory per stream, first-line p99, a fast
    /// stream's lines/s and CPU per line.
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,
    /// Where to write bench.json, summary.md and the charts.
    #[arg(long, default_value = "target/bench")]
    pub out: PathBuf,
}

fn parse_server(value: &str) -> Result<(String, PathBuf), String> {
    match value.split_once('=') {
        Some((name, program)) if !name.is_empty() && !program.is_empty() && name != FLOOR => {
            Ok((name.to_owned(), PathBuf::from(program)))
        }
        _ => Err(format!("expected NAME=PROGRAM with a name other than {FLOOR:?}, got {value:?}")),
    }
}

fn parse_source_address(value: &str) -> Result<Ipv4Addr, String> {
    match value.parse::<Ipv4Addr>() {
        Ok(ip) if ip.is_loopback() => Ok(ip),
        Ok(ip) => Err(format!(
            "{ip} is not a loopback address: the servers listen on 127.0.0.1, so the load \
             client connects from 127.0.0.0/8 (127.0.0.2, 127.0.0.3, …)"
        )),
        Err(_) => {
            Err(format!("expected an IPv4 loopback address such as 127.0.0.2, got {value:?}"))
        }
    }
}

/// Options that cannot make a run: a value listed twice, h2c, two servers of one name.
pub(super) fn refuse_bad_options(options: &Options) -> Result<(), String> {
    for (flag, twice) in [
        ("--concurrency", twice(&options.concurrency).map(u32::to_string)),
        ("--fast-streams", twice(&options.fast_streams).map(u32::to_string)),
        ("--transports", twice(&options.transports).map(|t| t.name().to_owned())),
        ("--source-addresses", twice(&options.source_addresses).map(Ipv4Addr::to_string)),
    ] {
        if let Some(twice) = twice {
            return Err(format!("{flag} lists {twice} twice"));
        }
    }
    if options.transports.contains(&Serving::H2c) {
        return Err("--transports: h2c is not benchmarked (the floor serves no h2c); use \
                    http1, https or h2"
            .into());
    }
    let names = options.frameworks.iter().map(|f| f.name());
    let mut names: Vec<&str> =
        names.chain(options.servers.iter().map(|(n, _)| n.as_str())).collect();
    names.sort_unstable();
    if let Some(pair) = names.windows(2).find(|pair| pair[0] == pair[1]) {
        return Err(format!("two servers are named {:?}; give --server another name", pair[0]));
    }
    Ok(())
}

/// Where the load client's connections come from: --source-addresses, or as many loopback
/// addresses as the scenario with the most connections needs.
pub(super) fn source_addresses(options: &Options) -> Result<Vec<Ipv4Addr>, String> {
    // Open at once: a connection per slow stream over HTTP/1.1, shared over h2; one for every
    // fast stream and every new connection.
    let slow = options.transports.iter().flat_map(|&t| {
        options.concurrency.iter().map(move |&n| match t {
            Serving::H2 => n.min(options.h2_connections),
            _ => n,
        })
    });
    let connections = slow
        .chain(options.fast_streams.iter().copied())
        .chain([options.handshakes])
        .max()
        .unwrap_or(0);
    let given = &options.source_addresses;
    match system::ephemeral_ports().map(system::ports_per_address) {
        None if given.is_empty() => Ok(vec![Ipv4Addr::LOCALHOST]),
        // No port range to read: the addresses as given, unchecked.
        None => Ok(given.clone()),
        Some(per_address) if given.is_empty() => system::source_addresses(connections, per_address),
        Some(per_address) => {
            system::check_source_addresses(given, connections, per_address)?;
            Ok(given.clone())
        }
    }
}

/// The first value that `values` lists more than once.
fn twice<T: PartialEq>(values: &[T]) -> Option<&T> {
    values.iter().enumerate().find(|(i, v)| values[..*i].contains(v)).map(|(_, v)| v)
}
