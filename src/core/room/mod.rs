//! One meeting: its Floor, its Channels and their Booths, who hears what, and the 20 ms mix of each.
//!
//! A room never sees packets or peers' transports: the engine hands it
//! payloads by source and takes back one encoded payload per stream per tick.

pub mod booth;
pub mod chat;
pub mod source;

pub use booth::{Booth, BoothError, Member};
pub use source::Source;

use super::media::codec::{Encoder, FRAME, MAX_PAYLOAD};
use super::media::mixer::{self, DuckSettings, Ducker, Limiter};
use super::media::resample::Decimator;
use super::wire::rtp::{self, RED_INNER_PT};
use std::sync::Arc;
use std::time::Instant;

/// The floor is forwarded as it came in only while its leveller leaves it within this many
/// dB: a floor already at the common level.
const FORWARD_GAIN_DB: f32 = 1.0;

/// Identifies a peer (one signalling session) across the engine.
pub type PeerId = u64;

/// What an interpreter hears as input: the Floor, or another channel's interpreter (Relay).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Input {
    Floor,
    Relay(String),
}

/// One mix sent down, encoded once per tick for everyone who hears it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Stream {
    /// The original audio (plus a channel the host returned to the floor).
    Floor,
    /// A channel: its live interpreter over the ducked floor.
    Channel(String),
    /// A channel's interpreter alone ("interpretation only"; also a relay input).
    Voice(String),
    /// A channel with the floor under its interpreter at another level than the channel's
    /// own ducking: `floor_db` while the interpreter speaks (a listener's balance step).
    Balance { lang: String, floor_db: i8 },
    /// A channel over the floor without the channel returned to it, for a recording while the
    /// returned channel's live interpreter has not agreed to be recorded.
    Unreturned(String),
    /// What an interpreter of booth `lang` hears: the input, plus the live
    /// partner's voice when `partner` (the passive booth member follows the live one).
    Booth { lang: String, input: Input, partner: bool },
}

impl Stream {
    /// The stream's name between nodes (a NATS subject token: letters, digits, `-`); only the
    /// streams listeners hear have one (a booth's is heard only where its interpreters are).
    pub fn key(&self) -> Option<String> {
        match self {
            Stream::Floor => Some("floor".into()),
            Stream::Channel(l) => Some(format!("channel_{l}")),
            Stream::Voice(l) => Some(format!("voice_{l}")),
            Stream::Balance { lang, floor_db } => Some(format!("balance_{lang}_{floor_db}")),
            Stream::Unreturned(_) | Stream::Booth { .. } => None,
        }
    }

    /// The stream a [`Stream::key`] names.
    pub fn from_key(key: &str) -> Option<Stream> {
        let lang_ok = |l: &str| {
            !l.is_empty() && l.len() <= 35 && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        };
        if key == "floor" {
            return Some(Stream::Floor);
        }
        if let Some(l) = key.strip_prefix("channel_").filter(|l| lang_ok(l)) {
            return Some(Stream::Channel(l.into()));
        }
        if let Some(l) = key.strip_prefix("voice_").filter(|l| lang_ok(l)) {
            return Some(Stream::Voice(l.into()));
        }
        let (lang, db) = key.strip_prefix("balance_")?.rsplit_once('_')?;
        lang_ok(lang).then_some(())?;
        Some(Stream::Balance { lang: lang.into(), floor_db: db.parse().ok()? })
    }
}

/// One encoded output of a tick, shared by every listener of its stream.
pub type Payload = Arc<[u8]>;

