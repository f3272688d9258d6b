//! A peer's session: rooms and channels made, joining with an admission, the SDP offer and answer, media lost, leaving.

use super::peer::{Link, Peer, RtcLink};
use super::{bad, Engine, Output, BOOTH_GRACE, MAX_BOOTH, MAX_CHANNELS, MAX_PEERS, MAX_ROOMS, SEND_BUFFER};
use crate::core::room::{Channel, Member, PeerId, Room, Source, Stream};
use crate::core::spec::{ChannelSpec, RoomSpec};
use crate::core::wire::srtp;
use crate::protocol::{BoothWarning, ChannelInfo, Error, ErrorCode, FloorInfo, Role, ServerMsg};
use std::time::Instant;
use str0m::change::SdpOffer;
use str0m::net::TcpType;
use str0m::{Candidate, Rtc};

/// Who may join, as the IO layer read it from a verified invitation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    pub room: String,
    pub role: Role,
    pub name: String,
    /// The channel an interpreter works in (a listener's first channel).
    pub channel: Option<String>,
    /// Further channels an interpreter may publish into (bidirectional work).
    pub also: Vec<String>,
    /// The same person coming back (a page that reconnects, a WHIP client that posts again):
    /// a session of this room with the same role and key is replaced by the new one.
    pub resume: Option<String>,
    /// The invitation's id: when its host revokes it, its sessions end.
    pub invitation: String,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct RoomView {
    pub id: String,
    pub floor_lang: Option<String>,
    pub floor: FloorInfo,
    pub channels: Vec<ChannelInfo>,
    /// The room is being recorded.
    #[serde(default)]
    pub recording: bool,
}

