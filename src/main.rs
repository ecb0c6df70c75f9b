//! The `gslbd` command line: `serve`, `check`, `explain` and `geoip build`, over the
//! library ([`gslbd::Instance`] serves), and `completions` and `man`, generated from
//! these definitions. Only here are errors turned into exit codes: 0 ok, 1 runtime
//! failure (cannot bind, ...), 2 invalid config or zones, 64 a command-line mistake.

use std::io::{IsTerminal, Write as _};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use ipnet::IpNet;
use tracing::{info, warn};

use gslbd::control::{Control, Overrides};
use gslbd::explain::remote::{self, Question};
use gslbd::instance::{Instance, Listeners, StartError};
use gslbd::snapshot::Snapshot;

/// gslbd: a GSLB authoritative DNS server.
#[derive(Parser, Debug)]
#[command(version, about, propagate_version = true, after_help = AFTER_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve DNS on UDP and TCP of every listen address.
    Serve {
        /// The config file.
        #[arg(long, short, default_value = "gslb.toml")]
        config: PathBuf,
        /// Listen address (repeatable); replaces `server.listen`.
        #[arg(long = "listen", value_name = "ADDR")]
        listen: Vec<SocketAddr>,
        /// Admin API address; replaces `server.admin`.
        #[arg(long, value_name = "ADDR")]
        admin: Option<SocketAddr>,
        /// Log filter when RUST_LOG is unset (error, warn, info, debug, trace, or a
        /// tracing directive such as `gslbd=debug`).
        #[arg(long, default_value = "info")]
        log_level: String,
        /// Log lines as text, or as one JSON object each (for log pipelines).
        #[arg(long, value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
    },
    /// Load and validate config, zones and GeoIP DB; exit 0 if good, 2 if not.
    Check {
        /// The config file.
        #[arg(long, short, default_value = "gslb.toml")]
        config: PathBuf,
    },
    /// Show how a query from a client is answered, and why: asked of the running server
    /// (its admin API) when reachable, else worked out from the config, every region up.
    Explain {
        /// The config file: its `server.admin` is the server to ask, and the answer is
        /// worked out from it alone when no server answers.
        #[arg(long, short, default_value = "gslb.toml")]
        config: PathBuf,
        /// The running server's admin API; replaces `server.admin`.
        #[arg(long, value_name = "ADDR")]
        admin: Option<SocketAddr>,
        /// The query's source address (a resolver, or the client itself).
        #[arg(long, value_name = "IP", default_value = "127.0.0.1")]
        client: IpAddr,
        /// An EDNS Client Subnet to send, e.g. 81.2.69.0/24.
        #[arg(long, value_name = "CIDR")]
        subnet: Option<IpNet>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// The name to ask for.
        name: String,
        /// The type to ask for.
        #[arg(default_value = "A")]
        qtype: String,
    },
    /// Print a shell completion script for gslbd.
    #[command(display_order = 100)]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Write gslbd's man pages (gslbd.1, gslbd-serve.1, ...) into a folder.
    #[command(display_order = 101)]
    Man {
        /// The folder to write them to (created if missing).
        dir: PathBuf,
    },
    /// GeoIP database tools.
    Geoip {
        #[command(subcommand)]
        command: GeoipCommand,
    },
    /// DNSSEC signing keys (with `[dnssec]` in the config).
    Dnssec {
        #[command(subcommand)]
        command: DnssecCommand,
    },
}

#[derive(Subcommand, Debug)]
enum DnssecCommand {
    /// Write a signing key for every zone that has none (existing keys are kept), then
    /// print every zone's DS records for the parent.
    Keygen {
        /// The config file.
        #[arg(long, short, default_value = "gslb.toml")]
        config: PathBuf,
        /// Algorithm of new keys: ecdsap256sha256 (13) or ed25519 (15); replaces
        /// `dnssec.algorithm`.
        #[arg(long, value_name = "ALG", value_parser = parse_algorithm)]
        algorithm: Option<gslbd::dnssec::Algorithm>,
        /// Add one more key to every zone, beside the keys it has (to roll a key).
        #[arg(long)]
        add: bool,
    },
    /// Print each zone's DS record (SHA-256) in zone-file format, one per line.
    Ds {
        /// The config file.
        #[arg(long, short, default_value = "gslb.toml")]
        config: PathBuf,
    },
}

fn parse_algorithm(s: &str) -> Result<gslbd::dnssec::Algorithm, String> {
    gslbd::dnssec::Algorithm::from_name(s)
        .ok_or_else(|| format!("unknown algorithm {s:?}: ecdsap256sha256 (13) or ed25519 (15)"))
}

