//! Captions: Whisper on espeak-ng speech, the recogniser alone and through the whole server.
//!
//! Tests named `accuracy_*` judge how well the words are recognised; the others judge that
//! captions are delivered to the right people, kept and shed. On a starved CPU the recogniser
//! sheds work by design, so runs beside other load may leave the accuracy tests out
//! (`./tolk.sh test -- --skip accuracy`).

mod common;

use common::*;
use std::path::Path;
use tolk::asr::utterances::{Utterances, CHUNK};
use tolk::asr::Recognizer;

/// Whisper takes both cores: these tests take turns, or each would starve the others.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn models() -> std::path::PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    assert!(dir.join("ggml-tiny.en.bin").exists(), "run models/get.sh tiny.en (./tolk.sh test does it)");
    dir
}

/// Runs the streaming logic over `pcm` (16 kHz) in 20 ms chunks with silence after; returns the finals.
fn stream_through(rec: &mut Recognizer, pcm: &[f32], lang: &str) -> (String, usize) {
    let mut s = Utterances::default();
    let mut finals = Vec::new();
    let mut partials = 0;
    let silence = vec![0f32; 16_000];
    for (i, c) in pcm.iter().chain(&silence).copied().collect::<Vec<_>>().chunks(CHUNK).enumerate() {
        if c.len() < CHUNK {
            break;
        }
        let work = s.push(i as u64 * 20, c);
        if work != tolk::asr::utterances::Work::Nothing {
            let words = rec.words(s.window(), Some(lang)).unwrap();
            for cap in s.hypothesis(words, work == tolk::asr::utterances::Work::Finish) {
                if cap.is_final {
                    finals.push(cap.text);
                } else {
                    partials += 1;
                }
            }
        }
    }
    (finals.join(" "), partials)
}

#[test]
fn accuracy_the_recogniser_transcribes_english_speech() {
    let _turn = ONE_AT_A_TIME.blocking_lock();
    let mut rec = Recognizer::load(&models(), 2).unwrap();
    let said =
        "The interpreters will now switch to the Spanish channel. Please choose your language from the list.";
    let (heard, partials) = stream_through(&mut rec, &speech(said, "en", 16_000), "en");
    let w = wer(said, &heard);
    println!("en: said {said:?}\n    heard {heard:?}\n    WER {:.0}%, {partials} partials", w * 100.0);
    assert!(w <= 0.15, "WER {w}");
    assert!(partials > 0, "partials while speaking");
}

#[test]
fn accuracy_the_recogniser_transcribes_spanish_with_the_multilingual_model() {
    let _turn = ONE_AT_A_TIME.blocking_lock();
    let dir = models();
    assert!(dir.join("ggml-base.bin").exists(), "run models/get.sh base (./tolk.sh test does it)");
    let mut rec = Recognizer::load(&dir, 2).unwrap();
    let said = "Buenos días a todos. La reunión empieza ahora y los intérpretes están listos.";
    let (heard, _) = stream_through(&mut rec, &speech(said, "es", 16_000), "es");
    let w = wer(said, &heard);
    println!("es: said {said:?}\n    heard {heard:?}\n    WER {:.0}%", w * 100.0);
    assert!(w <= 0.25, "es WER {w}");
}

#[test]
fn silence_and_noise_make_no_captions() {
    let _turn = ONE_AT_A_TIME.blocking_lock();
    let mut rec = Recognizer::load(&models(), 2).unwrap();
    // Ten seconds of silence, then of very quiet hiss.
    let mut pcm = vec![0f32; 160_000];
    let mut x: u32 = 1;
    pcm.extend((0..160_000).map(|_| {
        x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (x >> 8) as f32 / 16_777_216.0 * 0.002 - 0.001
    }));
    let (heard, partials) = stream_through(&mut rec, &pcm, "en");
    assert_eq!((heard.as_str(), partials), ("", 0));
}

use std::sync::Arc;
use std::time::Duration;
use tolk::protocol::{ClientMsg, Role, ServerMsg};

