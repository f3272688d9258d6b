//! One incoming audio stream (a floor speaker or an interpreter): its jitter buffer, its decoder, this tick's frame.

use super::PeerId;
use crate::core::media::codec::{CodecError, Decoder, FRAME, MAX_PAYLOAD};
use crate::core::media::jitter::{Jitter, JitterError, Playout};
use crate::core::media::level::Leveler;

/// Target depth of every source's jitter buffer, in frames. Two frames (up to
/// 40 ms, about 30 ms on average) absorb a browser's send jitter on a LAN.
pub const JITTER_DEPTH: u32 = 2;

/// One incoming audio stream, played out by media time.
pub struct Source {
    pub peer: PeerId,
    jitter: Jitter,
    decoder: Decoder,
    pub(super) pcm: Box<[f32; FRAME]>,
    /// Whether this tick's `pcm` carries audio (decoded or concealed).
    pub(super) audible: bool,
    /// Whether this tick's audio was concealed (its packet lost or late).
    pub(super) concealed: bool,
    /// This tick's payload, when one arrived in time (forwarded as is where possible).
    pub(super) payload: Option<usize>,
    payload_buf: Box<[u8; MAX_PAYLOAD]>,
    /// Whether this tick's payload failed to decode (played as silence).
    pub(super) decode_error: bool,
    /// The source's level, brought to the common speech level, and its voice detector.
    leveler: Leveler,
    /// Whether this tick's audio is voice.
    pub(super) voiced: bool,
}

impl Source {
    pub fn new(peer: PeerId) -> Self {
        Source {
            peer,
            jitter: Jitter::new(JITTER_DEPTH),
            decoder: Decoder::new(),
            pcm: Box::new([0.0; FRAME]),
            audible: false,
            concealed: false,
            payload: None,
            payload_buf: Box::new([0; MAX_PAYLOAD]),
            decode_error: false,
            leveler: Leveler::default(),
            voiced: false,
        }
    }

    /// Gain the leveller applies now, dB.
    pub(super) fn gain_db(&self) -> f32 {
        self.leveler.gain_db()
    }

    pub fn push(&mut self, ts: u64, payload: &[u8]) -> Result<(), JitterError> {
        self.jitter.push(ts, payload)
    }

    /// Plays one tick: decodes the due payload, conceals a lost one, or goes quiet.
    pub(super) fn play(&mut self) {
        self.payload = None;
        self.concealed = false;
        let result: Result<(), CodecError> = match self.jitter.pop() {
            Playout::Packet(p) => {
                self.payload_buf[..p.len()].copy_from_slice(p);
                self.payload = Some(p.len());
                self.audible = true;
                self.decoder.decode(Some(p), &mut self.pcm)
            }
            Playout::Lost { next } => {
                self.audible = true;
                self.concealed = true;
                match next {
                    Some(p) => self
                        .decoder
                        .decode_fec(p, &mut self.pcm)
                        .or_else(|_| self.decoder.decode(None, &mut self.pcm)),
                    None => self.decoder.decode(None, &mut self.pcm),
                }
            }
            Playout::Idle => {
                self.audible = false;
                Ok(())
            }
        };
        self.decode_error = result.is_err();
        if result.is_err() {
            self.audible = false;
            self.payload = None;
        }
        if !self.audible {
            self.pcm.fill(0.0);
        }
        self.voiced = self.audible && self.leveler.process(&mut self.pcm);
    }

    pub(super) fn payload(&self) -> Option<&[u8]> {
        self.payload.map(|n| &self.payload_buf[..n])
    }
}
