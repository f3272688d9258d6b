//! The `tolk` command: parses flags and configuration, sets up logging, runs the server. No logic.

use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use tolk::config::Config;

#[derive(Parser)]
#[command(version, about = "Real-time interpretation channels for online meetings")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the server (HTTP, signalling, media).
    Serve {
        /// TOML configuration file; flags override it.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// HTTP address (web client, API, signalling).
        #[arg(long)]
        http: Option<SocketAddr>,
        /// UDP address for all media.
        #[arg(long)]
        udp: Option<SocketAddr>,
        /// Address clients reach the UDP socket at (repeatable).
        #[arg(long = "candidate")]
        candidates: Vec<SocketAddr>,
        /// Base URL for invite links.
        #[arg(long)]
        public_url: Option<String>,
        /// Token signing secret (at least 16 characters).
        #[arg(long, env = "TOLK_SECRET", hide_env_values = true)]
        secret: Option<String>,
        /// Host API key.
        #[arg(long, env = "TOLK_API_KEY", hide_env_values = true)]
        api_key: Option<String>,
        /// Do not create the demo room.
        #[arg(long)]
        no_demo: bool,
        /// Channels of the demo room, comma separated (e.g. en,es,fr).
        #[arg(long, value_delimiter = ',')]
        demo_channels: Option<Vec<String>>,
        /// Run as a node of a cluster: the NATS server the nodes share (e.g. nats://127.0.0.1:4222).
        #[arg(long)]
        cluster: Option<String>,
    },
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "tolk=info".into()),
        )
        .init();
    let Command::Serve {
        config,
        http,
        udp,
        candidates,
        public_url,
        secret,
        api_key,
        no_demo,
        demo_channels,
        cluster,
    } = Cli::parse().command;
    let mut c = match config {
        Some(path) => match Config::load(&path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("tolk: {e}");
                return std::process::ExitCode::FAILURE;
            }
        },
        None => Config::default(),
    };
    c.http = http.unwrap_or(c.http);
    c.udp = udp.unwrap_or(c.udp);
    if !candidates.is_empty() {
        c.candidates = candidates;
    }
    c.public_url = public_url.or(c.public_url);
    c.secret = secret.or(c.secret);
    c.api_key = api_key.or(c.api_key);
    c.demo &= !no_demo;
    if let Some(d) = demo_channels {
        c.demo_channels = d;
    }
    if let Some(nats) = cluster {
        match &mut c.cluster {
            Some(cl) => cl.nats = nats,
            None => c.cluster = Some(tolk::config::ClusterConfig { nats, node: None, region: String::new() }),
        }
    }
    let rt = tokio::runtime::Runtime::new().expect("a tokio runtime");
    match rt.block_on(tolk::io::serve(c)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tolk: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
