//! The simulation: one engine and N in-memory WebRTC clients (str0m) on a simulated clock,
//! with a seeded network between them that drops, duplicates, reorders, delays with jitter
//! and stalls, per peer and per direction. Nothing touches a socket or the wall clock, so a
//! minute of media runs in well under a second and every run with the same seed is the same.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use str0m::change::SdpAnswer;
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tolk::core::engine::{self, Admission, Caption, Engine, EngineConfig, Offer};
use tolk::core::media::codec::{Decoder, Encoder, FRAME, MAX_PAYLOAD};
use tolk::core::room::PeerId;
use tolk::core::spec::{ChannelSpec, RoomSpec};
use tolk::protocol::{ClientMsg, Error, Role, ServerMsg};

#[path = "../common/audio.rs"]
mod audio;
pub use audio::{rms_db, tone_db};

/// How finely the simulation moves time: fine enough for handshake timers and jitter.
pub const STEP: Duration = Duration::from_millis(5);
const SAMPLE_RATE: f32 = 48_000.0;

/// A small seeded generator (xorshift64*): the same seed, the same faults.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// What the network does to one direction of one client's packets.
#[derive(Clone, Copy, Debug, Default)]
pub struct Faults {
    /// Fraction of packets lost.
    pub loss: f64,
    /// Fraction of packets delivered twice.
    pub duplicate: f64,
    /// Fixed one-way delay.
    pub delay: Duration,
    /// Extra delay, uniform in [0, jitter): packets overtake each other.
    pub jitter: Duration,
    /// Nothing passes before this instant; what was sent meanwhile arrives at once after it
    /// (a Wi-Fi stall), or is lost if `stall_drops`.
    pub stall_until: Option<Instant>,
    pub stall_drops: bool,
    /// Drop the next this many media packets of this direction, as well as by `loss`.
    pub drop_media: u32,
    /// Which packets only: `Media` faults only RTP, leaving STUN, DTLS and RTCP alone.
    pub only_media: bool,
}

/// One datagram in flight.
struct Flight {
    from: SocketAddr,
    to: SocketAddr,
    data: Vec<u8>,
}

/// What a client sends, frame by frame, starting at its first connected tick.
#[derive(Clone)]
pub enum Sound {
    Tone(f32),
    Silence,
    /// A tone `len` frames long every `every` frames, silence between: onsets to time.
    Beeps {
        hz: f32,
        every: u64,
        len: u64,
    },
    /// White noise twice full scale, clipped: the worst a microphone can send.
    ClippedNoise,
    /// A tone at this peak level (dBFS).
    ToneAt {
        hz: f32,
        dbfs: f32,
    },
}

/// One decoded frame a client received, with its media time (48 kHz RTP units) and arrival.
#[derive(Clone)]
pub struct Heard {
    pub rtp: u64,
    pub at: Instant,
    pub pcm: Vec<f32>,
}

pub struct Client {
    pub peer: PeerId,
    pub addr: SocketAddr,
    pub rtc: Option<Rtc>,
    mid: Option<Mid>,
    /// Signalling messages the engine sent to this client.
    pub inbox: Vec<ServerMsg>,
    /// Decoded audio received, in arrival order.
    pub heard: Vec<Heard>,
    pub sound: Option<Sound>,
    encoder: Encoder,
    decoder: Decoder,
    /// Frames sent so far.
    pub sent: u64,
    /// When the first frame went out.
    pub first_sent: Option<Instant>,
    /// Faults client -> server and server -> client.
    pub up: Faults,
    pub down: Faults,
    /// Whether the client is switched off (a closed laptop): it sends and answers nothing.
    pub gone: bool,
}

pub struct Sim {
    pub engine: Engine,
    pub start: Instant,
    pub now: Instant,
    server: SocketAddr,
    pub clients: BTreeMap<PeerId, Client>,
    rng: Rng,
    /// In flight, by delivery time (then by send order).
    flights: BTreeMap<(Instant, u64), Flight>,
    sent: u64,
    /// Engine outputs for the speech recogniser.
    pub audio: Vec<(String, Option<String>, u64)>,
    /// Engine outputs for the recorder.
    pub records: Vec<engine::Record>,
    /// Engine outputs for the other nodes of a cluster.
    pub relays: Vec<engine::Relay>,
    /// Ticks that ran.
    pub ticks: u64,
    /// While set, the engine is not driven (its host stalled); time still passes for clients.
    pub engine_stalled_until: Option<Instant>,
    next_peer: PeerId,
}