/// One stream's limiter and encoder, and this tick's payload.
struct Encoded {
    limiter: Limiter,
    encoder: Encoder,
    buf: Box<[u8; MAX_PAYLOAD]>,
    payload: Option<Payload>,
    /// This tick's payload with the last tick's in front (RFC 2198 RED), for listeners who
    /// asked for redundancy: one lost packet costs them nothing.
    red: Option<Payload>,
    /// The last tick's payload, for the next tick's RED.
    previous: Option<Payload>,
    red_buf: Vec<u8>,
    /// The floor goes down as its one source sent it, until the first frame that cannot
    /// be (a loud one, a second source, a channel returned to the floor); from then on it
    /// is encoded for good: a frame of our encoder among the sender's would leave the
    /// listener's decoder out of step with the stream, which it hears as loud bursts.
    forwarding: bool,
}

impl Encoded {
    fn new() -> Self {
        Encoded {
            limiter: Limiter::new(),
            encoder: Encoder::new(),
            buf: Box::new([0; MAX_PAYLOAD]),
            payload: None,
            red: None,
            previous: None,
            red_buf: Vec::with_capacity(2 * MAX_PAYLOAD + 5),
            forwarding: true,
        }
    }

    /// Builds this tick's RED payload from the last tick's and this one's, once for every listener of the stream.
    fn protect(&mut self) {
        self.red = self.payload.as_ref().map(|p| {
            let previous = self.previous.as_deref();
            rtp::write_red(&mut self.red_buf, RED_INNER_PT, previous, FRAME as u16, p);
            Arc::from(&self.red_buf[..])
        });
        self.previous = self.payload.clone();
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
    pub booth: Booth,
    /// The booth's chat, for the room's life.
    pub chat: chat::Chat,
    ducker: Ducker,
    /// Who was live at the last tick: when nobody is any more, the floor comes back at once.
    was_live: Option<PeerId>,
    /// This tick's voice on air (silence when nobody is live or the live member is muted).
    voice: Box<[f32; FRAME]>,
    /// This tick's listener mix: voice over the ducked floor.
    mix: Box<[f32; FRAME]>,
    /// What the booth's members were last told: the audience, and who relays a channel with
    /// nobody on air (silence); a change of either is told again.
    pub told: (u32, Vec<PeerId>),
    /// How far the ducker had lowered the floor (0: not at all, 1: its full depth) at the end
    /// of the last tick and of this one: balance steps follow the same envelope at their depth.
    ducked: (f32, f32),
}

impl Channel {
    pub fn new(lang: String, name: String, duck: DuckSettings) -> Self {
        Channel {
            lang,
            name,
            duck,
            booth: Booth::default(),
            chat: chat::Chat::default(),
            ducker: Ducker::new(duck),
            was_live: None,
            voice: Box::new([0.0; FRAME]),
            mix: Box::new([0.0; FRAME]),
            ducked: (0.0, 0.0),
            told: (0, Vec::new()),
        }
    }
}

pub struct Room {
    pub id: String,
    /// Language of the floor, when the host set it.
    pub floor_lang: Option<String>,
    pub floor: Vec<Source>,
    pub channels: Vec<Channel>,
    /// A channel the host lets be heard on the floor (Q&A); its own booth never hears itself.
    pub floor_return: Option<String>,
    /// The floor sources summed.
    floor_raw: Box<[f32; FRAME]>,
    /// The floor as heard by everyone but the returned channel's booth.
    floor_full: Box<[f32; FRAME]>,
    /// One limiter and encoder per stream someone hears, in the order the engine lists
    /// them (so a listener finds its payload by index); dropped when nobody hears it.
    outputs: Vec<(Stream, Encoded)>,
    /// Ticks since the room started: the media clock of every stream sent down.
    pub ticks: u64,
    /// Sources being captioned (`None`: the floor), each with its 16 kHz resampler.
    captioned: Vec<(Option<String>, Decimator)>,
    /// Frames concealed so far across this room's sources.
    pub concealed: u64,
    /// Payloads that failed to decode so far across this room's sources.
    pub decode_errors: u64,
    /// Booth chat lines written in this room so far (each line's id).
    pub chat_lines: u64,
    /// While the room is recorded: the tick its take began.
    pub recording: Option<u64>,
    /// Mixed on another node of a cluster (this node is an edge): its streams arrive encoded
    /// ([`Room::relay`]) and nothing is mixed here; the clock follows the origin's.
    pub mirror: bool,
}

impl Room {
    pub fn new(id: String, floor_lang: Option<String>) -> Self {
        Room {
            id,
            floor_lang,
            floor: Vec::new(),
            channels: Vec::new(),
            floor_return: None,
            floor_raw: Box::new([0.0; FRAME]),
            floor_full: Box::new([0.0; FRAME]),
            outputs: Vec::new(),
            ticks: 0,
            captioned: Vec::new(),
            concealed: 0,
            decode_errors: 0,
            chat_lines: 0,
            recording: None,
            mirror: false,
        }
    }

