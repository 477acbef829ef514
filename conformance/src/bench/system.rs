//! What the benchmark reads from the operating system: a process's CPU time from /proc, the
//! file-descriptor limits, the ephemeral ports and the source addresses they call for, the
//! machine. (Memory and CPU time: `servers::rss_kib`, `servers::cpu_ms`.)

use std::net::Ipv4Addr;

use nix::sys::resource::{Resource, getrlimit, setrlimit};
use serde::Serialize;

pub use crate::servers::cpu_ms;

/// This process's open-file limit, before and after raising it. The servers the benchmark
/// starts inherit the raised limit.
#[derive(Debug, Clone, Serialize)]
pub struct FdLimit {
    /// The soft limit before.
    pub was: u64,
    /// The hard limit before.
    pub hard_was: u64,
    pub hard: u64,
    /// The soft limit now.
    pub now: u64,
    /// Why the hard limit could not be raised, where it could not: without CAP_SYS_RESOURCE
    /// (a container's root may lack it) a process cannot raise its hard limit.
    pub hard_refused: Option<String>,
}

/// Raises the open-file limit as far as the system allows: soft and hard to fs.nr_open, the
/// most the kernel gives a process (1 << 20 where it cannot be read), which needs root
/// (CAP_SYS_RESOURCE); where that is refused, the soft limit to the hard one.
pub fn raise_fd_limit() -> Result<FdLimit, String> {
    let read = || {
        getrlimit(Resource::RLIMIT_NOFILE)
            .map_err(|e| format!("cannot read the open-file limit: {e}"))
    };
    let (was, hard_was) = read()?;
    let most = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(1 << 20);
    let target = hard_was.max(most);
    let hard_refused = match setrlimit(Resource::RLIMIT_NOFILE, target, target) {
        Ok(()) => None,
        Err(refused) => {
            setrlimit(Resource::RLIMIT_NOFILE, hard_was, hard_was).map_err(|e| {
                format!("cannot raise the open-file limit from {was} to {hard_was}: {e}")
            })?;
            Some(format!("raising it to {target}: {}", refused.desc()))
        }
    };
    let (now, hard) = read()?;
    Ok(FdLimit { was, hard_was, hard, now, hard_refused })
}

impl std::fmt::Display for FdLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "{} (was {}; hard limit {}", self.now, self.was, self.hard)?;
        if self.hard != self.hard_was {
            write!(f, ", was {}", self.hard_was)?;
        }
        if let Some(refused) = &self.hard_refused {
            write!(f, "; {refused}")?;
        }
        write!(f, ")")
    }
}

/// A process's open-file limit, as /proc/PID/limits has it ("unlimited" is `u64::MAX`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct OpenFiles {
    pub soft: u64,
    pub hard: u64,
}

pub fn open_files(pid: u32) -> Option<OpenFiles> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    parse_open_files(&limits)
}

fn parse_open_files(limits: &str) -> Option<OpenFiles> {
    let line = limits.lines().find_map(|l| l.strip_prefix("Max open files"))?;
    let mut values = line.split_whitespace().map(|v| match v {
        "unlimited" => Some(u64::MAX),
        v => v.parse().ok(),
    });
    Some(OpenFiles { soft: values.next()??, hard: values.next()?? })
}

/// How many local ports the kernel hands out to outgoing connections, from each source
/// address.
pub fn ephemeral_ports() -> Option<u32> {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut ends = range.split_whitespace().map(|n| n.parse::<u32>().ok());
    let (low, high) = (ends.next()??, ends.next()??);
    Some(high.saturating_sub(low) + 1)
}

/// Ports of the range that the load client leaves to the machine's other sockets on each
/// source address: a port that a listener or a bound socket holds on the address is not
/// handed out to a connection.
const PORTS_LEFT: u32 = 1000;

/// The connections one source address can carry to one server, out of `ephemeral` ports.
pub fn ports_per_address(ephemeral: u32) -> u32 {
    ephemeral.saturating_sub(PORTS_LEFT)
}

