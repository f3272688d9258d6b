//! Per-source reorder buffer: takes RTP payloads as they arrive and plays out one per 20 ms tick by media time.
//!
//! It does not decode; it says for each tick whether a payload is there, lost
//! (conceal it), or whether the source is idle (play nothing).

use super::codec::{FRAME, MAX_PAYLOAD};
use thiserror::Error;

/// Frames the buffer can hold: 320 ms, far more than loopback or a LAN needs,
/// small enough that a stalled source is noticed and resynchronised quickly.
const SLOTS: usize = 16;
/// How late a packet may be and still be played, by delaying playout that much
/// (the buffer grows when the network or the sender proves jittery): 40 ms.
const MAX_STRETCH: u64 = 2 * FRAME as u64;
/// Most delay the buffer grows to by stretching, in frames (160 ms).
const MAX_DEPTH: usize = 8;
/// Consecutive empty ticks after which a source counts as stopped (100 ms):
/// concealment beyond that would invent sound, so we go quiet and re-buffer.
const IDLE_AFTER: u32 = 5;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum JitterError {
    #[error("payload of {0} bytes exceeds the Opus maximum of {MAX_PAYLOAD}")]
    TooLarge(usize),
    #[error("packet arrived after its playout time")]
    Late,
    #[error("empty payload")]
    Empty,
}

/// What a source plays at one tick.
#[derive(Debug, PartialEq, Eq)]
pub enum Playout<'a> {
    Packet(&'a [u8]),
    Lost,
    Idle,
}

struct Slot {
    ts: Option<u64>,
    len: usize,
    buf: [u8; MAX_PAYLOAD],
}

pub struct Jitter {
    slots: Box<[Slot]>,
    /// Media time (48 kHz) of the frame due at the next tick; `None` while buffering.
    next: Option<u64>,
    /// Frames to hold before playing: the buffer's target delay, in ticks.
    depth: u32,
    empty_ticks: u32,
    /// Times the buffer grew to take a late packet.
    pub stretched: u64,
    /// Media time of the last payload played (not concealed).
    played: Option<u64>,
}

impl Jitter {
    /// `depth` is the target delay in 20 ms frames (at least 1).
    pub fn new(depth: u32) -> Self {
        let slots = (0..SLOTS).map(|_| Slot { ts: None, len: 0, buf: [0; MAX_PAYLOAD] }).collect();
        Jitter { slots, next: None, depth: depth.max(1), empty_ticks: 0, stretched: 0, played: None }
    }

    fn index(ts: u64) -> usize {
        (ts / FRAME as u64) as usize % SLOTS
    }

    /// Stores one payload with its media time (48 kHz RTP clock, extended to 64 bits).
    pub fn push(&mut self, ts: u64, payload: &[u8]) -> Result<(), JitterError> {
        if payload.is_empty() {
            return Err(JitterError::Empty);
        }
        if payload.len() > MAX_PAYLOAD {
            return Err(JitterError::TooLarge(payload.len()));
        }
        if let Some(next) = self.next {
            if ts < next {
                // Just missed: play it anyway, one or two frames later than planned,
                // so the buffer adapts to this sender instead of dropping every other packet.
                let held = self.slots.iter().filter(|s| s.ts.is_some()).count();
                let replays_played = self.played.is_some_and(|p| p >= ts);
                if next - ts > MAX_STRETCH || held >= MAX_DEPTH || replays_played {
                    return Err(JitterError::Late);
                }
                self.stretched += 1;
                self.next = Some(ts);
            }
            if ts >= next + (SLOTS as u64 - 1) * FRAME as u64 {
                // The sender jumped ahead (a new clock, or we fell far behind):
                // start over from this packet rather than play stale frames.
                self.reset();
            }
        }
        let slot = &mut self.slots[Self::index(ts)];
        slot.ts = Some(ts);
        slot.len = payload.len();
        slot.buf[..payload.len()].copy_from_slice(payload);
        Ok(())
    }