/// A tone frame `n` at `hz`, level 0.3.
pub fn tone_frame(hz: f32, n: u64) -> [f32; FRAME] {
    let mut pcm = [0f32; FRAME];
    for (i, s) in pcm.iter_mut().enumerate() {
        *s = 0.3 * (2.0 * std::f32::consts::PI * hz * (n as usize * FRAME + i) as f32 / SAMPLE_RATE).sin();
    }
    pcm
}

impl Sim {
    /// An engine with room `r` (channels en, es, fr) and no clients; network faults from `seed`.
    pub fn new(seed: u64) -> Sim {
        Sim::with(seed, false)
    }

    /// The same, as one node of a cluster: room `r` starts as a mirror, until the test says
    /// which node mixes it ([`Engine::set_origin`]).
    pub fn node(seed: u64) -> Sim {
        Sim::with(seed, true)
    }

    fn with(seed: u64, cluster: bool) -> Sim {
        let start = Instant::now();
        let server: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        let mut engine = Engine::new(
            EngineConfig {
                candidates: vec![server],
                tcp_candidates: Vec::new(),
                captions: true,
                recording: true,
                cluster,
            },
            start,
        );
        let channels = ["en", "es", "fr"]
            .iter()
            .map(|l| ChannelSpec { lang: l.to_string(), name: l.to_uppercase(), duck: Default::default() })
            .collect();
        engine.create_room(RoomSpec { id: "r".into(), floor_lang: Some("en".into()), channels }).unwrap();
        Sim {
            engine,
            start,
            now: start,
            server,
            clients: BTreeMap::new(),
            rng: Rng::new(seed),
            flights: BTreeMap::new(),
            sent: 0,
            audio: Vec::new(),
            records: Vec::new(),
            relays: Vec::new(),
            ticks: 0,
            engine_stalled_until: None,
            next_peer: 0,
        }
    }

    /// Media time since the start, in ms.
    pub fn ms(&self) -> u64 {
        (self.now - self.start).as_millis() as u64
    }

    /// Joins a client (signalling only); returns its peer id.
    pub fn join(&mut self, role: Role, channel: Option<&str>, name: &str) -> PeerId {
        self.try_join(role, channel, &[], name, None).expect("join accepted")
    }

    pub fn try_join(
        &mut self,
        role: Role,
        channel: Option<&str>,
        also: &[&str],
        name: &str,
        publish: Option<&str>,
    ) -> Result<PeerId, Error> {
        self.join_with(role, channel, also, name, publish, None)
    }

    /// Joins with a resume key, as a page does (again, after its connection dropped).
    pub fn join_again(&mut self, role: Role, channel: Option<&str>, name: &str, resume: &str) -> PeerId {
        self.join_with(role, channel, &[], name, None, Some(resume)).expect("join accepted")
    }

    fn join_with(
        &mut self,
        role: Role,
        channel: Option<&str>,
        also: &[&str],
        name: &str,
        publish: Option<&str>,
        resume: Option<&str>,
    ) -> Result<PeerId, Error> {
        // Ids are never reused, as on the server.
        self.next_peer += 1;
        let peer = self.next_peer;
        let who = Admission {
            resume: resume.map(str::to_string),
            room: "r".into(),
            role,
            name: name.into(),
            channel: channel.map(str::to_string),
            also: also.iter().map(|s| s.to_string()).collect(),
            invitation: format!("link of {name}"),
        };
        let joined = self.engine.handle_join(self.now, peer, &who, publish.map(str::to_string))?;
        let addr: SocketAddr = format!("10.1.{}.{}:4000", peer / 250, peer % 250 + 1).parse().unwrap();
        let mut c = Client {
            peer,
            addr,
            rtc: None,
            mid: None,
            inbox: vec![joined],
            heard: Vec::new(),
            sound: None,
            encoder: Encoder::new(),
            decoder: Decoder::new(),
            sent: 0,
            first_sent: None,
            up: Faults::default(),
            down: Faults::default(),
            gone: false,
        };
        c.inbox.reserve(64);
        self.clients.insert(peer, c);
        self.pump();
        Ok(peer)
    }

    /// Offers media for a joined client: it sends `sound` (if any) and receives (if `receive`);
    /// it offers Opus with RED, as browsers do.
    pub fn connect(&mut self, peer: PeerId, sound: Option<Sound>, receive: bool) -> Result<(), Error> {
        self.connect_with(peer, sound, receive, true)
    }

