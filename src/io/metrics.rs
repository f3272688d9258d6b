//! Prometheus metrics at `/metrics`: the engine's counters and gauges, tick timing, the process's CPU and memory (and handing freed memory back).

use crate::core::engine::Snapshot;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// How long each 20 ms tick (mix, encode, fan-out of an engine's rooms) takes, observed by the media threads.
pub fn tick_histogram() -> Histogram {
    // 50 us to 100 ms: a healthy tick is well under 1 ms; anything near 20 ms means trouble.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 12))
}

fn counter(r: &mut Registry, name: &str, help: &str, value: u64) {
    let c: Counter<u64> = Counter::default();
    c.inc_by(value);
    r.register(name, help, c);
}

fn gauge(r: &mut Registry, name: &str, help: &str, value: i64) {
    let g: Gauge<i64> = Gauge::default();
    g.set(value);
    r.register(name, help, g);
}

/// CPU seconds (user + system) and resident bytes of `/proc/<what>`: "self", a pid, "thread-self" (Linux).
pub fn usage(what: &str) -> Option<(f64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{what}/stat")).ok()?;
    let f: Vec<&str> = stat.rsplit(')').next()?.split_whitespace().collect();
    // utime and stime, in clock ticks of 1/100 s on Linux.
    let cpu = (f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?) / 100.0;
    let status = std::fs::read_to_string(format!("/proc/{what}/status")).ok()?;
    let rss_kb: u64 =
        status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some((cpu, rss_kb * 1024))
}

/// The text exposition of everything.
pub fn render(engines: Vec<Snapshot>, tick: &Histogram, asr_skipped: u64) -> String {
    let count = engines.len();
    let s = &Snapshot::merge(engines);
    let mut r = Registry::default();
    gauge(&mut r, "tolk_engines", "Media engines (threads with a UDP socket each)", count as i64);
    gauge(&mut r, "tolk_rooms", "Rooms", s.rooms as i64);
    gauge(&mut r, "tolk_peers", "Signalling sessions and WHIP/WHEP resources", s.peers as i64);
    gauge(&mut r, "tolk_peers_with_media", "Peers with a WebRTC connection", s.peers_with_media as i64);
    gauge(
        &mut r,
        "tolk_listeners_settled",
        "Listeners past setup, served without a WebRTC session of their own",
        s.listeners_settled as i64,
    );
    let listeners = Family::<Vec<(String, String)>, Gauge<i64>>::default();
    for (room, stream, n) in &s.listeners {
        listeners
            .get_or_create(&vec![("room".into(), room.clone()), ("stream".into(), stream.clone())])
            .set(*n as i64);
    }
    r.register("tolk_listeners", "Listeners by room and stream (floor or channel)", listeners);
    let st = &s.stats;
    counter(&mut r, "tolk_datagrams_in", "UDP datagrams received on the media socket", st.datagrams_in);
    counter(&mut r, "tolk_bytes_in", "Bytes received on the media socket", st.bytes_in);
    counter(&mut r, "tolk_datagrams_out", "UDP datagrams sent", st.datagrams_out);
    counter(&mut r, "tolk_bytes_out", "Bytes sent", st.bytes_out);
    counter(&mut r, "tolk_ticks", "20 ms media ticks run", st.ticks);
    counter(
        &mut r,
        "tolk_ticks_skipped",
        "Ticks skipped because the media thread fell behind",
        st.ticks_skipped,
    );
    counter(&mut r, "tolk_frames_concealed", "Incoming audio frames concealed (lost or late)", s.concealed);
    counter(
        &mut r,
        "tolk_decode_errors",
        "Incoming payloads that failed to decode (not 20 ms Opus)",
        s.decode_errors,
    );
    counter(
        &mut r,
        "tolk_datagrams_unparsed",
        "Datagrams that were not STUN, DTLS, RTP or RTCP",
        st.datagrams_unparsed,
    );
    counter(&mut r, "tolk_datagrams_unrouted", "Datagrams no peer accepted", st.datagrams_unrouted);
    counter(
        &mut r,
        "tolk_datagrams_rejected",
        "Datagrams a peer's WebRTC stack rejected",
        st.datagrams_rejected,
    );
    counter(
        &mut r,
        "tolk_media_rejected",
        "Media frames refused (too late to stretch for, bad size)",
        st.media_rejected,
    );
    counter(&mut r, "tolk_tap_packets", "Packets accepted from the plain RTP tap", st.tap_packets);
    counter(&mut r, "tolk_tap_rejected", "Packets dropped at the plain RTP tap", st.tap_rejected);
    counter(
        &mut r,
        "tolk_asr_skipped_chunks",
        "20 ms chunks the speech recogniser had no time for",
        asr_skipped,
    );
    r.register(
        "tolk_tick_duration_seconds",
        "Time to run one tick of every room and send its packets",
        tick.clone(),
    );
    if let Some((cpu, rss)) = usage("self") {
        let c: Counter<f64> = Counter::default();
        c.inc_by(cpu);
        r.register("process_cpu_seconds", "User and system CPU time of the process", c);
        gauge(&mut r, "process_resident_memory_bytes", "Resident memory of the process", rss as i64);
    }
    let mut out = String::new();
    encode(&mut out, &r).expect("writing to a String cannot fail");
    out
}

/// Hands memory the allocator holds free back to the system. A listener's WebRTC session
/// (about 50 KiB) is freed when it settles, in the middle of the heap where glibc's malloc
/// never returns it on its own: after a join storm the process would keep its peak size.
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}