    pub fn channel(&self, lang: &str) -> Option<&Channel> {
        self.channels.iter().find(|c| c.lang == lang)
    }

    pub fn channel_mut(&mut self, lang: &str) -> Option<&mut Channel> {
        self.channels.iter_mut().find(|c| c.lang == lang)
    }

    /// The booth a peer sits in.
    pub fn booth_of(&self, peer: PeerId) -> Option<&Channel> {
        self.channels.iter().find(|c| c.booth.member(peer).is_some())
    }

    /// The source a peer publishes, wherever it is.
    pub fn source_mut(&mut self, peer: PeerId) -> Option<&mut Source> {
        if let Some(s) = self.floor.iter_mut().find(|s| s.peer == peer) {
            return Some(s);
        }
        self.channels
            .iter_mut()
            .flat_map(|c| c.booth.members.iter_mut())
            .find(|m| m.peer == peer)
            .and_then(|m| m.source.as_mut())
    }

    /// Removes a peer from the floor and every booth; returns the booths it sat in and whether it was live there.
    /// With `keep`, a booth member that can come back (it has a resume key) keeps its place until then.
    pub fn remove_peer(&mut self, peer: PeerId, keep: Option<Instant>) -> Vec<(String, bool)> {
        self.floor.retain(|s| s.peer != peer);
        let mut booths = Vec::new();
        for c in &mut self.channels {
            let live = c.booth.is_live(peer);
            let resumable = c.booth.member(peer).is_some_and(|m| m.resume.is_some());
            let gone = match keep {
                Some(until) if resumable => c.booth.away(peer, until).is_some(),
                _ => c.booth.remove(peer).is_some(),
            };
            if gone {
                booths.push((c.lang.clone(), live));
            }
        }
        booths
    }

    pub fn payload(&self, stream: &Stream) -> Option<&Payload> {
        self.outputs.iter().find(|(s, _)| s == stream).and_then(|(_, o)| o.payload.as_ref())
    }

    /// This tick's payload of the `i`th stream of the last [`Room::tick`]'s list.
    pub fn payload_at(&self, i: usize) -> Option<&Payload> {
        self.outputs.get(i).and_then(|(_, o)| o.payload.as_ref())
    }

    /// What each track of a recording gets this tick: the floor, then each channel as its
    /// listeners hear it; a channel whose live interpreter has not agreed to be recorded gets
    /// the floor instead. `None`: nothing this tick (the player conceals it).
    ///
    /// A channel returned to the floor is in the floor and in every other channel's mix: while its
    /// live interpreter has not agreed, the tracks come from the floor without it instead.
    pub fn recorded(&self) -> Vec<(String, Option<Payload>)> {
        let unconsented =
            self.floor_return.as_deref().filter(|l| self.channel(l).is_some_and(|c| !Self::consents(c)));
        let floor = match unconsented {
            Some(l) => {
                self.payload(&Stream::Booth { lang: l.to_string(), input: Input::Floor, partner: false })
            }
            None => self.payload(&Stream::Floor),
        }
        .cloned();
        let mut tracks = Vec::with_capacity(1 + self.channels.len());
        tracks.push(("floor".to_string(), floor.clone()));
        for c in &self.channels {
            let payload = if !Self::consents(c) {
                floor.clone()
            } else if unconsented.is_some() {
                self.payload(&Stream::Unreturned(c.lang.clone())).cloned()
            } else {
                let heard =
                    self.outputs.iter().find(|(s, _)| matches!(s, Stream::Channel(l) if *l == c.lang));
                heard.and_then(|(_, o)| o.payload.clone())
            };
            tracks.push((c.lang.clone(), payload));
        }
        tracks
    }