    /// As [`Sim::connect`], offering RED or not.
    pub fn connect_with(
        &mut self,
        peer: PeerId,
        sound: Option<Sound>,
        receive: bool,
        red: bool,
    ) -> Result<(), Error> {
        let c = self.clients.get_mut(&peer).expect("a joined client");
        let mut rtc = Rtc::builder().clear_codecs().enable_opus(true, red).build(self.now);
        rtc.add_local_candidate(Candidate::host(c.addr, "udp").unwrap());
        let dir = match (sound.is_some(), receive) {
            (true, true) => Direction::SendRecv,
            (true, false) => Direction::SendOnly,
            _ => Direction::RecvOnly,
        };
        let mut api = rtc.sdp_api();
        let mid = api.add_media(MediaKind::Audio, dir, None, None, None);
        let (offer, pending) = api.apply().unwrap();
        let answer = self.engine.handle_offer(self.now, peer, Offer::parse(&offer.to_sdp_string())?)?;
        rtc.sdp_api().accept_answer(pending, SdpAnswer::from_sdp_string(&answer).unwrap()).unwrap();
        c.rtc = Some(rtc);
        c.mid = Some(mid);
        c.sound = sound;
        self.pump();
        Ok(())
    }

    /// Joins and connects a client, and runs until its media is up.
    pub fn add(&mut self, role: Role, channel: Option<&str>, name: &str, sound: Option<Sound>) -> PeerId {
        let peer = self.join(role, channel, name);
        let receive = role != Role::Floor;
        self.connect(peer, sound, receive).expect("offer accepted");
        self.run_until(Duration::from_secs(3), |s| s.clients[&peer].rtc.as_ref().unwrap().is_connected());
        peer
    }

    /// A signalling request; returns the engine's direct reply.
    pub fn send(&mut self, peer: PeerId, msg: ClientMsg) -> Result<Option<ServerMsg>, Error> {
        let r = self.engine.handle_message(self.now, peer, msg);
        self.pump();
        r
    }

    pub fn leave(&mut self, peer: PeerId) {
        self.engine.handle_leave(self.now, peer);
        self.clients.remove(&peer);
        self.pump();
    }

    /// Runs for `d` of simulated time.
    pub fn run(&mut self, d: Duration) {
        let until = self.now + d;
        while self.now < until {
            self.step();
        }
    }

    /// Runs until `done` holds (checked every step), at most `limit`; panics on the limit.
    pub fn run_until(&mut self, limit: Duration, done: impl Fn(&Sim) -> bool) {
        let until = self.now + limit;
        while !done(self) {
            assert!(self.now < until, "not done within {limit:?} of simulated time");
            self.step();
        }
    }

    /// One step: clients send (every 20 ms) and run their timers, the network delivers what
    /// is due, the engine runs its timers and tick, and everything it says is carried out.
    pub fn step(&mut self) {
        self.now += STEP;
        let now = self.now;
        let frame_due = (now - self.start).as_millis().is_multiple_of(20);
        let mut out = Vec::new();
        for c in self.clients.values_mut() {
            if c.gone {
                continue;
            }
            let Some(rtc) = c.rtc.as_mut() else { continue };
            let _ = rtc.handle_input(Input::Timeout(now));
            if frame_due && rtc.is_connected() {
                if let Some(sound) = &c.sound {
                    let pcm = match sound {
                        Sound::Tone(hz) => tone_frame(*hz, c.sent),
                        Sound::Beeps { hz, every, len } if c.sent % every < *len => tone_frame(*hz, c.sent),
                        Sound::ClippedNoise => {
                            let mut rng = Rng::new(c.sent + 1);
                            let mut pcm = [0f32; FRAME];
                            for s in pcm.iter_mut() {
                                *s = ((rng.unit() as f32 * 4.0) - 2.0).clamp(-1.0, 1.0);
                            }
                            pcm
                        }
                        Sound::ToneAt { hz, dbfs } => {
                            let mut pcm = tone_frame(*hz, c.sent);
                            let gain = 10f32.powf(dbfs / 20.0) / 0.3;
                            pcm.iter_mut().for_each(|s| *s *= gain);
                            pcm
                        }
                        Sound::Silence | Sound::Beeps { .. } => [0.0; FRAME],
                    };
                    let mut buf = [0u8; MAX_PAYLOAD];
                    let n = c.encoder.encode(&pcm, &mut buf).unwrap();
                    let mid = c.mid.unwrap();
                    let w = rtc.writer(mid).unwrap();
                    let pt = w.payload_params().find(|p| p.spec().codec == Codec::Opus).unwrap().pt();
                    let time = MediaTime::new(c.sent * FRAME as u64, Frequency::FORTY_EIGHT_KHZ);
                    w.write(pt, now, time, buf[..n].to_vec()).unwrap();
                    c.first_sent.get_or_insert(now);
                    c.sent += 1;
                }
            }
            drain_client(c, now, &mut out);
        }
        for (from, data) in out {
            self.send_up(from, data);
        }
        self.deliver();
        let stalled = self.engine_stalled_until.is_some_and(|t| now < t);
        if !stalled {
            if self.engine.handle_timeout(now) {
                self.ticks += 1;
                let batch: Vec<(SocketAddr, Vec<u8>)> =
                    self.engine.batch().iter().map(|(to, d)| (to, d.to_vec())).collect();
                for (to, data) in batch {
                    self.send_down(to, data);
                }
            }
            self.pump();
        }
    }

