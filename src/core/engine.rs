//! Owns every peer (one str0m `Rtc` each) and every room: routes datagrams, runs the 20 ms tick, fans payloads out.
//!
//! str0m runs each peer's ICE, DTLS and incoming media; the packets a peer hears are
//! written here, each channel's payload once per tick, per listener only a header and
//! the SRTP step ([`super::srtp`]), into one [`Batch`] the driver sends after the tick.
//!
//! The drain loop contract (as in str0m and quinn-proto): after any
//! `handle_*` call, call [`Engine::poll_output`] until it returns
//! [`Output::Timeout`], carry out every other output, then wait for input or
//! that instant and call [`Engine::handle_timeout`]; when it says a tick ran,
//! send [`Engine::batch`]. The engine never reads the clock, never does IO and
//! never blocks.

use super::jitter::JitterError;
use super::mixer::DuckSettings;
use super::room::{Channel, Input, Member, PeerId, Room, Source, Stream};
use super::rtp::{self, Batch, RtpError, Unwrapper};
use super::settled::Settled;
use super::srtp::{self, KeySlot, Sender, Track};
use crate::protocol::{ChannelInfo, Error, ErrorCode, FloorInfo, Role, ServerMsg};
use crate::token::Claims;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use str0m::change::SdpOffer;
use str0m::config::DtlsCert;
use str0m::format::Codec;
use str0m::ice::StunMessage;
use str0m::media::{Frequency, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Rtc};

/// The media plane's tick: one Opus frame.
pub const TICK: Duration = Duration::from_millis(20);
/// If the engine falls this far behind (a stalled host), it skips ticks instead of bursting.
const MAX_LATE: Duration = Duration::from_millis(100);
/// Room state goes out at most this often: listener counts move with every
/// join, and a room of 1,000 listeners must not send a million messages.
const STATE_EVERY: Duration = Duration::from_millis(250);
/// A peer that sends nothing for this long is gone (a closed laptop, a killed
/// WHIP client): browsers send a STUN consent check at least every 5 s
/// (RFC 7675) and RTCP every second, so three missed checks is a safe verdict.
const SILENT_PEER: Duration = Duration::from_secs(15);
/// How often peers are checked for silence.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// Audio packets str0m may hold for sending: none go through it (see [`super::srtp`]), and
/// its default of 50 would cost memory in every listener.
const SEND_BUFFER: usize = 1;
/// Most peers one engine holds: beyond it, joins are refused rather than degrade everyone.
pub const MAX_PEERS: usize = 20_000;
/// Most rooms one engine holds; each costs a few encoders.
pub const MAX_ROOMS: usize = 1000;
/// Most channels in a room.
pub const MAX_CHANNELS: usize = 32;

pub struct EngineConfig {
    /// Addresses put in every SDP answer as host candidates: the shared UDP socket as clients reach it.
    pub candidates: Vec<SocketAddr>,
    /// Whether a speech recogniser is running (hosts can turn captions on).
    pub captions: bool,
}

/// What the engine asks its driver to do.
#[derive(Debug)]
pub enum Output {
    Transmit {
        source: SocketAddr,
        destination: SocketAddr,
        contents: Vec<u8>,
    },
    /// A signalling message for one session.
    Event {
        peer: PeerId,
        msg: ServerMsg,
    },
    /// 20 ms of a captioned source at 16 kHz, for the speech recogniser.
    Audio {
        room: String,
        source: Option<String>,
        lang: Option<String>,
        ms: u64,
        pcm: Box<[f32; 320]>,
    },
    /// Nothing more to do before this instant (or new input).
    Timeout(Instant),
}

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

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct RoomView {
    pub id: String,
    pub floor_lang: Option<String>,
    pub floor: FloorInfo,
    pub channels: Vec<ChannelInfo>,
}

/// Counters for datagrams and media the engine refused.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Stats {
    pub datagrams_in: u64,
    pub bytes_in: u64,
    pub datagrams_out: u64,
    pub bytes_out: u64,
    pub ticks: u64,
    pub datagrams_unparsed: u64,
    pub datagrams_unrouted: u64,
    pub datagrams_rejected: u64,
    pub media_rejected: u64,
    pub ticks_skipped: u64,
    pub tap_packets: u64,
    pub tap_rejected: u64,
}

impl std::ops::Add for Stats {
    type Output = Stats;

    /// Totals over several engines.
    fn add(self, o: Stats) -> Stats {
        Stats {
            datagrams_in: self.datagrams_in + o.datagrams_in,
            bytes_in: self.bytes_in + o.bytes_in,
            datagrams_out: self.datagrams_out + o.datagrams_out,
            bytes_out: self.bytes_out + o.bytes_out,
            ticks: self.ticks + o.ticks,
            datagrams_unparsed: self.datagrams_unparsed + o.datagrams_unparsed,
            datagrams_unrouted: self.datagrams_unrouted + o.datagrams_unrouted,
            datagrams_rejected: self.datagrams_rejected + o.datagrams_rejected,
            media_rejected: self.media_rejected + o.media_rejected,
            ticks_skipped: self.ticks_skipped + o.ticks_skipped,
            tap_packets: self.tap_packets + o.tap_packets,
            tap_rejected: self.tap_rejected + o.tap_rejected,
        }
    }
}

