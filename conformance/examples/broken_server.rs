//! The negative-control server of the test suite, runnable on its own so the CLI can be seen
//! failing: `cargo run -p conformance --example broken_server -- --fault buffered`, then
//! `cargo run -p conformance -- --url http://127.0.0.1:PORT`.

#[path = "../tests/support/broken/mod.rs"]
#[allow(dead_code)] // `start` is for the tests
mod broken;

use std::{net::SocketAddr, time::Duration};

use clap::Parser;

#[derive(Parser)]
struct Args {
    /// The fault to serve with (`none` follows the contract).
    #[arg(long, value_enum, default_value = "buffered")]
    fault: broken::Fault,
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    addr: SocketAddr,
    /// After SIGTERM or Ctrl-C, how long streams may run on.
    #[arg(long, default_value_t = 30)]
    grace_secs: u64,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let listener = broken::bind(args.addr)?;
    println!("listening on http://{}", listener.local_addr()?);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let signal = async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    };
    let grace = Duration::from_secs(args.grace_secs);
    broken::serve(listener, args.fault, broken::Logger::default(), signal, grace).await;
    Ok(())
}
