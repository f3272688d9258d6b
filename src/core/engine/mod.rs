//! The engine: owns every peer and every room, and the drain loop that drives them (datagrams in, the 20 ms tick, timers, outputs polled).
//!
//! str0m runs each peer's ICE, DTLS and incoming media; the packets a peer hears are
//! written here, each channel's payload once per tick, per listener only a header and
//! the SRTP step ([`crate::core::wire::srtp`]), into one [`Batch`] the driver sends after the tick.
//!
//! The drain loop contract (as in str0m and quinn-proto): after any
//! `handle_*` call, call [`Engine::poll_output`] until it returns
//! [`Output::Timeout`], carry out every other output, then wait for input or
//! that instant and call [`Engine::handle_timeout`]; when it says a tick ran,
//! send [`Engine::batch`]. The engine never reads the clock, never does IO and
//! never blocks.
//!
//! The parts, one file each: `peer` (a peer and its connection life), `routes`
//! (which peer a datagram is for), `session` (rooms, join, offer, leave), `control`
//! (requests after join), `fanout` (who hears what, the per-tick fan-out, room state,
//! captions), `chat` (booth chat), `record` (what a recording gets each tick, consent),
//! `doors` (plain RTP in and out), [`stats`] (counters).

mod chat;
mod cluster;
mod control;
mod doors;
mod fanout;
mod peer;
mod record;
mod routes;
mod session;
pub mod stats;

pub use cluster::Relay;
pub use doors::TapError;
pub use fanout::Caption;
pub use record::Record;
pub use session::{Admission, Offer, RoomView, MAX_OFFER_LINES};
pub use stats::{Counter, Snapshot, Stats};

