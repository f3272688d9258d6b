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
//! Layout (threads, queues and the invariants the core relies on: `docs/ARCHITECTURE.md`):
//! - [`core`]: the sans-IO engine. No sockets, no clock, no threads, no unsafe; it
//!   depends only on [`protocol`]. Every input carries `now`, every output is polled
//!   ([`core::engine`]: peers and their connection life, routing, sessions, booth
//!   controls, the per-tick fan-out, the plain RTP doors, counters). Rooms
//!   ([`core::room`]) mix once per 20 ms tick and encode each stream someone hears
//!   once; booths keep the handover rules ([`core::room::booth`]). [`core::media`] does
//!   the per-frame work (jitter buffer, Opus, mixing, resampling); [`core::wire`] the
//!   per-packet work: plain RTP, the SRTP step of each listener's packet (keys taken
//!   from str0m's DTLS handshake), and the consent answers of listeners that have
//!   settled (their str0m session dropped). [`core::spec`] holds what rooms and doors
//!   are made of.
//! - [`io`]: the thin drivers. One thread per core owns an engine and its UDP
//!   socket (the first also the plain RTP tap) ([`io::driver`]); rooms are
//!   spread over the engines; axum serves the API, the web client,
//!   the signalling WebSocket and the WHIP/WHEP doors ([`io::http`],
//!   [`io::signal`], [`io::whip`]); [`io::sys`] holds the only unsafe code. In a
//!   cluster, [`io::cluster`] links the node to the others on NATS: a room is mixed on one
//!   node and mirrored on the rest, which fan its encoded streams out to their listeners.
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
