//! One meeting: its Floor, its Channels and their Booths, who hears what, and the 20 ms mix of each.
//!
//! A room never sees packets or peers' transports: the engine hands it
//! payloads by source and takes back one encoded payload per stream per tick.

use super::codec::{CodecError, Decoder, Encoder, FRAME, MAX_PAYLOAD};
use super::jitter::{Jitter, JitterError, Playout};
use super::mixer::{self, DuckSettings, Ducker, Limiter};
use std::sync::Arc;

/// Identifies a peer (one signalling session) across the engine.
pub type PeerId = u64;

/// Target depth of every source's jitter buffer, in frames. Two frames (up to
/// 40 ms, about 30 ms on average) absorb a browser's send jitter on a LAN.
pub const JITTER_DEPTH: u32 = 2;

/// What a Listener hears: the Floor or one Channel (by language tag).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Stream {
    Floor,
    Channel(String),
}

/// One incoming audio stream, played out by media time.
pub struct Source {
    pub peer: PeerId,
    jitter: Jitter,
    decoder: Decoder,
    pcm: Box<[f32; FRAME]>,
    /// Whether this tick's `pcm` carries audio (decoded or concealed).
    audible: bool,
    /// This tick's payload, when one arrived in time (forwarded as is where possible).
    payload: Option<usize>,
    payload_buf: Box<[u8; MAX_PAYLOAD]>,
    pub decode_errors: u64,
}

impl Source {
    pub fn new(peer: PeerId) -> Self {
        Source {
            peer,
            jitter: Jitter::new(JITTER_DEPTH),
            decoder: Decoder::new(),
            pcm: Box::new([0.0; FRAME]),
            audible: false,
            payload: None,
            payload_buf: Box::new([0; MAX_PAYLOAD]),
            decode_errors: 0,
        }
    }

    pub fn push(&mut self, ts: u64, payload: &[u8]) -> Result<(), JitterError> {
        self.jitter.push(ts, payload)
    }

    /// Plays one tick: decodes the due payload, conceals a lost one, or goes quiet.
    fn play(&mut self) {
        self.payload = None;
        let result: Result<(), CodecError> = match self.jitter.pop() {
            Playout::Packet(p) => {
                self.payload_buf[..p.len()].copy_from_slice(p);
                self.payload = Some(p.len());
                self.audible = true;
                self.decoder.decode(Some(p), &mut self.pcm)
            }
            Playout::Lost => {
                self.audible = true;
                self.decoder.decode(None, &mut self.pcm)
            }
            Playout::Idle => {
                self.audible = false;
                Ok(())
            }
        };
        if result.is_err() {
            self.decode_errors += 1;
            self.audible = false;
            self.payload = None;
        }
        if !self.audible {
            self.pcm.fill(0.0);
        }
    }

    fn payload(&self) -> Option<&[u8]> {
        self.payload.map(|n| &self.payload_buf[..n])
    }
}

/// One encoded output of a tick, shared by every listener of its stream.
pub type Payload = Arc<[u8]>;

/// Mixes a stream, limits it and encodes it once.
struct Output {
    limiter: Limiter,
    encoder: Encoder,
    buf: Box<[u8; MAX_PAYLOAD]>,
    payload: Option<Payload>,
}

impl Output {
    fn new() -> Self {
        Output {
            limiter: Limiter::new(),
            encoder: Encoder::new(),
            buf: Box::new([0; MAX_PAYLOAD]),
            payload: None,
        }
    }

    fn encode(&mut self, pcm: &mut [f32; FRAME]) {
        self.limiter.apply(pcm);
        self.payload = match self.encoder.encode(pcm, &mut self.buf) {
            Ok(n) => Some(Arc::from(&self.buf[..n])),
            Err(_) => None,
        };
    }
}

/// One language: its booth, its live interpreter's voice, its mix.
pub struct Channel {
    pub lang: String,
    pub name: String,
    pub duck: DuckSettings,
    /// Interpreters in the booth, in arrival order; the first publishing one is live.
    pub booth: Vec<PeerId>,
    /// The live interpreter's voice.
    pub voice: Option<Source>,
    ducker: Ducker,
    mix: Box<[f32; FRAME]>,
    output: Output,
    /// Listeners on this channel (set by the engine before each tick).
    pub listeners: u32,
}

impl Channel {
    pub fn new(lang: String, name: String, duck: DuckSettings) -> Self {
        Channel {
            lang,
            name,
            duck,
            booth: Vec::new(),
            voice: None,
            ducker: Ducker::new(duck),
            mix: Box::new([0.0; FRAME]),
            output: Output::new(),
            listeners: 0,
        }
    }

    pub fn live(&self) -> Option<PeerId> {
        self.voice.as_ref().map(|v| v.peer)
    }

    pub fn payload(&self) -> Option<&Payload> {
        self.output.payload.as_ref()
    }

    pub fn floor_gain_db(&self) -> f32 {
        self.ducker.gain_db()
    }
}

pub struct Room {
    pub id: String,
    /// Language of the floor, when the host set it.
    pub floor_lang: Option<String>,
    pub floor: Vec<Source>,
    pub channels: Vec<Channel>,
    /// Listeners (and interpreters) hearing the floor, set by the engine before each tick.
    pub floor_listeners: u32,
    floor_mix: Box<[f32; FRAME]>,
    floor_out: Output,
    /// Ticks since the room started: the media clock of every stream sent down.
    pub ticks: u64,
}

impl Room {
    pub fn new(id: String, floor_lang: Option<String>) -> Self {
        Room {
            id,
            floor_lang,
            floor: Vec::new(),
            channels: Vec::new(),
            floor_listeners: 0,
            floor_mix: Box::new([0.0; FRAME]),
            floor_out: Output::new(),
            ticks: 0,
        }
    }

