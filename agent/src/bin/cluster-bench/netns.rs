//! Real packet loss for the soak: the benchmark moves itself into a private
//! network namespace (so its agents, which inherit it, and nothing else on
//! the machine see the loss), brings its loopback up, and has nftables drop
//! a share of every packet received on it (`numgen random`). The namespace
//! disappears with the last process in it. Needs root (CAP_SYS_ADMIN and
//! CAP_NET_ADMIN); works without sch_netem.

use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// The nftables table this module owns inside the namespace.
const TABLE: &str = "cluster_bench_loss";

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Moves the calling thread (call it before any other thread exists: the
/// threads and processes started afterwards inherit the namespace) into a
/// new network namespace with its loopback up.
pub fn enter() -> anyhow::Result<()> {
    // SAFETY: unshare only changes this thread's namespace membership.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        bail!(
            "cannot create a network namespace (needs root): {}",
            std::io::Error::last_os_error()
        );
    }
    run(Command::new("ip").args(["link", "set", "lo", "up"]))
}

/// Drops `percent` % of the packets received in the namespace, at random.
pub fn set_loss(percent: u32) -> anyhow::Result<()> {
    // Recreate the table so that a second call replaces the rule.
    let _ = run(Command::new("nft").args(["delete", "table", "inet", TABLE]));
    run(Command::new("nft").args(["add", "table", "inet", TABLE]))?;
    run(Command::new("nft").args([
        "add",
        "chain",
        "inet",
        TABLE,
        "input",
        "{ type filter hook input priority 0; }",
    ]))?;
    run(Command::new("nft").args([
        "add",
        "rule",
        "inet",
        TABLE,
        "input",
        "numgen",
        "random",
        "mod",
        "100",
        "<",
        &percent.to_string(),
        "drop",
    ]))
}

/// Measures the loss actually applied: UDP datagrams sent in batches (small
/// enough for the socket buffer) between two sockets on 127.0.0.1; returns
/// (sent, received).
pub fn measure_loss(datagrams: usize) -> anyhow::Result<(usize, usize)> {
    let rx = UdpSocket::bind("127.0.0.1:0")?;
    let tx = UdpSocket::bind("127.0.0.1:0")?;
    rx.set_read_timeout(Some(Duration::from_millis(20)))?;
    let to = rx.local_addr()?;
    let mut received = 0;
    let mut buf = [0u8; 16];
    let batch = 100;
    let mut sent = 0;
    while sent < datagrams {
        let n = batch.min(datagrams - sent);
        for i in 0..n {
            tx.send_to(&((sent + i) as u64).to_le_bytes(), to)?;
        }
        sent += n;
        // Drain until the socket stays quiet (the rest was dropped).
        let quiet = Instant::now() + Duration::from_secs(2);
        while Instant::now() < quiet {
            match rx.recv_from(&mut buf) {
                Ok(_) => received += 1,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    break;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok((sent, received))
}
