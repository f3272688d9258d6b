//! A room across the nodes of a cluster: the streams edges want from an origin, the payloads the origin hands out each tick, and the relayed payloads, state and captions an edge passes to its listeners.
//!
//! A room is mixed on one node, its origin; on every other node it is a mirror
//! ([`Room::mirror`]): listeners join it there as anywhere, and what they hear arrives already
//! encoded, once per stream, and goes out through the same settled, encrypt-once path as the
//! origin's own fan-out. An edge says which streams its listeners hear ([`Relay::Want`], with
//! how many hear each); the origin encodes those as if its own listeners heard them and hands
//! each tick's payload out ([`Relay::Media`]). Sources never join a mirror: the IO layer
//! carries their sessions to the origin.

use super::{bad, Caption, Engine, Output};
use crate::core::media::codec::FRAME;
use crate::core::room::{Payload, PeerId, Room, Stream};
use crate::protocol::{Error, ErrorCode, Role, ServerMsg};
use std::time::{Duration, Instant};

/// An edge's wish not repeated for this long is forgotten (edges repeat theirs every second).
pub const WANT_TTL: Duration = Duration::from_secs(5);
/// A relayed payload this many ticks older than the mirror's clock is dropped: after a stall of
/// the link (NATS reconnecting) the backlog would only pile up in the listeners' buffers as
/// delay, as a stalled engine's would ([`super::MAX_CATCH_UP`]).
const LATE_TICKS: u32 = super::MAX_CATCH_UP;
/// ... unless this many in a row come late: then the origin's clock is another (a node that
/// started the room afresh) and the mirror follows it.
const LATE_RESYNC: u32 = 50;

/// What the engine hands to the other nodes (through the IO layer's cluster link).
#[derive(Debug)]
pub enum Relay {
    /// One tick of a stream an edge wants, as this node (the origin) encoded it.
    Media { room: String, stream: Stream, ts: u32, payload: Payload },
    /// The room's state as the origin sees it (listener counts of every node included), for
    /// the edges' sessions.
    State { room: String, msg: ServerMsg },
    /// A caption of a room this node mixes, for the edges' listeners.
    Caption(Caption),
    /// The streams this node's listeners of a mirrored room hear, each with how many hear it.
    Want { room: String, streams: Vec<(Stream, u32)> },
}

/// The streams one edge wants of a room, and when it last said so.
#[derive(Debug, Clone)]
pub(super) struct Want {
    streams: Vec<(Stream, u32)>,
    at: Instant,
}

impl Engine {
    /// Whether this node mixes `room` (`here`) or mirrors another node's mix of it. A room
    /// that becomes a mirror tells its sources, interpreters and hosts to join again (the IO
    /// layer then carries them to the new origin); its listeners stay and hear the relay.
    pub fn set_origin(&mut self, room: &str, here: bool) -> Result<(), Error> {
        let r =
            self.rooms.get_mut(room).ok_or_else(|| bad(ErrorCode::NotFound, format!("no room {room}")))?;
        if r.mirror != here {
            return Ok(());
        }
        r.mirror = !here;
        if here {
            self.remote_state.remove(room);
            // What it wanted as a mirror it wants no more: said, so the link unsubscribes.
            if let Some(f) = self.fanout.get_mut(room).filter(|f| !f.wanted.is_empty()) {
                f.wanted.clear();
                let room = room.to_string();
                self.out.push_back(Output::Relay(Relay::Want { room, streams: Vec::new() }));
            }
        } else {
            let mut moved: Vec<PeerId> =
                self.peers_of(room).filter(|id| self.peers[id].role != Role::Listener).collect();
            moved.sort_unstable();
            for id in moved {
                let why =
                    Error::new(ErrorCode::NotJoined, "this room is now mixed on another node; join again");
                self.end_with(id, why, None);
            }
        }
        self.restream(room);
        Ok(())
    }

    /// Whether `room` is mixed here (not a mirror).
    pub fn is_origin(&self, room: &str) -> bool {
        self.rooms.get(room).is_some_and(|r| !r.mirror)
    }

