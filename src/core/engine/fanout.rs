//! Who hears what: each room's peers, the streams it must encode, each listener's slot; the per-tick fan-out, room state and captions to the right people.

use super::stats::Counter;
use super::{Engine, Output, Relay};
use crate::core::media::codec::FRAME;
use crate::core::room::{Input, PeerId, Room, Stream};
use crate::protocol::{ChannelInfo, FloorInfo, NoticeKind, Role, ServerMsg};
use std::collections::BTreeSet;

/// A caption from the speech recogniser, for the engine to deliver to whoever hears its source.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Caption {
    pub room: String,
    /// The channel it transcribes; `None`: the floor.
    pub source: Option<String>,
    pub lang: Option<String>,
    pub text: String,
    /// A final caption never changes; a partial is replaced by the next one.
    pub is_final: bool,
    /// The room's media time (ms) the caption covers.
    pub start_ms: u64,
    pub end_ms: u64,
    /// Audio of this source the recogniser skipped to catch up with live speech (ms), just
    /// before this caption; with an empty `text`, only that news (hosts are told).
    pub skipped_ms: u64,
}

/// A room's peers and its fan-out: the streams someone hears, in the order the room
/// encodes them, and each receiving peer with the index of its stream, so a tick finds
/// every listener's payload without looking anything up by name.
#[derive(Default)]
pub(super) struct Fanout {
    /// Every peer of the room, in join order (ids grow): control messages touch these, not the engine's.
    pub(super) peers: BTreeSet<PeerId>,
    pub(super) streams: Vec<Stream>,
    pub(super) receivers: Vec<(PeerId, usize)>,
    /// For a mirrored room: what its listeners here hear, as last told to the cluster.
    pub(super) wanted: Vec<(Stream, u32)>,
    /// For a mirrored room: listeners who switched, still sent the stream they heard (and the
    /// media time of its last payload sent to them) until their new stream's first payload
    /// comes from the origin, so that a switch leaves no gap.
    pub(super) waiting: std::collections::BTreeMap<PeerId, (Stream, u32)>,
    /// For a mirrored room: payloads dropped in a row for coming too late.
    pub(super) late: u32,
}

impl Fanout {
    /// The streams the room must encode each tick, in fan-out order.
    pub(super) fn streams(&self) -> &[Stream] {
        &self.streams
    }
}

