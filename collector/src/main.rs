//! `weir`: the OTLP collector binary.
//!
//! # Layout
//! - [`app`]: wiring, run, front-to-back shutdown; [`shutdown`]: the signal every server waits on.
//! - [`pipeline`] and [`workers`]: one pipeline per signal, stage worker threads, exporter routes.
//! - [`tail`] and [`span_metrics`]: wiring for the tail sampler and span metrics between pipelines.
//! - [`spill`]: an exporter's own log on disk for `overflow: spill`.
//! - [`intake`]: what both receivers share: validation, enqueue with bounded wait, acknowledgement;
//!   [`receive`]: the words receivers, intake, auth and the durable log share (transport, refusals).
//! - [`durable`]: the write-ahead log in front of the intake queue (durable mode).
//! - [`grpc`], [`http`], [`decode`], [`wire`], [`tls`]: the OTLP receivers and their per-signal details.
//! - [`auth`] and [`tenant`]: ingest tokens, and the tenant stamped on every resource.
//! - [`budget`]: `memory_limit`, enforced at the front door.
//! - [`admin`]: `/metrics`, `/healthz`, `/readyz`, `/admin/reload`, `/admin/tap`; [`reload`]: live
//!   policy swaps.
//! - [`ops`]: `weir tap` and `weir top`; [`migrate`]: `weir migrate --from otelcol`.
//! - `fuzz` (tests only): the intake's parsers under proptest.

/// Batches are decoded on receiver threads and freed on worker and delivery threads; glibc's malloc
/// spent a third of the profile on that (and its arena locks a quarter more). mimalloc frees to the
/// owning thread's heap without a global lock: measured in the README's Performance section.
/// Decoded requests are bump-allocated in the arena (see `weir_alloc::arena`), and everything is
/// wrapped in the counter that `memory_limit` is enforced against.
#[global_allocator]
static ALLOCATOR: weir_pipeline::memory::Allocator = weir_pipeline::memory::ALLOCATOR;

mod admin;
mod app;
mod auth;
mod budget;
mod decode;
mod durable;
#[cfg(test)]
mod fuzz;
mod grpc;
mod http;
mod intake;
mod migrate;
mod ops;
mod pipeline;
mod receive;
mod reload;
mod share;
mod shutdown;
mod span_metrics;
mod spill;
mod tail;
mod tenant;
mod tls;
mod wire;
mod workers;

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;
use weir_config::{Config, LogFormat};
use weir_pipeline::stages::redact::RedactPolicy;

#[derive(Parser)]
#[command(
    name = "weir",
    version,
    about = "High-throughput OTLP collector: receive, normalise, sample, redact, export."
)]
struct Cli {
    /// YAML config file; without it, the embedded default (see `weir default-config`).
    #[arg(long, short, global = true, env = "WEIR_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the collector (the default).
    Run,
    /// Validate the config and exit: 0 if it is valid, 1 with the reason if not.
    Check,
    /// Print the embedded default config.
    DefaultConfig,
    /// Translate an OpenTelemetry Collector config into a Weir config (stdout), with a report of
    /// every key on stderr: 0 on success, 1 if it cannot be read, 2 with --strict if some key had no
    /// equivalent.
    Migrate {
        /// The source format: `otelcol` (OpenTelemetry Collector YAML).
        #[arg(long)]
        from: String,
        /// The Collector config file.
        file: PathBuf,
        /// Write the Weir config here instead of stdout.
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Exit 2 when any key has no Weir equivalent.
        #[arg(long)]
        strict: bool,
    },
    /// Follow items through a running Weir: received, what each stage did, where they went.
    Tap(ops::tap::TapArgs),
    /// Live view of a running Weir's throughput, queues, memory and drops.
    Top(ops::top::TopArgs),
}

fn load(cli: &Cli) -> Result<Config, String> {
    let config = match &cli.config {
        Some(path) => weir_config::load_file(path),
        None => weir_config::parse(
            weir_config::DEFAULT_CONFIG_YAML,
            "<embedded default>",
            |k| std::env::var(k).ok(),
        ),
    }
    .map_err(|e| e.to_string())?;
    // The redaction hash key and ingest tokens come from the environment (or a file), so only loading
    // them can tell that one is missing; `weir check` should say so too.
    RedactPolicy::compile(&config.pipeline.redact, |k| std::env::var(k).ok())?;
    if let Some(auth) = &config.receivers.auth {
        auth::Auth::load(
            auth,
            |k| std::env::var(k).ok(),
            &weir_pipeline::metrics::Registry::default(),
        )?;
    }
    if let Some(d) = &config.durable {
        check_durable_dir(std::path::Path::new(&d.dir))?;
    }
    Ok(config)
}

/// The durable log's directory must be one, or be creatable: its nearest existing ancestor is a
/// directory. Checked without creating anything, so `weir check` has no side effects.
fn check_durable_dir(dir: &std::path::Path) -> Result<(), String> {
    let mut at = Some(dir);
    while let Some(p) = at {
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() && m.permissions().readonly() => {
                return Err(format!("durable.dir: {} is read-only", p.display()))
            }
            Ok(m) if m.is_dir() => return Ok(()),
            Ok(_) => return Err(format!("durable.dir: {} is not a directory", p.display())),
            Err(_) => at = p.parent(),
        }
    }
    Ok(())
}

/// An operator tool's outcome: its error on stderr and exit code 1.
fn operate(outcome: Result<(), String>) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("weir: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Tap(args)) => operate(ops::tap::run(&args)),
        Some(Command::Top(args)) => operate(ops::top::run(&args)),
        Some(Command::Migrate {
            from,
            file,
            output,
            strict,
        }) => migrate::run(&from, &file, output.as_deref(), strict),
        Some(Command::DefaultConfig) => {
            print!("{}", weir_config::DEFAULT_CONFIG_YAML);
            ExitCode::SUCCESS
        }
        Some(Command::Check) => match load(&cli) {
            Ok(c) => {
                println!(
                    "config OK: {} exporter(s) [{}], grpc {}, http {}, admin {}",
                    c.exporters.len(),
                    c.exporters.keys().cloned().collect::<Vec<_>>().join(", "),
                    if c.receivers.grpc.enabled {
                        c.receivers.grpc.endpoint.as_str()
                    } else {
                        "off"
                    },
                    if c.receivers.http.enabled {
                        c.receivers.http.endpoint.as_str()
                    } else {
                        "off"
                    },
                    if c.admin.enabled {
                        c.admin.endpoint.as_str()
                    } else {
                        "off"
                    },
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("config invalid: {e}");
                ExitCode::FAILURE
            }
        },
        Some(Command::Run) | None => match load(&cli) {
            Ok(config) => match serve(config, cli.config.clone()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    eprintln!("weir: {e:#}");
                    ExitCode::FAILURE
                }
            },
            Err(e) => {
                eprintln!("weir: config invalid: {e}");
                ExitCode::from(2)
            }
        },
    }
}

fn serve(config: Config, source: Option<PathBuf>) -> anyhow::Result<()> {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.log.level))
        .with_context(|| format!("log.level: invalid filter {:?}", config.log.level))?;
    // Colours only for a person at a terminal; log files and collectors get plain text.
    let builder = tracing_subscriber::fmt()
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("weir-io")
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(app::run(config, source, app::termination()));
    // A file write stuck on a blocking thread (a full disk, a pipe nobody reads) must not hold the
    // process past its shutdown: whatever it held was already counted when the deadline passed.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    result
}
