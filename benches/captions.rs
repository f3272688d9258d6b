//! Captions benchmark: espeak-ng speech fed in real time through the recogniser thread, as the
//! media engine feeds it (a minute of English with tiny.en, 16 s of Spanish with base). Reports WER, partial and final latency (media time from the words to
//! the caption), and CPU per captioned stream.
//!
//! Run: `cargo bench --bench captions` (needs espeak-ng, sox and models/get.sh tiny.en + base);
//! `cargo bench --bench captions -- busy 2` runs two busy loops (processes) beside it, as on a
//! loaded server: the recogniser then drops what it cannot take in time and stays live.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tolk::asr::utterances::wer;
use tolk::asr::{Asr, Chunk};

const UTTERANCES: &[(&str, &str, &str)] = &[
    ("en", "en", "Good morning everyone. The meeting starts now, and the interpreters are ready."),
    ("en", "en", "Please choose your language from the list before the first speaker begins."),
    ("en", "en", "We will take questions from the floor after the presentation."),
    ("en", "en", "Thank you for joining us today, and welcome to the annual assembly."),
    ("es", "es", "Buenos días a todos. La reunión empieza ahora y los intérpretes están listos."),
    ("es", "es", "Por favor, elijan su idioma antes de que empiece el primer orador."),
];

/// CPU seconds this process has used.
fn cpu_seconds() -> f64 {
    tolk::io::metrics::usage("self").expect("/proc is readable").0
}

fn percentile(v: &mut [u64], p: f64) -> u64 {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// `n` processes that spin until dropped.
struct Busy(Vec<std::process::Child>);

impl Drop for Busy {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn busy(n: usize) -> Busy {
    Busy(
        (0..n)
            .map(|_| {
                std::process::Command::new("sh").args(["-c", "while :; do :; done"]).spawn().expect("sh runs")
            })
            .collect(),
    )
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let loops =
        args.iter().position(|a| a == "busy").and_then(|i| args.get(i + 1)?.parse().ok()).unwrap_or(0);
    let _busy = busy(loops);
    if loops > 0 {
        println!("with {loops} busy loops beside the recogniser");
    }
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    let threads = tolk::asr::threads();
    let asr = Asr::start(models, None, threads, 1)
        .expect("models present (models/get.sh tiny.en; models/get.sh base)")
        .remove(0);
    let room: Arc<str> = Arc::from("bench");
    for lang in ["en", "es"] {
        let mut utterances: Vec<&(&str, &str, &str)> = UTTERANCES.iter().filter(|u| u.0 == lang).collect();
        if lang == "en" {
            // A minute of English speech: the sentences twice over.
            utterances = utterances.repeat(2);
        }
        let mut audio = Vec::new();
        for (_, voice, text) in &utterances {
            audio.extend(common::speech(text, voice, 16_000));
            audio.extend(std::iter::repeat_n(0.0, 24_000)); // 1.5 s between sentences
        }
        audio.extend(std::iter::repeat_n(0.0, 48_000));
        let said: String = utterances.iter().map(|u| u.2).collect::<Vec<_>>().join(" ");
        let (mut finals, mut partial_lat, mut final_lat) = (String::new(), Vec::new(), Vec::new());
        let cpu0 = cpu_seconds();
        let t0 = Instant::now();
        for (i, chunk) in audio.chunks_exact(320).enumerate() {
            let ms = i as u64 * 20;
            let mut pcm = Box::new([0f32; 320]);
            pcm.copy_from_slice(chunk);
            asr.offer(Chunk {
                engine: 0,
                room: room.clone(),
                source: Some(lang.into()),
                lang: Some(lang.into()),
                ms,
                pcm,
                at: Instant::now(),
            });
            while let Some(c) = asr.poll_caption() {
                // The caption goes out now: the media time of the audio just fed.
                let lat = ms.saturating_sub(c.end_ms);
                if c.is_final {
                    finals.push_str(&c.text);
                    finals.push(' ');
                    final_lat.push(lat);
                } else {
                    partial_lat.push(lat);
                }
            }
            // Real time: the recogniser sees audio as fast as a room makes it.
            let due = t0 + Duration::from_millis(ms + 20);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
        let secs = audio.len() as f64 / 16_000.0;
        let cpu = cpu_seconds() - cpu0;
        println!(
            "captions {lang} ({} model, {threads} threads), {secs:.1} s of audio, {} utterances:",
            if lang == "en" { "tiny.en" } else { "base" },
            utterances.len()
        );
        println!("  WER {:.1}%", wer(&said, &finals) * 100.0);
        println!(
            "  partial latency p50 {} ms, p95 {} ms, max {} ms ({} partials)",
            percentile(&mut partial_lat, 0.5),
            percentile(&mut partial_lat, 0.95),
            percentile(&mut partial_lat, 1.0),
            partial_lat.len()
        );
        println!(
            "  final latency p50 {} ms, p95 {} ms, max {} ms ({} finals)",
            percentile(&mut final_lat, 0.5),
            percentile(&mut final_lat, 0.95),
            percentile(&mut final_lat, 1.0),
            final_lat.len()
        );
        println!("  CPU {:.2} s per second of captioned stream (real-time factor {:.2}); chunks skipped so far: {}", cpu / secs, cpu / secs, asr.skipped.load(std::sync::atomic::Ordering::Relaxed));
        println!("  heard: {finals}");
    }
}
