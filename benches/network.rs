//! Audio over a faulty network: the real server, with publishers and listeners (str0m WebRTC
//! clients on one clock) behind a fault-injecting UDP proxy on loopback. Reports mouth-to-ear
//! latency with loss and jitter on the interpreter's uplink, the latency after a 200 ms stall,
//! PESQ-WB (ITU-T P.862.2, the `pesq` package from PyPI) of speech at listener-side loss with
//! and without RED, each channel's loudness (EBU R128) when interpreters speak at -30 and -6
//! dBFS peaks, and the largest true peak listeners decoded.
//!
//! Run: `cargo bench --bench network` inside a network namespace (`unshare -rn`, then
//! `ip link set lo up`); needs espeak-ng, sox, python3 with numpy and pesq
//! (`./tolk.sh bench network` does all of it). Loopback only; about 4 minutes.
//!
//! Mouth-to-ear is from the frame that starts a beep leaving the interpreter's client to the
//! first frame of it arriving at the listener's client (before the listener's own playout
//! buffer, which the browser adds).

#[path = "../tests/common/mod.rs"]
mod common;

use common::proxy::{Faults, Proxy};
use common::{media_opts, speech, tone_db, Frame, Media, Receiver, Signal, Sound, FRAME};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tolk::core::spec::{ChannelSpec, RoomSpec};
use tolk::io::Running;
use tolk::protocol::{ClientMsg, Role};

const BEEP_HZ: f32 = 1000.0;
/// A beep starts every this many frames (500 ms) and lasts 5 frames.
const BEEP_EVERY: u64 = 25;
/// Beeps in the first seconds are left out of the latency figures (the connection settles).
const WARM_UP: Duration = Duration::from_secs(2);
const SAID: &str = "The committee will now hear the report of the working group on water. \
    Delegates are asked to keep their remarks short, so that every region can speak before the break. \
    The chair thanks the interpreters for their patience this morning.";

/// Mouth-to-ear figures of one run, in ms.
struct Latency {
    p50: f64,
    p99: f64,
    heard: usize,
    sent: usize,
}

/// A channel's loudness and true peak as one listener decoded it.
struct Loudness {
    lufs: f64,
    true_peak_db: f64,
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(run());
}

