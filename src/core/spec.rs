//! What rooms and doors are made of, as hosts and the configuration describe them: the one place for these shapes.

use super::media::mixer::DuckSettings;
use std::net::SocketAddr;

#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
pub struct ChannelSpec {
    pub lang: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub duck: DuckSettings,
}

#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
pub struct RoomSpec {
    pub id: String,
    #[serde(default)]
    pub floor_lang: Option<String>,
    #[serde(default)]
    pub channels: Vec<ChannelSpec>,
}

/// A plain RTP floor tap: Opus packets from a media server become a floor source.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct TapSpec {
    /// UDP address to receive RTP on (the driver binds it; the engine only reads packets).
    pub bind: SocketAddr,
    pub room: String,
    /// Payload type of the Opus packets (the SDP's `a=rtpmap:<pt> opus/48000/2`).
    #[serde(default = "default_pt")]
    pub payload_type: u8,
    /// Accept only this SSRC; unset: the first SSRC heard, re-locking after 1 s of silence.
    #[serde(default)]
    pub ssrc: Option<u32>,
    /// Accept packets only from this address (the meeting's media server): anyone else who
    /// reaches the port is refused. Unset: the first sender heard, re-locking after 1 s of
    /// silence (each change is logged, counted and shown to the room's hosts).
    #[serde(default)]
    pub source: Option<std::net::IpAddr>,
}

/// A plain RTP output: one room stream (the floor or a channel mix) sent as RTP Opus.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RtpOutSpec {
    pub room: String,
    /// The channel to send; unset: the floor.
    #[serde(default)]
    pub channel: Option<String>,
    pub to: SocketAddr,
    #[serde(default = "default_pt")]
    pub payload_type: u8,
    #[serde(default = "default_ssrc")]
    pub ssrc: u32,
}

/// Opus's usual dynamic payload type (what browsers offer).
fn default_pt() -> u8 {
    111
}

fn default_ssrc() -> u32 {
    0x746f_6c6b // "tolk"
}