    pub fn channel(&self, lang: &str) -> Option<&Channel> {
        self.channels.iter().find(|c| c.lang == lang)
    }

    pub fn channel_mut(&mut self, lang: &str) -> Option<&mut Channel> {
        self.channels.iter_mut().find(|c| c.lang == lang)
    }

    /// The source a peer publishes, wherever it is.
    pub fn source_mut(&mut self, peer: PeerId) -> Option<&mut Source> {
        if let Some(s) = self.floor.iter_mut().find(|s| s.peer == peer) {
            return Some(s);
        }
        self.channels
            .iter_mut()
            .filter_map(|c| c.voice.as_mut())
            .find(|s| s.peer == peer)
    }

    /// Removes a peer from every booth and source; returns channels whose live interpreter changed.
    pub fn remove_peer(&mut self, peer: PeerId) -> Vec<String> {
        self.floor.retain(|s| s.peer != peer);
        let mut changed = Vec::new();
        for c in &mut self.channels {
            c.booth.retain(|p| *p != peer);
            if c.live() == Some(peer) {
                c.voice = None;
                changed.push(c.lang.clone());
            }
        }
        changed
    }

    pub fn payload(&self, stream: &Stream) -> Option<&Payload> {
        match stream {
            Stream::Floor => self.floor_out.payload.as_ref(),
            Stream::Channel(lang) => self.channel(lang).and_then(|c| c.payload()),
        }
    }

    /// One 20 ms tick: play every source, mix the floor once, mix and encode each channel once.
    pub fn tick(&mut self) {
        self.ticks += 1;
        for s in &mut self.floor {
            s.play();
        }
        self.floor_mix.fill(0.0);
        for s in &self.floor {
            mixer::add(&mut self.floor_mix, &s.pcm, 1.0);
        }

        // The floor goes down as it came in when it has one source, its
        // packet is here and the limiter would not touch it: no decode-encode
        // generation loss, no encode cost. A loud floor is limited and re-encoded.
        self.floor_out.payload = None;
        if self.floor_listeners > 0 {
            let forward = match self.floor.as_slice() {
                [only] if !self.floor_out.limiter.would_limit(&self.floor_mix) => {
                    only.payload().map(Arc::from)
                }
                _ => None,
            };
            match forward {
                Some(p) => self.floor_out.payload = Some(p),
                None if self.floor.iter().any(|s| s.audible) => {
                    let mut pcm = *self.floor_mix;
                    self.floor_out.encode(&mut pcm);
                }
                None => {}
            }
        }

        for c in &mut self.channels {
            c.mix.copy_from_slice(&self.floor_mix[..]);
            let voice = match c.voice.as_mut() {
                Some(v) => {
                    v.play();
                    Some(v)
                }
                None => None,
            };
            // Only received speech counts: concealment is not the interpreter talking.
            let speaking = voice
                .as_ref()
                .is_some_and(|v| v.payload.is_some() && mixer::is_voice(&v.pcm));
            c.ducker.apply(&mut c.mix, speaking);
            if let Some(v) = voice {
                mixer::add(&mut c.mix, &v.pcm, 1.0);
            }
            c.output.payload = None;
            if c.listeners > 0 {
                c.output.encode(&mut c.mix);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packets(level: f32) -> Vec<Vec<u8>> {
        let mut enc = Encoder::new();
        let mut buf = [0u8; MAX_PAYLOAD];
        (0..4)
            .map(|f| {
                let mut pcm = [0f32; FRAME];
                for (i, s) in pcm.iter_mut().enumerate() {
                    *s = level
                        * (2.0 * std::f32::consts::PI * 440.0 * (f * FRAME + i) as f32 / 48_000.0)
                            .sin();
                }
                let n = enc.encode(&pcm, &mut buf).unwrap();
                buf[..n].to_vec()
            })
            .collect()
    }

    fn floor_room(level: f32) -> (Room, Vec<Vec<u8>>) {
        let mut room = Room::new("r".into(), None);
        room.floor.push(Source::new(1));
        room.floor_listeners = 1;
        let p = packets(level);
        for (i, pkt) in p.iter().enumerate() {
            room.floor[0].push((i * FRAME) as u64, pkt).unwrap();
        }
        (room, p)
    }

    #[test]
    fn a_quiet_single_floor_is_forwarded_untouched() {
        let (mut room, p) = floor_room(0.3);
        room.tick();
        assert_eq!(
            room.payload(&Stream::Floor).map(|p| &p[..]),
            Some(&p[0][..])
        );
    }

    #[test]
    fn a_loud_floor_is_limited_not_forwarded() {
        let (mut room, p) = floor_room(1.0);
        let mut dec = Decoder::new();
        let mut out = [0f32; FRAME];
        for original in p.iter().take(3) {
            room.tick();
            let sent = room.payload(&Stream::Floor).expect("floor payload").clone();
            assert_ne!(&sent[..], &original[..], "re-encoded after limiting");
            dec.decode(Some(&sent), &mut out).unwrap();
        }
        let peak = out.iter().fold(0f32, |m, x| m.max(x.abs()));
        assert!(peak < 0.95, "limited to about -1 dBFS, got peak {peak}");
    }

    #[test]
    fn a_channel_without_listeners_is_not_encoded() {
        let mut room = Room::new("r".into(), None);
        room.channels.push(Channel::new(
            "es".into(),
            "es".into(),
            DuckSettings::default(),
        ));
        room.tick();
        assert!(room.payload(&Stream::Channel("es".into())).is_none());
        room.channels[0].listeners = 1;
        room.tick();
        assert!(room.payload(&Stream::Channel("es".into())).is_some());
    }
}
