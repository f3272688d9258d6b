//! Tests on the simulation harness: the engine and in-memory WebRTC clients on a simulated
//! clock and a seeded, faulty network. They run in milliseconds to seconds of wall time and
//! judge everything in media time (the room's RTP clock, 48 per ms).
//! Floor 440 Hz; booth partners 880 and 990 Hz; other channels 1320 and 660 Hz.

mod harness;

mod booth;
mod cluster;
mod engine;
mod media;
mod network;
mod playout;
mod record;

use harness::{tone_db, Client, Heard};
use tolk::protocol::{Error, ErrorCode, ServerMsg};

/// RTP units per ms (48 kHz).
pub const MS: u64 = 48;

/// Level of `hz` in what `c` heard with media time in `[from, from + ms)`.
pub fn level(c: &Client, from: u64, ms: u64, hz: f32) -> f32 {
    tone_db(&window(c, from, from + ms * MS), hz)
}

/// The audio `c` heard with media time in `[from, to)`.
pub fn window(c: &Client, from: u64, to: u64) -> Vec<f32> {
    c.heard.iter().filter(|h| h.rtp >= from && h.rtp < to).flat_map(|h| h.pcm.iter().copied()).collect()
}

/// The media time of the last frame `c` heard.
pub fn now_rtp(c: &Client) -> u64 {
    c.heard.last().expect("the client hears something").rtp
}

/// The first frame at or after media time `from` for which `pred` holds, in ms after `from`.
pub fn first_from(c: &Client, from: u64, pred: impl Fn(&Heard) -> bool) -> Option<u64> {
    c.heard.iter().filter(|h| h.rtp >= from).find(|h| pred(h)).map(|h| (h.rtp - from) / MS)
}

pub fn code(r: Result<Option<ServerMsg>, Error>) -> ErrorCode {
    match r {
        Err(e) => e.code,
        Ok(m) => panic!("expected a refusal, got {m:?}"),
    }
}

/// The last booth message `c` got.
pub fn last_booth(c: &Client) -> &ServerMsg {
    c.inbox.iter().rev().find(|m| matches!(m, ServerMsg::Booth { .. })).expect("a booth message")
}

pub fn is_live(c: &Client) -> bool {
    matches!(last_booth(c), ServerMsg::Booth { live: true, .. })
}