use crate::core::room::{PeerId, Room};
use crate::core::wire::rtp::Batch;
use crate::core::wire::srtp;
use crate::protocol::{Error, ErrorCode, ServerMsg};
use doors::{RtpOut, Tap};
use fanout::Fanout;
use peer::{Link, Peer};
use routes::Routes;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use str0m::config::DtlsCert;
use str0m::media::{Frequency, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::{Event, IceConnectionState};

/// The media plane's tick: one Opus frame.
pub const TICK: Duration = Duration::from_millis(20);
/// Most ticks run at once when the engine wakes late (a stalled host, a busy machine): the
/// media it missed is mixed and sent in one burst, which the listeners' jitter buffers take
/// in; beyond this much (200 ms) the rest is skipped, as a longer burst would only pile up
/// in their buffers as delay.
pub const MAX_CATCH_UP: u32 = 10;
/// Room state goes out at most this often: listener counts move with every
/// join, and a room of 1,000 listeners must not send a million messages.
pub const STATE_EVERY: Duration = Duration::from_millis(250);
/// A peer that sends nothing for this long is gone (a closed laptop, a killed
/// WHIP client): browsers send a STUN consent check at least every 5 s
/// (RFC 7675) and RTCP every second, so three missed checks is a safe verdict.
pub const SILENT_PEER: Duration = Duration::from_secs(15);
/// A WHIP or WHEP peer that has not offered media this long after joining is gone (its
/// request was aborted between the join and the offer).
pub const SETUP_LIMIT: Duration = Duration::from_secs(10);
/// How long a dropped interpreter's booth place is kept for its page to come back to.
pub const BOOTH_GRACE: Duration = Duration::from_secs(30);
/// How often peers are checked for silence.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// Audio packets str0m may hold for sending: none go through it (see [`crate::core::wire::srtp`]), and
/// its default of 50 would cost memory in every listener.
const SEND_BUFFER: usize = 1;
/// Most peers one engine holds: beyond it, joins are refused rather than degrade everyone.
pub const MAX_PEERS: usize = 20_000;
/// Most rooms one engine holds; each costs a few encoders.
pub const MAX_ROOMS: usize = 1000;
/// Most channels in a room.
pub const MAX_CHANNELS: usize = 32;
/// Most addresses one peer is reached from while ICE runs (a browser checks from each of its
/// host, reflexive and relayed candidates: a handful); checks from more are dropped.
pub const MAX_ADDRESSES: usize = 8;
/// Most interpreters in one booth (a booth is two or three; every booth change goes to each).
pub const MAX_BOOTH: usize = 16;

#[derive(Clone)]
pub struct EngineConfig {
    /// Addresses put in every SDP answer as host candidates: the shared UDP socket as clients reach it.
    pub candidates: Vec<SocketAddr>,
    /// Passive TCP host candidates (ICE-TCP, RFC 6544): the media port over TCP, as clients reach it.
    pub tcp_candidates: Vec<SocketAddr>,
    /// Whether a speech recogniser is running (hosts can turn captions on).
    pub captions: bool,
    /// Whether hosts may record rooms on this server.
    pub recording: bool,
    /// Whether this node is one of a cluster's: the state and captions of the rooms it mixes
    /// are handed out for the other nodes' sessions.
    pub cluster: bool,
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
    /// For the recorder: a take begins or ends, or one tick of a recorded room's tracks.
    Record(Record),
    /// For the other nodes of a cluster.
    Relay(Relay),
    /// Nothing more to do before this instant (or new input).
    Timeout(Instant),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DatagramError {
    #[error("not STUN, DTLS, RTP or RTCP")]
    Unparsed,
    #[error("no peer accepts datagrams from {0}")]
    Unrouted(SocketAddr),
    #[error("ICE check from {0}: its peer already has {MAX_ADDRESSES} addresses")]
    TooManyAddresses(SocketAddr),
    #[error("peer rejected the datagram: {0}")]
    Rejected(String),
}

pub struct Engine {
    config: EngineConfig,
    peers: HashMap<PeerId, Peer>,
    routes: Routes,
    /// Ordered, so that a tick visits rooms (and a simulation sees events) in one order every run.
    rooms: BTreeMap<String, Room>,
    /// Per room, its peers and who hears what (rebuilt when that changes, read every tick).
    fanout: BTreeMap<String, Fanout>,
    /// Plain RTP floor taps (a meeting's own media server feeding the floor).
    taps: Vec<Tap>,
    /// Plain RTP outputs (a stream sent to a meeting's own media server).
    outs: Vec<RtpOut>,
    /// Peers without a signalling session (WHIP, WHEP): they leave when their media dies.
    detached: HashSet<PeerId>,
    to_poll: Vec<PeerId>,
    /// Peers' str0m deadlines, earliest first; an entry that no longer matches its peer's
    /// timeout is stale and skipped (so a wakeup costs O(log n), not a scan of every peer).
    timers: BinaryHeap<Reverse<(Instant, PeerId)>>,
    /// When peers are next checked for silence.
    next_sweep: Instant,
    out: VecDeque<Output>,
    /// The last tick's media datagrams.
    batch: Batch,
    /// One DTLS certificate for every peer of this engine (making one per peer costs a key pair).
    cert: DtlsCert,
    /// When the next 20 ms tick is due.
    next_tick: Instant,
    /// Rooms whose state changed since it last went out (ordered: state goes out in one order every run).
    stale: BTreeSet<String>,
    /// Booths (room, channel) whose members are told how they stand at the next poll, with the
    /// warning to give them.
    booths_due: BTreeMap<(String, String), Option<crate::protocol::BoothWarning>>,
    next_state: Option<Instant>,
    stats: Stats,
    /// Per room mixed here, the streams each other node's listeners hear.
    wants: BTreeMap<String, BTreeMap<String, cluster::Want>>,
    /// Per mirrored room, its origin's last state, for sessions that join here.
    remote_state: HashMap<String, ServerMsg>,
}

pub(super) fn bad(code: ErrorCode, message: impl Into<String>) -> Error {
    Error::new(code, message)
}

impl Engine {
    pub fn new(config: EngineConfig, now: Instant) -> Self {
        Engine {
            config,
            peers: HashMap::new(),
            routes: Routes::default(),
            rooms: BTreeMap::new(),
            fanout: BTreeMap::new(),
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
            next_tick: now,
            stale: BTreeSet::new(),
            booths_due: BTreeMap::new(),
            next_state: None,
            stats: Stats::default(),
            wants: BTreeMap::new(),
            remote_state: HashMap::new(),
        }
    }

    /// One UDP datagram arrived on the shared socket.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        data: &[u8],
    ) -> Result<(), DatagramError> {
        self.receive(now, Protocol::Udp, source, destination, data)
    }

    /// One RFC 4571 frame arrived on an ICE-TCP connection from `source` (a client's address and port).
    pub fn handle_tcp_frame(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        data: &[u8],
    ) -> Result<(), DatagramError> {
        self.receive(now, Protocol::Tcp, source, destination, data)
    }

    fn receive(
        &mut self,
        now: Instant,
        proto: Protocol,
        source: SocketAddr,
        destination: SocketAddr,
        data: &[u8],
    ) -> Result<(), DatagramError> {
        self.stats.add(Counter::DatagramsIn, 1);
        self.stats.add(Counter::BytesIn, data.len() as u64);
        let Ok(recv) = Receive::new(proto, source, destination, data) else {
            self.stats.add(Counter::DatagramsUnparsed, 1);
            return Err(DatagramError::Unparsed);
        };
        let input = str0m::Input::Receive(now, recv);
        let accepts = |p: &Peer| match &p.link {
            Link::None => false,
            Link::Settled(_) => true,
            Link::Rtc(l) => l.rtc.accepts(&input),
        };
        let known = self.routes.by_addr(&source).filter(|id| self.peers.get(id).is_some_and(accepts));
        let id = match known {
            Some(id) => id,
            None => {
                // A new address names its peer in an ICE check; only a peer still in setup takes one.
                let found = self.routes.by_check(data).filter(|id| {
                    self.peers
                        .get(id)
                        .is_some_and(|p| matches!(&p.link, Link::Rtc(l) if l.rtc.accepts(&input)))
                });
                let Some(id) = found else {
                    self.stats.add(Counter::DatagramsUnrouted, 1);
                    return Err(DatagramError::Unrouted(source));
                };
                // Valid checks from ever more ports (a client knows its own ICE password) would
                // each add a remote candidate that str0m pairs and checks: a peer has a few.
                if self.routes.addrs(id) >= MAX_ADDRESSES {
                    self.stats.add(Counter::DatagramsUnrouted, 1);
                    return Err(DatagramError::TooManyAddresses(source));
                }
                self.routes.add_addr(id, source);
                id
            }
        };
        let peer = self.peers.get_mut(&id).expect("routed to a peer");
        peer.heard = now;
        let l = match &mut peer.link {
            Link::None => unreachable!("routed only to peers with media"),
            Link::Settled(s) => {
                // Consent checks get their answer; receiver reports and DTLS alerts only show it is alive.
                if !matches!(data, [0..=3, ..]) {
                    return Ok(());
                }
                return match s.consent.answer(data, source) {
                    Ok(contents) => {
                        self.out.push_back(Output::Transmit {
                            source: destination,
                            destination: source,
                            contents,
                        });
                        Ok(())
                    }
                    Err(e) => {
                        self.stats.add(Counter::DatagramsRejected, 1);
                        Err(DatagramError::Rejected(e.to_string()))
                    }
                };
            }
            Link::Rtc(l) => l,
        };
        // DTLS (20-63) and SRTCP (128-191) come over the selected pair; STUN (0-3) may not (RFC 7983).
        if data.first().is_some_and(|b| *b > 3) {
            l.to = Some(source);
        }
        let result = l.rtc.handle_input(input);
        if result.is_ok() {
            // Settled: only the chosen address routes to it from now on.
            if let Some(to) = peer.settle_if_done(data) {
                self.routes.keep_only(id, to);
            }
        }
        self.mark(id);
        result.map_err(|e| {
            self.stats.add(Counter::DatagramsRejected, 1);
            DatagramError::Rejected(e.to_string())
        })
    }

    /// Time passed: run due ticks and peers' timers. Returns whether a 20 ms tick ran.
    pub fn handle_timeout(&mut self, now: Instant) -> bool {
        let mut ticked = false;
        let next = self.next_tick;
        if now >= next {
            // Ticks due by now: normally one; after a stalled host, the media it missed is mixed
            // and sent at once, up to MAX_CATCH_UP ticks; beyond that it is skipped.
            let due = ((now - next).as_nanos() / TICK.as_nanos()) as u32 + 1;
            let run = due.min(MAX_CATCH_UP);
            if due > run {
                self.stats.add(Counter::TicksSkipped, u64::from(due - run));
                self.next_tick = now + TICK;
            } else {
                self.next_tick = next + TICK * due;
            }
            // Media that came since the last poll goes into the jitter buffers before they are read.
            while let Some(id) = self.to_poll.pop() {
                self.drain_peer(id);
            }
            self.batch.clear();
            for _ in 0..run {
                self.tick();
            }
            self.stats.add(Counter::Ticks, u64::from(run));
            ticked = true;
        }
        if now >= self.next_sweep {
            self.next_sweep = now + SWEEP_EVERY;
            let mut silent: Vec<PeerId> = self
                .peers
                .iter()
                .filter(|(_, p)| p.has_media() && now.saturating_duration_since(p.heard) > SILENT_PEER)
                .map(|(id, _)| *id)
                .collect();
            silent.sort_unstable();
            for id in silent {
                self.drop_media(id);
            }
            // Doors without a session whose request died before its offer: nothing else would end them.
            let mut unborn: Vec<PeerId> = self
                .detached
                .iter()
                .filter(|id| {
                    self.peers.get(id).is_some_and(|p| {
                        !p.has_media() && now.saturating_duration_since(p.heard) > SETUP_LIMIT
                    })
                })
                .copied()
                .collect();
            unborn.sort_unstable();
            for id in unborn {
                self.drop_media(id);
            }
            // Booth places kept for interpreters who did not come back go.
            let mut expired = Vec::new();
            for (id, r) in self.rooms.iter_mut() {
                for c in &mut r.channels {
                    if c.booth.expire(now) {
                        expired.push((id.clone(), c.lang.clone()));
                    }
                }
            }
            for (room, lang) in expired {
                self.notify_booth(&room, &lang, None);
                self.stale.insert(room);
            }
            self.expire_wants(now);
            self.resync_cluster();
        }
        while let Some(&Reverse((t, id))) = self.timers.peek() {
            if t > now {
                break;
            }
            self.timers.pop();
            let Some(l) = self.peers.get_mut(&id).and_then(Peer::rtc_mut) else { continue };
            if l.timeout != Some(t) {
                continue;
            }
            l.timeout = None;
            // A timer error means the peer is gone; the drain loop removes it.
            let _ = l.rtc.handle_input(str0m::Input::Timeout(now));
            self.mark(id);
        }
        if self.next_state.is_none_or(|t| now >= t) && !self.stale.is_empty() {
            self.next_state = Some(now + STATE_EVERY);
            self.send_state();
        }
        ticked
    }

    /// Every peer this engine holds.
    pub fn peer_ids(&self) -> Vec<PeerId> {
        self.peers.keys().copied().collect()
    }

    /// Counters and gauges for monitoring.
    pub fn snapshot(&self) -> Snapshot {
        let mut listeners = Vec::new();
        let mut stats = self.stats;
        for r in self.rooms.values() {
            stats.add(Counter::FramesConcealed, r.concealed);
            stats.add(Counter::DecodeErrors, r.decode_errors);
            let (floor, channels) = self.room_state(r);
            listeners.push((r.id.clone(), "floor".to_string(), floor.listeners));
            for c in channels {
                listeners.push((r.id.clone(), c.lang, c.listeners));
            }
        }
        Snapshot {
            stats,
            rooms: self.rooms.len(),
            peers: self.peers.len(),
            peers_with_media: self.peers.values().filter(|p| p.has_media()).count(),
            listeners_settled: self.peers.values().filter(|p| p.is_settled()).count(),
            listeners,
            occupancy: self.fanout.iter().map(|(id, f)| (id.clone(), f.peers.len())).collect(),
        }
    }

    /// The 20 ms tick: every room mixes and encodes once; every listener gets its stream's payload.
    fn tick(&mut self) {
        for (id, r) in self.rooms.iter_mut() {
            r.tick(self.fanout.get(id).map_or(&[], |f| f.streams()));
            if r.mirror {
                continue; // mixed, recorded and captioned on its origin
            }
            let ms = r.ticks * 20;
            if r.recording.is_some() {
                let tracks = r.recorded();
                self.out.push_back(Output::Record(Record::Frame { room: id.clone(), ms, tracks }));
            }
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
        self.fan_out();
        self.relay_out();
    }

    /// The media datagrams of the last ticks (one, or more when catching up), in order: send
    /// them after [`Engine::handle_timeout`] says it ticked.
    pub fn batch(&self) -> &Batch {
        &self.batch
    }

    /// Counters so far (rooms' concealment and decode counts are added by [`Engine::snapshot`]).
    pub fn stats(&self) -> &Stats {
        &self.stats
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
        if !self.booths_due.is_empty() {
            self.send_booths();
        }
        loop {
            if let Some(o) = self.out.pop_front() {
                if let Output::Transmit { contents, .. } = &o {
                    self.stats.add(Counter::DatagramsOut, 1);
                    self.stats.add(Counter::BytesOut, contents.len() as u64);
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
        let mut t = self.next_tick.min(self.next_sweep);
        while let Some(&Reverse((pt, id))) = self.timers.peek() {
            let current = self.peers.get(&id).and_then(|p| match &p.link {
                Link::Rtc(l) => l.timeout,
                _ => None,
            });
            if current == Some(pt) {
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
            let room = &p.room;
            let Link::Rtc(l) = &mut p.link else { return };
            loop {
                if !l.rtc.is_alive() {
                    dead = true;
                    break;
                }
                match l.rtc.poll_output() {
                    Ok(str0m::Output::Timeout(t)) => {
                        if l.timeout != Some(t) {
                            l.timeout = Some(t);
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
                                l.down = Some(m.mid);
                            }
                            if m.direction.is_receiving() {
                                l.up = Some(m.mid);
                            }
                            added = Some(room.clone());
                        }
                        Event::MediaData(d) if Some(d.mid) == l.up => {
                            let source = self.rooms.get_mut(room).and_then(|r| r.source_mut(id));
                            let ok = d.time.frequency() == Frequency::FORTY_EIGHT_KHZ
                                && source.is_some_and(|s| s.push(d.time.numer(), &d.data).is_ok());
                            if !ok {
                                self.stats.add(Counter::MediaRejected, 1);
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
}