    /// Carries out the engine's outputs until it has nothing more to say.
    pub fn pump(&mut self) {
        loop {
            match self.engine.poll_output() {
                engine::Output::Transmit { destination, contents, .. } => {
                    self.send_down(destination, contents)
                }
                engine::Output::Event { peer, msg } => {
                    if let Some(c) = self.clients.get_mut(&peer) {
                        c.inbox.push(msg);
                    }
                }
                engine::Output::Audio { room, source, ms, .. } => self.audio.push((room, source, ms)),
                engine::Output::Record(r) => self.records.push(r),
                engine::Output::Relay(r) => self.relays.push(r),
                engine::Output::Timeout(_) => break,
            }
        }
    }

    /// One tick of a stream of mirrored room `r` from its origin, sent on at once as a node does.
    pub fn relay_in(
        &mut self,
        stream: &tolk::core::room::Stream,
        ts: u32,
        payload: tolk::core::room::Payload,
    ) {
        if self.engine.handle_relayed("r", stream, ts, payload) {
            let batch: Vec<(SocketAddr, Vec<u8>)> =
                self.engine.batch().iter().map(|(to, d)| (to, d.to_vec())).collect();
            for (to, data) in batch {
                self.send_down(to, data);
            }
        }
        self.pump();
    }

    /// Hands the engine a caption as the recogniser would.
    pub fn caption(&mut self, source: Option<&str>, text: &str) {
        self.caption_after(source, text, 0);
    }

    /// As [`Sim::caption`], after the recogniser dropped `skipped_ms` of this source to catch up
    /// (with an empty `text`, only that news).
    pub fn caption_after(&mut self, source: Option<&str>, text: &str, skipped_ms: u64) {
        let ms = self.ms();
        self.engine.handle_caption(Caption {
            room: "r".into(),
            source: source.map(str::to_string),
            lang: source.map(str::to_string),
            text: text.into(),
            is_final: true,
            start_ms: ms.saturating_sub(500),
            end_ms: ms,
            skipped_ms,
        });
        self.pump();
    }

    /// A datagram from anywhere straight to the engine (garbage, forgeries); returns what the engine said.
    pub fn inject(&mut self, from: SocketAddr, data: &[u8]) -> Result<(), engine::DatagramError> {
        let r = self.engine.handle_datagram(self.now, from, self.server, data);
        self.pump();
        r
    }

    fn client_by_addr(&mut self, addr: SocketAddr) -> Option<&mut Client> {
        self.clients.values_mut().find(|c| c.addr == addr)
    }

    fn send_up(&mut self, from: SocketAddr, data: Vec<u8>) {
        let Some(c) = self.client_by_addr(from) else { return };
        if c.up.drop_media > 0 && is_media(&data) {
            c.up.drop_media -= 1;
            return;
        }
        let faults = c.up;
        let to = self.server;
        self.launch(faults, Flight { from, to, data });
    }

    fn send_down(&mut self, to: SocketAddr, data: Vec<u8>) {
        let from = self.server;
        let Some(c) = self.client_by_addr(to) else { return };
        if c.down.drop_media > 0 && is_media(&data) {
            c.down.drop_media -= 1;
            return;
        }
        let faults = c.down;
        self.launch(faults, Flight { from, to, data });
    }

    /// Puts a datagram on the wire under `faults`.
    fn launch(&mut self, f: Faults, flight: Flight) {
        let media =
            matches!(flight.data.first(), Some(128..=191)) && !matches!(flight.data.get(1), Some(192..=223));
        let faulty = !f.only_media || media;
        let mut at = self.now + f.delay;
        if faulty {
            if self.rng.unit() < f.loss {
                return;
            }
            if let Some(stall) = f.stall_until.filter(|t| self.now < *t) {
                if f.stall_drops {
                    return;
                }
                at = at.max(stall);
            }
            if !f.jitter.is_zero() {
                at += f.jitter.mul_f64(self.rng.unit());
            }
            if self.rng.unit() < f.duplicate {
                self.sent += 1;
                let copy = Flight { from: flight.from, to: flight.to, data: flight.data.clone() };
                self.flights.insert((at + STEP, self.sent), copy);
            }
        }
        self.sent += 1;
        self.flights.insert((at, self.sent), flight);
    }

