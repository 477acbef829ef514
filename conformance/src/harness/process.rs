//! Programs the harness starts that are not ours (proxies, the zoo's stacks): where they are,
//! a port and a directory for each, and whether one answers yet.

use std::{
    fs,
    io::{Read, Write},
    net::{Ipv4Addr, TcpListener, TcpStream},
    path::PathBuf,
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

/// Where `program` is: on the PATH, or in an `sbin` directory (nginx and apache2 live in
/// `/usr/sbin`, which is not on every PATH).
pub fn locate(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// Whether a request for `/` through the proxy gets an answer: ready means serving, through to
/// the upstream, not only accepting. In CI the first check behind a just-started Apache waited
/// 249 ms for its head and failed (tolerance 200 ms); what a first request costs is not the
/// checks' to measure.
pub(crate) fn answers(mut tcp: TcpStream) -> bool {
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
    let request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    let mut start = [0u8; 5];
    tcp.write_all(request).is_ok() && tcp.read_exact(&mut start).is_ok() && &start == b"HTTP/"
}

/// A free port on 127.0.0.1 just now: bound, read and released.
pub(crate) fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| format!("cannot bind 127.0.0.1:0: {e}"))?;
    listener.local_addr().map(|addr| addr.port()).map_err(|e| format!("no local address: {e}"))
}

/// A new directory of its own under the system's temporary directory, for `name`'s files.
pub(crate) fn fresh_dir(name: &str) -> Result<PathBuf, String> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    loop {
        let dir = std::env::temp_dir().join(format!(
            "streaming-{}-{}-{}",
            name,
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        match fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(format!("cannot create {}: {e}", dir.display())),
        }
    }
}

/// Whether this process runs as root (its effective uid).
pub(crate) fn running_as_root() -> bool {
    fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1)) // effective uid
            == Some("0")
    })
}
