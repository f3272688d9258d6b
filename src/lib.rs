//! tolk: real-time interpretation channels for online meetings.
//!
//! A room's **Floor** (the meeting's original audio) goes to **interpreters**;
//! each interpreter's voice becomes a language **Channel**; every **Listener**
//! picks a channel and can switch at any moment, on one WebRTC track.
//!
//! ```text
//!  floor sources ─► jitter ─► decode ─► floor mix ──┬──────────────► floor listeners (forwarded or encoded once)
//!                                                   └──► interpreters (their one downstream track)
//!  interpreter (live) ─► jitter ─► decode ─► channel mix = voice + ducked floor ─► limit ─► encode once ─► N listeners
//! ```
//!
//! Layout:
//! - [`core`]: the sans-IO engine. No sockets, no clock, no threads: every
//!   input carries `now`, every output is polled ([`core::engine`]); booth
//!   controls and their permissions are in [`core::control`]. Rooms
//!   ([`core::room`]) mix once per 20 ms tick and encode each stream someone
//!   hears once; [`core::jitter`], [`core::mixer`] and [`core::codec`] do the
//!   per-frame work; [`core::rtp`] reads and writes plain RTP headers.
//!   Each listener's packet is its channel's payload plus a header and one
//!   encryption ([`core::srtp`], keys taken from str0m's DTLS handshake);
//!   once set up, a listener settles ([`core::settled`]): its str0m session
//!   is dropped and its ICE consent checks are answered by the engine.
//! - [`io`]: the thin drivers. One thread per core owns an engine and its UDP
//!   socket (the first also the plain RTP tap) ([`io::driver`]); rooms are
//!   spread over the engines; axum serves the API, the web client,
//!   the signalling WebSocket and the WHIP/WHEP doors ([`io::http`],
//!   [`io::signal`], [`io::whip`]).
//! - [`asr`]: captions. A recogniser thread fed 16 kHz audio through a
//!   bounded queue (voice-gated windows, LocalAgreement, Whisper); [`store`]
//!   keeps every final caption in SQLite.
//! - [`protocol`]: the signalling messages (the wire contract, written down there).
//! - [`token`]: signed invitations; [`config`]: configuration.
#![deny(unsafe_code)]

pub mod asr;
pub mod config;
pub mod core;
pub mod io;
pub mod protocol;
pub mod store;
pub mod token;