    /// The same as a RED payload (the last tick's frame in front, Opus payload type [`RED_INNER_PT`]).
    pub fn red_at(&self, i: usize) -> Option<&Payload> {
        self.outputs.get(i).and_then(|(_, o)| o.red.as_ref())
    }

    /// Turns captions on or off for the floor (`None`) or a channel.
    pub fn set_captions(&mut self, source: Option<String>, on: bool) {
        let present = self.captioned.iter().any(|(s, _)| *s == source);
        if on && !present {
            self.captioned.push((source, Decimator::new()));
        } else if !on {
            self.captioned.retain(|(s, _)| *s != source);
        }
    }

    pub fn captioned(&self, source: Option<&str>) -> bool {
        self.captioned.iter().any(|(s, _)| s.as_deref() == source)
    }

    /// This tick's 16 kHz audio of every captioned source: the floor as everyone hears it, a channel's voice.
    pub fn caption_audio(&mut self, mut each: impl FnMut(Option<&str>, Box<[f32; FRAME / 3]>)) {
        for (source, decimator) in &mut self.captioned {
            let pcm: &[f32; FRAME] = match source {
                None => &self.floor_full,
                Some(l) => match self.channels.iter().find(|c| &c.lang == l) {
                    Some(c) => &c.voice,
                    None => continue,
                },
            };
            let mut out = Box::new([0f32; FRAME / 3]);
            decimator.run(pcm, &mut out);
            each(source.as_deref(), out);
        }
    }

    /// The floor as the booth of `lang` and its listeners hear it.
    fn floor_for(&self, lang: &str) -> &[f32; FRAME] {
        if self.floor_return.as_deref() == Some(lang) {
            &self.floor_raw
        } else {
            &self.floor_full
        }
    }

    fn voice(&self, lang: &str) -> Option<&[f32; FRAME]> {
        self.channel(lang).map(|c| &*c.voice)
    }

    /// One 20 ms tick: play every source, mix the floor once, each channel
    /// once, then limit and encode once each stream in `needed` (no duplicates).
    pub fn tick(&mut self, needed: &[Stream]) {
        self.ticks += 1;
        if self.mirror {
            return;
        }
        if needed.is_empty() && self.outputs.is_empty() && self.is_silent() {
            // Nobody speaks, hears or is captioned (an empty room): the clock is all that moves.
            return;
        }
        for s in &mut self.floor {
            s.play();
        }
        self.floor_raw.fill(0.0);
        for s in &self.floor {
            mixer::add(&mut self.floor_raw, &s.pcm, 1.0);
            self.concealed += u64::from(s.concealed);
            self.decode_errors += u64::from(s.decode_error);
        }

        for c in &mut self.channels {
            if c.booth.live.is_none() && c.was_live.is_some() {
                // Nobody on air: the floor comes back at full level at once, not after the hold.
                c.ducker.release_fast();
            }
            c.was_live = c.booth.live;
            for m in &mut c.booth.members {
                if let Some(src) = m.source.as_mut() {
                    src.play();
                    self.concealed += u64::from(src.concealed);
                    self.decode_errors += u64::from(src.decode_error);
                }
            }
            c.voice.fill(0.0);
            let on_air = c.booth.live.and_then(|p| c.booth.member(p)).filter(|m| !m.muted);
            let mut speaking = false;
            if let Some(src) = on_air.and_then(|m| m.source.as_ref()) {
                c.voice.copy_from_slice(&src.pcm[..]);
                // Only received speech counts: concealment is not the interpreter talking.
                speaking = src.payload.is_some() && src.voiced;
            }
            c.ducker.set_voice(speaking);
        }

        self.floor_full.copy_from_slice(&self.floor_raw[..]);
        if let Some(v) = self.floor_return.as_deref().and_then(|l| self.voice(l)) {
            let v = *v;
            mixer::add(&mut self.floor_full, &v, 1.0);
        }
        for i in 0..self.channels.len() {
            let floor = *self.floor_for(&self.channels[i].lang);
            let c = &mut self.channels[i];
            c.mix.copy_from_slice(&floor);
            c.ducker.apply(&mut c.mix);
            let depth = c.duck.depth_db.min(-0.1);
            c.ducked = (c.ducked.1, (c.ducker.gain_db() / depth).clamp(0.0, 1.0));
            mixer::add(&mut c.mix, &c.voice, 1.0);
        }

        self.fit_outputs(needed);
        for i in 0..self.outputs.len() {
            self.render(i);
            self.outputs[i].1.protect();
        }
    }

