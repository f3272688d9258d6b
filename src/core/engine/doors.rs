//! The plain RTP doors: a tap that feeds a room's floor from a meeting's own media server, and outputs that send a room stream back as RTP.

use super::stats::Counter;
use super::Engine;
use crate::core::media::codec::FRAME;
use crate::core::media::jitter::JitterError;
use crate::core::room::{PeerId, Room, Source, Stream};
use crate::core::spec::{RtpOutSpec, TapSpec};
use crate::core::wire::rtp::{self, Batch, RtpError, Unwrapper};
use crate::protocol::{NoticeKind, Role, ServerMsg};
use std::net::{IpAddr, SocketAddr};

pub(super) struct Tap {
    spec: TapSpec,
    ssrc: Option<u32>,
    /// Where the sender it locked onto sends from.
    from: Option<SocketAddr>,
    unwrap: Unwrapper,
    /// Tick count of the last accepted packet, to re-lock onto a new sender.
    last_tick: u64,
}

pub(super) struct RtpOut {
    pub(super) spec: RtpOutSpec,
    pub(super) stream: Stream,
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
    #[error("the tap takes packets only from {want}")]
    NotPinned { want: IpAddr },
    #[error("the tap is locked onto the sender at {0} until it pauses for 1 s")]
    Locked(SocketAddr),
}

impl RtpOut {
    /// Writes this tick's payload of the output's stream, if there is one.
    pub(super) fn send(&mut self, r: &Room, batch: &mut Batch) {
        let Some(payload) = r.payload(&self.stream) else { return };
        let ts = (r.ticks * FRAME as u64) as u32;
        let (pt, seq, ssrc) = (self.spec.payload_type, self.seq, self.spec.ssrc);
        batch.push(self.spec.to, |buf| rtp::write(buf, pt, seq, ts, ssrc, payload));
        self.seq = self.seq.wrapping_add(1);
    }
}

impl Engine {
    /// Configures a plain RTP floor tap; returns its index for [`Engine::handle_tap`].
    /// The room may be created later; until then its packets are refused.
    pub fn add_tap(&mut self, spec: TapSpec) -> usize {
        self.taps.push(Tap { spec, ssrc: None, from: None, unwrap: Unwrapper::default(), last_tick: 0 });
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

    /// One datagram from `source` on tap `tap`'s port: an RTP Opus packet for the room's floor.
    /// Returns the sender's address when the tap locked onto a new sender with it (the first
    /// one, or another after the last paused): the room's hosts are told, and it is counted.
    pub fn handle_tap(
        &mut self,
        tap: usize,
        source: SocketAddr,
        data: &[u8],
    ) -> Result<Option<SocketAddr>, TapError> {
        let result = self.tap_packet(tap, source, data);
        match result {
            Ok(changed) => {
                self.stats.add(Counter::TapPackets, 1);
                if let Some(from) = changed {
                    self.stats.add(Counter::TapSenders, 1);
                    let room = self.taps[tap].spec.room.clone();
                    let msg = ServerMsg::Notice {
                        kind: NoticeKind::TapSender,
                        from: from.to_string(),
                        channel: None,
                    };
                    let hosts: Vec<PeerId> =
                        self.peers_of(&room).filter(|id| self.peers[id].role == Role::Host).collect();
                    for id in hosts {
                        self.out.push_back(super::Output::Event { peer: id, msg: msg.clone() });
                    }
                }
            }
            Err(_) => self.stats.add(Counter::TapRejected, 1),
        }
        result
    }

    fn tap_packet(
        &mut self,
        tap: usize,
        source: SocketAddr,
        data: &[u8],
    ) -> Result<Option<SocketAddr>, TapError> {
        let t = self.taps.get_mut(tap).ok_or(TapError::NoTap(tap))?;
        if let Some(want) = t.spec.source.filter(|ip| *ip != source.ip()) {
            return Err(TapError::NotPinned { want });
        }
        let p = rtp::parse(data)?;
        if p.payload_type != t.spec.payload_type {
            return Err(RtpError::PayloadType { got: p.payload_type, want: t.spec.payload_type }.into());
        }
        let room = self.rooms.get_mut(&t.spec.room).ok_or_else(|| TapError::NoRoom(t.spec.room.clone()))?;
        let quiet = room.ticks >= t.last_tick + TAP_RELOCK_TICKS;
        if let Some(want) = t.spec.ssrc.filter(|s| *s != p.ssrc) {
            return Err(RtpError::Ssrc { got: p.ssrc, want }.into());
        }
        // An unpinned tap follows a new sender (another SSRC or address) once the old one has
        // been quiet a while; until then the sender it holds keeps the floor.
        let same = t.ssrc == Some(p.ssrc) && t.from == Some(source);
        if let Some(want) = t.ssrc.filter(|_| !same && !quiet) {
            return Err(match t.from.filter(|f| *f != source) {
                Some(f) => TapError::Locked(f),
                None => RtpError::Ssrc { got: p.ssrc, want }.into(),
            });
        }
        let peer = tap_peer(tap);
        let mut changed = None;
        if !same {
            if t.from != Some(source) {
                changed = Some(source);
            }
            t.ssrc = Some(p.ssrc);
            t.from = Some(source);
            t.unwrap = Unwrapper::default();
            room.floor.retain(|s| s.peer != peer);
            room.floor.push(Source::new(peer));
            self.stale.insert(t.spec.room.clone());
        }
        t.last_tick = room.ticks;
        let ts = t.unwrap.unwrap(p.timestamp);
        room.source_mut(peer).expect("pushed above").push(ts, p.payload)?;
        Ok(changed)
    }
}
