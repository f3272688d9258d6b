//! Per-source jitter buffer: takes RTP payloads in any order as they arrive and plays out one per 20 ms tick by media time, with a delay that follows the network.
//!
//! It does not decode; it says for each tick whether a payload is there, lost (conceal it,
//! with the next payload for in-band FEC when it is already here), or whether the source is
//! idle (play nothing). The target delay grows at once when a packet comes too late and
//! shrinks slowly when the network calms down; when more is held than the target (after a
//! stall's burst, or a late packet), a frame is skipped every 200 ms, lost ones first, so a
//! stall costs its length once and the delay comes back to the target within seconds.

use super::codec::{FRAME, MAX_PAYLOAD};
use thiserror::Error;

/// Frames the buffer can hold: 640 ms, a stall's burst and then some.
const SLOTS: usize = 32;
const F: u64 = FRAME as u64;
/// How late a packet may be and still be played, by delaying playout that much (80 ms):
/// later than that, its slot was concealed long ago and it is dropped.
const MAX_STRETCH: u64 = 4 * F;
/// Most target delay, in frames (160 ms): beyond it an interpreter falls too far behind.
const MAX_TARGET: u32 = 8;
/// Consecutive empty ticks after which a source counts as stopped (100 ms):
/// concealment beyond that would invent sound, so we go quiet and re-buffer.
const IDLE_AFTER: u32 = 5;
/// Ticks the buffer must hold more than its target before a frame is skipped, and
/// between skips (200 ms): ten extra frames drain in two seconds, without a stutter.
const SHRINK_EVERY: u32 = 10;
/// Ticks without a late packet after which the target delay comes down a frame (5 s).
const CALM_TICKS: u32 = 250;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum JitterError {
    #[error("payload of {0} bytes exceeds the Opus maximum of {MAX_PAYLOAD}")]
    TooLarge(usize),
    #[error("packet arrived after its playout time")]
    Late,
    #[error("empty payload")]
    Empty,
    #[error("packet already held")]
    Duplicate,
}

/// What a source plays at one tick.
#[derive(Debug, PartialEq, Eq)]
pub enum Playout<'a> {
    Packet(&'a [u8]),
    /// This tick's packet is missing: conceal it; `next` is the following packet when it is
    /// already here (its in-band FEC, when the sender adds it, rebuilds this frame).
    Lost {
        next: Option<&'a [u8]>,
    },
    Idle,
}

struct Slot {
    ts: Option<u64>,
    len: usize,
    buf: [u8; MAX_PAYLOAD],
}

/// How the buffer has fared, for tests and metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct JitterStats {
    /// Times the buffer waited longer to take a late packet.
    pub stretched: u64,
    /// Frames skipped to bring the delay back to the target.
    pub skipped: u64,
    /// Packets that came after their slot was played (or too late to wait for).
    pub late: u64,
    /// Packets that came twice.
    pub duplicates: u64,
}

pub struct Jitter {
    slots: Box<[Slot]>,
    /// Media time (48 kHz) of the frame due at the next tick; `None` while buffering.
    next: Option<u64>,
    /// The least target delay, in frames.
    floor: u32,
    /// Frames to hold before playing: the buffer's target delay, in ticks.
    target: u32,
    empty_ticks: u32,
    /// Consecutive ticks with more held than the target.
    over_ticks: u32,
    /// Ticks since a packet came late.
    calm_ticks: u32,
    /// Media time of the last payload played (not concealed).
    played: Option<u64>,
    pub stats: JitterStats,
}

impl Jitter {
    /// `depth` is the least target delay in 20 ms frames (at least 1).
    pub fn new(depth: u32) -> Self {
        let slots = (0..SLOTS).map(|_| Slot { ts: None, len: 0, buf: [0; MAX_PAYLOAD] }).collect();
        let floor = depth.max(1);
        Jitter {
            slots,
            next: None,
            floor,
            target: floor,
            empty_ticks: 0,
            over_ticks: 0,
            calm_ticks: 0,
            played: None,
            stats: JitterStats::default(),
        }
    }

    fn index(ts: u64) -> usize {
        (ts / F) as usize % SLOTS
    }

