//! Starts the real `gslbd` binary on ephemeral loopback ports and reads the bound
//! addresses from its log lines (`listening for UDP on ADDR`, `... TCP ...`, `ready`),
//! which are part of its interface. The process is killed when the handle drops.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Path of the binary under test.
pub fn gslbd_bin() -> &'static str {
    env!("CARGO_BIN_EXE_gslbd")
}

/// A deployment written into a fresh temporary folder: `gslb.toml` and `zones/`.
pub struct Deployment {
    pub dir: tempfile::TempDir,
}

impl Deployment {
    /// Writes `config` as gslb.toml and each (file name, text) into zones/.
    pub fn new(config: &str, zones: &[(&str, &str)]) -> Deployment {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("gslb.toml"), config).unwrap();
        std::fs::create_dir(dir.path().join("zones")).unwrap();
        for (name, text) in zones {
            std::fs::write(dir.path().join("zones").join(name), text).unwrap();
        }
        Deployment { dir }
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("gslb.toml")
    }

    /// Starts `gslbd serve` on this deployment.
    pub fn start(&self) -> Gslbd {
        Gslbd::start(&self.config(), &[])
    }

    /// Runs `gslbd check` on this deployment.
    pub fn check(&self) -> Output {
        check(&self.config())
    }
}

/// Runs `cmd` and asserts that it succeeded, showing its stderr when not.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run gslbd");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `gslbd check --config PATH`.
pub fn check(config: &Path) -> Output {
    Command::new(gslbd_bin())
        .args(["check", "--config"])
        .arg(config)
        .output()
        .expect("run gslbd check")
}

/// Spawns `gslbd serve --config CONFIG --listen LISTEN EXTRA...` without waiting for it:
/// the process, its stderr lines as they come, and every line so far. A thread keeps
/// draining stderr for the life of the process so it never blocks on a full pipe.
pub fn spawn_serve(
    config: &Path,
    listen: &str,
    extra: &[&str],
) -> (Child, mpsc::Receiver<String>, Arc<Mutex<Vec<String>>>) {
    let mut child = Command::new(gslbd_bin())
        .args(["serve", "--listen", listen, "--config"])
        .arg(config)
        .args(extra)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn gslbd");
    let stderr = child.stderr.take().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = mpsc::channel::<String>();
    let log2 = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            log2.lock().unwrap().push(line.clone());
            let _ = tx.send(line);
        }
    });
    (child, rx, log)
}

/// A running server.
pub struct Gslbd {
    child: Child,
    pub udp: SocketAddr,
    pub tcp: SocketAddr,
    /// The admin API address, when started with one (`--admin 127.0.0.1:0`).
    pub admin: Option<SocketAddr>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Gslbd {
    /// Starts `gslbd serve --config CONFIG --listen 127.0.0.1:0 EXTRA...` and waits for
    /// `ready` (at most 20 s).
    pub fn start(config: &Path, extra: &[&str]) -> Gslbd {
        Gslbd::try_start(config, "127.0.0.1:0", extra).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`Gslbd::start`], on a port outside the kernel's ephemeral range, for tests
    /// whose clients set SO_REUSEPORT. `dig` does, and binds port 0: as it runs as the
    /// same user as a server whose UDP sockets share a kernel-chosen port, the kernel may
    /// hand dig that very port. dig's connected socket then receives its own query
    /// (";; Warning: query response not set", no answer). Ports below the range are never
    /// chosen by the kernel, so only an explicit bind can take one: gslbd then fails to
    /// bind its TCP listener, and another port is tried.
    pub fn start_off_ephemeral(config: &Path, extra: &[&str]) -> Gslbd {
        let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
            .ok()
            .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
            .unwrap_or(32768);
        let floor = 10_000.min(low / 2);
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            ^ (u64::from(std::process::id()) << 32);
        let mut rng = crate::rng::Rng(seed | 1);
        let mut errors = Vec::new();
        for _ in 0..20 {
            let port = floor + rng.below(usize::from(low - floor)) as u16;
            match Gslbd::try_start(config, &format!("127.0.0.1:{port}"), extra) {
                Ok(s) => return s,
                Err(e) => errors.push(e),
            }
        }
        panic!("no port below {low} could be bound:\n{}", errors.join("\n"));
    }

    /// Starts `gslbd serve --config CONFIG --listen LISTEN EXTRA...`; the log when it
    /// exits or is not ready within 20 s.
    pub fn try_start(config: &Path, listen: &str, extra: &[&str]) -> Result<Gslbd, String> {
        let (mut child, rx, log) = spawn_serve(config, listen, extra);
        let (mut udp, mut tcp, mut admin) = (None, None, None);
        loop {
            match rx.recv_timeout(Duration::from_secs(20)) {
                Ok(line) => {
                    if let Some(a) = addr_after(&line, "listening for UDP on ") {
                        udp = Some(a);
                    } else if let Some(a) = addr_after(&line, "listening for TCP on ") {
                        tcp = Some(a);
                    } else if let Some(a) = addr_after(&line, "listening for admin HTTP on ") {
                        admin = Some(a);
                    } else if line.trim_end().ends_with("ready") {
                        break;
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let status = child.wait().ok();
                    return Err(format!(
                        "gslbd did not become ready (exit: {status:?}); log:\n{}",
                        log.lock().unwrap().join("\n")
                    ));
                }
            }
        }
        Ok(Gslbd {
            child,
            udp: udp.expect("no UDP address logged"),
            tcp: tcp.expect("no TCP address logged"),
            admin,
            log,
        })
    }

    /// Everything the server logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Waits up to `within` for a log line containing `needle` (the log is read by a
    /// separate thread, so a line may trail the behaviour it describes).
    pub fn wait_log(&self, needle: &str, within: Duration) -> bool {
        let deadline = std::time::Instant::now() + within;
        loop {
            if self.log().contains(needle) {
                return true;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// True while the process runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends `signal` (e.g. "TERM") and waits up to `timeout` for the exit status.
    pub fn signal_and_wait(
        &mut self,
        signal: &str,
        timeout: Duration,
    ) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Gslbd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP connection to `server` from the loopback address `src` (all of 127/8 is
/// loopback on Linux): clients of distinct addresses and networks, for per-client limits.
pub fn connect_from(src: [u8; 4], server: SocketAddr) -> std::net::TcpStream {
    try_connect_from(src, server)
        .unwrap_or_else(|e| panic!("connect from {src:?} to {server}: {e}"))
}

/// [`connect_from`], failing after 2 s (e.g. when the server's listen backlog is full).
pub fn try_connect_from(src: [u8; 4], server: SocketAddr) -> std::io::Result<std::net::TcpStream> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    s.bind(&SocketAddr::from((std::net::Ipv4Addr::from(src), 0)).into())?;
    s.connect_timeout(&server.into(), Duration::from_secs(2))?;
    Ok(s.into())
}

fn addr_after(line: &str, marker: &str) -> Option<SocketAddr> {
    let rest = &line[line.find(marker)? + marker.len()..];
    rest.split_whitespace().next()?.parse().ok()
}
