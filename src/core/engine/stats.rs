//! The engine's counters and gauges, in one table: `/metrics` and `/health` are both read from it.
//!
//! Adding a counter is a variant of [`Counter`] and its row in [`COUNTERS`]; summing over
//! engines, the Prometheus exposition and `/health` follow from the table.

/// Everything the engine counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    DatagramsIn,
    BytesIn,
    DatagramsOut,
    BytesOut,
    Ticks,
    TicksSkipped,
    FramesConcealed,
    DecodeErrors,
    DatagramsUnparsed,
    DatagramsUnrouted,
    DatagramsRejected,
    MediaRejected,
    TapPackets,
    TapRejected,
    TapSenders,
}

/// How a counter is shown: `tolk_<name>` in `/metrics`, `<name>` in `/health`.
pub struct CounterInfo {
    pub counter: Counter,
    pub name: &'static str,
    pub help: &'static str,
    /// Input refused or time lost: listed under `dropped` in `/health`.
    pub dropped: bool,
}

const fn row(counter: Counter, name: &'static str, help: &'static str, dropped: bool) -> CounterInfo {
    CounterInfo { counter, name, help, dropped }
}

/// Every counter, in the order of [`Counter`] (a test checks it).
pub const COUNTERS: [CounterInfo; 15] = [
    row(Counter::DatagramsIn, "datagrams_in", "UDP datagrams received on the media socket", false),
    row(Counter::BytesIn, "bytes_in", "Bytes received on the media socket", false),
    row(Counter::DatagramsOut, "datagrams_out", "UDP datagrams sent", false),
    row(Counter::BytesOut, "bytes_out", "Bytes sent", false),
    row(Counter::Ticks, "ticks", "20 ms media ticks run", false),
    row(Counter::TicksSkipped, "ticks_skipped", "Ticks skipped because the media thread fell behind", true),
    row(
        Counter::FramesConcealed,
        "frames_concealed",
        "Incoming audio frames concealed (lost or late)",
        false,
    ),
    row(
        Counter::DecodeErrors,
        "decode_errors",
        "Incoming payloads that failed to decode (not 20 ms Opus)",
        true,
    ),
    row(
        Counter::DatagramsUnparsed,
        "datagrams_unparsed",
        "Datagrams that were not STUN, DTLS, RTP or RTCP",
        true,
    ),
    row(Counter::DatagramsUnrouted, "datagrams_unrouted", "Datagrams no peer accepted", true),
    row(Counter::DatagramsRejected, "datagrams_rejected", "Datagrams a peer's WebRTC stack rejected", true),
    row(
        Counter::MediaRejected,
        "media_rejected",
        "Media frames refused (too late to wait for, duplicate, bad size)",
        true,
    ),
    row(Counter::TapPackets, "tap_packets", "Packets accepted from the plain RTP tap", false),
    row(Counter::TapRejected, "tap_rejected", "Packets dropped at the plain RTP tap", true),
    row(
        Counter::TapSenders,
        "tap_sender_changes",
        "Times the plain RTP tap locked onto a sender (the first, or a new one after a pause)",
        false,
    ),
];

/// Counts, one per [`Counter`].
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Stats([u64; COUNTERS.len()]);

impl Stats {
    pub fn add(&mut self, c: Counter, n: u64) {
        self.0[c as usize] += n;
    }

    pub fn get(&self, c: Counter) -> u64 {
        self.0[c as usize]
    }
}

impl std::ops::Add for Stats {
    type Output = Stats;

    /// Totals over several engines.
    fn add(mut self, o: Stats) -> Stats {
        for (a, b) in self.0.iter_mut().zip(o.0) {
            *a += b;
        }
        self
    }
}

/// What `/metrics` and `/health` show, taken from the engine in one go.
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
    /// (room, sessions in it), every room.
    pub occupancy: Vec<(String, usize)>,
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
            a.occupancy.extend(b.occupancy);
            a
        })
    }

    /// The gauges: (name, help, value).
    pub fn gauges(&self) -> [(&'static str, &'static str, u64); 4] {
        [
            ("rooms", "Rooms", self.rooms as u64),
            ("peers", "Signalling sessions and WHIP/WHEP resources", self.peers as u64),
            ("peers_with_media", "Peers with a WebRTC connection", self.peers_with_media as u64),
            (
                "listeners_settled",
                "Listeners past setup, served without a WebRTC session of their own",
                self.listeners_settled as u64,
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_follows_the_enum() {
        for (i, row) in COUNTERS.iter().enumerate() {
            assert_eq!(row.counter as usize, i, "{} is out of place", row.name);
        }
    }

    #[test]
    fn engines_sum() {
        let mut a = Stats::default();
        a.add(Counter::TicksSkipped, 2);
        let mut b = Stats::default();
        b.add(Counter::TicksSkipped, 3);
        b.add(Counter::BytesIn, 7);
        let s = a + b;
        assert_eq!((s.get(Counter::TicksSkipped), s.get(Counter::BytesIn)), (5, 7));
    }
}