    /// The target delay now, in frames.
    pub fn target(&self) -> u32 {
        self.target
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
                // Late: wait for it (the network has shown this much jitter) if its frame is
                // recent and nothing after it has been played yet; else it is no use any more.
                let replays_played = self.played.is_some_and(|p| p >= ts);
                if next - ts > MAX_STRETCH || replays_played {
                    self.stats.late += 1;
                    return Err(JitterError::Late);
                }
                self.stats.stretched += 1;
                self.next = Some(ts);
                self.target = (self.target + 1).min(MAX_TARGET);
                self.calm_ticks = 0;
            }
            if ts >= next + (SLOTS as u64 - 1) * F {
                // The sender jumped ahead (a new clock, or we fell far behind):
                // start over from this packet rather than play stale frames.
                self.reset();
            }
        }
        let slot = &mut self.slots[Self::index(ts)];
        if slot.ts == Some(ts) {
            self.stats.duplicates += 1;
            return Err(JitterError::Duplicate);
        }
        slot.ts = Some(ts);
        slot.len = payload.len();
        slot.buf[..payload.len()].copy_from_slice(payload);
        Ok(())
    }

    fn reset(&mut self) {
        self.next = None;
        self.played = None;
        self.empty_ticks = 0;
        self.over_ticks = 0;
        for s in self.slots.iter_mut() {
            s.ts = None;
        }
    }

    /// Whether the source is currently playing (not buffering or idle).
    pub fn is_playing(&self) -> bool {
        self.next.is_some()
    }

    fn held(&self, ts: u64) -> bool {
        self.slots[Self::index(ts)].ts == Some(ts)
    }

    /// Frames held from `from` on.
    fn level(&self, from: u64) -> u32 {
        self.slots.iter().filter(|s| s.ts.is_some_and(|t| t >= from)).count() as u32
    }

    /// Advances one tick and says what the source plays.
    pub fn pop(&mut self) -> Playout<'_> {
        let mut next = match self.next {
            Some(n) => n,
            None => {
                let held = self.slots.iter().filter_map(|s| s.ts);
                let (count, min, max) =
                    held.fold((0u32, u64::MAX, 0u64), |(c, lo, hi), t| (c + 1, lo.min(t), hi.max(t)));
                if count < self.target {
                    return Playout::Idle;
                }
                // Start the target's depth behind the newest frame: what a stall held back
                // beyond that is stale, and playing it would keep the delay for good.
                let start = min.max(max - (u64::from(self.target) - 1) * F);
                for s in self.slots.iter_mut() {
                    if s.ts.is_some_and(|t| t < start) {
                        s.ts = None;
                        self.stats.skipped += 1;
                    }
                }
                start
            }
        };
        self.calm_ticks += 1;
        if self.calm_ticks >= CALM_TICKS && self.target > self.floor {
            self.target -= 1;
            self.calm_ticks = 0;
        }
        // More held than the target: skip a frame now and then, a missing one at once.
        let level = self.level(next);
        if level > self.target + 1 {
            self.over_ticks += 1;
            if !self.held(next) || self.over_ticks >= SHRINK_EVERY {
                let i = Self::index(next);
                if self.slots[i].ts == Some(next) {
                    self.slots[i].ts = None;
                }
                next += F;
                self.over_ticks = 0;
                self.stats.skipped += 1;
            }
        } else {
            self.over_ticks = 0;
        }
        self.next = Some(next + F);
        let i = Self::index(next);
        if self.slots[i].ts == Some(next) {
            self.slots[i].ts = None;
            self.played = Some(next);
            self.empty_ticks = 0;
            let slot = &self.slots[i];
            return Playout::Packet(&slot.buf[..slot.len]);
        }
        self.empty_ticks += 1;
        if self.empty_ticks >= IDLE_AFTER && self.slots.iter().all(|s| s.ts.is_none()) {
            self.reset();
            return Playout::Idle;
        }
        let n = Self::index(next + F);
        let following = &self.slots[n];
        Playout::Lost { next: (following.ts == Some(next + F)).then(|| &following.buf[..following.len]) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(j.pop(), Playout::Lost { next: Some(&[4]) }, "frame 3 is missing; frame 4 may carry it");
        assert_eq!(j.pop(), Playout::Packet(&[4]));
        assert_eq!(j.push(1000 + 2 * F, &[3]), Err(JitterError::Late), "frame 4 was already played after it");
        assert_eq!(j.push(1000, &[0]), Err(JitterError::Late), "too late to stretch for");
    }

    #[test]
    fn stretches_for_a_packet_that_just_missed() {
        let mut j = Jitter::new(1);
        j.push(0, &[1]).unwrap();
        assert_eq!(j.pop(), Playout::Packet(&[1]));
        assert_eq!(j.pop(), Playout::Lost { next: None }, "frame 1 is late");
        j.push(F, &[2]).unwrap();
        j.push(2 * F, &[3]).unwrap();
        assert_eq!(j.pop(), Playout::Packet(&[2]), "played one frame later than planned");
        assert_eq!(j.pop(), Playout::Packet(&[3]));
        assert_eq!(j.stats.stretched, 1);
        assert_eq!(j.target(), 2, "the target delay grew by the frame it waited");
    }

    #[test]
    fn goes_idle_after_100ms_of_nothing_and_resyncs() {
        let mut j = Jitter::new(1);
        j.push(0, &[1]).unwrap();
        assert_eq!(j.pop(), Playout::Packet(&[1]));
        for _ in 0..IDLE_AFTER - 1 {
            assert_eq!(j.pop(), Playout::Lost { next: None });
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

    #[test]
    fn a_duplicate_is_refused_and_changes_nothing() {
        let mut j = Jitter::new(1);
        j.push(0, &[1]).unwrap();
        assert_eq!(j.push(0, &[1]), Err(JitterError::Duplicate));
        assert_eq!(j.pop(), Playout::Packet(&[1]));
        assert_eq!(j.push(0, &[1]), Err(JitterError::Late), "and after it played, it is late");
    }

    /// Feeds one frame per tick from `from` (media time in frames) for `n` ticks; returns what played.
    fn steady(j: &mut Jitter, from: u64, n: u64) -> Vec<Option<u8>> {
        (from..from + n)
            .map(|k| {
                j.push(k * F, &[k as u8]).unwrap();
                match j.pop() {
                    Playout::Packet(p) => Some(p[0]),
                    _ => None,
                }
            })
            .collect()
    }

    #[test]
    fn a_stall_costs_its_length_once_and_the_delay_comes_back() {
        let mut j = Jitter::new(2);
        steady(&mut j, 0, 50);
        // 200 ms stall: ten ticks with nothing, then the ten frames and the next at once.
        let mut idle = 0;
        for _ in 0..10 {
            if j.pop() == Playout::Idle {
                idle += 1;
            }
        }
        assert!(idle >= 5, "a stopped source goes quiet after 100 ms");
        for k in 50..61 {
            let _ = j.push(k * F, &[k as u8]);
        }
        let played = steady(&mut j, 61, 20);
        // Played from the target's depth behind the newest: the stale part of the burst is skipped.
        assert_eq!(played[0], Some(60), "{played:?}");
        assert!(played.iter().skip(1).all(|p| p.is_some()), "then every frame plays: {played:?}");
        assert_eq!(j.level(j.next.unwrap()), 1, "back at the target delay");
    }

    #[test]
    fn a_burst_while_playing_is_drained_a_frame_per_200ms() {
        let mut j = Jitter::new(2);
        steady(&mut j, 0, 20);
        // Eight frames arrive early at once (a sender's burst): the buffer holds more than its target.
        for k in 20..28 {
            j.push(k * F, &[k as u8]).unwrap();
        }
        let before = j.level(j.next.unwrap());
        let mut k = 28;
        let mut ticks = 0;
        while j.level(j.next.unwrap()) > j.target() + 1 {
            j.push(k * F, &[k as u8]).unwrap();
            k += 1;
            let _ = j.pop();
            ticks += 1;
            assert!(ticks < 200, "drained within 4 s");
        }
        println!("held {before} frames; back to the target after {ticks} ticks");
        assert!(ticks <= (before as usize) * SHRINK_EVERY as usize, "{ticks} ticks");
        assert_eq!(
            j.stats.skipped,
            u64::from(before - j.target() - 1),
            "one frame skipped per extra frame held"
        );
    }

    #[test]
    fn a_missing_frame_is_skipped_rather_than_concealed_when_the_buffer_is_ahead() {
        let mut j = Jitter::new(1);
        steady(&mut j, 0, 5);
        // Frame 5 is lost; 6, 7, 8 came early: no need to conceal 5.
        for k in 6..9 {
            j.push(k * F, &[k as u8]).unwrap();
        }
        assert_eq!(j.pop(), Playout::Packet(&[6]));
        assert_eq!(j.stats.skipped, 1);
    }

    #[test]
    fn the_target_comes_down_when_the_network_calms() {
        let mut j = Jitter::new(1);
        steady(&mut j, 0, 2);
        assert!(matches!(j.pop(), Playout::Lost { .. }), "frame 2 is late");
        j.push(2 * F, &[2]).unwrap();
        assert_eq!(j.target(), 2);
        let _ = j.pop();
        steady(&mut j, 4, CALM_TICKS as u64 + 5);
        assert_eq!(j.target(), 1, "back to the least delay after 5 s of calm");
    }
}
