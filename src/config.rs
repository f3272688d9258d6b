//! Parsed and validated configuration: a TOML file, overridden by command-line flags.

use crate::core::spec::{RtpOutSpec, TapSpec};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// HTTP address: the web client, the API, the signalling WebSocket.
    pub http: SocketAddr,
    /// The one UDP socket every peer's media goes through.
    pub udp: SocketAddr,
    /// Addresses clients reach the UDP socket at (ICE host candidates).
    /// Empty: the UDP address itself, which must then not be 0.0.0.0.
    /// With several engines, engine i uses each candidate's port + i.
    pub candidates: Vec<SocketAddr>,
    /// Media engines (threads, each with its own UDP socket on `udp`'s port + i);
    /// rooms are spread over them. Unset: one per core.
    pub engines: Option<usize>,
    /// Nice value of the media threads (-20 to 19): below 0, a busy machine delays the
    /// 20 ms tick less. Needs root or CAP_SYS_NICE; without it they run at 0 and say so.
    pub media_nice: i32,
    /// Base URL printed in invite links; defaults to `http://<http>`.
    pub public_url: Option<String>,
    /// HMAC secret for tokens. Unset: a random one per start (old links stop working).
    pub secret: Option<String>,
    /// Key for the host HTTP API. Unset: a random one per start, printed.
    pub api_key: Option<String>,
    /// A bearer token for monitoring only: `/metrics` and the details of `/health` (which
    /// name rooms and count listeners) need it or the API key; unset: the API key only.
    pub metrics_token: Option<String>,
    /// Create a demo room at start and print its invite links.
    pub demo: bool,
    /// Channels of the demo room (BCP 47 tags).
    pub demo_channels: Vec<String>,
    /// Lifetime of minted tokens, in seconds.
    pub token_ttl_secs: u64,
    /// A plain RTP floor tap: Opus over RTP from a media server becomes a room's floor.
    pub rtp_tap: Option<TapSpec>,
    /// Plain RTP outputs: a room's floor or channel sent as RTP Opus to an address.
    pub rtp_out: Vec<RtpOutSpec>,
    /// Run speech recognition so hosts can turn captions on (needs a model in `models_dir`).
    pub captions: bool,
    /// Where `ggml-tiny.en.bin` and `ggml-base.bin` are (models/get.sh puts them there).
    pub models_dir: PathBuf,
    /// Where the transcript database lives.
    pub data_dir: PathBuf,
    /// Days a transcript line is kept before it is deleted.
    pub transcript_days: u64,
    /// A TURN relay (coturn with `use-auth-secret`): pages get short-lived credentials for it.
    pub turn: Option<TurnConfig>,
    /// Also accept media over TCP (passive ICE-TCP candidates on each engine's UDP port number),
    /// for networks that let only TCP through.
    pub ice_tcp: bool,
    /// Sessions one listener link may hold at once (a link shared with a hall's audience).
    /// Interpreter and floor links hold 4, host links 8.
    pub listeners_per_link: usize,
    /// HTTP connections (pages, WebSockets, API calls) held at once; more are closed at once.
    /// Unset: half the open-file limit (less 256 for sockets and the database).
    pub max_connections: Option<usize>,
    /// A room nobody has joined for this many hours is deleted with its transcript; 0: never.
    pub room_expiry_hours: u64,
    /// Let hosts record rooms (each room is off until its host starts it); false: never.
    pub recording: bool,
    /// Where recordings are written. Unset: `recordings` in `data_dir`.
    pub recordings_dir: Option<PathBuf>,
    /// Days a recording is kept before it is deleted.
    pub recording_days: u64,
    /// Run as one node of a cluster (see "Running several nodes" in the README).
    pub cluster: Option<ClusterConfig>,
}

/// One node of a cluster: the NATS server (with JetStream) the nodes share, this node's name
/// and region. Every node needs the same `secret` and `api_key`, and a `public_url` the
/// others and the clients reach it at.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// e.g. `nats://10.0.0.5:4222`.
    pub nats: String,
    /// This node's name, unique in the cluster (letters, digits, `-`, `_`). Unset: made from
    /// the HTTP address.
    #[serde(default)]
    pub node: Option<String>,
    /// Where the node is (e.g. `eu`): rooms are placed, and listeners sent, in their own region first.
    #[serde(default)]
    pub region: String,
}

/// A TURN relay as coturn runs it with `use-auth-secret` (the TURN REST API scheme).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TurnConfig {
    /// URLs handed to pages, e.g. `turn:turn.example.org:3478?transport=udp`,
    /// `turn:turn.example.org:3478?transport=tcp`, `turns:turn.example.org:5349`.
    pub urls: Vec<String>,
    /// coturn's `static-auth-secret`.
    pub secret: String,
    /// How long the credentials a page gets are valid, in seconds.
    #[serde(default = "default_turn_ttl")]
    pub ttl_secs: u64,
}

fn default_turn_ttl() -> u64 {
    12 * 3600
}