    /// Edge `node` hears these streams of `room` (repeated every second while it does).
    pub fn set_wants(&mut self, now: Instant, room: &str, node: &str, streams: Vec<(Stream, u32)>) {
        if !self.rooms.contains_key(room) {
            return;
        }
        let wants = self.wants.entry(room.to_string()).or_default();
        let changed = wants.get(node).is_none_or(|w| w.streams != streams);
        if streams.is_empty() {
            wants.remove(node);
        } else {
            wants.insert(node.to_string(), Want { streams, at: now });
        }
        if changed {
            self.restream(room);
        }
    }

    /// Forgets the wishes of edges that stopped repeating them (a node that died).
    pub(super) fn expire_wants(&mut self, now: Instant) {
        let mut stale = Vec::new();
        for (room, wants) in &mut self.wants {
            let before = wants.len();
            wants.retain(|_, w| now.saturating_duration_since(w.at) < WANT_TTL);
            if wants.len() != before {
                stale.push(room.clone());
            }
        }
        self.wants.retain(|_, w| !w.is_empty());
        for room in stale {
            self.restream(&room);
        }
    }

    /// The distinct streams other nodes want of `room`, and how many listeners hear each there.
    pub(super) fn wanted(&self, room: &str) -> Vec<(Stream, u32)> {
        let mut all: Vec<(Stream, u32)> = Vec::new();
        for w in self.wants.get(room).into_iter().flat_map(|w| w.values()) {
            for (s, n) in &w.streams {
                match all.iter_mut().find(|(x, _)| x == s) {
                    Some((_, m)) => *m += n,
                    None => all.push((s.clone(), *n)),
                }
            }
        }
        all
    }

    /// What this node's listeners of mirrored `room` hear: told to the cluster when it changes.
    pub(super) fn want_of_mirror(&mut self, room: &str) {
        let Some(f) = self.fanout.get_mut(room) else { return };
        let mut counts = vec![0u32; f.streams.len()];
        for &(_, slot) in &f.receivers {
            counts[slot] += 1;
        }
        // A stream that switching listeners still hear is wanted too (counted with their new one).
        let heard = |s: &Stream| f.waiting.values().any(|(h, _)| h == s);
        let streams: Vec<(Stream, u32)> = f
            .streams
            .iter()
            .zip(counts)
            .filter(|(s, n)| (*n > 0 || heard(s)) && s.key().is_some())
            .map(|(s, n)| (s.clone(), n))
            .collect();
        if f.wanted != streams {
            f.wanted = streams.clone();
            self.out.push_back(Output::Relay(Relay::Want { room: room.to_string(), streams }));
        }
    }

    /// Once a second: what this node wants of each mirrored room, and the state of each room
    /// mixed here, said again. Both are otherwise said only when they change, and one lost on
    /// the way (the link's queue full while NATS stalled) is so made good within a second.
    pub(super) fn resync_cluster(&mut self) {
        if !self.config.cluster {
            return;
        }
        let mut ids: Vec<&String> = self.rooms.keys().collect();
        ids.sort();
        for id in ids {
            let r = &self.rooms[id];
            let relay = if r.mirror {
                let streams = self.fanout.get(id).map(|f| f.wanted.clone()).unwrap_or_default();
                Relay::Want { room: id.clone(), streams }
            } else {
                let (floor, channels) = self.room_state(r);
                let msg = ServerMsg::State { floor, channels, recording: r.recording.is_some() };
                Relay::State { room: id.clone(), msg }
            };
            self.out.push_back(Output::Relay(relay));
        }
    }

    /// After a tick: the payload of every stream other nodes want of the rooms mixed here.
    pub(super) fn relay_out(&mut self) {
        for (room, wants) in &self.wants {
            let (Some(r), Some(f)) = (self.rooms.get(room), self.fanout.get(room)) else { continue };
            if r.mirror || wants.is_empty() {
                continue;
            }
            let ts = (r.ticks * FRAME as u64) as u32;
            for stream in self.wanted(room).into_iter().map(|(s, _)| s) {
                let Some(slot) = f.streams.iter().position(|s| *s == stream) else { continue };
                let Some(payload) = r.payload_at(slot) else { continue };
                let payload = payload.clone();
                self.out.push_back(Output::Relay(Relay::Media { room: room.clone(), stream, ts, payload }));
            }
        }
    }