/// A language tag as BCP 47 spells them: letters, digits and dashes, short.
pub(super) fn valid_lang(lang: &str) -> bool {
    !lang.is_empty()
        && lang.len() <= 35
        && lang.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && lang != "floor"
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// What an SDP offer asks for, read from its audio sections.
struct OfferShape {
    audio: usize,
    video: usize,
    /// Some audio section sends from the client.
    sends: bool,
}

fn offer_shape(sdp: &str) -> OfferShape {
    let mut shape = OfferShape { audio: 0, video: 0, sends: false };
    let mut in_audio = false;
    let mut dir_seen = false;
    let close = |in_audio: bool, dir_seen: bool, shape: &mut OfferShape| {
        // An audio section without a direction attribute is sendrecv (RFC 8866).
        if in_audio && !dir_seen {
            shape.sends = true;
        }
    };
    for line in sdp.lines() {
        let line = line.trim_end();
        if let Some(m) = line.strip_prefix("m=") {
            close(in_audio, dir_seen, &mut shape);
            dir_seen = false;
            in_audio = m.starts_with("audio ");
            if in_audio {
                shape.audio += 1;
            } else if m.starts_with("video ") {
                shape.video += 1;
            }
        } else if in_audio {
            match line {
                "a=sendrecv" | "a=sendonly" => {
                    dir_seen = true;
                    shape.sends = true;
                }
                "a=recvonly" | "a=inactive" => dir_seen = true,
                _ => {}
            }
        }
    }
    close(in_audio, dir_seen, &mut shape);
    shape
}

/// Most lines in an SDP offer: a browser's audio offer has 30-60; reading one costs time on the
/// thread that reads it, and str0m's work on it grows with its codecs.
pub const MAX_OFFER_LINES: usize = 200;

/// An SDP offer, read and checked: the IO layer reads it off the media thread (a 64 KiB
/// offer takes milliseconds to parse) and hands the engine this.
pub struct Offer {
    sdp: SdpOffer,
    shape: OfferShape,
}

impl Offer {
    /// Reads an offer; its error says what is wrong without echoing the parser's internals.
    pub fn parse(sdp: &str) -> Result<Offer, Error> {
        let lines = sdp.lines().count();
        if lines > MAX_OFFER_LINES {
            return Err(bad(
                ErrorCode::BadSdp,
                format!("an offer has at most {MAX_OFFER_LINES} lines (this one has {lines})"),
            ));
        }
        let shape = offer_shape(sdp);
        if shape.audio != 1 || shape.video > 0 {
            return Err(bad(
                ErrorCode::BadSdp,
                format!(
                    "offer one audio section and no video (got {} audio, {} video)",
                    shape.audio, shape.video
                ),
            ));
        }
        // The parser's own message shows positions as memory addresses: not for the client.
        let sdp = SdpOffer::from_sdp_string(sdp)
            .map_err(|_| bad(ErrorCode::BadSdp, "unreadable SDP offer: not valid SDP (RFC 8866)"))?;
        Ok(Offer { sdp, shape })
    }
}

/// Opus bitrate a publisher is asked for: full band mono speech and music with room for
/// in-band FEC (browsers default to 32 kbit/s, which cuts the top of the band). Browsers
/// that send RED double it on the wire, so it is the lower end of what full band needs.
const PUBLISH_BITRATE: u32 = 96_000;

/// Asks a publisher for [`PUBLISH_BITRATE`] in the answer's Opus `fmtp` (RFC 7587
/// `maxaveragebitrate`, which browsers apply to their encoder); the answer already asks for
/// in-band FEC (`useinbandfec=1`).
fn publish_full_band(answer: &str) -> String {
    let opus_pt = answer.lines().find_map(|l| {
        let (pt, codec) = l.strip_prefix("a=rtpmap:")?.split_once(' ')?;
        codec.to_ascii_lowercase().starts_with("opus/48000").then(|| pt.to_string())
    });
    let Some(pt) = opus_pt else { return answer.to_string() };
    let fmtp = format!("a=fmtp:{pt} ");
    let mut out = String::with_capacity(answer.len() + 32);
    for line in answer.split_inclusive("\r\n") {
        match line.strip_suffix("\r\n") {
            Some(l) if l.starts_with(&fmtp) && !l.contains("maxaveragebitrate") => {
                out.push_str(l);
                out.push_str(&format!(";maxaveragebitrate={PUBLISH_BITRATE}\r\n"));
            }
            _ => out.push_str(line),
        }
    }
    out
}

impl Engine {
    pub fn create_room(&mut self, spec: RoomSpec) -> Result<RoomView, Error> {
        if !valid_id(&spec.id) {
            return Err(bad(ErrorCode::BadMessage, "room id must be 1-64 letters, digits, '-' or '_'"));
        }
        if self.rooms.contains_key(&spec.id) {
            return Err(bad(ErrorCode::Exists, format!("room {} already exists", spec.id)));
        }
        if self.rooms.len() >= MAX_ROOMS {
            return Err(bad(ErrorCode::Busy, format!("this server holds at most {MAX_ROOMS} rooms")));
        }
        if let Some(l) = &spec.floor_lang {
            if !valid_lang(l) {
                return Err(bad(ErrorCode::BadMessage, format!("bad floor language tag {l:?}")));
            }
        }
        let id = spec.id.clone();
        let mut room = Room::new(id.clone(), spec.floor_lang);
        // In a cluster a room is a mirror until this node is told it mixes it.
        room.mirror = self.config.cluster;
        self.rooms.insert(id.clone(), room);
        for c in spec.channels {
            if let Err(e) = self.add_channel(&id, c) {
                self.rooms.remove(&id);
                return Err(e);
            }
        }
        self.fanout.insert(id.clone(), Default::default());
        self.restream(&id);
        Ok(self.room_view(&id).expect("room was just inserted"))
    }

    pub fn add_channel(&mut self, room: &str, spec: ChannelSpec) -> Result<RoomView, Error> {
        let r =
            self.rooms.get_mut(room).ok_or_else(|| bad(ErrorCode::NotFound, format!("no room {room}")))?;
        if !valid_lang(&spec.lang) {
            return Err(bad(ErrorCode::BadMessage, format!("bad channel language tag {:?}", spec.lang)));
        }
        if r.channel(&spec.lang).is_some() {
            return Err(bad(ErrorCode::Exists, format!("channel {} already exists", spec.lang)));
        }
        if r.channels.len() >= MAX_CHANNELS {
            return Err(bad(ErrorCode::Busy, format!("a room holds at most {MAX_CHANNELS} channels")));
        }
        let name = if spec.name.is_empty() { spec.lang.clone() } else { spec.name };
        if name.len() > 64 {
            return Err(bad(ErrorCode::BadMessage, "channel name is longer than 64 bytes"));
        }
        r.channels.push(Channel::new(spec.lang, name, spec.duck));
        if r.recording.is_some() {
            // A recorded room records its new channel too, from now on.
            self.restream(room);
        }
        self.stale.insert(room.to_string());
        Ok(self.room_view(room).expect("room exists"))
    }

    /// Renames a channel; everyone in the room sees the new name with the next state.
    pub fn rename_channel(&mut self, room: &str, lang: &str, name: String) -> Result<RoomView, Error> {
        let name = name.trim().to_string();
        if name.is_empty() || name.len() > 64 {
            return Err(bad(ErrorCode::BadMessage, "a channel name is 1-64 bytes"));
        }
        let r =
            self.rooms.get_mut(room).ok_or_else(|| bad(ErrorCode::NotFound, format!("no room {room}")))?;
        let c = r
            .channel_mut(lang)
            .ok_or_else(|| bad(ErrorCode::NotFound, format!("no channel {lang} in room {room}")))?;
        c.name = name;
        self.stale.insert(room.to_string());
        Ok(self.room_view(room).expect("room exists"))
    }

    /// Deletes a room: every session in it is told and ended.
    pub fn delete_room(&mut self, id: &str) -> Result<(), Error> {
        if !self.rooms.contains_key(id) {
            return Err(bad(ErrorCode::NotFound, format!("no room {id}")));
        }
        let mut peers: Vec<PeerId> = self.peers_of(id).collect();
        peers.sort_unstable();
        for peer in peers {
            self.end(peer, "the host deleted this room", None);
        }
        if self.rooms.get(id).is_some_and(|r| r.recording.is_some()) {
            let ms = self.rooms[id].ticks * 20;
            self.out.push_back(Output::Record(super::Record::Stop { room: id.to_string(), ms }));
        }
        self.rooms.remove(id);
        self.fanout.remove(id);
        self.stale.remove(id);
        Ok(())
    }

    /// Turns captions on or off for a room's floor (`None`) or channel.
    pub fn set_captions(&mut self, room: &str, source: Option<String>, on: bool) -> Result<(), Error> {
        if !self.config.captions {
            return Err(bad(
                ErrorCode::Unavailable,
                "captions are not available on this server: no speech model (models/get.sh)",
            ));
        }
        let r =
            self.rooms.get_mut(room).ok_or_else(|| bad(ErrorCode::NotFound, format!("no room {room}")))?;
        let source = source.filter(|s| s != "floor");
        if let Some(l) = &source {
            if r.channel(l).is_none() {
                return Err(bad(ErrorCode::NotFound, format!("no channel {l} in room {room}")));
            }
        }
        r.set_captions(source, on);
        self.stale.insert(room.to_string());
        Ok(())
    }

    /// Ends a session for good: it is told why (`ended`: its page does not come back) and leaves.
    fn end(&mut self, peer: PeerId, why: &str, keep: Option<Instant>) {
        self.end_with(peer, Error::new(ErrorCode::Ended, why), keep);
    }

    pub(super) fn end_with(&mut self, peer: PeerId, why: Error, keep: Option<Instant>) {
        self.out.push_back(Output::Event { peer, msg: why.to_msg() });
        self.leave(peer, keep);
    }

    /// Ends every session of `room` that joined with the invitation `id` (its host revoked it);
    /// returns how many.
    pub fn revoke(&mut self, room: &str, id: &str) -> usize {
        let mut peers: Vec<PeerId> = self.peers_of(room).filter(|p| self.peers[p].invitation == id).collect();
        peers.sort_unstable();
        for &peer in &peers {
            let why =
                Error::new(ErrorCode::Revoked, "the room's host revoked this invitation: ask for a new link");
            self.end_with(peer, why, None);
        }
        peers.len()
    }

    pub fn room_view(&self, id: &str) -> Option<RoomView> {
        let r = self.rooms.get(id)?;
        let (floor, channels) = self.room_state(r);
        Some(RoomView {
            id: r.id.clone(),
            floor_lang: r.floor_lang.clone(),
            floor,
            channels,
            recording: r.recording.is_some(),
        })
    }

    /// A participant joins a room with a verified admission.
    pub fn handle_join(
        &mut self,
        now: Instant,
        peer: PeerId,
        who: &Admission,
        publish: Option<String>,
    ) -> Result<ServerMsg, Error> {
        if self.peers.contains_key(&peer) {
            return Err(bad(ErrorCode::AlreadyJoined, "this session has already joined"));
        }
        if self.peers.len() >= MAX_PEERS {
            return Err(bad(ErrorCode::Busy, "this server is full; try again later"));
        }
        if !self.rooms.contains_key(&who.room) {
            return Err(bad(ErrorCode::NotFound, format!("no room {}", who.room)));
        }
        if let Some(key) = &who.resume {
            // The same person again: the old session (its connection already dead, or about to
            // be) gives way at once, so that its booth seat and air are free for the new one.
            let old: Vec<PeerId> = self
                .peers_of(&who.room)
                .filter(|id| {
                    let p = &self.peers[id];
                    p.role == who.role && p.resume.as_ref() == Some(key)
                })
                .collect();
            for id in old {
                // Its booth place is kept for the new session to take.
                let keep = Some(now + BOOTH_GRACE);
                self.end(id, "you joined again from another connection; this one is closed", keep);
            }
        }
        let room = self.rooms.get_mut(&who.room).expect("checked above");
        if room.mirror && who.role != Role::Listener {
            // Sources and hosts belong on the room's origin; the IO layer carries them there.
            return Err(bad(ErrorCode::NotJoined, "this room is mixed on another node; join again"));
        }
        let mut channels = Vec::new();
        let mut booth = None;
        let mut listening = Stream::Floor;
        match who.role {
            Role::Interpreter => {
                let own = who
                    .channel
                    .clone()
                    .ok_or_else(|| bad(ErrorCode::BadToken, "interpreter token names no channel"))?;
                channels.push(own.clone());
                channels.extend(who.also.iter().filter(|c| **c != own).cloned());
                let target = publish.unwrap_or_else(|| own.clone());
                if !channels.contains(&target) {
                    return Err(bad(
                        ErrorCode::Forbidden,
                        format!(
                            "this token publishes only into channel {}, not {target}",
                            channels.join(", ")
                        ),
                    ));
                }
                let c = room.channel_mut(&target).ok_or_else(|| {
                    bad(ErrorCode::NotFound, format!("no channel {target} in room {}", who.room))
                })?;
                // Coming back (a page that reconnected): the place kept in the booth, else a new one.
                if !who.resume.as_ref().is_some_and(|k| c.booth.come_back(k, peer)) {
                    if c.booth.members.len() >= MAX_BOOTH {
                        return Err(bad(
                            ErrorCode::Busy,
                            format!("booth {target} is full: at most {MAX_BOOTH} interpreters"),
                        ));
                    }
                    c.booth
                        .join(Member { resume: who.resume.clone(), ..Member::new(peer, who.name.clone()) });
                }
                booth = Some(target);
            }
            Role::Floor => {
                if let Some(t) = publish.filter(|t| t != "floor") {
                    return Err(bad(
                        ErrorCode::Forbidden,
                        format!("a floor token publishes only into the floor, not {t}"),
                    ));
                }
            }
            Role::Listener | Role::Host => {
                if let Some(t) = publish {
                    return Err(bad(
                        ErrorCode::Forbidden,
                        format!("a {} token cannot publish (asked to publish into {t})", who.role.as_str()),
                    ));
                }
                if let Some(l) = who.channel.as_ref().filter(|l| room.channel(l).is_some()) {
                    listening = Stream::Channel(l.clone());
                }
            }
        }
        let mut p = Peer::new(who.room.clone(), who.role, who.name.clone(), listening, now);
        p.invitation = who.invitation.clone();
        p.channels = channels.clone();
        p.booth = booth.clone();
        p.resume = who.resume.clone();
        self.peers.insert(peer, p);
        self.fanout.get_mut(&who.room).expect("every room has its fan-out").peers.insert(peer);
        self.restream(&who.room);
        if let Some(b) = &booth {
            self.notify_booth(&who.room, b, None);
        }
        self.chat_history(peer);
        let r = self.rooms.get(&who.room).expect("checked above");
        let (_, infos) = self.room_state(r);
        Ok(ServerMsg::Joined {
            room: who.room.clone(),
            id: peer,
            role: who.role,
            name: who.name.clone(),
            channel: booth,
            publish: channels,
            floor_lang: r.floor_lang.clone(),
            channels: infos,
            ice_servers: Vec::new(),
        })
    }

    /// Accepts a peer's SDP offer and returns the answer.
    pub fn handle_offer(&mut self, now: Instant, peer: PeerId, offer: Offer) -> Result<String, Error> {
        let p = self
            .peers
            .get_mut(&peer)
            .ok_or_else(|| bad(ErrorCode::NotJoined, "join before sending an offer"))?;
        if p.has_media() {
            return Err(bad(
                ErrorCode::Conflict,
                "this session already has media; renegotiation is not supported",
            ));
        }
        let Offer { sdp: offer, shape } = offer;
        match (p.role, shape.sends) {
            (Role::Listener | Role::Host, true) => {
                return Err(bad(
                    ErrorCode::Forbidden,
                    format!("a {} cannot publish: offer a recvonly audio track", p.role.as_str()),
                ))
            }
            (Role::Floor | Role::Interpreter, false) => {
                return Err(bad(
                    ErrorCode::BadSdp,
                    "a floor speaker or interpreter must offer a sending audio track",
                ))
            }
            _ => {}
        }
        let mut rtc = Rtc::builder()
            .set_crypto_provider(srtp::provider())
            .set_dtls_cert(self.cert.clone())
            .set_ice_lite(true)
            .clear_codecs()
            // Opus, and RED around it for peers that offer it (browsers do): what they send us
            // is unwrapped (and a lost packet recovered) by str0m; what they hear is built once
            // per stream per tick (`Room::red_at`).
            .enable_opus(true, true)
            // Lean per-peer state, since a listener should cost little more than its packets:
            // one packet is written per tick and polled at once, so a small send buffer does;
            // and of the header extensions only the MID is needed (no transport-wide
            // congestion control for one audio stream: its feedback would be most of the
            // traffic a listener sends).
            .set_send_buffer_audio(SEND_BUFFER)
            // Every audio packet as it arrives, in any order: tolk's jitter buffer reorders,
            // conceals a loss in its own 20 ms slot and sets the delay. str0m's default holds
            // everything after a hole until 15 more packets came (300 ms).
            .set_reordering_size_audio(0)
            .clear_extension_map()
            .set_extension(4, str0m::rtp::Extension::RtpMid)
            .build(now);
        let keys = srtp::take_slot();
        for c in &self.config.candidates {
            let cand = Candidate::host(*c, "udp")
                .map_err(|e| bad(ErrorCode::Unavailable, format!("bad server candidate: {e}")))?;
            rtc.add_local_candidate(cand);
        }
        for c in &self.config.tcp_candidates {
            let cand = Candidate::builder()
                .tcp()
                .host(*c)
                .tcptype(TcpType::Passive)
                .build()
                .map_err(|e| bad(ErrorCode::Unavailable, format!("bad server candidate: {e}")))?;
            rtc.add_local_candidate(cand);
        }
        let answer = rtc.sdp_api().accept_offer(offer).map_err(|_| {
            bad(ErrorCode::BadSdp, "offer not acceptable: offer Opus audio over ICE and DTLS-SRTP")
        })?;
        self.routes.add_ufrag(peer, rtc.direct_api().local_ice_credentials().ufrag);
        p.link = Link::Rtc(Box::new(RtcLink::new(rtc, keys)));
        p.heard = now;
        let room_id = p.room.clone();
        if shape.sends {
            let room = self.rooms.get_mut(&p.room).expect("a peer's room outlives it");
            match p.role {
                Role::Floor => room.floor.push(Source::new(peer)),
                Role::Interpreter => {
                    let lang = p.booth.clone().expect("interpreters sit in a booth");
                    let c = room.channel_mut(&lang).expect("an interpreter's channel outlives it");
                    c.booth.publish(peer, Source::new(peer)).expect("interpreters are booth members");
                    self.notify_booth(&room_id, &lang, None);
                }
                _ => unreachable!("only floor and interpreters send, checked above"),
            }
        }
        self.restream(&room_id);
        self.mark(peer);
        let answer = answer.to_sdp_string();
        Ok(if shape.sends { publish_full_band(&answer) } else { answer })
    }

    /// A session ended (its WebSocket closed, its WHIP or WHEP resource was deleted): its media
    /// stops, its booth moves on; an interpreter that can come back (it joined with a resume key)
    /// keeps its place in the booth for [`BOOTH_GRACE`].
    pub fn handle_leave(&mut self, now: Instant, peer: PeerId) {
        self.leave(peer, Some(now + BOOTH_GRACE));
    }

    fn leave(&mut self, peer: PeerId, keep: Option<Instant>) {
        self.detached.remove(&peer);
        let Some(p) = self.peers.remove(&peer) else {
            return;
        };
        self.routes.remove(peer);
        if let Some(f) = self.fanout.get_mut(&p.room) {
            f.peers.remove(&peer);
        }
        let Some(r) = self.rooms.get_mut(&p.room) else {
            return;
        };
        let booths = r.remove_peer(peer, keep);
        self.after_departure(&p.room, booths);
    }

    /// Marks a joined peer as having no signalling session (WHIP, WHEP): when its media dies, it leaves.
    pub fn detach(&mut self, peer: PeerId) {
        if self.peers.contains_key(&peer) {
            self.detached.insert(peer);
        }
    }

    /// A peer's transport died: drop its media, keep its session (and booth seat) so it can say why.
    pub(super) fn drop_media(&mut self, id: PeerId) {
        if self.detached.contains(&id) {
            self.leave(id, None);
            return;
        }
        let Some(p) = self.peers.get_mut(&id) else {
            return;
        };
        p.link = Link::None;
        let room = p.room.clone();
        self.routes.remove(id);
        self.out.push_back(Output::Event {
            peer: id,
            msg: Error::new(ErrorCode::NotJoined, "media connection lost; join again").to_msg(),
        });
        let Some(r) = self.rooms.get_mut(&room) else { return };
        r.floor.retain(|s| s.peer != id);
        let mut booths = Vec::new();
        for c in &mut r.channels {
            if let Some(was_live) = c.booth.unpublish(id) {
                booths.push((c.lang.clone(), was_live));
            }
        }
        self.after_departure(&room, booths);
    }

    /// Tells booth partners at once when their live interpreter is gone; the
    /// channel falls back to the floor at full level until one of them takes over.
    fn after_departure(&mut self, room: &str, booths: Vec<(String, bool)>) {
        self.restream(room);
        for (lang, was_live) in booths {
            let warning = was_live.then_some(BoothWarning::LiveDisconnected);
            self.notify_booth(room, &lang, warning);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publishers_are_asked_for_full_band() {
        let answer = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111 63\r\na=rtpmap:111 opus/48000/2\r\n\
                      a=fmtp:111 minptime=10;useinbandfec=1\r\na=rtpmap:63 red/48000/2\r\na=fmtp:63 111/111\r\n";
        let out = publish_full_band(answer);
        assert!(out.contains("a=fmtp:111 minptime=10;useinbandfec=1;maxaveragebitrate=96000\r\n"), "{out}");
        assert!(out.contains("a=fmtp:63 111/111\r\n"), "RED's line is left alone: {out}");
        assert_eq!(publish_full_band(&out), out, "asked once");
    }

    #[test]
    fn reads_offer_directions() {
        let s = offer_shape("v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=recvonly\r\n");
        assert_eq!((s.audio, s.sends), (1, false));
        let s = offer_shape("v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n");
        assert!(s.sends, "no direction means sendrecv");
        let s = offer_shape("v=0\r\nm=audio 9 X 111\r\na=sendonly\r\nm=video 9 X 96\r\na=recvonly\r\n");
        assert_eq!((s.audio, s.video, s.sends), (1, 1, true));
    }
}