/// A plain RTP floor tap: Opus packets from a media server become a floor source.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct TapSpec {
    pub room: String,
    /// Payload type of the Opus packets (the SDP's `a=rtpmap:<pt> opus/48000/2`).
    #[serde(default = "default_pt")]
    pub payload_type: u8,
    /// Accept only this SSRC; unset: the first SSRC heard, re-locking after 1 s of silence.
    #[serde(default)]
    pub ssrc: Option<u32>,
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

fn default_pt() -> u8 {
    111
}

fn default_ssrc() -> u32 {
    0x746f_6c6b // "tolk"
}

struct Tap {
    spec: TapSpec,
    ssrc: Option<u32>,
    unwrap: Unwrapper,
    /// Tick count of the last accepted packet, to re-lock onto a new sender.
    last_tick: u64,
}

struct RtpOut {
    spec: RtpOutSpec,
    stream: Stream,
    seq: u16,
}

/// The floor source id of tap `i`: far above any session id.
fn tap_peer(i: usize) -> PeerId {
    u64::MAX - i as u64
}

/// Ticks of silence after which an unpinned tap accepts a new SSRC (1 s).
const TAP_RELOCK_TICKS: u64 = 50;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TapError {
    #[error("not RTP: {0}")]
    Rtp(#[from] RtpError),
    #[error("no tap {0}")]
    NoTap(usize),
    #[error("room {0} does not exist")]
    NoRoom(String),
    #[error("jitter buffer refused it: {0}")]
    Jitter(#[from] JitterError),
}

impl Snapshot {
    /// One snapshot for several engines.
    pub fn merge(all: Vec<Snapshot>) -> Snapshot {
        all.into_iter().fold(Snapshot::default(), |mut a, b| {
            a.stats = a.stats + b.stats;
            a.rooms += b.rooms;
            a.peers += b.peers;
            a.peers_with_media += b.peers_with_media;
            a.listeners_settled += b.listeners_settled;
            a.listeners.extend(b.listeners);
            a.concealed += b.concealed;
            a.decode_errors += b.decode_errors;
            a
        })
    }
}

/// What `/metrics` shows, taken from the engine in one go.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub stats: Stats,
    pub rooms: usize,
    pub peers: usize,
    pub peers_with_media: usize,
    /// Listeners past setup, served without a WebRTC session of their own.
    pub listeners_settled: usize,
    /// (room, "floor" or channel, listeners).
    pub listeners: Vec<(String, String, u32)>,
    /// Frames of incoming audio concealed (lost or late) across all sources.
    pub concealed: u64,
    /// Payloads the decoder refused (not Opus, or not a 20 ms frame), played as silence.
    pub decode_errors: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DatagramError {
    #[error("not STUN, DTLS, RTP or RTCP")]
    Unparsed,
    #[error("no peer accepts datagrams from {0}")]
    Unrouted(SocketAddr),
    #[error("peer rejected the datagram: {0}")]
    Rejected(String),
}

/// A room's fan-out: the streams someone hears, in the order the room encodes them,
/// and each receiving peer with the index of its stream, so a tick finds every
/// listener's payload without looking anything up by name.
#[derive(Default)]
struct Fanout {
    streams: Vec<Stream>,
    receivers: Vec<(PeerId, usize)>,
}

pub(super) struct Peer {
    pub(super) room: String,
    pub(super) role: Role,
    pub(super) name: String,
    /// Channels an interpreter may publish into; the first is its own.
    pub(super) channels: Vec<String>,
    /// The booth an interpreter sits in (its output channel).
    pub(super) booth: Option<String>,
    /// What an interpreter hears.
    pub(super) input: Input,
    /// What a listener or host chose to hear.
    pub(super) listening: Stream,
    /// What this peer's one downstream track carries now (derived from the above).
    pub(super) stream: Stream,
    /// Boxed: an `Rtc` is about 10 KiB, and the peer table keeps slack for growth.
    pub(super) rtc: Option<Box<Rtc>>,
    timeout: Option<Instant>,
    /// When a datagram from this peer last arrived (or its media was set up).
    heard: Instant,
    /// The downstream track.
    down: Option<Mid>,
    up: Option<Mid>,
    /// Filled with the SRTP keying material when the DTLS handshake completes.
    keys: Option<KeySlot>,
    /// Writes the downstream packets once the keys are known.
    sender: Option<Sender>,
    /// Where the peer's DTLS and RTCP come from: its selected candidate pair, where its media goes.
    to: Option<SocketAddr>,
    /// A listener past setup: its `Rtc` is gone, its consent checks are answered from here.
    settled: Option<Settled>,
    /// Queued for polling in the drain loop.
    dirty: bool,
}

impl Peer {
    pub(super) fn receives(&self) -> bool {
        self.down.is_some()
    }

    fn has_media(&self) -> bool {
        self.rtc.is_some() || self.settled.is_some()
    }

    /// A peer that only listens settles once its packets flow and it has shown, with a
    /// receiver report (SRTCP, so it holds the keys and our last DTLS flight arrived), that
    /// it needs nothing more from the handshake.
    fn settle_if_done(&mut self, datagram: &[u8]) {
        let rtcp = matches!(datagram, [128..=191, 192..=223, ..]);
        if !rtcp || self.up.is_some() || self.sender.is_none() {
            return;
        }
        let Some(rtc) = self.rtc.as_mut() else { return };
        let creds = rtc.direct_api().local_ice_credentials();
        self.settled = Some(Settled::new(&creds.ufrag, &creds.pass));
        self.rtc = None;
        self.keys = None;
        self.timeout = None;
    }

    /// Our side of the downstream track, once DTLS has exported the keys: the SSRC str0m put
    /// in the answer, the peer's Opus payload type and MID extension id.
    fn start_sender(&mut self, id: PeerId) -> Option<Sender> {
        let material = self.keys.as_ref()?.get()?;
        let mid = self.down?;
        let rtc = self.rtc.as_mut()?;
        if !rtc.is_connected() {
            return None;
        }
        let pt = rtc.writer(mid)?.payload_params().find(|pp| pp.spec().codec == Codec::Opus)?.pt();
        let ext = rtc.media(mid)?.remote_extmap().id_of(str0m::rtp::Extension::RtpMid);
        let ssrc = *rtc.direct_api().stream_tx_by_mid(mid, None)?.ssrc();
        let track = Track::with_mid(ssrc, *pt, ext.map(|e| (e, &*mid)));
        // A sequence start that differs per peer (RFC 3550 wants it unpredictable; SRTP
        // makes that moot), low enough that the rollover count stays 0 for 20 minutes.
        Sender::new(material, track, (id.wrapping_mul(0x9E37_79B9) >> 17) as u16)
    }
}

pub struct Engine {
    pub(super) config: EngineConfig,
    pub(super) peers: HashMap<PeerId, Peer>,
    by_addr: HashMap<SocketAddr, PeerId>,
    /// Peers by our ICE username fragment: how a datagram from a new address finds its peer.
    by_ufrag: HashMap<String, PeerId>,
    pub(super) rooms: HashMap<String, Room>,
    /// Per room, who hears what (rebuilt when that changes, read every tick).
    fanout: HashMap<String, Fanout>,
    /// Plain RTP floor taps (a meeting's own media server feeding the floor).
    taps: Vec<Tap>,
    /// Plain RTP outputs (a stream sent to a meeting's own media server).
    outs: Vec<RtpOut>,
    /// Peers without a signalling session (WHIP, WHEP): they leave when their media dies.
    detached: HashSet<PeerId>,
    to_poll: Vec<PeerId>,
    /// Peers' str0m deadlines, earliest first; an entry that no longer matches its peer's
    /// `timeout` is stale and skipped (so a wakeup costs O(log n), not a scan of every peer).
    timers: BinaryHeap<Reverse<(Instant, PeerId)>>,
    /// When peers are next checked for silence.
    next_sweep: Instant,
    pub(super) out: VecDeque<Output>,
    /// The last tick's media datagrams.
    batch: Batch,
    /// One DTLS certificate for every peer of this engine (making one per peer costs a key pair).
    cert: DtlsCert,
    /// When the next 20 ms tick is due.
    next_tick: Option<Instant>,
    /// Rooms whose state changed since it last went out.
    pub(super) stale: HashSet<String>,
    next_state: Option<Instant>,
    pub stats: Stats,
}

pub(super) fn bad(code: ErrorCode, message: impl Into<String>) -> Error {
    Error::new(code, message)
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

impl Engine {
    pub fn new(config: EngineConfig, now: Instant) -> Self {
        Engine {
            config,
            peers: HashMap::new(),
            by_addr: HashMap::new(),
            by_ufrag: HashMap::new(),
            rooms: HashMap::new(),
            fanout: HashMap::new(),
            taps: Vec::new(),
            outs: Vec::new(),
            detached: HashSet::new(),
            to_poll: Vec::new(),
            timers: BinaryHeap::new(),
            next_sweep: now + SWEEP_EVERY,
            out: VecDeque::new(),
            batch: Batch::default(),
            cert: srtp::provider()
                .dtls_provider
                .generate_certificate()
                .expect("str0m's provider makes certificates"),
            next_tick: Some(now),
            stale: HashSet::new(),
            next_state: None,
            stats: Stats::default(),
        }
    }

    pub fn create_room(&mut self, spec: RoomSpec) -> Result<RoomView, Error> {
        if !valid_id(&spec.id) {
            return Err(bad(ErrorCode::BadMessage, "room id must be 1-64 letters, digits, '-' or '_'"));
        }
        if self.rooms.contains_key(&spec.id) {
            return Err(bad(ErrorCode::AlreadyJoined, format!("room {} already exists", spec.id)));
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
        self.rooms.insert(id.clone(), Room::new(id.clone(), spec.floor_lang));
        for c in spec.channels {
            if let Err(e) = self.add_channel(&id, c) {
                self.rooms.remove(&id);
                return Err(e);
            }
        }
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
            return Err(bad(ErrorCode::AlreadyJoined, format!("channel {} already exists", spec.lang)));
        }
        if r.channels.len() >= MAX_CHANNELS {
            return Err(bad(ErrorCode::Busy, format!("a room holds at most {MAX_CHANNELS} channels")));
        }
        let name = if spec.name.is_empty() { spec.lang.clone() } else { spec.name };
        if name.len() > 64 {
            return Err(bad(ErrorCode::BadMessage, "channel name is longer than 64 bytes"));
        }
        r.channels.push(Channel::new(spec.lang, name, spec.duck));
        self.stale.insert(room.to_string());
        Ok(self.room_view(room).expect("room exists"))
    }

    pub fn room_view(&self, id: &str) -> Option<RoomView> {
        let r = self.rooms.get(id)?;
        let (floor, channels) = self.room_state(r);
        Some(RoomView { id: r.id.clone(), floor_lang: r.floor_lang.clone(), floor, channels })
    }

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
                live: c.live.and_then(|p| c.member(p)).map(|m| m.name.clone()),
                listeners: 0,
                members: super::control::members(c),
                captions: r.captioned(Some(&c.lang)),
            })
            .collect();
        for p in self.peers.values().filter(|p| p.room == r.id && p.receives() && p.role != Role::Interpreter)
        {
            match &p.stream {
                Stream::Floor => floor.listeners += 1,
                Stream::Channel(l) | Stream::Voice(l) => {
                    if let Some(c) = channels.iter_mut().find(|c| &c.lang == l) {
                        c.listeners += 1;
                    }
                }
                Stream::Booth { .. } => {}
            }
        }
        (floor, channels)
    }

    /// A participant joins a room with a verified token.
    pub fn handle_join(
        &mut self,
        peer: PeerId,
        claims: &Claims,
        publish: Option<String>,
    ) -> Result<ServerMsg, Error> {
        if self.peers.contains_key(&peer) {
            return Err(bad(ErrorCode::AlreadyJoined, "this session has already joined"));
        }
        if self.peers.len() >= MAX_PEERS {
            return Err(bad(ErrorCode::Busy, "this server is full; try again later"));
        }
        let room = self
            .rooms
            .get_mut(&claims.room)
            .ok_or_else(|| bad(ErrorCode::NotFound, format!("no room {}", claims.room)))?;
        let mut channels = Vec::new();
        let mut booth = None;
        let mut listening = Stream::Floor;
        match claims.role {
            Role::Interpreter => {
                let own = claims
                    .channel
                    .clone()
                    .ok_or_else(|| bad(ErrorCode::BadToken, "interpreter token names no channel"))?;
                channels.push(own.clone());
                channels.extend(claims.also.iter().filter(|c| **c != own).cloned());
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
                    bad(ErrorCode::NotFound, format!("no channel {target} in room {}", claims.room))
                })?;
                c.members.push(Member {
                    peer,
                    name: claims.name.clone(),
                    source: None,
                    muted: false,
                    ready: false,
                });
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
                        format!(
                            "a {} token cannot publish (asked to publish into {t})",
                            claims.role.as_str()
                        ),
                    ));
                }
                if let Some(l) = claims.channel.as_ref().filter(|l| room.channel(l).is_some()) {
                    listening = Stream::Channel(l.clone());
                }
            }
        }
        self.peers.insert(
            peer,
            Peer {
                room: claims.room.clone(),
                role: claims.role,
                name: claims.name.clone(),
                channels: channels.clone(),
                booth: booth.clone(),
                input: Input::Floor,
                stream: listening.clone(),
                listening,
                rtc: None,
                timeout: None,
                heard: self.next_tick.expect("scheduled from construction on"),
                down: None,
                up: None,
                keys: None,
                sender: None,
                to: None,
                settled: None,
                dirty: false,
            },
        );
        self.restream(&claims.room);
        if let Some(b) = &booth {
            self.notify_booth(&claims.room, b, None);
        }
        let r = self.rooms.get(&claims.room).expect("checked above");
        let (_, infos) = self.room_state(r);
        Ok(ServerMsg::Joined {
            room: claims.room.clone(),
            id: peer,
            role: claims.role,
            name: claims.name.clone(),
            channel: booth,
            publish: channels,
            floor_lang: r.floor_lang.clone(),
            channels: infos,
        })
    }

    /// Accepts a peer's SDP offer and returns the answer.
    pub fn handle_offer(&mut self, now: Instant, peer: PeerId, sdp: &str) -> Result<String, Error> {
        let p = self
            .peers
            .get_mut(&peer)
            .ok_or_else(|| bad(ErrorCode::NotJoined, "join before sending an offer"))?;
        if p.has_media() {
            return Err(bad(
                ErrorCode::BadSdp,
                "this session already has media; renegotiation is not supported",
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
        let offer = SdpOffer::from_sdp_string(sdp)
            .map_err(|e| bad(ErrorCode::BadSdp, format!("unreadable SDP offer: {e}")))?;
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
            .enable_opus(true, false)
            // Lean per-peer state, since a listener should cost little more than its packets:
            // one packet is written per tick and polled at once, so a small send buffer does;
            // and of the header extensions only the MID is needed (no transport-wide
            // congestion control for one audio stream: its feedback would be most of the
            // traffic a listener sends).
            .set_send_buffer_audio(SEND_BUFFER)
            .clear_extension_map()
            .set_extension(4, str0m::rtp::Extension::RtpMid)
            .build(now);
        let keys = srtp::take_slot();
        self.by_ufrag.insert(rtc.direct_api().local_ice_credentials().ufrag, peer);
        for c in &self.config.candidates {
            let cand = Candidate::host(*c, "udp")
                .map_err(|e| bad(ErrorCode::Busy, format!("bad server candidate: {e}")))?;
            rtc.add_local_candidate(cand);
        }
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| bad(ErrorCode::BadSdp, format!("offer not acceptable: {e}")))?;
        p.rtc = Some(Box::new(rtc));
        p.keys = keys;
        p.heard = now;
        let room_id = p.room.clone();
        if shape.sends {
            let room = self.rooms.get_mut(&p.room).expect("a peer's room outlives it");
            match p.role {
                Role::Floor => room.floor.push(Source::new(peer)),
                Role::Interpreter => {
                    let lang = p.booth.clone().expect("interpreters sit in a booth");
                    let c = room.channel_mut(&lang).expect("an interpreter's channel outlives it");
                    c.member_mut(peer).expect("interpreters are booth members").source =
                        Some(Source::new(peer));
                    // The first interpreter with a microphone in an empty booth goes on air.
                    if c.live.is_none() {
                        c.set_live(Some(peer));
                    }
                    self.notify_booth(&room_id, &lang, None);
                }
                _ => unreachable!("only floor and interpreters send, checked above"),
            }
        }
        self.restream(&room_id);
        self.mark(peer);
        Ok(answer.to_sdp_string())
    }

    /// A session ended: its media stops, its booth moves on.
    pub fn handle_leave(&mut self, peer: PeerId) {
        self.detached.remove(&peer);
        let Some(p) = self.peers.remove(&peer) else {
            return;
        };
        self.by_addr.retain(|_, id| *id != peer);
        self.by_ufrag.retain(|_, id| *id != peer);
        self.leave_room(peer, &p.room);
    }

    /// One UDP datagram arrived on the shared socket.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        data: &[u8],
    ) -> Result<(), DatagramError> {
        self.stats.datagrams_in += 1;
        self.stats.bytes_in += data.len() as u64;
        let Ok(recv) = Receive::new(Protocol::Udp, source, destination, data) else {
            self.stats.datagrams_unparsed += 1;
            return Err(DatagramError::Unparsed);
        };
        let input = str0m::Input::Receive(now, recv);
        let known = self.by_addr.get(&source).copied().filter(|id| {
            self.peers
                .get(id)
                .is_some_and(|p| p.settled.is_some() || p.rtc.as_ref().is_some_and(|r| r.accepts(&input)))
        });
        let id = match known {
            Some(id) => id,
            None => {
                // A new address introduces itself with an ICE check naming one of our usernames
                // ("<ours>:<theirs>"): one lookup, however many peers (and however many forged checks).
                let ours = match data {
                    [0..=3, ..] => {
                        StunMessage::parse(data).ok().and_then(|m| m.username()?.split(':').next())
                    }
                    _ => None,
                };
                let found = ours.and_then(|u| self.by_ufrag.get(u).copied()).filter(|id| {
                    self.peers.get(id).and_then(|p| p.rtc.as_ref()).is_some_and(|r| r.accepts(&input))
                });
                let Some(id) = found else {
                    self.stats.datagrams_unrouted += 1;
                    return Err(DatagramError::Unrouted(source));
                };
                self.by_addr.insert(source, id);
                id
            }
        };
        let peer = self.peers.get_mut(&id).expect("routed to a peer");
        peer.heard = now;
        if let Some(settled) = &peer.settled {
            // Consent checks get their answer; receiver reports and DTLS alerts only show it is alive.
            if !matches!(data, [0..=3, ..]) {
                return Ok(());
            }
            return match settled.answer(data, source) {
                Ok(contents) => {
                    self.out.push_back(Output::Transmit {
                        source: destination,
                        destination: source,
                        contents,
                    });
                    Ok(())
                }
                Err(e) => {
                    self.stats.datagrams_rejected += 1;
                    Err(DatagramError::Rejected(e.to_string()))
                }
            };
        }
        // DTLS (20-63) and SRTCP (128-191) come over the selected pair; STUN (0-3) may not (RFC 7983).
        if data.first().is_some_and(|b| *b > 3) {
            peer.to = Some(source);
        }
        let rtc = peer.rtc.as_mut().expect("routed to a peer with media");
        let result = rtc.handle_input(input);
        if result.is_ok() {
            peer.settle_if_done(data);
        }
        self.mark(id);
        result.map_err(|e| {
            self.stats.datagrams_rejected += 1;
            DatagramError::Rejected(e.to_string())
        })
    }

    /// Time passed: run due ticks and peers' timers. Returns whether a 20 ms tick ran.
    pub fn handle_timeout(&mut self, now: Instant) -> bool {
        let mut ticked = false;
        let next = *self.next_tick.get_or_insert(now);
        if now >= next {
            if now - next > MAX_LATE {
                self.stats.ticks_skipped += ((now - next).as_millis() / TICK.as_millis()) as u64;
                self.next_tick = Some(now + TICK);
            } else {
                self.next_tick = Some(next + TICK);
            }
            // Media that came since the last poll goes into the jitter buffers before they are read.
            while let Some(id) = self.to_poll.pop() {
                self.drain_peer(id);
            }
            self.tick();
            self.stats.ticks += 1;
            ticked = true;
        }
        if now >= self.next_sweep {
            self.next_sweep = now + SWEEP_EVERY;
            let silent: Vec<PeerId> = self
                .peers
                .iter()
                .filter(|(_, p)| p.has_media() && now.saturating_duration_since(p.heard) > SILENT_PEER)
                .map(|(id, _)| *id)
                .collect();
            for id in silent {
                self.drop_media(id);
            }
        }
        while let Some(&Reverse((t, id))) = self.timers.peek() {
            if t > now {
                break;
            }
            self.timers.pop();
            let Some(p) = self.peers.get_mut(&id) else { continue };
            if p.timeout != Some(t) {
                continue;
            }
            p.timeout = None;
            if let Some(rtc) = p.rtc.as_mut() {
                // A timer error means the peer is gone; the drain loop removes it.
                let _ = rtc.handle_input(str0m::Input::Timeout(now));
            }
            self.mark(id);
        }
        if self.next_state.is_none_or(|t| now >= t) && !self.stale.is_empty() {
            self.next_state = Some(now + STATE_EVERY);
            self.send_state();
        }
        ticked
    }

    /// Counters and gauges for monitoring.
    pub fn snapshot(&self) -> Snapshot {
        let mut listeners = Vec::new();
        let (mut concealed, mut decode_errors) = (0, 0);
        for r in self.rooms.values() {
            concealed += r.concealed;
            decode_errors += r.decode_errors;
            let (floor, channels) = self.room_state(r);
            listeners.push((r.id.clone(), "floor".to_string(), floor.listeners));
            for c in channels {
                listeners.push((r.id.clone(), c.lang, c.listeners));
            }
        }
        Snapshot {
            stats: self.stats,
            rooms: self.rooms.len(),
            peers: self.peers.len(),
            peers_with_media: self.peers.values().filter(|p| p.has_media()).count(),
            listeners_settled: self.peers.values().filter(|p| p.settled.is_some()).count(),
            listeners,
            concealed,
            decode_errors,
        }
    }

    fn send_state(&mut self) {
        let stale: Vec<String> = self.stale.drain().collect();
        for id in stale {
            let Some(r) = self.rooms.get(&id) else {
                continue;
            };
            let (floor, channels) = self.room_state(r);
            let msg = ServerMsg::State { floor, channels };
            for (pid, _) in self.peers.iter().filter(|(_, p)| p.room == id) {
                self.out.push_back(Output::Event { peer: *pid, msg: msg.clone() });
            }
        }
    }

    /// Recomputes what every peer of a room hears and which streams the room must encode.
    pub(super) fn restream(&mut self, room_id: &str) {
        let Some(room) = self.rooms.get(room_id) else { return };
        let mut f = Fanout::default();
        let slot = |streams: &mut Vec<Stream>, s: &Stream| match streams.iter().position(|x| x == s) {
            Some(i) => i,
            None => {
                streams.push(s.clone());
                streams.len() - 1
            }
        };
        for (id, p) in self.peers.iter_mut().filter(|(_, p)| p.room == room_id) {
            p.stream = match (&p.booth, p.role) {
                (Some(lang), Role::Interpreter) => {
                    let partner = room.channel(lang).is_some_and(|c| c.live != Some(*id));
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
                f.receivers.push((*id, i));
            }
        }
        for o in self.outs.iter().filter(|o| o.spec.room == room_id) {
            slot(&mut f.streams, &o.stream);
        }
        self.fanout.insert(room_id.to_string(), f);
        self.stale.insert(room_id.to_string());
    }

    /// The 20 ms tick: every room mixes and encodes once; every listener gets its stream's payload.
    fn tick(&mut self) {
        for (id, r) in self.rooms.iter_mut() {
            r.tick(self.fanout.get(id).map_or(&[], |f| &f.streams[..]));
            let ms = r.ticks * 20;
            let floor_lang = r.floor_lang.clone();
            let out = &mut self.out;
            r.caption_audio(|source, pcm| {
                let lang = match source {
                    None => floor_lang.clone(),
                    Some(l) => Some(l.to_string()),
                };
                out.push_back(Output::Audio {
                    room: id.clone(),
                    source: source.map(str::to_string),
                    lang,
                    ms,
                    pcm,
                });
            });
        }
        self.batch.clear();
        for (room, f) in &self.fanout {
            let Some(r) = self.rooms.get(room) else { continue };
            // The room's own clock, so a listener's one track stays continuous across switches.
            let timestamp = (r.ticks * super::codec::FRAME as u64) as u32;
            for &(id, slot) in &f.receivers {
                let Some(payload) = r.payload_at(slot) else { continue };
                let Some(p) = self.peers.get_mut(&id) else { continue };
                let Some(to) = p.to else { continue };
                if p.sender.is_none() {
                    p.sender = p.start_sender(id);
                }
                let Some(sender) = p.sender.as_mut() else { continue };
                self.batch.push(to, |buf| sender.seal(timestamp, payload, buf));
            }
        }
        for o in &mut self.outs {
            let Some(r) = self.rooms.get(&o.spec.room) else { continue };
            let Some(payload) = r.payload(&o.stream) else { continue };
            let ts = (r.ticks * super::codec::FRAME as u64) as u32;
            let (pt, seq, ssrc) = (o.spec.payload_type, o.seq, o.spec.ssrc);
            self.batch.push(o.spec.to, |buf| rtp::write(buf, pt, seq, ts, ssrc, payload));
            o.seq = o.seq.wrapping_add(1);
        }
        self.stats.datagrams_out += self.batch.len() as u64;
        self.stats.bytes_out += self.batch.bytes() as u64;
    }

    /// The media datagrams of the last tick: send them after [`Engine::handle_timeout`] says it ticked.
    pub fn batch(&self) -> &Batch {
        &self.batch
    }

    fn mark(&mut self, id: PeerId) {
        if let Some(p) = self.peers.get_mut(&id) {
            if !p.dirty {
                p.dirty = true;
                self.to_poll.push(id);
            }
        }
    }

    /// The next thing to do: transmit, deliver an event, or wait.
    pub fn poll_output(&mut self) -> Output {
        loop {
            if let Some(o) = self.out.pop_front() {
                if let Output::Transmit { contents, .. } = &o {
                    self.stats.datagrams_out += 1;
                    self.stats.bytes_out += contents.len() as u64;
                }
                return o;
            }
            let Some(id) = self.to_poll.pop() else {
                return Output::Timeout(self.next_timeout());
            };
            self.drain_peer(id);
        }
    }

    fn next_timeout(&mut self) -> Instant {
        let mut t = self.next_tick.expect("scheduled from construction on").min(self.next_sweep);
        while let Some(&Reverse((pt, id))) = self.timers.peek() {
            if self.peers.get(&id).is_some_and(|p| p.timeout == Some(pt)) {
                t = t.min(pt);
                break;
            }
            self.timers.pop();
        }
        if !self.stale.is_empty() {
            if let Some(s) = self.next_state {
                t = t.min(s);
            }
        }
        t
    }

    /// Polls one peer's `Rtc` until it has nothing more to say.
    fn drain_peer(&mut self, id: PeerId) {
        let mut dead = false;
        let mut added = None;
        {
            let Some(p) = self.peers.get_mut(&id) else {
                return;
            };
            p.dirty = false;
            let Some(rtc) = p.rtc.as_mut() else { return };
            loop {
                if !rtc.is_alive() {
                    dead = true;
                    break;
                }
                match rtc.poll_output() {
                    Ok(str0m::Output::Timeout(t)) => {
                        if p.timeout != Some(t) {
                            p.timeout = Some(t);
                            self.timers.push(Reverse((t, id)));
                        }
                        break;
                    }
                    Ok(str0m::Output::Transmit(t)) => self.out.push_back(Output::Transmit {
                        source: t.source,
                        destination: t.destination,
                        contents: t.contents.into(),
                    }),
                    Ok(str0m::Output::Event(e)) => match e {
                        Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                            dead = true;
                            break;
                        }
                        Event::MediaAdded(m) if m.kind == MediaKind::Audio => {
                            if m.direction.is_sending() {
                                p.down = Some(m.mid);
                            }
                            if m.direction.is_receiving() {
                                p.up = Some(m.mid);
                            }
                            added = Some(p.room.clone());
                        }
                        Event::MediaData(d) if Some(d.mid) == p.up => {
                            let room = self.rooms.get_mut(&p.room);
                            let source = room.and_then(|r| r.source_mut(id));
                            let ok = d.time.frequency() == Frequency::FORTY_EIGHT_KHZ
                                && source.is_some_and(|s| s.push(d.time.numer(), &d.data).is_ok());
                            if !ok {
                                self.stats.media_rejected += 1;
                            }
                        }
                        _ => {}
                    },
                    Err(_) => {
                        dead = true;
                        break;
                    }
                }
            }
        }
        if let Some(room) = added {
            self.restream(&room);
        }
        if dead {
            self.drop_media(id);
        }
    }

    /// A peer's transport died: drop its media, keep its session (and booth seat) so it can say why.
    fn drop_media(&mut self, id: PeerId) {
        if self.detached.contains(&id) {
            self.handle_leave(id);
            return;
        }
        let Some(p) = self.peers.get_mut(&id) else {
            return;
        };
        p.rtc = None;
        p.down = None;
        p.up = None;
        p.keys = None;
        p.sender = None;
        p.to = None;
        p.settled = None;
        p.timeout = None;
        let room = p.room.clone();
        self.by_addr.retain(|_, pid| *pid != id);
        self.by_ufrag.retain(|_, pid| *pid != id);
        self.out.push_back(Output::Event {
            peer: id,
            msg: Error::new(ErrorCode::NotJoined, "media connection lost; join again").to_msg(),
        });
        let Some(r) = self.rooms.get_mut(&room) else { return };
        r.floor.retain(|s| s.peer != id);
        let mut booths = Vec::new();
        for c in &mut r.channels {
            let live = c.live == Some(id);
            if let Some(m) = c.member_mut(id) {
                m.source = None;
                if live {
                    c.set_live(None);
                }
                booths.push((c.lang.clone(), live));
            }
        }
        self.after_departure(&room, booths);
    }

    /// Takes a departed peer out of its room's floor and booths.
    fn leave_room(&mut self, id: PeerId, room: &str) {
        let Some(r) = self.rooms.get_mut(room) else {
            return;
        };
        let booths = r.remove_peer(id);
        self.after_departure(room, booths);
    }

    /// Tells booth partners at once when their live interpreter is gone; the
    /// channel falls back to the floor at full level until one of them takes over.
    fn after_departure(&mut self, room: &str, booths: Vec<(String, bool)>) {
        self.restream(room);
        for (lang, was_live) in booths {
            let warning = was_live.then(|| {
                "the live interpreter disconnected: the floor is on air until a partner takes over"
                    .to_string()
            });
            self.notify_booth(room, &lang, warning);
        }
    }

    /// Marks a joined peer as having no signalling session (WHIP, WHEP): when its media dies, it leaves.
    pub fn detach(&mut self, peer: PeerId) {
        if self.peers.contains_key(&peer) {
            self.detached.insert(peer);
        }
    }

    /// Configures a plain RTP floor tap; returns its index for [`Engine::handle_tap`].
    /// The room may be created later; until then its packets are refused.
    pub fn add_tap(&mut self, spec: TapSpec) -> usize {
        self.taps.push(Tap { spec, ssrc: None, unwrap: Unwrapper::default(), last_tick: 0 });
        self.taps.len() - 1
    }

    /// Configures a plain RTP output of a room's floor or channel (which may be created later).
    pub fn add_rtp_out(&mut self, spec: RtpOutSpec) {
        let stream = match &spec.channel {
            None => Stream::Floor,
            Some(l) => Stream::Channel(l.clone()),
        };
        let room_id = spec.room.clone();
        self.outs.push(RtpOut { spec, stream, seq: 0 });
        self.restream(&room_id);
    }

    /// One datagram on tap `tap`'s port: an RTP Opus packet for the room's floor.
    pub fn handle_tap(&mut self, tap: usize, data: &[u8]) -> Result<(), TapError> {
        let result = self.tap_packet(tap, data);
        match result {
            Ok(()) => self.stats.tap_packets += 1,
            Err(_) => self.stats.tap_rejected += 1,
        }
        result
    }

    fn tap_packet(&mut self, tap: usize, data: &[u8]) -> Result<(), TapError> {
        let t = self.taps.get_mut(tap).ok_or(TapError::NoTap(tap))?;
        let p = rtp::parse(data)?;
        if p.payload_type != t.spec.payload_type {
            return Err(RtpError::PayloadType { got: p.payload_type, want: t.spec.payload_type }.into());
        }
        let room = self.rooms.get_mut(&t.spec.room).ok_or_else(|| TapError::NoRoom(t.spec.room.clone()))?;
        let pinned = t.spec.ssrc.or(t.ssrc);
        if let Some(want) = pinned.filter(|s| *s != p.ssrc) {
            // An unpinned tap follows a new sender once the old one has been quiet a while.
            if t.spec.ssrc.is_some() || room.ticks < t.last_tick + TAP_RELOCK_TICKS {
                return Err(RtpError::Ssrc { got: p.ssrc, want }.into());
            }
        }
        let peer = tap_peer(tap);
        if t.ssrc != Some(p.ssrc) {
            t.ssrc = Some(p.ssrc);
            t.unwrap = Unwrapper::default();
            room.floor.retain(|s| s.peer != peer);
            room.floor.push(Source::new(peer));
            self.stale.insert(t.spec.room.clone());
        }
        t.last_tick = room.ticks;
        let ts = t.unwrap.unwrap(p.timestamp);
        let source = room.source_mut(peer).expect("pushed above");
        source.push(ts, p.payload)?;
        Ok(())
    }

    /// A caption from the recogniser: to the listeners of its source, and floor captions to every interpreter.
    pub fn handle_caption(
        &mut self,
        room: &str,
        source: Option<String>,
        lang: Option<String>,
        c: crate::asr::stream::Caption,
    ) {
        let Some(r) = self.rooms.get(room) else { return };
        if !r.captioned(source.as_deref()) {
            return; // turned off while the recogniser was busy
        }
        let msg = ServerMsg::Caption {
            source: source.clone(),
            lang,
            text: c.text,
            is_final: c.is_final,
            start_ms: c.start_ms,
            end_ms: c.end_ms,
            at_ms: r.ticks * 20,
        };
        let to: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, p)| p.room == room)
            .filter(|(_, p)| match (&source, &p.stream) {
                (None, _) if p.role == Role::Interpreter => true,
                (None, Stream::Floor) => true,
                (Some(l), Stream::Channel(x) | Stream::Voice(x)) => l == x,
                _ => false,
            })
            .map(|(id, _)| *id)
            .collect();
        for id in to {
            self.out.push_back(Output::Event { peer: id, msg: msg.clone() });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