impl Default for Config {
    fn default() -> Self {
        Config {
            http: "127.0.0.1:8080".parse().expect("literal address"),
            udp: "127.0.0.1:50000".parse().expect("literal address"),
            candidates: Vec::new(),
            engines: None,
            media_nice: -10,
            public_url: None,
            secret: None,
            api_key: None,
            metrics_token: None,
            demo: true,
            demo_channels: vec!["en".into(), "es".into(), "fr".into()],
            token_ttl_secs: 24 * 3600,
            rtp_tap: None,
            rtp_out: Vec::new(),
            captions: true,
            models_dir: "models".into(),
            data_dir: "data".into(),
            transcript_days: 30,
            turn: None,
            ice_tcp: true,
            listeners_per_link: 1000,
            max_connections: None,
            room_expiry_hours: 7 * 24,
            recording: true,
            recordings_dir: None,
            recording_days: 30,
            cluster: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {0}: {1}")]
    Read(String, std::io::Error),
    #[error("bad configuration in {0}: {1}")]
    Parse(String, toml::de::Error),
    #[error("{0}")]
    Invalid(String),
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read(name.clone(), e))?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse(name, e))
    }

    /// Where recordings are written.
    pub fn recordings(&self) -> PathBuf {
        self.recordings_dir.clone().unwrap_or_else(|| self.data_dir.join("recordings"))
    }

    /// Media engines to run: the configured number, else one per core (at most 16).
    pub fn engine_count(&self) -> usize {
        self.engines
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .clamp(1, 16)
    }

    /// Candidates engine `index` announces, given the address its UDP socket actually bound:
    /// the configured candidates with their port moved up by `index`, else that address.
    pub fn candidates_for(&self, bound: SocketAddr, index: usize) -> Result<Vec<SocketAddr>, ConfigError> {
        if !self.candidates.is_empty() {
            return Ok(self
                .candidates
                .iter()
                .map(|c| SocketAddr::new(c.ip(), c.port() + index as u16))
                .collect());
        }
        if bound.ip().is_unspecified() {
            return Err(ConfigError::Invalid(format!(
                "UDP is bound to {bound}: set a candidate address that clients can reach (--candidate IP:{})",
                bound.port()
            )));
        }
        Ok(vec![bound])
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(-20..=19).contains(&self.media_nice) {
            return Err(ConfigError::Invalid(format!(
                "media_nice is {}: it must be -20 to 19",
                self.media_nice
            )));
        }
        if let Some(s) = &self.secret {
            if s.len() < 16 {
                return Err(ConfigError::Invalid("secret must be at least 16 characters".into()));
            }
        }
        if let Some(t) = &self.rtp_tap {
            if t.payload_type > 127 {
                return Err(ConfigError::Invalid("rtp_tap.payload_type must be 0-127".into()));
            }
        }
        if self.rtp_out.iter().any(|o| o.payload_type > 127) {
            return Err(ConfigError::Invalid("rtp_out payload_type must be 0-127".into()));
        }
        if let Some(t) = &self.turn {
            if t.urls.is_empty() || t.secret.is_empty() || t.ttl_secs == 0 {
                return Err(ConfigError::Invalid("turn needs urls, a secret and a positive ttl_secs".into()));
            }
            if let Some(u) =
                t.urls.iter().find(|u| !["turn:", "turns:", "stun:"].iter().any(|s| u.starts_with(s)))
            {
                return Err(ConfigError::Invalid(format!(
                    "turn url {u:?} must start with turn:, turns: or stun:"
                )));
            }
        }
        if self.listeners_per_link == 0 || self.max_connections == Some(0) {
            return Err(ConfigError::Invalid(
                "listeners_per_link and max_connections must be positive".into(),
            ));
        }
        if self.recording_days == 0 {
            return Err(ConfigError::Invalid("recording_days must be at least 1".into()));
        }
        if let Some(c) = &self.cluster {
            if !c.nats.starts_with("nats://") && !c.nats.starts_with("tls://") {
                return Err(ConfigError::Invalid(format!("cluster.nats {:?} must be a nats:// URL", c.nats)));
            }
            let name_ok = |s: &str| {
                s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            };
            if !c.node.as_deref().is_none_or(|n| !n.is_empty() && name_ok(n)) || !name_ok(&c.region) {
                return Err(ConfigError::Invalid(
                    "cluster.node and cluster.region may hold only letters, digits, - and _ (at most 64)"
                        .into(),
                ));
            }
            if self.secret.is_none() || self.api_key.is_none() {
                return Err(ConfigError::Invalid(
                    "a cluster node needs secret and api_key, the same on every node".into(),
                ));
            }
        }
        if self.token_ttl_secs == 0 {
            return Err(ConfigError::Invalid("token_ttl_secs must be positive".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_checks() {
        let c: Config = toml::from_str("udp = \"0.0.0.0:5000\"\ndemo = false\n").unwrap();
        assert!(!c.demo);
        assert!(c.candidates_for(c.udp, 0).is_err(), "0.0.0.0 needs a candidate");
        let c = Config { candidates: vec!["192.0.2.1:5000".parse().unwrap()], ..c };
        assert_eq!(c.candidates_for(c.udp, 1).unwrap(), vec!["192.0.2.1:5001".parse().unwrap()]);
        assert!(toml::from_str::<Config>("nonsense = 1").is_err());
        let c = Config { secret: Some("short".into()), ..Config::default() };
        assert!(c.validate().is_err());
        let c: Config = toml::from_str("media_nice = -21").unwrap();
        assert!(c.validate().unwrap_err().to_string().contains("-20 to 19"));
        assert!(Config::default().validate().is_ok());
    }
}