#[derive(Subcommand, Debug)]
enum GeoipCommand {
    /// Build a MaxMind DB (GeoLite2-City layout) from a CSV of
    /// network,continent,country,subdivision,lat,lon rows.
    Build {
        /// The CSV to read.
        #[arg(long)]
        csv: PathBuf,
        /// The .mmdb to write (replaced atomically).
        #[arg(long)]
        out: PathBuf,
    },
}

/// The end of `--help` and the man page's extra section: exit codes and files.
const AFTER_HELP: &str = "\
Exit status: 0 ok; 1 runtime failure (e.g. a listen address cannot be bound); 2 invalid \
config, zone files, GeoIP database or CSV; 64 a command-line mistake (unknown option, \
missing argument).

Files: gslb.toml (--config, default ./gslb.toml), zones/*.zone and geoip/*.mmdb \
beside it; packaged installs use /etc/gslbd/gslb.toml. Reference: \
/usr/share/doc/gslbd/CONFIG.md or docs/CONFIG.md in the source.";

/// Exit status of a command-line mistake (sysexits' EX_USAGE), distinct from 2, which
/// says the config is invalid.
const EXIT_USAGE: u8 = 64;

/// `--log-format`.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    /// Lines for people (coloured on a terminal).
    Text,
    /// One JSON object per line: timestamp, level, target, and the event's fields.
    Json,
}

fn main() -> ExitCode {
    gslbd::snapshot::map_large_allocations();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version print to stdout and exit 0; mistakes exit EXIT_USAGE.
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match cli.command {
        Command::Check { config } => check(&config),
        Command::Completions { shell } => {
            // Into a buffer first: clap_complete panics on a failed write (`| head`).
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "gslbd", &mut script);
            let _ = std::io::stdout().lock().write_all(&script);
            ExitCode::SUCCESS
        }
        Command::Man { dir } => man(&dir),
        Command::Explain {
            config,
            admin,
            client,
            subnet,
            json,
            name,
            qtype,
        } => explain(
            &config,
            admin,
            &Question {
                name,
                qtype,
                client,
                subnet,
            },
            json,
        ),
        Command::Geoip {
            command: GeoipCommand::Build { csv, out },
        } => geoip_build(&csv, &out),
        Command::Dnssec { command } => dnssec(command),
        Command::Serve {
            config,
            listen,
            admin,
            log_level,
            log_format,
        } => {
            init_logging(&log_level, log_format);
            match serve(config, listen, admin) {
                Ok(code) => code,
                Err(e) => {
                    tracing::error!("{e:#}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

fn check(config: &Path) -> ExitCode {
    let loaded = Snapshot::load(config).and_then(|snap| {
        // A full walk of the GeoIP file: slow on big files, so only here, not at serve.
        match snap.geo.as_ref().map(|db| db.verify()) {
            Some(Err(e)) => {
                Err(gslbd::config::diagnostic_at(config, &["server", "geoip"], e).into())
            }
            _ => Ok(snap),
        }
    });
    // What `serve` would read at start: the drains kept in `server.state_file`.
    let loaded = loaded.and_then(|snap| match gslbd::health::state_file::load(&snap.model) {
        Ok(_) => Ok(snap),
        Err(e) => Err(e.into()),
    });
    match loaded {
        Ok(snap) => {
            #[allow(clippy::print_stdout)]
            {
                println!("{}", summary(config, &snap));
            }
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("{}: {} error(s)", config.display(), errors.0.len());
            ExitCode::from(2)
        }
    }
}

/// Explains the query with the running server's live state when its admin API answers,
/// else from the config alone with every region up; says which on a `source` line (first
/// on stdout, or on stderr with `--json` so stdout stays JSON).
fn explain(config: &Path, admin: Option<SocketAddr>, q: &Question, json: bool) -> ExitCode {
    let admin = match admin {
        Some(a) => Some(a),
        None => match gslbd::config::load(config) {
            Ok(model) => model.server.admin,
            Err(errors) => {
                eprintln!("{errors}");
                return ExitCode::from(2);
            }
        },
    };
    const LOCAL: &str = "config only, every region assumed up";
    let (source, explained) = match admin.map(remote::connectable) {
        Some(addr) => match remote::ask(addr, q) {
            remote::Remote::Explained(e) => (
                format!("the running server at {addr} (live health and drains)"),
                Ok(*e),
            ),
            remote::Remote::Rejected(e) => {
                eprintln!("explain: {e}");
                return ExitCode::from(2);
            }
            remote::Remote::NotReached(why) => match explain_locally(config, q) {
                Ok(r) => (format!("server not reached at {addr} ({why}): {LOCAL}"), r),
                Err(code) => return code,
            },
        },
        None => match explain_locally(config, q) {
            Ok(r) => (
                format!("no admin API (server.admin or --admin): {LOCAL}"),
                r,
            ),
            Err(code) => return code,
        },
    };
    match explained {
        Ok(e) => {
            let source = format!("{:<10} {source}", "source");
            let text = if json {
                eprintln!("{source}");
                serde_json::to_string_pretty(&e).unwrap_or_default()
            } else {
                format!("{source}\n{e}")
            };
            // A closed pipe (`| head`) is no failure worth a panic.
            let _ = writeln!(std::io::stdout().lock(), "{}", text.trim_end());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("explain: {e}");
            ExitCode::from(2)
        }
    }
}

/// The explanation from the config alone (every region up); `Err` with the exit code
/// once the config's errors are printed.
fn explain_locally(
    config: &Path,
    q: &Question,
) -> Result<Result<gslbd::explain::Explanation, String>, ExitCode> {
    match Snapshot::load(config) {
        Ok(snap) => Ok(gslbd::explain::explain(
            &snap, &q.name, &q.qtype, q.client, q.subnet,
        )),
        Err(errors) => {
            eprintln!("{errors}");
            Err(ExitCode::from(2))
        }
    }
}

fn dnssec(command: DnssecCommand) -> ExitCode {
    let (config, lines) = match command {
        DnssecCommand::Keygen {
            config,
            algorithm,
            add,
        } => {
            let done = gslbd::dnssec::tool::keygen(&config, algorithm, add).map(|g| {
                for path in &g.written {
                    eprintln!("wrote {}", path.display());
                }
                if g.written.is_empty() {
                    eprintln!("every zone has a key already: nothing written");
                }
                g.ds
            });
            (config, done)
        }
        DnssecCommand::Ds { config } => {
            let lines = gslbd::dnssec::tool::ds(&config);
            (config, lines)
        }
    };
    match lines {
        Ok(lines) => {
            #[allow(clippy::print_stdout)]
            for l in lines {
                println!("{l}");
            }
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("{}: {} error(s)", config.display(), errors.0.len());
            ExitCode::from(2)
        }
    }
}

fn geoip_build(csv: &Path, out: &Path) -> ExitCode {
    match gslbd::geoip_build::build(csv, out) {
        Ok(summary) => {
            #[allow(clippy::print_stdout)]
            {
                println!(
                    "{}: {} networks ({} IPv4, {} IPv6), {} bytes",
                    out.display(),
                    summary.networks,
                    summary.v4,
                    summary.v6,
                    summary.bytes
                );
            }
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{errors}");
            ExitCode::from(2)
        }
    }
}

fn summary(config: &Path, snap: &Snapshot) -> String {
    let m = &snap.model;
    let zones: Vec<String> = snap
        .zones
        .zones()
        .iter()
        .map(|z| z.apex().to_string())
        .collect();
    format!(
        "{}: ok: {} zone(s) ({}), {} region(s), {} dynamic name(s), listen {}",
        config.display(),
        zones.len(),
        zones.join(", "),
        m.regions.len(),
        m.records.len(),
        m.server
            .listen
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(", "),
    )
}

/// Writes the man pages of gslbd and of each subcommand into `dir`.
fn man(dir: &Path) -> ExitCode {
    let written =
        std::fs::create_dir_all(dir).and_then(|()| clap_mangen::generate_to(Cli::command(), dir));
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cannot write the man pages into {}: {e}", dir.display());
            ExitCode::from(1)
        }
    }
}

/// `RUST_LOG` when set, else `level`; read once, at start (a reload does not re-read it).
fn init_logging(level: &str, format: LogFormat) {
    // hickory logs two INFO lines per TCP response: keep it at warn unless asked.
    let default = format!("{level},hickory_server=warn,hickory_proto=warn");
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        // One object per line; the event's fields (`message` among them) nested under
        // `fields`, since some are named like the top-level keys (`target`).
        LogFormat::Json => logs.json().init(),
    }
}

fn serve(
    config: PathBuf,
    listen: Vec<SocketAddr>,
    admin: Option<SocketAddr>,
) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let (result, stopped_early) = runtime.block_on(async move {
        // Handlers first, before anything slow: a signal during start-up must find them,
        // not the default action (SIGHUP's would kill us).
        let mut signals = Signals::install()?;
        let startup = start(config, listen, admin);
        tokio::pin!(startup);
        let mut hup_pending = false;
        // Start-up (loading, binding, the first probe round) races the signals: SIGTERM
        // or SIGINT stops it at once; SIGHUP is remembered and acted on once ready.
        let server = loop {
            tokio::select! {
                started = &mut startup => break started?,
                _ = signals.term.recv() => {
                    info!("SIGTERM received during start-up: stopping");
                    return anyhow::Ok((ExitCode::SUCCESS, true));
                }
                _ = signals.int.recv() => {
                    info!("SIGINT received during start-up: stopping");
                    return Ok((ExitCode::SUCCESS, true));
                }
                _ = signals.hup.recv() => {
                    info!("SIGHUP received during start-up: reloading once ready");
                    hup_pending = true;
                }
            }
        };
        let server = match server {
            Ok(server) => server,
            Err(code) => return Ok((code, false)),
        };
        tokio::spawn(reload_on_sighup(
            signals.hup,
            server.control().clone(),
            hup_pending,
        ));
        info!("ready");
        shutdown_signal(signals.term, signals.int).await;
        // TCP answers in flight, dnstap and admin requests get their grace times inside
        // `stop`; this bound only catches what has none (a drain's state file write
        // hanging on a dead file system).
        match tokio::time::timeout(STOP_BOUND, server.stop()).await {
            Ok(stopped) => stopped?,
            Err(_) => warn!("not stopped within {STOP_BOUND:?}: exiting anyway"),
        }
        info!("stopped");
        Ok((ExitCode::SUCCESS, false))
    })?;
    if stopped_early {
        // Start-up was cut short: do not wait for its blocking work (a slow load).
        runtime.shutdown_background();
    } else {
        // A reload given up on (server.reload_timeout) may still block a thread in a
        // read that never returns; dropping the runtime would wait for it forever.
        runtime.shutdown_timeout(BLOCKING_GRACE);
    }
    Ok(result)
}

/// The longest a stop may take once SIGTERM or SIGINT came, grace times included.
const STOP_BOUND: Duration = Duration::from_secs(10);
/// How long the exit waits for blocking work (file reads and writes) still running.
const BLOCKING_GRACE: Duration = Duration::from_secs(1);

/// Loads config, zones and GeoIP DB, binds and starts serving (the first probe round
/// included); `Err(code)` when the files are invalid (errors logged).
async fn start(
    config: PathBuf,
    listen: Vec<SocketAddr>,
    admin: Option<SocketAddr>,
) -> anyhow::Result<Result<Instance, ExitCode>> {
    // On a blocking thread, so that a signal can cut a slow load short.
    let path = config.clone();
    let loaded = tokio::task::spawn_blocking(move || Snapshot::load(&path)).await?;
    let snap = match loaded {
        Ok(s) => s,
        Err(errors) => {
            for e in &errors.0 {
                tracing::error!("{e}");
            }
            return Ok(Err(ExitCode::from(2)));
        }
    };
    let overrides = Overrides { listen, admin };
    let snap = overrides.applied(snap);
    info!("{}", summary(&config, &snap));
    let listeners = Listeners::bind(&snap.model).await?;
    match Instance::start(config, overrides, snap, listeners).await {
        Ok(server) => Ok(Ok(server)),
        // The state file (`server.state_file`) is unreadable or malformed.
        Err(StartError::Invalid(errors)) => {
            for e in &errors.0 {
                tracing::error!("{e}");
            }
            Ok(Err(ExitCode::from(2)))
        }
        Err(e) => Err(e.into()),
    }
}

/// The signals `serve` acts on, registered with the kernel as soon as this is built.
struct Signals {
    hup: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            hup: signal(SignalKind::hangup()).context("cannot handle SIGHUP")?,
            term: signal(SignalKind::terminate()).context("cannot handle SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot handle SIGINT")?,
        })
    }
}

/// SIGHUP: reload config, zones and GeoIP DB; on error keep serving the last good ones.
/// `pending`: one arrived during start-up, so reload right away.
async fn reload_on_sighup(
    mut hup: tokio::signal::unix::Signal,
    control: std::sync::Arc<Control>,
    pending: bool,
) {
    if pending {
        info!("reloading for the SIGHUP received during start-up");
        let _ = control.reload().await;
    }
    while hup.recv().await.is_some() {
        info!("SIGHUP received: reloading");
        // Errors are logged by reload itself.
        let _ = control.reload().await;
    }
}

async fn shutdown_signal(
    mut term: tokio::signal::unix::Signal,
    mut int: tokio::signal::unix::Signal,
) {
    tokio::select! {
        _ = term.recv() => info!("SIGTERM received"),
        _ = int.recv() => info!("SIGINT received"),
    }
}