    /// One output per needed stream, in its order: rebuilt only when who hears what changed;
    /// streams still heard keep their encoder (and their last payload, for RED).
    fn fit_outputs(&mut self, needed: &[Stream]) {
        let same =
            self.outputs.len() == needed.len() && self.outputs.iter().zip(needed).all(|((s, _), n)| s == n);
        if !same {
            let mut old = std::mem::take(&mut self.outputs);
            self.outputs = needed
                .iter()
                .map(|s| {
                    let kept = old.iter().position(|(o, _)| o == s).map(|i| old.swap_remove(i).1);
                    (s.clone(), kept.unwrap_or_else(Encoded::new))
                })
                .collect();
        }
    }

    /// A mirrored room's stream `needed[slot]` as its origin encoded it at media time `ts`
    /// (48 kHz): the payload (and its RED, from the stream's last one) for this node's listeners;
    /// the room's clock moves to the origin's, so that it goes on from there if this node
    /// takes the room over.
    pub fn relay(&mut self, needed: &[Stream], slot: usize, ts: u32, payload: Payload) {
        self.fit_outputs(needed);
        self.ticks = u64::from(ts) / FRAME as u64;
        if let Some((_, o)) = self.outputs.get_mut(slot) {
            o.payload = Some(payload);
            o.protect();
        }
    }

    /// No source can make a sound and nothing is captioned.
    fn is_silent(&self) -> bool {
        self.floor.is_empty()
            && self.captioned.is_empty()
            && self.channels.iter().all(|c| c.booth.members.iter().all(|m| m.source.is_none()))
    }

    /// Puts `c`'s voice over `floor`, the floor lowered along the channel's ducking envelope to
    /// `floor_db` at full depth, ramped across the frame from the last tick's value so that no
    /// step is heard (one gain for a steady frame).
    fn duck_as(c: &Channel, floor: &mut [f32; FRAME], floor_db: f32) {
        let (from, to) = c.ducked;
        if from == to {
            let g = mixer::db_to_gain(to * floor_db);
            floor.iter_mut().for_each(|x| *x *= g);
        } else {
            let n = FRAME as f32;
            for (i, x) in floor.iter_mut().enumerate() {
                let f = from + (to - from) * (i as f32 + 1.0) / n;
                *x *= mixer::db_to_gain(f * floor_db);
            }
        }
        mixer::add(floor, &c.voice, 1.0);
    }

    /// Whether a channel's recording may carry its live interpreter (nobody live, or one who agreed).
    fn consents(c: &Channel) -> bool {
        c.booth.live.and_then(|p| c.booth.member(p)).is_none_or(|m| m.consent)
    }