    /// One tick of a mirrored room's stream from its origin: to every listener here who hears
    /// it, at once (into [`Engine::batch`], which the caller sends when this returns true).
    pub fn handle_relayed(&mut self, room: &str, stream: &Stream, ts: u32, payload: Payload) -> bool {
        let (Some(r), Some(f)) = (self.rooms.get_mut(room), self.fanout.get_mut(room)) else { return false };
        if !r.mirror {
            return false;
        }
        let Some(slot) = f.streams.iter().position(|s| s == stream) else { return false };
        let age = ((r.ticks * FRAME as u64) as u32).wrapping_sub(ts) as i32;
        if age > (LATE_TICKS * FRAME as u32) as i32 && f.late < LATE_RESYNC {
            f.late += 1;
            return false;
        }
        f.late = 0;
        r.relay(&f.streams, slot, ts, payload);
        self.batch.clear();
        let mut switched = false;
        let to_send = f.receivers.iter().filter(|(_, s)| *s == slot).map(|(id, _)| *id);
        let old: Vec<PeerId> =
            f.waiting.iter().filter(|(_, (h, _))| h == stream).map(|(id, _)| *id).collect();
        for id in to_send.chain(old.iter().copied()).collect::<Vec<_>>() {
            let still = old.contains(&id);
            if let Some((_, last)) = f.waiting.get_mut(&id) {
                if !still {
                    // Its new stream came: the switch is done (at a later media time, so no frame twice).
                    let last = *last;
                    f.waiting.remove(&id);
                    switched = true;
                    if ts <= last {
                        continue;
                    }
                } else {
                    *last = ts;
                }
            }
            let Some(p) = self.peers.get_mut(&id) else { continue };
            let Some((sender, to)) = p.downstream(id) else { continue };
            let payload = if sender.red() { r.red_at(slot) } else { r.payload_at(slot) };
            let Some(payload) = payload else { continue };
            self.batch.push(to, |buf| sender.seal(ts, payload, buf));
        }
        if switched {
            // The streams only switching listeners still heard are wanted no more.
            self.want_of_mirror(room);
        }
        self.stats.add(super::Counter::DatagramsOut, self.batch.len() as u64);
        self.stats.add(super::Counter::BytesOut, self.batch.bytes() as u64);
        !self.batch.is_empty()
    }

    /// The origin's state of a mirrored room: to this node's sessions of it.
    pub fn handle_remote_state(&mut self, room: &str, msg: ServerMsg) {
        if !self.rooms.get(room).is_some_and(|r| r.mirror) || !matches!(msg, ServerMsg::State { .. }) {
            return;
        }
        // The origin says it again every second: the sessions here are told when it changed.
        if self.remote_state.get(room) == Some(&msg) {
            return;
        }
        self.remote_state.insert(room.to_string(), msg.clone());
        let to: Vec<PeerId> = self.peers_of(room).collect();
        for peer in to {
            self.out.push_back(Output::Event { peer, msg: msg.clone() });
        }
    }

    /// A caption of a mirrored room, from its origin.
    pub fn handle_remote_caption(&mut self, c: Caption) {
        if self.rooms.get(&c.room).is_some_and(|r| r.mirror) {
            self.deliver_caption(c);
        }
    }

    /// Listeners on other nodes, added to the room's counts.
    pub(super) fn add_remote_listeners(
        &self,
        r: &Room,
        floor: &mut crate::protocol::FloorInfo,
        channels: &mut [crate::protocol::ChannelInfo],
    ) {
        for (s, n) in self.wanted(&r.id) {
            match &s {
                Stream::Floor => floor.listeners += n,
                Stream::Channel(l) | Stream::Voice(l) | Stream::Balance { lang: l, .. } => {
                    if let Some(c) = channels.iter_mut().find(|c| &c.lang == l) {
                        c.listeners += n;
                    }
                }
                _ => {}
            }
        }
    }
}
