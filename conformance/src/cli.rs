//! The command line: its flags, and the mistakes refused before anything runs. `main.rs` maps
//! what parses onto the layers; the docs test parses every command the README and the book
//! show with [`parse`], so that a renamed flag cannot leave them stale.

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, parser::ValueSource};

use crate::harness::transports::Serving;

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Checks that an HTTP endpoint really streams (see CONTRACT.md)",
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Base URL of the server to check, e.g. http://127.0.0.1:3000 or https://localhost:8443
    #[arg(long, required = true)]
    pub url: Option<String>,
    /// How to reach `--url` (`matrix` runs every transport itself).
    #[command(flatten, next_help_heading = "Transport of --url")]
    pub transport: crate::client::TransportArgs,
    /// Print JSON instead of text.
    #[arg(global = true, long)]
    pub json: bool,
    #[command(flatten)]
    pub options: Options,
}

#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Options of the checks (--url and matrix; refused elsewhere)")]
pub struct Options {
    /// Lines per stream in the timing checks.
    #[arg(global = true, long, default_value_t = crate::checks::DEFAULT_COUNT, value_parser = clap::value_parser!(u32).range(2..=1000))]
    pub count: u32,
    /// Interval between lines in the timing checks, in ms.
    #[arg(global = true, long, default_value_t = crate::checks::DEFAULT_INTERVAL_MS, value_parser = clap::value_parser!(u64).range(20..=60_000))]
    pub interval_ms: u64,
    /// Allowed deviation from the due times, in ms [default: half the interval].
    #[arg(global = true, long)]
    pub tolerance_ms: Option<u64>,
    /// Run only this check (repeatable); `list` shows the names.
    #[arg(global = true, long = "check", value_name = "NAME")]
    pub checks: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the four example servers and print the framework × check matrix, per transport.
    Matrix {
        /// The transports to check over, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "http1,https,h2,h2c")]
        transports: Vec<Serving>,
    },
    /// List the checks.
    List,
    /// Measure the four examples and a raw-hyper floor under load (release builds).
    Bench(crate::bench::Options),
    /// Measure the limits per connection of the four examples and the floor under abuse (a
    /// stream flood, rapid reset, a CONTINUATION flood, a pipelining client; release builds).
    Abuse(crate::bench::abuse::Options),
    /// One load client of the bench's many-streams scenario (the bench starts several):
    /// ADDR STREAMS SOURCE CONNECTING; prints what it got as JSON.
    #[command(hide = true)]
    Load { addr: String, streams: u32, source: std::net::Ipv4Addr, connecting: u32 },
    /// Say whether any URL streams, and if not, which layer holds it (exit 0 streams,
    /// 1 buffered or batched, 3 inconclusive, 2 bad usage or no answer).
    Diagnose(crate::diagnose::Options),
}

/// Why a command line was refused.
#[derive(Debug)]
pub enum Refused {
    /// By clap: an unknown or malformed flag, or `--help` and `--version` (`exit()` prints them).
    Clap(clap::Error),
    /// A flag that parses but does nothing where it was given, or a check that does not exist.
    Usage(String),
}

/// Parses `args` (the program's name first), refusing flags given where they would be ignored.
pub fn parse<I, T>(args: I) -> Result<Cli, Refused>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let matches = Cli::command().try_get_matches_from(args).map_err(Refused::Clap)?;
    let cli = Cli::from_arg_matches(&matches).map_err(Refused::Clap)?;
    if let Some(unknown) = cli.options.checks.iter().find(|c| crate::checks::check(c).is_none()) {
        return Err(Refused::Usage(format!("no check named {unknown:?} (see `conformance list`)")));
    }
    if let (Some(command), Some(flag)) = (matches.subcommand_name(), transport_flag_given(&matches))
    {
        let instead = match command {
            "diagnose" => "give it after `diagnose`".to_owned(),
            "matrix" => {
                "matrix runs over --transports (see `conformance matrix --help`)".to_owned()
            }
            other => format!("`{other}` does not use it"),
        };
        return Err(Refused::Usage(format!("{flag} before `{command}` is for --url; {instead}")));
    }
    if cli.json && matches!(cli.command, Some(Command::Abuse(_))) {
        return Err(Refused::Usage("`abuse` prints markdown tables, not --json".into()));
    }
    for command in ["diagnose", "bench", "abuse"] {
        if let Some(flag) = check_flag_given(&matches, command) {
            return Err(Refused::Usage(format!(
                "{flag} is for the checks, not {command} (see `conformance {command} --help`)"
            )));
        }
    }
    Ok(cli)
}

/// A transport flag of `--url` given before a subcommand, which would otherwise ignore it.
fn transport_flag_given(matches: &clap::ArgMatches) -> Option<&'static str> {
    [
        ("http1", "--http1.1"),
        ("http2", "--http2"),
        ("cacert", "--cacert"),
        ("insecure", "--insecure"),
    ]
    .into_iter()
    .find(|(id, _)| matches.value_source(id) == Some(ValueSource::CommandLine))
    .map(|(_, flag)| flag)
}

/// A flag of the checks given to a subcommand that has no use for it.
fn check_flag_given(matches: &clap::ArgMatches, subcommand: &str) -> Option<String> {
    let m = matches.subcommand_matches(subcommand)?;
    let id = ["count", "interval_ms", "tolerance_ms", "checks"]
        .into_iter()
        .find(|id| m.value_source(id) == Some(ValueSource::CommandLine))?;
    Some(format!("--{}", if id == "checks" { "check".into() } else { id.replace('_', "-") }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn misplaced_flags_are_refused() {
        let refused =
            |args: &[&str]| match parse(std::iter::once("conformance").chain(args.iter().copied()))
            {
                Err(Refused::Usage(message)) => message,
                other => panic!("{args:?}: {other:?}"),
            };
        assert!(refused(&["--check", "nope", "--url", "http://x"]).contains("no check named"));
        assert!(refused(&["--http2", "diagnose", "http://x"]).contains("give it after"));
        assert!(refused(&["diagnose", "--count", "3", "http://x"]).contains("not diagnose"));
        assert!(parse(["conformance", "diagnose", "--http2", "http://x"]).is_ok());
        assert!(refused(&["abuse", "--json"]).contains("not --json"));
        assert!(refused(&["abuse", "--count", "3"]).contains("not abuse"));
    }
}