async fn run() {
    let mut proxy = Proxy::bind();
    let candidate = proxy.addr;
    let s = common::server_with(|c| {
        // One engine, so the proxy forwards to the one media socket, which takes the proxy
        // (its advertised candidate) as where datagrams come to, as behind a NAT.
        c.engines = Some(1);
        c.udp = "0.0.0.0:0".parse().unwrap();
        c.candidates = vec![candidate];
    })
    .await;
    proxy.start(([127, 0, 0, 1], s.udp.port()).into(), 11);
    // True peaks of what listeners decoded: as tolk sent it, and with their own concealment.
    let (mut peaks, mut peaks_concealed): (Vec<f64>, Vec<f64>) = (Vec::new(), Vec::new());
    // `cargo bench --bench network -- pesq loudness` runs only those parts.
    let parts: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let wants = |part: &str| parts.is_empty() || parts.iter().any(|p| p == part);

    if wants("latency") {
        println!("## Mouth-to-ear, interpreter -> server -> listener (20 s each)\n");
        println!(
            "| interpreter's uplink | p50 | p99 | beeps heard | frames the server concealed | true peak |"
        );
        println!("|---|---|---|---|---|---|");
        let jitter = Duration::from_millis(30);
        for (i, (loss, jitter)) in
            [(0.0, Duration::ZERO), (0.0, jitter), (0.03, jitter), (0.10, jitter)].iter().enumerate()
        {
            let up = Faults { up_loss: *loss, up_jitter: *jitter, ..Faults::default() };
            let concealed = concealed_by_server(&s).await;
            let (frames, sent_at) = beeps_through(&s, &proxy, &format!("lat{i}"), up, 20, None).await;
            let concealed = concealed_by_server(&s).await - concealed;
            let l = latency(&frames, sent_at, WARM_UP, Duration::from_secs(20));
            let peak = loudness(&frames).true_peak_db;
            peaks.push(peak);
            println!(
                "| {:.0} % loss, {} ms jitter | {:.0} ms | {:.0} ms | {} of {} | {concealed} | {peak:.1} dBTP |",
                loss * 100.0,
                jitter.as_millis(),
                l.p50,
                l.p99,
                l.heard,
                l.sent
            );
        }
    }

    if wants("stall") {
        println!("\n## A 200 ms stall of the interpreter's uplink at 8 s (packets held, then a burst)\n");
        let stall = Duration::from_secs(8);
        let (frames, sent_at) = beeps_through(&s, &proxy, "stall", Faults::default(), 25, Some(stall)).await;
        let before = latency(&frames, sent_at, WARM_UP, stall);
        let held = delays(&frames, sent_at, stall, stall + Duration::from_millis(200));
        let after = latency(&frames, sent_at, stall + Duration::from_secs(1), Duration::from_secs(25));
        let back = back_after(&frames, sent_at, stall + Duration::from_millis(200), before.p50 + 10.0);
        println!("| before (p50) | the beep sent into the stall | from 1 s after (p50 / p99) | back within 10 ms of before |");
        println!("|---|---|---|---|");
        println!(
            "| {:.0} ms | {} | {:.0} / {:.0} ms | {} |",
            before.p50,
            held.first().map_or("not played (stale once the burst came)".to_string(), |(_, ms)| format!(
                "{ms:.0} ms"
            )),
            after.p50,
            after.p99,
            back.map_or("never".to_string(), |d| format!("{:.1} s after the stall", d.as_secs_f64()))
        );
    }

    if wants("pesq") {
        println!("\n## PESQ-WB of speech on a channel, loss between server and listener\n");
        println!("| listener-side loss | without RED | with RED | frames the listener concealed, without / with RED |");
        println!("|---|---|---|---|");
        for loss in [0.0, 0.05, 0.15] {
            let (plain, red, clean, concealed) = pesq_at(&s, &proxy, loss).await;
            peaks.push(clean.1);
            peaks_concealed.extend([plain.1, red.1]);
            let clean = if loss == 0.0 {
                String::new()
            } else {
                format!(" (a listener without loss: {:.2})", clean.0)
            };
            println!(
                "| {:.0} % | {:.2} | {:.2}{clean} | {} / {} |",
                loss * 100.0,
                plain.0,
                red.0,
                concealed.0,
                concealed.1,
            );
        }
    }

    if wants("loudness") {
        println!("\n## Loudness of each channel: floor at -6 dBFS peaks, es interpreter at -30, fr at -6\n");
        println!("| stream | loudness (last 20 s) | true peak |");
        println!("|---|---|---|");
        for (what, l) in loudness_of_channels(&s).await {
            peaks.push(l.true_peak_db);
            println!("| {what} | {:.1} LUFS | {:.1} dBTP |", l.lufs, l.true_peak_db);
        }
    }
    let top = |p: &[f64]| p.iter().copied().fold(f64::MIN, f64::max);
    println!("\nLargest true peak decoded by listeners without loss: {:.1} dBTP", top(&peaks));
    if !peaks_concealed.is_empty() {
        println!(
            "Largest by listeners behind loss, their own concealment included: {:.1} dBTP",
            top(&peaks_concealed)
        );
    }
}

/// A room with channel es and floor language en.
async fn room(s: &Running, id: &str, channels: &[&str]) {
    let channels = channels.iter().map(|l| ChannelSpec {
        lang: l.to_string(),
        name: l.to_uppercase(),
        duck: Default::default(),
    });
    let spec = RoomSpec { id: id.into(), floor_lang: Some("en".into()), channels: channels.collect() };
    s.app.create_room(spec).await.unwrap();
}

/// A signalling session joined to `room` with a fresh token.
async fn joined(s: &Running, room: &str, role: Role, channel: Option<&str>, name: &str) -> Signal {
    let mut sig = Signal::connect(s).await;
    let token = s.app.mint(room, role, channel.map(str::to_string), name, None).token;
    sig.join(&token, None).await;
    if role == Role::Listener {
        sig.ask(ClientMsg::Select { channel: channel.map(str::to_string), only: false, balance: None }).await;
    }
    sig
}

/// A listener on `channel` (None: the floor) that conceals what never came.
async fn listen(s: &Running, room: &str, channel: Option<&str>, red: bool) -> (Media, Signal) {
    let mut sig = joined(s, room, Role::Listener, channel, "listener").await;
    let media = media_opts(&mut sig, None, true, Receiver { red, conceal: true }).await;
    tokio::time::sleep(Duration::from_millis(300)).await; // connected
    (media, sig)
}

