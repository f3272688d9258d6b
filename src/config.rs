//! Parsed and validated configuration: a TOML file, overridden by command-line flags.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::Path;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// HTTP address: the web client, the API, the signalling WebSocket.
    pub http: SocketAddr,
    /// The one UDP socket every peer's media goes through.
    pub udp: SocketAddr,
    /// Addresses clients reach the UDP socket at (ICE host candidates).
    /// Empty: the UDP address itself, which must then not be 0.0.0.0.
    pub candidates: Vec<SocketAddr>,
    /// Base URL printed in invite links; defaults to `http://<http>`.
    pub public_url: Option<String>,
    /// HMAC secret for tokens. Unset: a random one per start (old links stop working).
    pub secret: Option<String>,
    /// Key for the host HTTP API. Unset: a random one per start, printed.
    pub api_key: Option<String>,
    /// Create a demo room at start and print its invite links.
    pub demo: bool,
    /// Channels of the demo room (BCP 47 tags).
    pub demo_channels: Vec<String>,
    /// Lifetime of minted tokens, in seconds.
    pub token_ttl_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            http: "127.0.0.1:8080".parse().expect("literal address"),
            udp: "127.0.0.1:50000".parse().expect("literal address"),
            candidates: Vec::new(),
            public_url: None,
            secret: None,
            api_key: None,
            demo: true,
            demo_channels: vec!["en".into(), "es".into(), "fr".into()],
            token_ttl_secs: 24 * 3600,
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

    /// Candidates to announce, given the address the UDP socket actually bound.
    pub fn candidates_for(&self, bound: SocketAddr) -> Result<Vec<SocketAddr>, ConfigError> {
        if !self.candidates.is_empty() {
            return Ok(self.candidates.clone());
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
        if let Some(s) = &self.secret {
            if s.len() < 16 {
                return Err(ConfigError::Invalid("secret must be at least 16 characters".into()));
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
        assert!(c.candidates_for(c.udp).is_err(), "0.0.0.0 needs a candidate");
        assert!(toml::from_str::<Config>("nonsense = 1").is_err());
        let c = Config { secret: Some("short".into()), ..Config::default() };
        assert!(c.validate().is_err());
    }
}
