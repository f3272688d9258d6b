//! Prometheus metrics at `/metrics`: one collector reads the engines' snapshot (counters from the one table in [`crate::core::engine::stats`]), tick timing, the process's CPU and memory.

use super::sys;
use crate::core::engine::stats::COUNTERS;
use crate::core::engine::Snapshot;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::sync::{Arc, Mutex};

/// How long each 20 ms tick (mix, encode, fan-out of an engine's rooms) takes, observed by the media threads.
pub fn tick_histogram() -> Histogram {
    // 50 us to 100 ms: a healthy tick is well under 1 ms; anything near 20 ms means trouble.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 12))
}

/// CPU seconds (user + system) and resident bytes of `/proc/<what>`: "self", a pid, "thread-self" (Linux).
pub fn usage(what: &str) -> Option<(f64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{what}/stat")).ok()?;
    let f: Vec<&str> = stat.rsplit(')').next()?.split_whitespace().collect();
    // utime and stime, in clock ticks.
    let cpu = (f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?) / sys::clock_ticks();
    let status = std::fs::read_to_string(format!("/proc/{what}/status")).ok()?;
    let rss_kb: u64 =
        status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some((cpu, rss_kb * 1024))
}

/// The last readings from the engines, set just before each scrape is encoded.
#[derive(Debug, Default)]
struct Latest {
    engines: usize,
    snapshot: Snapshot,
    asr_skipped: u64,
    /// Bytes the recordings take, and bytes free on their disk.
    recordings: (u64, u64),
}

/// `/metrics`: a registry made once, with the tick histogram and a collector of the engines' readings.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    latest: Arc<Mutex<Latest>>,
}

impl Metrics {
    pub fn new(tick: Histogram, restarts: Counter) -> Metrics {
        let latest = Arc::new(Mutex::new(Latest::default()));
        let mut registry = Registry::default();
        registry.register(
            "tolk_tick_duration_seconds",
            "Time to run one tick of every room and send its packets",
            tick,
        );
        registry.register(
            "tolk_engine_restarts",
            "Media engines restarted after a panic (their rooms restored from the database)",
            restarts,
        );
        registry.register_collector(Box::new(Engines(latest.clone())));
        Metrics { registry, latest }
    }

    /// The text exposition, with these readings of every engine.
    pub fn render(&self, engines: Vec<Snapshot>, asr_skipped: u64, recordings: (u64, u64)) -> String {
        let mut latest = self.latest.lock().expect("no panic while encoding metrics");
        *latest =
            Latest { engines: engines.len(), snapshot: Snapshot::merge(engines), asr_skipped, recordings };
        drop(latest);
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

#[derive(Debug)]
struct Engines(Arc<Mutex<Latest>>);

fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, value: i64) -> Result<(), std::fmt::Error> {
    let g = ConstGauge::new(value);
    g.encode(e.encode_descriptor(name, help, None, g.metric_type())?)
}

fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> Result<(), std::fmt::Error> {
    let c = ConstCounter::new(value);
    c.encode(e.encode_descriptor(name, help, None, c.metric_type())?)
}

impl Collector for Engines {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let latest = self.0.lock().expect("no panic while encoding metrics");
        let s = &latest.snapshot;
        gauge(
            &mut e,
            "tolk_engines",
            "Media engines (threads with a UDP socket each)",
            latest.engines as i64,
        )?;
        for (name, help, value) in s.gauges() {
            gauge(&mut e, &format!("tolk_{name}"), help, value as i64)?;
        }
        let mut family = e.encode_descriptor(
            "tolk_listeners",
            "Listeners by room and stream (floor or channel)",
            None,
            MetricType::Gauge,
        )?;
        for (room, stream, n) in &s.listeners {
            let labels = [("room", room.as_str()), ("stream", stream.as_str())];
            ConstGauge::new(*n as i64).encode(family.encode_family(&labels)?)?;
        }
        for row in &COUNTERS {
            counter(&mut e, &format!("tolk_{}", row.name), row.help, s.stats.get(row.counter))?;
        }
        counter(
            &mut e,
            "tolk_asr_skipped_chunks",
            "20 ms chunks the speech recogniser had no time for",
            latest.asr_skipped,
        )?;
        gauge(
            &mut e,
            "tolk_recordings_bytes",
            "Bytes the recordings take on disk",
            latest.recordings.0 as i64,
        )?;
        gauge(
            &mut e,
            "tolk_recordings_free_bytes",
            "Bytes free on the recordings' disk (below 1 MiB a recording is refused)",
            latest.recordings.1 as i64,
        )?;
        if let Some((cpu, rss)) = usage("self") {
            let c = ConstCounter::new(cpu);
            c.encode(e.encode_descriptor(
                "process_cpu_seconds",
                "User and system CPU time of the process",
                None,
                c.metric_type(),
            )?)?;
            gauge(&mut e, "process_resident_memory_bytes", "Resident memory of the process", rss as i64)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::engine::{Counter, Stats};

    #[test]
    fn every_counter_and_gauge_is_exposed_and_engines_are_summed() {
        let m = Metrics::new(tick_histogram(), prometheus_client::metrics::counter::Counter::default());
        let one = |n| {
            let mut stats = Stats::default();
            stats.add(Counter::DatagramsUnrouted, n);
            Snapshot { stats, rooms: 1, listeners: vec![("r".into(), "es".into(), 3)], ..Default::default() }
        };
        let text = m.render(vec![one(2), one(5)], 4, (1000, 2000));
        for row in &COUNTERS {
            assert!(text.contains(&format!("tolk_{}_total ", row.name)), "{} missing:\n{text}", row.name);
        }
        assert!(text.contains("tolk_datagrams_unrouted_total 7"), "{text}");
        assert!(text.contains("tolk_rooms 2"), "{text}");
        assert!(text.contains("tolk_engines 2"), "{text}");
        assert!(text.contains("tolk_asr_skipped_chunks_total 4"), "{text}");
        assert!(text.contains(r#"tolk_listeners{room="r",stream="es"} 3"#), "{text}");
        assert!(text.contains("tolk_tick_duration_seconds_bucket"), "{text}");
        assert!(text.contains("tolk_recordings_bytes 1000"), "{text}");
        let again = m.render(vec![one(1)], 0, (0, 0));
        assert!(
            again.contains("tolk_datagrams_unrouted_total 1"),
            "a scrape shows this scrape's readings: {again}"
        );
    }
}