/// An es interpreter beeping for `secs` through `up` faults (and a 200 ms stall at `stall`,
/// from its first frame), heard by an es listener: what the listener got, and when the
/// interpreter's first frame went out.
async fn beeps_through(
    s: &Running,
    proxy: &Proxy,
    id: &str,
    up: Faults,
    secs: u64,
    stall: Option<Duration>,
) -> (Vec<Frame>, Instant) {
    room(s, id, &["es"]).await;
    let (listener, _l) = listen(s, id, Some("es"), false).await;
    let mut pcm = vec![0f32; secs as usize * 50 * FRAME];
    for (n, frame) in pcm.chunks_mut(FRAME).enumerate() {
        if n as u64 % BEEP_EVERY < 5 {
            for (i, x) in frame.iter_mut().enumerate() {
                *x = 0.3 * (std::f32::consts::TAU * BEEP_HZ * (n * FRAME + i) as f32 / 48_000.0).sin();
            }
        }
    }
    let mut sig = joined(s, id, Role::Interpreter, Some("es"), "Ana").await;
    let voice = media_opts(&mut sig, Some(Sound::Pcm(Arc::new(pcm))), false, Receiver::default()).await;
    let first = loop {
        if let Some(t) = *voice.first_sent.lock().unwrap() {
            break t;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let stall = stall.map(|at| (first + at, first + at + Duration::from_millis(200)));
    proxy.set(voice.local, Faults { up_stall: stall, ..up });
    tokio::time::sleep_until((first + Duration::from_secs(secs) + Duration::from_millis(500)).into()).await;
    (listener.frames(), first)
}

/// Delays of the beeps sent in [from, to) after `first`: from each beep's first frame
/// leaving to the first frame that carries it arriving.
fn delays(frames: &[Frame], first: Instant, from: Duration, to: Duration) -> Vec<(Duration, f64)> {
    let every = Duration::from_millis(20 * BEEP_EVERY);
    (0..)
        .map(|k| every * k)
        .skip_while(|t| *t < from)
        .take_while(|t| *t < to)
        .filter_map(|t| {
            let sent = first + t;
            frames
                .iter()
                .filter(|f| f.at >= sent && f.at < sent + every && !f.concealed)
                .find(|f| tone_db(&f.pcm, BEEP_HZ) > -30.0)
                .map(|f| (t, (f.at - sent).as_secs_f64() * 1000.0))
        })
        .collect()
}

fn latency(frames: &[Frame], first: Instant, from: Duration, to: Duration) -> Latency {
    let sent = ((to - from).as_millis() / (20 * BEEP_EVERY as u128)) as usize;
    let mut d: Vec<f64> = delays(frames, first, from, to).into_iter().map(|(_, d)| d).collect();
    d.sort_by(f64::total_cmp);
    let at = |p: f64| d.get(((d.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(f64::NAN);
    Latency { p50: at(0.5), p99: at(0.99), heard: d.len(), sent }
}

/// How long after `end` the delay came back under `within` ms for good.
fn back_after(frames: &[Frame], first: Instant, end: Duration, within: f64) -> Option<Duration> {
    let d = delays(frames, first, end, Duration::from_secs(3600));
    let last_over = d.iter().rposition(|(_, ms)| *ms > within);
    match last_over {
        None => Some(Duration::ZERO),
        Some(i) => d.get(i + 1).map(|(t, _)| t.saturating_sub(end)),
    }
}

/// Speech on channel es heard by a clean listener and two behind `loss` (one with RED): each
/// one's (PESQ-WB, true peak), and the frames the lossy ones concealed.
async fn pesq_at(
    s: &Running,
    proxy: &Proxy,
    loss: f64,
) -> ((f64, f64), (f64, f64), (f64, f64), (usize, usize)) {
    let id = format!("pesq{}", (loss * 100.0) as u32);
    room(s, &id, &["es"]).await;
    let (clean, _c) = listen(s, &id, Some("es"), false).await;
    let (plain, _p) = listen(s, &id, Some("es"), false).await;
    let (red, _r) = listen(s, &id, Some("es"), true).await;
    for m in [&plain, &red] {
        proxy.set(m.local, Faults { down_loss: loss, ..Faults::default() });
    }
    let said = at_level(speech(SAID, "en", 48_000), -6.0);
    let mut sent = vec![0f32; 48_000];
    sent.extend_from_slice(&said);
    sent.extend(std::iter::repeat_n(0f32, 48_000));
    let secs = sent.len() as f64 / 48_000.0;
    let mut sig = joined(s, &id, Role::Interpreter, Some("es"), "Ana").await;
    let _voice = media_opts(&mut sig, Some(Sound::Pcm(Arc::new(sent))), false, Receiver::default()).await;
    tokio::time::sleep(Duration::from_secs_f64(secs + 1.0)).await;
    let score = |m: &Media| {
        let frames = m.frames();
        let pcm = in_media_order(&frames);
        (pesq(&said, &pcm), loudness(&frames).true_peak_db)
    };
    let concealed = |m: &Media| m.frames().iter().filter(|f| f.concealed).count();
    (score(&plain), score(&red), score(&clean), (concealed(&plain), concealed(&red)))
}

/// The frames' audio in media time order, each media time once.
fn in_media_order(frames: &[Frame]) -> Vec<f32> {
    let mut sorted: Vec<&Frame> = frames.iter().collect();
    sorted.sort_by_key(|f| f.rtp);
    sorted.dedup_by_key(|f| f.rtp);
    sorted.iter().flat_map(|f| f.pcm.iter().copied()).collect()
}

/// `pcm` scaled to `peak_db` dBFS peaks.
fn at_level(mut pcm: Vec<f32>, peak_db: f32) -> Vec<f32> {
    let peak = pcm.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-9);
    let g = 10f32.powf(peak_db / 20.0) / peak;
    pcm.iter_mut().for_each(|x| *x *= g);
    pcm
}

/// PESQ-WB of `degraded` against `reference` (both 48 kHz), by benches/pesq_wb.py.
fn pesq(reference: &[f32], degraded: &[f32]) -> f64 {
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir();
    let name = |what: &str| dir.join(format!("tolk-pesq-{}-{n}-{what}.f32", std::process::id()));
    let (r, d) = (name("ref"), name("deg"));
    let bytes = |x: &[f32]| x.iter().flat_map(|s| s.to_le_bytes()).collect::<Vec<u8>>();
    std::fs::write(&r, bytes(reference)).unwrap();
    std::fs::write(&d, bytes(degraded)).unwrap();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/pesq_wb.py");
    let out =
        std::process::Command::new("python3").arg(script).arg(&r).arg(&d).output().expect("python3 runs");
    if std::env::var_os("KEEP").is_none() {
        let _ = (std::fs::remove_file(&r), std::fs::remove_file(&d));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim().parse().unwrap_or_else(|_| {
        panic!("pesq_wb.py (pip install numpy pesq): {text} {}", String::from_utf8_lossy(&out.stderr))
    })
}

/// Integrated loudness (EBU R128) and true peak of a listener's audio.
fn loudness(frames: &[Frame]) -> Loudness {
    use ebur128::{EbuR128, Mode};
    let mut m = EbuR128::new(1, 48_000, Mode::I | Mode::TRUE_PEAK).unwrap();
    m.add_frames_f32(&in_media_order(frames)).unwrap();
    let peak = m.true_peak(0).unwrap();
    Loudness { lufs: m.loudness_global().unwrap(), true_peak_db: 20.0 * peak.max(1e-9).log10() }
}

/// A floor at -6 dBFS peaks, an es interpreter at -30 and a fr interpreter at -6, all speaking
/// for 40 s: the loudness of the last 20 s of each stream as a listener decoded it.
async fn loudness_of_channels(s: &Running) -> Vec<(&'static str, Loudness)> {
    room(s, "loud", &["es", "fr"]).await;
    let (floor_l, _a) = listen(s, "loud", None, false).await;
    let (es_l, _b) = listen(s, "loud", Some("es"), false).await;
    let (fr_l, _c) = listen(s, "loud", Some("fr"), false).await;
    let talk = |text: &str, voice: &str, peak: f32| {
        let one = at_level(speech(text, voice, 48_000), peak);
        let mut pcm = Vec::new();
        while pcm.len() < 40 * 48_000 {
            pcm.extend_from_slice(&one);
            pcm.extend(std::iter::repeat_n(0f32, 24_000));
        }
        Sound::Pcm(Arc::new(pcm))
    };
    let mut sessions = Vec::new();
    let mut voices = Vec::new();
    for (role, ch, text, voice, peak) in [
        (Role::Floor, None, SAID, "en", -6.0),
        (
            Role::Interpreter,
            Some("es"),
            "La comisión escucha ahora el informe del grupo de trabajo sobre el agua.",
            "es",
            -30.0,
        ),
        (
            Role::Interpreter,
            Some("fr"),
            "La commission entend maintenant le rapport du groupe de travail sur l'eau.",
            "fr",
            -6.0,
        ),
    ] {
        let mut sig = joined(s, "loud", role, ch, "speaker").await;
        voices.push(media_opts(&mut sig, Some(talk(text, voice, peak)), false, Receiver::default()).await);
        sessions.push(sig);
    }
    tokio::time::sleep(Duration::from_secs(41)).await;
    let last_20s = |m: &Media| {
        let mut f = m.frames();
        f.sort_by_key(|f| f.rtp);
        let from = f.len().saturating_sub(50 * 20);
        loudness(&f[from..])
    };
    vec![
        ("Floor", last_20s(&floor_l)),
        ("es (interpreter at -30 dBFS peaks)", last_20s(&es_l)),
        ("fr (interpreter at -6 dBFS peaks)", last_20s(&fr_l)),
    ]
}

/// Incoming frames the server has concealed so far (lost, or too late), all rooms.
async fn concealed_by_server(s: &Running) -> u64 {
    let snap = s.app.snapshot().await.unwrap();
    snap.stats.get(tolk::core::engine::Counter::FramesConcealed)
}