    /// The streams a recording may take its tracks from this tick: the Floor and each channel,
    /// and while a channel is returned to the floor, the floor without it and each other channel
    /// over that (for when the returned interpreter has not agreed to be recorded).
    pub fn recorded_streams(&self) -> Vec<Stream> {
        let mut all = vec![Stream::Floor];
        all.extend(self.channels.iter().map(|c| Stream::Channel(c.lang.clone())));
        if let Some(l) = &self.floor_return {
            all.push(Stream::Booth { lang: l.clone(), input: Input::Floor, partner: false });
            all.extend(
                self.channels.iter().filter(|c| &c.lang != l).map(|c| Stream::Unreturned(c.lang.clone())),
            );
        }
        all
    }

    /// What one stream carries this tick, before limiting and encoding.
    fn mix(&self, stream: &Stream) -> Option<[f32; FRAME]> {
        let mut pcm = [0f32; FRAME];
        match stream {
            Stream::Floor => pcm.copy_from_slice(&self.floor_full[..]),
            Stream::Channel(l) => pcm.copy_from_slice(&self.channel(l)?.mix[..]),
            Stream::Voice(l) => pcm.copy_from_slice(self.voice(l)?),
            Stream::Balance { lang, floor_db } => {
                let c = self.channel(lang)?;
                pcm.copy_from_slice(self.floor_for(lang));
                Self::duck_as(c, &mut pcm, f32::from(*floor_db));
            }
            Stream::Unreturned(lang) => {
                let c = self.channel(lang)?;
                pcm.copy_from_slice(&self.floor_raw[..]);
                Self::duck_as(c, &mut pcm, c.duck.depth_db.min(0.0));
            }
            Stream::Booth { lang, input, partner } => {
                match input {
                    Input::Floor => pcm.copy_from_slice(self.floor_for(lang)),
                    Input::Relay(x) => {
                        if let Some(v) = self.voice(x) {
                            pcm.copy_from_slice(v);
                        }
                    }
                }
                if *partner {
                    if let Some(v) = self.voice(lang) {
                        mixer::add(&mut pcm, v, 1.0);
                    }
                }
            }
        }
        Some(pcm)
    }