impl Engine {
    /// The peers of a room.
    pub(super) fn peers_of(&self, room: &str) -> impl Iterator<Item = PeerId> + '_ {
        self.fanout.get(room).into_iter().flat_map(|f| f.peers.iter().copied())
    }

    /// Recomputes what every peer of a room hears and which streams the room must encode.
    pub(super) fn restream(&mut self, room_id: &str) {
        let Some(room) = self.rooms.get(room_id) else { return };
        let f = self.fanout.entry(room_id.to_string()).or_default();
        // On a mirror, what each listener hears until its new stream's first payload comes.
        let before: Vec<(PeerId, Stream)> = match room.mirror {
            true => f.receivers.iter().map(|(id, s)| (*id, f.streams[*s].clone())).collect(),
            false => Vec::new(),
        };
        f.streams.clear();
        f.receivers.clear();
        let slot = |streams: &mut Vec<Stream>, s: &Stream| match streams.iter().position(|x| x == s) {
            Some(i) => i,
            None => {
                streams.push(s.clone());
                streams.len() - 1
            }
        };
        for &id in &f.peers {
            let p = self.peers.get_mut(&id).expect("a room's peers are the engine's peers");
            p.stream = match (&p.booth, p.role) {
                (Some(lang), Role::Interpreter) => {
                    let partner = room.channel(lang).is_some_and(|c| !c.booth.is_live(id));
                    let returned = room.floor_return.as_deref() == Some(lang.as_str());
                    if p.input == Input::Floor && !partner && !returned {
                        // The floor as everyone hears it: shared, and forwarded when it can be.
                        Stream::Floor
                    } else {
                        Stream::Booth { lang: lang.clone(), input: p.input.clone(), partner }
                    }
                }
                _ => p.listening.clone(),
            };
            if p.receives() {
                let i = slot(&mut f.streams, &p.stream);
                f.receivers.push((id, i));
            }
        }
        for o in self.outs.iter().filter(|o| o.spec.room == room_id) {
            slot(&mut f.streams, &o.stream);
        }
        if room.mirror {
            let f = self.fanout.get_mut(room_id).expect("made above");
            let mut waiting = std::mem::take(&mut f.waiting);
            waiting.retain(|id, _| f.receivers.iter().any(|(r, _)| r == id));
            for (id, old) in before {
                let Some(&(_, now)) = f.receivers.iter().find(|(r, _)| *r == id) else { continue };
                if f.streams[now] != old {
                    waiting.entry(id).or_insert((old, 0));
                }
            }
            // Back on the stream it still hears: nothing to wait for.
            waiting
                .retain(|id, (heard, _)| f.receivers.iter().any(|(r, s)| r == id && f.streams[*s] != *heard));
            for (heard, _) in waiting.values() {
                slot(&mut f.streams, heard);
            }
            f.waiting = waiting;
            self.want_of_mirror(room_id);
        } else {
            let recorded = self.recorded_streams(room_id);
            let remote = self.wanted(room_id);
            let f = self.fanout.get_mut(room_id).expect("made above");
            for s in recorded.iter().chain(remote.iter().map(|(s, _)| s)) {
                slot(&mut f.streams, s);
            }
        }
        self.stale.insert(room_id.to_string());
    }

    /// Every listener gets its stream's payload of this tick (added to the batch): a header and the SRTP step each.
    pub(super) fn fan_out(&mut self) {
        let (packets, bytes) = (self.batch.len(), self.batch.bytes());
        for (room, f) in &self.fanout {
            let Some(r) = self.rooms.get(room).filter(|r| !r.mirror) else { continue };
            // The room's own clock, so a listener's one track stays continuous across switches.
            let timestamp = (r.ticks * FRAME as u64) as u32;
            for &(id, slot) in &f.receivers {
                let Some(p) = self.peers.get_mut(&id) else { continue };
                let Some((sender, to)) = p.downstream(id) else { continue };
                let payload = if sender.red() { r.red_at(slot) } else { r.payload_at(slot) };
                let Some(payload) = payload else { continue };
                self.batch.push(to, |buf| sender.seal(timestamp, payload, buf));
            }
        }
        for o in &mut self.outs {
            if let Some(r) = self.rooms.get(&o.spec.room) {
                o.send(r, &mut self.batch);
            }
        }
        self.stats.add(Counter::DatagramsOut, (self.batch.len() - packets) as u64);
        self.stats.add(Counter::BytesOut, (self.batch.bytes() - bytes) as u64);
    }

    /// The room as its participants see it: the floor, each channel, listener counts.
    pub(super) fn room_state(&self, r: &Room) -> (FloorInfo, Vec<ChannelInfo>) {
        let mut floor = FloorInfo {
            sources: r.floor.len() as u32,
            listeners: 0,
            returned: r.floor_return.clone(),
            captions: r.captioned(None),
        };
        let mut channels: Vec<ChannelInfo> = r
            .channels
            .iter()
            .map(|c| ChannelInfo {
                lang: c.lang.clone(),
                name: c.name.clone(),
                live: c.booth.live.and_then(|p| c.booth.member(p)).map(|m| m.name.clone()),
                listeners: 0,
                members: c.booth.infos(),
                captions: r.captioned(Some(&c.lang)),
            })
            .collect();
        for id in self.peers_of(&r.id) {
            let p = &self.peers[&id];
            if !p.receives() || p.role == Role::Interpreter {
                continue;
            }
            match &p.stream {
                Stream::Floor => floor.listeners += 1,
                Stream::Channel(l) | Stream::Voice(l) | Stream::Balance { lang: l, .. } => {
                    if let Some(c) = channels.iter_mut().find(|c| &c.lang == l) {
                        c.listeners += 1;
                    }
                }
                Stream::Booth { .. } | Stream::Unreturned(_) => {}
            }
        }
        self.add_remote_listeners(r, &mut floor, &mut channels);
        (floor, channels)
    }

    /// Sends the state of every room that changed to its peers.
    pub(super) fn send_state(&mut self) {
        let stale = std::mem::take(&mut self.stale);
        for id in stale {
            let Some(r) = self.rooms.get(&id) else {
                continue;
            };
            if r.mirror {
                // Its origin's state, as last heard (the origin's own sends come as they change).
                if let Some(msg) = self.remote_state.get(&id).cloned() {
                    for peer in self.peers_of(&id).collect::<Vec<_>>() {
                        self.out.push_back(Output::Event { peer, msg: msg.clone() });
                    }
                }
                continue;
            }
            let (floor, channels) = self.room_state(r);
            let msg = ServerMsg::State { floor, channels, recording: r.recording.is_some() };
            if self.config.cluster {
                self.out.push_back(Output::Relay(Relay::State { room: id.clone(), msg: msg.clone() }));
            }
            // Booths whose audience changed, or whose relay fell silent or came back, are told.
            let booths: Vec<(String, (u32, Vec<PeerId>))> = r
                .channels
                .iter()
                .filter(|c| !c.booth.members.is_empty())
                .map(|c| (c.lang.clone(), c.told.clone()))
                .collect();
            let to: Vec<PeerId> = self.peers_of(&id).collect();
            for peer in to {
                self.out.push_back(Output::Event { peer, msg: msg.clone() });
            }
            for (lang, told) in booths {
                if self.booth_news(&id, &lang) != told {
                    self.notify_booth(&id, &lang, None);
                }
            }
        }
    }

    /// A caption from the recogniser: to the listeners of its source, and floor captions to every interpreter.
    pub fn handle_caption(&mut self, c: Caption) {
        let Some(r) = self.rooms.get(&c.room) else { return };
        if r.mirror || !r.captioned(c.source.as_deref()) {
            return; // turned off while the recogniser was busy
        }
        if self.config.cluster {
            self.out.push_back(Output::Relay(Relay::Caption(c.clone())));
        }
        self.deliver_caption(c);
    }

    /// A caption to whoever hears its source here (and, of the floor's, every interpreter).
    pub(super) fn deliver_caption(&mut self, c: Caption) {
        let Some(r) = self.rooms.get(&c.room) else { return };
        if c.skipped_ms > 0 {
            let notice = ServerMsg::Notice {
                kind: NoticeKind::CaptionsBehind,
                from: format!("{} ms of audio skipped", c.skipped_ms),
                channel: c.source.clone(),
            };
            let hosts: Vec<PeerId> =
                self.peers_of(&c.room).filter(|id| self.peers[id].role == Role::Host).collect();
            for id in hosts {
                self.out.push_back(Output::Event { peer: id, msg: notice.clone() });
            }
        }
        if c.text.is_empty() {
            return;
        }
        let msg = ServerMsg::Caption {
            source: c.source.clone(),
            lang: c.lang,
            text: c.text,
            is_final: c.is_final,
            start_ms: c.start_ms,
            end_ms: c.end_ms,
            at_ms: r.ticks * 20,
        };
        let to: Vec<PeerId> = self
            .peers_of(&c.room)
            .filter(|id| {
                let p = &self.peers[id];
                match (&c.source, &p.stream) {
                    (None, _) if p.role == Role::Interpreter => true,
                    (None, Stream::Floor) => true,
                    (Some(l), Stream::Channel(x) | Stream::Voice(x) | Stream::Balance { lang: x, .. }) => {
                        l == x
                    }
                    _ => false,
                }
            })
            .collect();
        for id in to {
            self.out.push_back(Output::Event { peer: id, msg: msg.clone() });
        }
    }
}