    fn reset(&mut self) {
        self.next = None;
        self.played = None;
        self.empty_ticks = 0;
        for s in self.slots.iter_mut() {
            s.ts = None;
        }
    }

    /// Whether the source is currently playing (not buffering or idle).
    pub fn is_playing(&self) -> bool {
        self.next.is_some()
    }

    /// Advances one tick and says what the source plays.
    pub fn pop(&mut self) -> Playout<'_> {
        let next = match self.next {
            Some(n) => n,
            None => {
                let mut held = self.slots.iter().filter_map(|s| s.ts);
                let Some(first) = held.next() else {
                    return Playout::Idle;
                };
                let (min, count) = held.fold((first, 1u32), |(m, c), t| (m.min(t), c + 1));
                if count < self.depth {
                    return Playout::Idle;
                }
                min
            }
        };
        self.next = Some(next + FRAME as u64);
        let i = Self::index(next);
        if self.slots[i].ts == Some(next) {
            self.slots[i].ts = None;
            self.played = Some(next);
            self.empty_ticks = 0;
            let slot = &self.slots[i];
            return Playout::Packet(&slot.buf[..slot.len]);
        }
        // Drop anything older than the playout point that is still held (stale after a reset).
        self.empty_ticks += 1;
        if self.empty_ticks >= IDLE_AFTER && self.slots.iter().all(|s| s.ts.is_none()) {
            self.reset();
            return Playout::Idle;
        }
        Playout::Lost
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    const F: u64 = FRAME as u64;

    #[test]
    fn reorders_and_conceals() {
        let mut j = Jitter::new(2);
        assert_eq!(j.pop(), Playout::Idle);
        j.push(1000 + F, &[2]).unwrap();
        assert_eq!(j.pop(), Playout::Idle, "buffers until depth is reached");
        j.push(1000, &[1]).unwrap();
        assert_eq!(j.pop(), Playout::Packet(&[1]));
        assert_eq!(j.pop(), Playout::Packet(&[2]));
        j.push(1000 + 3 * F, &[4]).unwrap();
        assert_eq!(j.pop(), Playout::Lost, "frame 3 is missing");
        assert_eq!(j.pop(), Playout::Packet(&[4]));
        assert_eq!(j.push(1000 + 2 * F, &[3]), Err(JitterError::Late), "frame 4 was already played after it");
        assert_eq!(j.push(1000, &[0]), Err(JitterError::Late), "too late to stretch for");
    }

    #[test]
    fn stretches_for_a_packet_that_just_missed() {
        let mut j = Jitter::new(1);
        j.push(0, &[1]).unwrap();
        assert_eq!(j.pop(), Playout::Packet(&[1]));
        assert_eq!(j.pop(), Playout::Lost, "frame 1 is late");
        j.push(F, &[2]).unwrap();
        j.push(2 * F, &[3]).unwrap();
        assert_eq!(j.pop(), Playout::Packet(&[2]), "played one frame later than planned");
        assert_eq!(j.pop(), Playout::Packet(&[3]));
        assert_eq!(j.stretched, 1);
    }

    #[test]
    fn goes_idle_after_100ms_of_nothing_and_resyncs() {
        let mut j = Jitter::new(1);
        j.push(0, &[1]).unwrap();
        assert_eq!(j.pop(), Playout::Packet(&[1]));
        for _ in 0..IDLE_AFTER - 1 {
            assert_eq!(j.pop(), Playout::Lost);
        }
        assert_eq!(j.pop(), Playout::Idle);
        j.push(500 * F, &[9]).unwrap();
        assert_eq!(j.pop(), Playout::Packet(&[9]));
    }

    #[test]
    fn rejects_bad_payloads() {
        let mut j = Jitter::new(1);
        assert_eq!(j.push(0, &[]), Err(JitterError::Empty));
        assert_eq!(j.push(0, &[0; 2000]), Err(JitterError::TooLarge(2000)));
    }
}
