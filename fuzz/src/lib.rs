//! What the engine targets share: an engine with one room, and admissions into it.

use std::time::Instant;
use tolk::core::engine::{Admission, Engine, EngineConfig};
use tolk::core::spec::RoomSpec;
use tolk::protocol::Role;

/// The media address the engine's candidates name.
pub const SERVER: &str = "127.0.0.1:50000";

/// An engine (ICE-TCP candidates with `tcp`) with room `r`, no channels.
pub fn engine(now: Instant, tcp: bool) -> Engine {
    let server = SERVER.parse().unwrap();
    let config = EngineConfig {
        candidates: vec![server],
        tcp_candidates: if tcp { vec![server] } else { vec![] },
        captions: false,
        recording: false,
        cluster: false,
    };
    let mut engine = Engine::new(config, now);
    engine.create_room(RoomSpec { id: "r".into(), floor_lang: None, channels: vec![] }).unwrap();
    engine
}

/// An admission into room `r`.
pub fn admission(role: Role) -> Admission {
    Admission { room: "r".into(), role, name: "fuzz".into(), channel: None, also: vec![], resume: None, invitation: String::new() }
}