    /// Delivers every datagram due by now, to the engine or a client.
    fn deliver(&mut self) {
        let now = self.now;
        let stalled = self.engine_stalled_until.is_some_and(|t| now < t);
        let due: Vec<(Instant, u64)> = self.flights.range(..=(now, u64::MAX)).map(|(k, _)| *k).collect();
        for k in due {
            let f = self.flights.get(&k).expect("listed above");
            if f.to == self.server && stalled {
                // A stalled server reads nothing; its socket buffer keeps the datagrams.
                continue;
            }
            let f = self.flights.remove(&k).expect("listed above");
            if f.to == self.server {
                let _ = self.engine.handle_datagram(now, f.from, f.to, &f.data);
            } else if let Some(c) = self.client_by_addr(f.to) {
                if c.gone {
                    continue;
                }
                if let (Some(rtc), Ok(r)) =
                    (c.rtc.as_mut(), Receive::new(Protocol::Udp, f.from, f.to, &f.data))
                {
                    let _ = rtc.handle_input(Input::Receive(now, r));
                }
            }
        }
        let mut out = Vec::new();
        for c in self.clients.values_mut().filter(|c| !c.gone) {
            drain_client(c, now, &mut out);
        }
        for (from, data) in out {
            self.send_up(from, data);
        }
    }
}

/// Whether a datagram is (S)RTP media, not STUN, DTLS or RTCP (RFC 7983, RFC 5761).
fn is_media(data: &[u8]) -> bool {
    matches!(data.first(), Some(128..=191)) && !matches!(data.get(1), Some(192..=223))
}

/// Polls a client's `Rtc`: datagrams it sends go to `out`, media it receives is decoded.
fn drain_client(c: &mut Client, now: Instant, out: &mut Vec<(SocketAddr, Vec<u8>)>) {
    let Some(rtc) = c.rtc.as_mut() else { return };
    loop {
        match rtc.poll_output() {
            Ok(Output::Transmit(t)) => out.push((c.addr, t.contents.into())),
            Ok(Output::Timeout(_)) => break,
            Ok(Output::Event(Event::MediaData(d))) => {
                let mut pcm = [0f32; FRAME];
                if c.decoder.decode(Some(&d.data), &mut pcm).is_ok() {
                    c.heard.push(Heard { rtp: d.time.numer(), at: now, pcm: pcm.to_vec() });
                }
            }
            Ok(Output::Event(_)) => {}
            Err(_) => break,
        }
    }
}

impl Sim {
    /// Mouth-to-ear of every beep `publisher` sent (`Sound::Beeps`): from the frame that
    /// starts it leaving the publisher to the first frame of it arriving at `listener`,
    /// as (when it was sent, the delay); beeps not heard are left out.
    pub fn beep_delays(&self, publisher: PeerId, listener: PeerId) -> Vec<(Instant, Duration)> {
        let p = &self.clients[&publisher];
        let (Some(first), Some(Sound::Beeps { hz, every, .. })) = (p.first_sent, &p.sound) else {
            return Vec::new();
        };
        let heard = &self.clients[&listener].heard;
        (0..p.sent.div_ceil(*every))
            .filter_map(|k| {
                let sent = first + Duration::from_millis(20 * k * every);
                let next = sent + Duration::from_millis(20 * every);
                heard
                    .iter()
                    .filter(|h| h.at >= sent && h.at < next)
                    .find(|h| tone_db(&h.pcm, *hz) > -30.0)
                    .map(|h| (sent, h.at - sent))
            })
            .collect()
    }
}

impl Client {
    /// The last `n` frames heard, as one signal.
    pub fn last(&self, n: usize) -> Vec<f32> {
        let from = self.heard.len().saturating_sub(n);
        self.heard[from..].iter().flat_map(|h| h.pcm.iter().copied()).collect()
    }

    /// Frames heard whose arrival lies in [from, to).
    pub fn heard_between(&self, from: Instant, to: Instant) -> Vec<&Heard> {
        self.heard.iter().filter(|h| h.at >= from && h.at < to).collect()
    }
}