/// Source addresses for `connections` simultaneous connections to a server on loopback, each
/// address carrying at most `per_address`: 127.0.0.1, then 127.0.0.2, 127.0.0.3, … as many as
/// needed (all of 127.0.0.0/8 is the loopback interface's).
pub fn source_addresses(connections: u32, per_address: u32) -> Result<Vec<Ipv4Addr>, String> {
    if per_address == 0 {
        return Err("net.ipv4.ip_local_port_range leaves the load client no ports; widen it \
                    (sysctl -w net.ipv4.ip_local_port_range=\"32768 60999\")"
            .into());
    }
    let n = connections.div_ceil(per_address).max(1);
    Ok((0..n).map(|i| Ipv4Addr::from(u32::from(Ipv4Addr::LOCALHOST) + i)).collect())
}

/// Checks that `given` source addresses carry `connections`, `per_address` each.
pub fn check_source_addresses(
    given: &[Ipv4Addr], connections: u32, per_address: u32,
) -> Result<(), String> {
    let needed = source_addresses(connections, per_address)?.len();
    if given.len() < needed {
        return Err(format!(
            "{connections} connections need {needed} source addresses of {per_address} \
             ephemeral ports each, and --source-addresses gives {}: list more (127.0.0.2, \
             127.0.0.3, …), or leave the flag out to have them chosen",
            given.len()
        ));
    }
    Ok(())
}

/// The machine the run was on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub memory_gib: f64,
    pub kernel: String,
    pub cpu: String,
}

pub fn machine() -> Machine {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let memory_kib: f64 = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_default();
    Machine {
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        memory_gib: (memory_kib / 1024.0 / 1024.0 * 10.0).round() / 10.0,
        kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
        cpu,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let spin = std::time::Instant::now();
        while spin.elapsed() < std::time::Duration::from_millis(30) {}
        assert!(cpu_ms("self").is_some_and(|ms| ms > 0.0));
        assert!(ephemeral_ports().is_some_and(|n| n > 1000));
        let own = open_files(std::process::id()).expect("/proc/self/limits has open files");
        assert!(own.soft > 0 && own.soft <= own.hard, "{own:?}");
    }

    #[test]
    fn reads_the_open_file_limit() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max processes             95806                95806                processes \n\
                      Max open files            20000                1048576              files     \n";
        assert_eq!(parse_open_files(limits), Some(OpenFiles { soft: 20000, hard: 1_048_576 }));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_open_files(unlimited), Some(OpenFiles { soft: u64::MAX, hard: u64::MAX }));
        assert_eq!(parse_open_files("Max processes 1 1 processes\n"), None);
    }

    #[test]
    fn one_address_until_its_ports_run_out() {
        // Linux's default range, 32768–60999.
        let per = ports_per_address(28_232);
        assert_eq!(per, 27_232);
        let ip = |last| Ipv4Addr::new(127, 0, 0, last);
        assert_eq!(source_addresses(0, per), Ok(vec![ip(1)]));
        assert_eq!(source_addresses(10_000, per), Ok(vec![ip(1)]));
        assert_eq!(source_addresses(per, per), Ok(vec![ip(1)]));
        assert_eq!(source_addresses(per + 1, per), Ok(vec![ip(1), ip(2)]));
        assert_eq!(source_addresses(50_000, per), Ok(vec![ip(1), ip(2)]));
        assert_eq!(source_addresses(100_000, per), Ok(vec![ip(1), ip(2), ip(3), ip(4)]));
        assert!(source_addresses(1, ports_per_address(900)).is_err());
    }

    #[test]
    fn given_addresses_must_carry_the_connections() {
        let two = [Ipv4Addr::new(127, 0, 0, 2), Ipv4Addr::new(127, 0, 0, 3)];
        assert_eq!(check_source_addresses(&two, 50_000, 27_232), Ok(()));
        let short = check_source_addresses(&two[..1], 50_000, 27_232).unwrap_err();
        assert!(short.contains("need 2 source addresses"), "{short}");
    }
}