async fn caption_server(data: &Path) -> tolk::io::Running {
    let models = models();
    let data = data.to_path_buf();
    server_with(move |c| {
        c.captions = true;
        c.models_dir = models;
        c.data_dir = data;
    })
    .await
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("tolk-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

struct Heard {
    finals: String,
    partials: usize,
    partial_latency: Vec<u64>,
    final_latency: Vec<u64>,
}

fn heard(sig: &Signal) -> Heard {
    let mut h =
        Heard { finals: String::new(), partials: 0, partial_latency: Vec::new(), final_latency: Vec::new() };
    for m in &sig.seen {
        if let ServerMsg::Caption { text, is_final, end_ms, at_ms, .. } = m {
            if *is_final {
                h.finals.push_str(text);
                h.finals.push(' ');
                h.final_latency.push(at_ms.saturating_sub(*end_ms));
            } else {
                h.partials += 1;
                h.partial_latency.push(at_ms.saturating_sub(*end_ms));
            }
        }
    }
    h
}

fn max(v: &[u64]) -> u64 {
    v.iter().copied().max().unwrap_or(0)
}

/// Drains `sig` for `ms`, then on until a final caption has come (at most 120 s more: a
/// starved recogniser is late, and the test waits for it rather than judging its speed).
async fn drain_until_final(sig: &mut Signal, ms: u64) {
    sig.drain(ms).await;
    let until = std::time::Instant::now() + Duration::from_secs(120);
    while !sig.seen.iter().any(|m| matches!(m, ServerMsg::Caption { is_final: true, .. })) {
        assert!(std::time::Instant::now() < until, "no final caption within 120 s");
        sig.drain(500).await;
    }
}

const FLOOR_SAID: &str = "Good morning everyone. The meeting starts now, and the interpreters are ready. \
    Please choose your language from the list before the first speaker begins. \
    We will take questions from the floor after the presentation.";

/// English speech on the floor with captions on: the server, its data directory, a host, a listener and an interpreter.
async fn floor_speaks(name: &str) -> (tolk::io::Running, std::path::PathBuf, Signal, Signal, Signal) {
    let data = temp_dir(name);
    let s = caption_server(&data).await;
    let (mut host, mut listener, mut interpreter) =
        (Signal::connect(&s).await, Signal::connect(&s).await, Signal::connect(&s).await);
    host.join(&token(&s, Role::Host, None, "Hanna"), None).await;
    listener.join(&token(&s, Role::Listener, None, "Lena"), None).await;
    interpreter.join(&token(&s, Role::Interpreter, Some("es"), "Ana"), None).await;
    host.send(&ClientMsg::Captions { source: None, on: true }).await;
    let pcm = speech(FLOOR_SAID, "en", 48_000);
    let secs = pcm.len() as u64 / 48_000 + 4;
    let mut floor = Signal::connect(&s).await;
    floor.join(&token(&s, Role::Floor, None, "Floor"), None).await;
    let speaker = media_with(&mut floor, Some(Sound::Pcm(Arc::new(pcm))), false).await;
    drain_until_final(&mut listener, secs * 1000).await;
    drop(speaker);
    // Whatever the recogniser still had in hand arrives before the tests read it.
    listener.drain(1000).await;
    interpreter.drain(200).await;
    (s, data, host, listener, interpreter)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floor_captions_reach_listeners_and_interpreters_and_are_kept() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (s, data, _host, listener, interpreter) = floor_speaks("captions").await;
    let h = heard(&listener);
    println!("floor captions delivered: {:?}", h.finals);
    assert!(!h.finals.trim().is_empty(), "final captions reach the floor listener");
    assert!(
        listener.seen.iter().any(|m| matches!(m, ServerMsg::State { floor, .. } if floor.captions)),
        "everyone sees that captions are on"
    );
    assert_eq!(heard(&interpreter).finals, h.finals, "interpreters get the floor's captions");

    // The transcript has every final caption, as WebVTT and as text; the host can delete it.
    let key = Some("test-api-key");
    let (st, vtt) = http(&s, "GET", "/api/rooms/r/transcript?source=floor&format=vtt", key, None).await;
    assert_eq!(st, 200);
    assert!(vtt.starts_with("WEBVTT"), "{vtt}");
    let (_, txt) = http(&s, "GET", "/api/rooms/r/transcript?format=txt", key, None).await;
    for word in h.finals.split_whitespace() {
        assert!(txt.contains(word), "{word:?} is in the transcript: {txt}");
    }
    let (st, body) = http(&s, "DELETE", "/api/rooms/r/transcript", key, None).await;
    assert_eq!(st, 200, "{body}");
    let (_, txt) = http(&s, "GET", "/api/rooms/r/transcript", key, None).await;
    assert!(txt.trim().is_empty(), "deleted: {txt}");

    // The host's setting is kept: after a restart on the same data, the floor is still captioned.
    drop(s);
    let config = tolk::config::Config {
        http: "127.0.0.1:0".parse().unwrap(),
        udp: "127.0.0.1:0".parse().unwrap(),
        secret: Some("a test secret of enough length".into()),
        api_key: Some("test-api-key".into()),
        demo: false,
        models_dir: models(),
        data_dir: data.clone(),
        ..Default::default()
    };
    let s = tolk::io::start(config).await.expect("server starts again");
    let (st, body) = http(&s, "GET", "/api/rooms/r", key, None).await;
    assert_eq!(st, 200, "{body}");
    let room: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(room["floor"]["captions"], true, "captions are still on after the restart: {body}");
    let _ = std::fs::remove_dir_all(&data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accuracy_of_floor_captions_through_the_server() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (_s, data, _host, listener, _interpreter) = floor_speaks("captions-accuracy").await;
    let h = heard(&listener);
    let w = wer(FLOOR_SAID, &h.finals);
    println!(
        "floor captions: said {FLOOR_SAID:?}\n  heard {:?}\n  WER {:.0}%, {} partials, latency partial max {} ms, final max {} ms",
        h.finals,
        w * 100.0,
        h.partials,
        max(&h.partial_latency),
        max(&h.final_latency)
    );
    assert!(w <= 0.15, "WER {w}");
    assert!(h.partials > 0, "partials while speaking");
    let _ = std::fs::remove_dir_all(&data);
}

const ES_SAID: &str = "Buenos días a todos. La reunión empieza ahora y los intérpretes están listos.";

/// Spanish from the es interpreter over a silent floor, both captioned: an es listener and a floor listener.
async fn es_speaks(name: &str) -> (tolk::io::Running, std::path::PathBuf, Signal, Signal) {
    let data = temp_dir(name);
    let s = caption_server(&data).await;
    let mut host = Signal::connect(&s).await;
    host.join(&token(&s, Role::Host, None, "Hanna"), None).await;
    host.send(&ClientMsg::Captions { source: Some("es".into()), on: true }).await;
    host.send(&ClientMsg::Captions { source: None, on: true }).await;
    let mut listener = Signal::connect(&s).await;
    listener.join(&token(&s, Role::Listener, None, "Lena"), None).await;
    listener.select(Some("es")).await;
    let mut floor_listener = Signal::connect(&s).await;
    floor_listener.join(&token(&s, Role::Listener, None, "Otto"), None).await;

    // The floor is silent; the es interpreter speaks Spanish.
    let mut floor = Signal::connect(&s).await;
    floor.join(&token(&s, Role::Floor, None, "Floor"), None).await;
    let _silence = media_with(&mut floor, Some(Sound::Pcm(Arc::new(vec![0.0; 48_000 * 20]))), false).await;
    let pcm = speech(ES_SAID, "es", 48_000);
    let secs = pcm.len() as u64 / 48_000 + 5;
    let mut es = Signal::connect(&s).await;
    es.join(&token(&s, Role::Interpreter, Some("es"), "Ana"), None).await;
    let voice = media_with(&mut es, Some(Sound::Pcm(Arc::new(pcm))), true).await;
    drain_until_final(&mut listener, secs * 1000).await;
    drop(voice);
    listener.drain(1000).await;
    floor_listener.drain(100).await;
    (s, data, listener, floor_listener)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_is_captioned_in_its_own_language_and_silence_makes_none() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (_s, data, listener, floor_listener) = es_speaks("captions-es").await;
    println!("es captions delivered: {:?}", heard(&listener).finals);
    assert!(listener
        .seen
        .iter()
        .all(|m| !matches!(m, ServerMsg::Caption { lang, .. } if lang.as_deref() != Some("es"))));
    assert!(
        floor_listener.seen.iter().all(|m| !matches!(m, ServerMsg::Caption { .. })),
        "a silent floor makes no captions"
    );
    let _ = std::fs::remove_dir_all(&data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accuracy_of_a_channel_captioned_in_its_own_language() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (_s, data, listener, _) = es_speaks("captions-es-accuracy").await;
    let h = heard(&listener);
    let w = wer(ES_SAID, &h.finals);
    println!(
        "es captions: heard {:?}, WER {:.0}%, final latency max {} ms",
        h.finals,
        w * 100.0,
        max(&h.final_latency)
    );
    assert!(w <= 0.25, "WER {w}");
    let _ = std::fs::remove_dir_all(&data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_captions_survive_kill_9() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let data = temp_dir("captions-crash");
    let config = data.join("tolk.toml");
    std::fs::write(
        &config,
        format!(
            "http = \"127.0.0.1:0\"\nudp = \"127.0.0.1:0\"\nsecret = \"a test secret of enough length\"\napi_key = \"k\"\n\
             models_dir = {:?}\ndata_dir = {:?}\n",
            models(),
            data.join("data")
        ),
    )
    .unwrap();
    let start = || spawn_tolk(&config, None);
    let mint = |addr, role: &'static str| mint_demo(addr, role);

    let (mut child, addr) = start().await;
    let mut host = Signal::connect_to(addr).await;
    host.join(&mint(addr, "host").await, None).await;
    host.send(&ClientMsg::Captions { source: None, on: true }).await;
    let mut listener = Signal::connect_to(addr).await;
    listener.join(&mint(addr, "listener").await, None).await;
    let said = "Please choose your language from the list.";
    let mut floor = Signal::connect_to(addr).await;
    floor.join(&mint(addr, "floor").await, None).await;
    let _speaker =
        media_with(&mut floor, Some(Sound::Pcm(Arc::new(speech(said, "en", 48_000)))), false).await;
    drain_until_final(&mut listener, 0).await;
    child.kill().await.unwrap(); // SIGKILL: no shutdown, no flush
    let committed = heard(&listener).finals;

    let (_child, addr) = start().await;
    let (st, txt) = http_at(addr, "GET", "/api/rooms/demo/transcript?source=floor", Some("k"), "", "").await;
    assert_eq!(st, 200);
    println!("committed before kill -9: {committed:?}; transcript after restart: {txt:?}");
    for word in committed.split_whitespace() {
        assert!(txt.contains(word), "{word:?} lost: {txt:?}");
    }
    assert!(!committed.trim().is_empty());
    let _ = std::fs::remove_dir_all(&data);
}

/// Audio that waited longer than `MAX_BACKLOG` for the recogniser (it fell behind) is dropped
/// and counted, and the next fresh chunk brings the news of how much was skipped (for hosts).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_that_waited_too_long_is_dropped_and_announced() {
    use std::time::Instant;
    use tolk::asr::{Asr, Chunk, MAX_BACKLOG};
    let _turn = ONE_AT_A_TIME.lock().await;
    let asr = Asr::start(models(), None, 1, 1).expect("models present").remove(0);
    let room: Arc<str> = Arc::from("r");
    let chunk = |ms: u64, at: Instant| Chunk {
        engine: 0,
        room: room.clone(),
        source: Some("es".into()),
        lang: Some("es".into()),
        ms,
        pcm: Box::new([0.0; CHUNK]),
        at,
    };
    let stale = Instant::now()
        .checked_sub(MAX_BACKLOG + Duration::from_secs(1))
        .expect("the machine is up for a while");
    for i in 0..50 {
        asr.offer(chunk(i * 20, stale));
    }
    asr.offer(chunk(1000, Instant::now()));
    let t = Instant::now();
    let news = loop {
        if let Some(c) = asr.poll_caption() {
            break c;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "no news of the skipped audio");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(news.skipped_ms, 1000, "50 chunks of 20 ms: {news:?}");
    assert!(news.text.is_empty(), "{news:?}");
    assert_eq!(news.source.as_deref(), Some("es"));
    assert_eq!(asr.skipped.load(std::sync::atomic::Ordering::Relaxed), 50, "counted");
}