    /// Mixes the `i`th stream, then forwards or limits and encodes it.
    fn render(&mut self, i: usize) {
        let mixed = self.mix(&self.outputs[i].0);
        let floor = self.outputs[i].0 == Stream::Floor;
        let out = &mut self.outputs[i].1;
        out.payload = None;
        let Some(mut pcm) = mixed else { return };
        if floor && out.forwarding {
            // The floor goes down as it came in when it has one source already at the common
            // level and the limiter would not touch it: no decode-encode generation loss, no
            // encode cost. A frame
            // that is lost or late is not sent at all: the listener's decoder conceals it
            // and stays in step with the sender's encoder.
            match self.floor.as_slice() {
                [] => return,
                [only] if self.floor_return.is_none() => match only.payload() {
                    None => return,
                    Some(p) if !out.limiter.would_limit(&pcm) && only.gain_db().abs() < FORWARD_GAIN_DB => {
                        out.payload = Some(Arc::from(p));
                        return;
                    }
                    Some(_) => {}
                },
                _ => {}
            }
            out.forwarding = false;
        }
        if floor && !self.floor.iter().any(|s| s.audible) {
            return;
        }
        out.encode(&mut pcm);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::media::codec::Decoder;
    use crate::core::room::source::JITTER_DEPTH;

    #[test]
    fn streams_heard_by_listeners_have_keys_that_name_them_again() {
        let heard = [
            Stream::Floor,
            Stream::Channel("pt-BR".into()),
            Stream::Voice("es".into()),
            Stream::Balance { lang: "fr".into(), floor_db: -9 },
            Stream::Balance { lang: "de".into(), floor_db: 9 },
        ];
        for s in heard {
            let key = s.key().expect("a listener's stream has a key");
            assert!(key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'), "{key}");
            assert_eq!(Stream::from_key(&key), Some(s));
        }
        assert_eq!(Stream::Unreturned("es".into()).key(), None);
        for bad in ["", "channel_", "channel_a.b", "balance_es", "balance_es_x", "voice_>", "floor2"] {
            assert_eq!(Stream::from_key(bad), None, "{bad}");
        }
    }

    fn packets(level: f32) -> Vec<Vec<u8>> {
        let mut enc = Encoder::new();
        let mut buf = [0u8; MAX_PAYLOAD];
        (0..4)
            .map(|f| {
                let mut pcm = [0f32; FRAME];
                for (i, s) in pcm.iter_mut().enumerate() {
                    *s = level
                        * (2.0 * std::f32::consts::PI * 440.0 * (f * FRAME + i) as f32 / 48_000.0).sin();
                }
                let n = enc.encode(&pcm, &mut buf).unwrap();
                buf[..n].to_vec()
            })
            .collect()
    }

    /// A room whose one floor source sends `packets(level)`, a packet per tick.
    fn floor_room(level: f32) -> (Room, Vec<Vec<u8>>) {
        let mut room = Room::new("r".into(), None);
        room.floor.push(Source::new(1));
        (room, packets(level))
    }

    /// Ticks `room` with packet `i` (and those before it) arrived, as a sender at the jitter buffer's depth would have it.
    fn tick_with(room: &mut Room, p: &[Vec<u8>], i: usize) {
        for (k, pkt) in p.iter().enumerate().take(i + JITTER_DEPTH as usize) {
            let _ = room.floor[0].push((k * FRAME) as u64, pkt);
        }
        room.tick(&[Stream::Floor]);
    }

    #[test]
    fn a_quiet_single_floor_is_forwarded_untouched() {
        let (mut room, p) = floor_room(0.3);
        for (i, original) in p.iter().take(2).enumerate() {
            tick_with(&mut room, &p, i);
            assert_eq!(room.payload(&Stream::Floor).map(|p| &p[..]), Some(&original[..]));
        }
    }

    #[test]
    fn a_lost_frame_of_a_forwarded_floor_is_not_sent_and_forwarding_goes_on() {
        let (mut room, p) = floor_room(0.3);
        tick_with(&mut room, &p, 0);
        // Packet 2 never comes; 3 does.
        let _ = room.floor[0].push(3 * FRAME as u64, &p[3]);
        room.tick(&[Stream::Floor]);
        assert_eq!(room.payload(&Stream::Floor).map(|p| &p[..]), Some(&p[1][..]));
        room.tick(&[Stream::Floor]);
        assert!(room.payload(&Stream::Floor).is_none(), "no frame of ours among the sender's");
        room.tick(&[Stream::Floor]);
        assert_eq!(room.payload(&Stream::Floor).map(|p| &p[..]), Some(&p[3][..]), "still forwarded");
    }

    #[test]
    fn a_loud_floor_is_limited_not_forwarded() {
        let (mut room, p) = floor_room(1.0);
        let mut dec = Decoder::new();
        let mut out = [0f32; FRAME];
        for (i, original) in p.iter().take(2).enumerate() {
            tick_with(&mut room, &p, i);
            let sent = room.payload(&Stream::Floor).expect("floor payload").clone();
            assert_ne!(&sent[..], &original[..], "re-encoded after limiting");
            dec.decode(Some(&sent), &mut out).unwrap();
        }
        let peak = out.iter().fold(0f32, |m, x| m.max(x.abs()));
        assert!(peak < 0.95, "limited to about -1 dBFS, got peak {peak}");
    }

    #[test]
    fn only_streams_someone_hears_are_encoded() {
        let mut room = Room::new("r".into(), None);
        room.channels.push(Channel::new("es".into(), "es".into(), DuckSettings::default()));
        let es = Stream::Channel("es".into());
        room.tick(&[]);
        assert!(room.payload(&es).is_none());
        room.tick(std::slice::from_ref(&es));
        assert!(room.payload(&es).is_some());
        room.tick(&[Stream::Voice("es".into())]);
        assert!(room.payload(&es).is_none(), "dropped once nobody hears it");
    }
}
