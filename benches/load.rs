//! Load generator: N WebRTC listeners (str0m clients, one tokio task and UDP socket each) against
//! a tolk server running as its own process, with a floor and three interpreters playing known
//! signals. Reports the server's CPU per listener-second (from its own /metrics), its memory per
//! listener once they have settled and at its peak while they joined, packet loss per listener, and added latency (marker frame sent by the es interpreter
//! to its arrival at probe listeners), next to a bare UDP send of the same packet rate. The
//! server's media threads, Janus and the bare send all run at nice -10.
//!
//! Run: `cargo bench --bench load -- 250 1000` (listener counts; default 250 1000); add `--janus`
//! to run the same listeners against Janus's Streaming plugin (Debian package `janus`) after each
//! tolk run; `--audiobridge` runs them against Janus's AudioBridge (a mix per listener) instead
//! of tolk; `--rooms K` spreads the listeners over K rooms (and so over the engines). Loopback only.
//!
//! Cluster: `cargo bench --bench load -- --nodes 3 3000` runs the count on one node first, then
//! on three nodes of a cluster (a nats-server, Debian package `nats-server`, started here): the
//! sources on the first node, the listeners spread over all three. Reports each node's CPU per
//! listener-second next to the single node's and the bare send's, the bytes per second on NATS
//! per stream, and the latency an edge adds against the origin (probes on both).
//!
//! Soak: `cargo bench --bench load -- --soak 30 2000` holds 2,000 listeners for 30 minutes
//! while 100 more churn (each joins, listens 5-30 s, switches channel, leaves, and again), and
//! prints the server's memory, open files, CPU and the listeners' sequence gaps every 5 minutes.

#[path = "../tests/common/mod.rs"]
mod common;

use common::{tone_db, Signal, Sound};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use str0m::change::SdpAnswer;
use str0m::media::{Direction, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tolk::protocol::{ClientMsg, ServerMsg};

/// Seconds measured once every listener is connected and warm.
const MEASURE_SECS: u64 = 10;
/// Listeners that decode their audio to time the markers.
const PROBES: usize = 4;
/// The es interpreter sends a 1 kHz marker frame this often.
const MARKER_EVERY: u64 = 25; // frames: 500 ms
/// Nice of tolk's media threads (its default `media_nice`); Janus and the bare send run at it
/// too, so all three meet the load generator on the shared cores on the same terms.
const SERVER_NICE: i32 = -10;

struct Server {
    child: tokio::process::Child,
    http: SocketAddr,
}

async fn start_server(dir: &std::path::Path) -> Server {
    start_server_with(dir, "").await
}

/// As [`start_server`], with `extra` appended to its configuration.
async fn start_server_with(dir: &std::path::Path, extra: &str) -> Server {
    use tokio::io::AsyncBufReadExt;
    let config = dir.join("tolk.toml");
    // A fresh data directory each run: rooms are kept in its database.
    let data = dir.join("data");
    let _ = std::fs::remove_dir_all(&data);
    std::fs::write(
        &config,
        format!(
            "http = \"127.0.0.1:0\"\nudp = \"127.0.0.1:0\"\nsecret = \"load generator secret, long enough\"\napi_key = \"k\"\ncaptions = false\ndata_dir = {data:?}\n\
             # Every listener of a room comes in with one link.\nlisteners_per_link = 100000\n{extra}"
        ),
    )
    .unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_tolk"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the tolk binary runs");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let http = loop {
        let line = lines.next_line().await.unwrap().expect("tolk prints its address");
        if let Some(rest) = line.strip_prefix("tolk is serving http://") {
            break rest.split_whitespace().next().unwrap().parse().unwrap();
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Server { child, http }
}

async fn mint(http: SocketAddr, room: &str, role: &str, channel: Option<&str>) -> String {
    let channel = channel.map(|c| format!(r#","channel":"{c}""#)).unwrap_or_default();
    let body = format!(r#"{{"role":"{role}","name":"{role}"{channel}}}"#);
    let path = format!("/api/rooms/{room}/tokens");
    let (st, b) = common::http_at(http, "POST", &path, Some("k"), "application/json", &body).await;
    assert_eq!(st, 201, "{b}");
    serde_json::from_str::<serde_json::Value>(&b).unwrap()["token"].as_str().unwrap().to_string()
}

/// One value from the server's /metrics.
async fn metric(http: SocketAddr, name: &str) -> f64 {
    let (_, body) = common::http_at(http, "GET", "/metrics", Some("k"), "", "").await;
    body.lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or_else(|| panic!("{name} is in /metrics"))
        .parse()
        .unwrap()
}

/// (server CPU seconds, resident bytes) from its /metrics.
async fn server_usage(http: SocketAddr) -> (f64, f64) {
    (metric(http, "process_cpu_seconds_total").await, metric(http, "process_resident_memory_bytes").await)
}

#[derive(Default)]
struct Counters {
    packets: AtomicU64,
    lost: AtomicU64,
    /// UDP datagrams and their bytes, as received: the bare-send floor sends datagrams of this size.
    datagrams: AtomicU64,
    bytes: AtomicU64,
}

impl Counters {
    /// Average size of the datagrams received so far (RTP, with the odd RTCP and STUN).
    fn datagram_size(&self) -> usize {
        let n = self.datagrams.load(Ordering::Relaxed).max(1);
        (self.bytes.load(Ordering::Relaxed) / n) as usize
    }
}

/// One listener: its signalling session stays open; its media runs on a task.
async fn listener(
    http: SocketAddr,
    token: &str,
    channel: Option<&str>,
    counters: Arc<Counters>,
    probe: Option<Arc<Mutex<Vec<Instant>>>>,
    stop: Arc<AtomicBool>,
) -> Signal {
    let mut sig = Signal::connect_to(http).await;
    sig.join(token, None).await;
    if channel.is_some() {
        sig.ask(ClientMsg::Select { channel: channel.map(str::to_string), only: false, balance: None }).await;
    }
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let local = socket.local_addr().unwrap();
    let mut rtc = Rtc::builder().clear_codecs().enable_opus(true, false).build(Instant::now());
    rtc.add_local_candidate(Candidate::host(local, "udp").unwrap());
    let mut api = rtc.sdp_api();
    api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    let (offer, pending) = api.apply().unwrap();
    let answer = match sig.ask(ClientMsg::Offer { sdp: offer.to_sdp_string() }).await {
        ServerMsg::Answer { sdp } => sdp,
        other => panic!("no answer: {other:?}"),
    };
    rtc.sdp_api().accept_answer(pending, SdpAnswer::from_sdp_string(&answer).unwrap()).unwrap();
    tokio::spawn(receive(rtc, socket, counters, probe, stop));
    sig
}

/// A listener's media loop: counts packets and sequence gaps; probes decode and time the markers.
async fn receive(
    mut rtc: Rtc,
    socket: tokio::net::UdpSocket,
    counters: Arc<Counters>,
    probe: Option<Arc<Mutex<Vec<Instant>>>>,
    stop: Arc<AtomicBool>,
) {
    let local = socket.local_addr().unwrap();
    let mut buf = vec![0u8; 2048];
    let mut dec = probe.as_ref().map(|_| opus::Decoder::new(48_000, opus::Channels::Mono).unwrap());
    let mut last_seq: Option<u64> = None;
    let mut pcm = vec![0f32; 960];
    while !stop.load(Ordering::Relaxed) {
        let timeout = loop {
            match rtc.poll_output() {
                Ok(Output::Transmit(t)) => {
                    let _ = socket.send_to(&t.contents, t.destination).await;
                }
                Ok(Output::Timeout(t)) => break t,
                Ok(Output::Event(Event::MediaData(d))) => {
                    counters.packets.fetch_add(1, Ordering::Relaxed);
                    let seq = **d.seq_range.start();
                    if let Some(prev) = last_seq {
                        counters.lost.fetch_add(seq.saturating_sub(prev + 1), Ordering::Relaxed);
                    }
                    last_seq = Some(seq);
                    if let (Some(dec), Some(probe)) = (dec.as_mut(), probe.as_ref()) {
                        if dec.decode_float(&d.data, &mut pcm, false).ok() == Some(960)
                            && tone_db(&pcm, 1000.0) > -30.0
                        {
                            probe.lock().unwrap().push(Instant::now());
                        }
                    }
                }
                Ok(_) => {}
                Err(_) => return,
            }
        };
        let wait = timeout.saturating_duration_since(Instant::now()).min(Duration::from_millis(100));
        tokio::select! {
            r = socket.recv_from(&mut buf) => {
                if let Ok((n, source)) = r {
                    counters.datagrams.fetch_add(1, Ordering::Relaxed);
                    counters.bytes.fetch_add(n as u64, Ordering::Relaxed);
                    if let Ok(recv) = Receive::new(Protocol::Udp, source, local, &buf[..n]) {
                        let _ = rtc.handle_input(Input::Receive(Instant::now(), recv));
                    }
                }
            }
            _ = tokio::time::sleep(wait) => {}
        }
        let _ = rtc.handle_input(Input::Timeout(Instant::now()));
    }
}

/// Sends `listeners × 50` packets a second of `size` bytes for `secs` to sockets that are read
/// the way the listeners read theirs (a tokio task each, woken per packet), and returns the
/// CPU seconds that cost the sending thread: the bare-send floor. On loopback the kernel
/// charges the delivery, wakeup of the reader included, to the sender, so the sinks must be
/// read for the floor to be the cost of a packet to a listener.
async fn bare_send(listeners: usize, size: usize, secs: u64) -> f64 {
    eprintln!("  bare send: {size}-byte datagrams to {listeners} sockets for {secs} s");
    let stop = Arc::new(AtomicBool::new(false));
    let mut addrs = Vec::with_capacity(listeners);
    for _ in 0..listeners {
        let sink = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        addrs.push(sink.local_addr().unwrap());
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                let _ = tokio::time::timeout(Duration::from_millis(100), sink.recv_from(&mut buf)).await;
            }
        });
    }
    let sending = std::thread::spawn(move || {
        if let Err(e) = tolk::io::sys::set_nice(SERVER_NICE) {
            eprintln!("  bare send: runs at nice 0, not {SERVER_NICE} ({e}): not comparable to the server");
        }
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let packet = vec![0x80u8; size];
        let thread_cpu = || tolk::io::metrics::usage("thread-self").expect("/proc is readable").0;
        let cpu0 = thread_cpu();
        let start = Instant::now();
        for tick in 0..secs * 50 {
            for a in &addrs {
                let _ = sender.send_to(&packet, a);
            }
            std::thread::sleep(
                (start + Duration::from_millis(20 * (tick + 1))).saturating_duration_since(Instant::now()),
            );
        }
        thread_cpu() - cpu0
    });
    let cpu = tokio::task::spawn_blocking(move || sending.join().unwrap()).await.unwrap();
    stop.store(true, Ordering::Relaxed);
    cpu
}

/// The es interpreter's sound: a 1 kHz marker frame every `MARKER_EVERY` frames, silence between.
fn marker_sound() -> Vec<f32> {
    let mut marker = vec![0f32; 960 * 60 * 10];
    for chunk in marker.chunks_mut(960 * MARKER_EVERY as usize) {
        for (i, s) in chunk[..960].iter_mut().enumerate() {
            *s = 0.3 * (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 48_000.0).sin();
        }
    }
    marker
}

/// Added latency: each marker's arrival at a probe, against the send time of its marker frame
/// (frame k of the es sound goes out k x 20 ms after the first, paced by the client), in ms.
fn marker_latencies(probes: &[Arc<Mutex<Vec<Instant>>>], marker_start: Instant) -> Vec<f64> {
    let mut latency = Vec::new();
    for a in probes {
        let mut last = None;
        for at in a.lock().unwrap().iter() {
            // One arrival per marker: the first frame that carries it.
            if last.is_some_and(|l: Instant| at.duration_since(l) < Duration::from_millis(200)) {
                continue;
            }
            last = Some(*at);
            let since = at.duration_since(marker_start).as_secs_f64();
            let period = MARKER_EVERY as f64 * 0.02;
            latency.push((since - (since / period).floor() * period) * 1000.0);
        }
    }
    latency
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() - 1) as f64 * p).round() as usize]
}

async fn run(n: usize, rooms: usize, extra: &str) {
    let dir = std::env::temp_dir().join(format!("tolk-load-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let server = start_server_with(&dir, extra).await;
    let http = server.http;
    let stop = Arc::new(AtomicBool::new(false));
    let (_, rss_empty) = server_usage(http).await;

    // Sources: the floor plays 440 Hz; es sends a 1 kHz marker frame every 500 ms; en and fr play tones.
    let mut sources = Vec::new();
    let marker = marker_sound();
    // Room 0 is the demo room; more rooms (spread over the engines) get the same sources, without markers.
    let mut room_ids = vec!["demo".to_string()];
    for k in 1..rooms {
        let id = format!("load{k}");
        let body = format!(r#"{{"id":"{id}","channels":[{{"lang":"en"}},{{"lang":"es"}},{{"lang":"fr"}}]}}"#);
        let (st, b) = common::http_at(http, "POST", "/api/rooms", Some("k"), "application/json", &body).await;
        assert_eq!(st, 201, "{b}");
        room_ids.push(id);
    }
    for (k, room) in room_ids.iter().enumerate() {
        let mut floor = Signal::connect_to(http).await;
        floor.join(&mint(http, room, "floor", None).await, None).await;
        sources.push((common::media_with(&mut floor, Some(Sound::Tone(440.0)), false).await, floor));
        let es = if k == 0 { Sound::Pcm(Arc::new(marker.clone())) } else { Sound::Tone(880.0) };
        for (lang, sound) in [("es", es), ("en", Sound::Tone(660.0)), ("fr", Sound::Tone(1320.0))] {
            let mut sig = Signal::connect_to(http).await;
            sig.join(&mint(http, room, "interpreter", Some(lang)).await, None).await;
            sources.push((common::media_with(&mut sig, Some(sound), true).await, sig));
        }
    }
    let marker_media = &sources[1].0;

    let mut tokens = Vec::new();
    for room in &room_ids {
        tokens.push(mint(http, room, "listener", None).await);
    }
    let counters = Arc::new(Counters::default());
    let arrivals: Vec<Arc<Mutex<Vec<Instant>>>> = (0..PROBES).map(|_| Arc::default()).collect();
    let mut sessions = Vec::with_capacity(n);
    let channels = [None, Some("en"), Some("es"), Some("fr")];
    let t = Instant::now();
    for i in 0..n {
        // Probes listen to es; the rest spread over the floor and the channels.
        let (channel, probe) =
            if i < PROBES { (Some("es"), Some(arrivals[i].clone())) } else { (channels[i % 4], None) };
        let token = if i < PROBES { &tokens[0] } else { &tokens[(i / 4) % rooms] };
        // Its signalling is read like a page's: room updates do not pile up in the server.
        sessions.push(listener(http, token, channel, counters.clone(), probe, stop.clone()).await.read_on());
        if (i + 1) % 250 == 0 || i + 1 == n {
            eprintln!("  {n} listeners: {} connected after {:.1} s", i + 1, t.elapsed().as_secs_f64());
        }
    }
    // Warm up: DTLS done, jitter buffers full, and listeners settled (each settles with its
    // first receiver report, which str0m sends a few seconds in).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let t = Instant::now();
    while metric(http, "tolk_listeners_settled").await < n as f64 && t.elapsed() < Duration::from_secs(15) {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    let (cpu0, _) = server_usage(http).await;
    let skipped0 = metric(http, "tolk_ticks_skipped_total").await;
    let (p0, l0) = (counters.packets.load(Ordering::Relaxed), counters.lost.load(Ordering::Relaxed));
    let m0 = Instant::now();
    let settled = metric(http, "tolk_listeners_settled").await;
    eprintln!("  {n} listeners: {settled} settled; measuring {MEASURE_SECS} s");
    tokio::time::sleep(Duration::from_secs(MEASURE_SECS)).await;
    let secs = m0.elapsed().as_secs_f64();
    let (cpu1, rss) = server_usage(http).await;
    let skipped = metric(http, "tolk_ticks_skipped_total").await - skipped0;
    eprintln!("  {n} listeners: the server skipped {skipped} ticks while measured");
    let (p1, l1) = (counters.packets.load(Ordering::Relaxed), counters.lost.load(Ordering::Relaxed));
    stop.store(true, Ordering::Relaxed);

    // Added latency: each marker arrival at a probe, against the send time of its marker frame
    // (frame k of the es sound goes out k x 20 ms after the first, paced by the client).
    let marker_start = marker_media.first_sent.lock().unwrap().expect("the es interpreter sent");
    let mut latency = marker_latencies(&arrivals, marker_start);
    let peak = peak_rss(server.child.id().expect("the server runs"));
    let cpu_per = (cpu1 - cpu0) / (n as f64 * secs) * 1e6;
    let size = counters.datagram_size();
    let bare = bare_send(n, size, MEASURE_SECS).await / (n as f64 * MEASURE_SECS as f64) * 1e6;
    let expected = (n as f64) * 50.0 * secs;
    let got = (p1 - p0) as f64;
    let cores = (cpu1 - cpu0) / secs;
    println!(
        "| {n} ({rooms} room{}, server busy {cores:.2} cores) | {cpu_per:.0} us | {bare:.0} us | {:.2}x | {:.0} KiB | {:.0} KiB | {:.3} % | {:.3} % | {:.1} / {:.1} ms |",
        if rooms == 1 { "" } else { "s" },
        cpu_per / bare,
        (rss - rss_empty) / n as f64 / 1024.0,
        (peak - rss_empty) / n as f64 / 1024.0,
        ((l1 - l0) as f64 / got.max(1.0)) * 100.0,
        (1.0 - got / expected).max(0.0) * 100.0,
        percentile(&mut latency.clone(), 0.5),
        percentile(&mut latency, 0.99),
    );
    for s in sessions {
        s.abort();
    }
    drop(sources);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Janus's ICE (libnice) gathers no candidates on loopback, so its run gets a veth pair inside
/// this process's own network namespace (`unshare -n`): an address that exists only there.
const JANUS_IF: &str = "tolkv0";
const JANUS_IP: &str = "10.88.0.1";

fn janus_network() {
    let ip = |args: &[&str]| {
        std::process::Command::new("ip").args(args).status().map(|s| s.success()).unwrap_or(false)
    };
    if ip(&["addr", "show", JANUS_IF]) {
        return;
    }
    assert!(
        ip(&["link", "add", JANUS_IF, "type", "veth", "peer", "name", "tolkv1"])
            && ip(&["addr", "add", &format!("{JANUS_IP}/24"), "dev", JANUS_IF])
            && ip(&["link", "set", JANUS_IF, "up"])
            && ip(&["link", "set", "tolkv1", "up"]),
        "cannot create the veth pair: run the Janus comparison as root inside `unshare -n`"
    );
}

/// Which Janus plugin the listeners use.
#[derive(Clone, Copy, PartialEq)]
enum Plugin {
    /// Streaming: one RTP stream forwarded to every viewer (encode once, like tolk's channels).
    Streaming,
    /// AudioBridge: a mixing room, every participant gets its own mix, encoded for it alone.
    AudioBridge,
}

impl Plugin {
    fn name(self) -> &'static str {
        match self {
            Plugin::Streaming => "Janus Streaming",
            Plugin::AudioBridge => "Janus AudioBridge",
        }
    }
}

/// AudioBridge room the listeners join.
const BRIDGE_ROOM: u64 = 1234;

/// Writes a minimal Janus configuration: the HTTP transport on `http_port`, and either one
/// Streaming mountpoint (id 1) taking RTP Opus (pt 111) on `rtp_port` or one 48 kHz
/// AudioBridge room that allows plain RTP participants (the source).
fn janus_config(dir: &std::path::Path, http_port: u16, rtp_port: u16, plugin: Plugin) {
    let lib = "/usr/lib/x86_64-linux-gnu/janus";
    let unused = match plugin {
        Plugin::Streaming => "libjanus_audiobridge.so",
        Plugin::AudioBridge => "libjanus_streaming.so",
    };
    std::fs::write(
        dir.join("janus.jcfg"),
        format!(
            "general: {{\n configs_folder = \"{d}\"\n plugins_folder = \"{lib}/plugins\"\n transports_folder = \"{lib}/transports\"\n \
             events_folder = \"{lib}/events\"\n loggers_folder = \"{lib}/loggers\"\n debug_level = 2\n session_timeout = 0\n}}\n\
             media: {{ rtp_port_range = \"30000-60000\" }}\n\
             nat: {{ ice_enforce_list = \"{JANUS_IF}\" }}\n\
             plugins: {{ disable = \"{unused},libjanus_duktape.so,libjanus_echotest.so,libjanus_lua.so,libjanus_nosip.so,\
             libjanus_recordplay.so,libjanus_sip.so,libjanus_textroom.so,libjanus_videocall.so,libjanus_videoroom.so,libjanus_voicemail.so\" }}\n\
             transports: {{ disable = \"libjanus_websockets.so,libjanus_pfunix.so,libjanus_mqtt.so,libjanus_nanomsg.so,libjanus_rabbitmq.so\" }}\n",
            d = dir.display()
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("janus.transport.http.jcfg"),
        format!("general: {{ base_path = \"/janus\"\n http = true\n port = {http_port}\n ip = \"127.0.0.1\" }}\nadmin: {{ admin_http = false }}\n"),
    )
    .unwrap();
    std::fs::write(
        dir.join("janus.plugin.audiobridge.jcfg"),
        format!(
            "general: {{ }}\nroom-{BRIDGE_ROOM}: {{\n description = \"the floor\"\n sampling_rate = 48000\n \
             allow_rtp_participants = true\n audiolevel_event = false\n}}\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("janus.plugin.streaming.jcfg"),
        format!(
            "general: {{ }}\ntolk: {{\n type = \"rtp\"\n id = 1\n description = \"the floor\"\n audio = true\n video = false\n \
             audioport = {rtp_port}\n audiopt = 111\n audiocodec = \"opus\"\n}}\n"
        ),
    )
    .unwrap();
}

async fn janus_call(http: SocketAddr, path: &str, body: serde_json::Value) -> serde_json::Value {
    let (st, b) = common::http_at(http, "POST", path, None, "application/json", &body.to_string()).await;
    assert_eq!(st, 200, "{path}: {b}");
    serde_json::from_str(&b).unwrap()
}

/// A Janus session with one handle attached to `plugin`: (session, handle).
async fn janus_attach(http: SocketAddr, plugin: &str) -> (u64, u64) {
    let tx = || serde_json::json!("t");
    let session = janus_call(http, "/janus", serde_json::json!({"janus": "create", "transaction": tx()}))
        .await["data"]["id"]
        .as_u64()
        .unwrap();
    let handle = janus_call(
        http,
        &format!("/janus/{session}"),
        serde_json::json!({"janus": "attach", "plugin": plugin, "transaction": tx()}),
    )
    .await["data"]["id"]
        .as_u64()
        .unwrap();
    (session, handle)
}

/// The next event of a Janus session that has `pick` in it.
async fn janus_event<T>(http: SocketAddr, session: u64, pick: impl Fn(&serde_json::Value) -> Option<T>) -> T {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(Instant::now() < until, "janus sent no such event");
        let (_, b) = common::http_at(http, "GET", &format!("/janus/{session}?maxev=1"), None, "", "").await;
        let ev: serde_json::Value = serde_json::from_str(&b).unwrap();
        if let Some(found) = pick(&ev) {
            return found;
        }
    }
}

/// One listener on Janus. Streaming: Janus offers mountpoint 1, the str0m client answers.
/// AudioBridge: the client offers and joins the room muted; Janus answers and mixes for it.
async fn janus_viewer(
    http: SocketAddr,
    plugin: Plugin,
    counters: Arc<Counters>,
    probe: Option<Arc<Mutex<Vec<Instant>>>>,
    stop: Arc<AtomicBool>,
) {
    let socket = tokio::net::UdpSocket::bind((JANUS_IP, 0)).await.unwrap();
    let mut rtc = Rtc::builder().clear_codecs().enable_opus(true, false).build(Instant::now());
    rtc.add_local_candidate(Candidate::host(socket.local_addr().unwrap(), "udp").unwrap());
    let sdp = |ev: &serde_json::Value| ev["jsep"]["sdp"].as_str().map(str::to_string);
    match plugin {
        Plugin::Streaming => {
            let (session, handle) = janus_attach(http, "janus.plugin.streaming").await;
            let path = format!("/janus/{session}/{handle}");
            let body = serde_json::json!({"janus": "message", "transaction": "t", "body": {"request": "watch", "id": 1}});
            janus_call(http, &path, body).await;
            let offer = janus_event(http, session, sdp).await;
            let answer = rtc
                .sdp_api()
                .accept_offer(str0m::change::SdpOffer::from_sdp_string(&offer).unwrap())
                .unwrap();
            let body = serde_json::json!({"janus": "message", "transaction": "t", "body": {"request": "start"},
                "jsep": {"type": "answer", "sdp": answer.to_sdp_string()}});
            janus_call(http, &path, body).await;
        }
        Plugin::AudioBridge => {
            let (session, handle) = janus_attach(http, "janus.plugin.audiobridge").await;
            let mut api = rtc.sdp_api();
            api.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
            let (offer, pending) = api.apply().unwrap();
            let body = serde_json::json!({"janus": "message", "transaction": "t",
                "body": {"request": "join", "room": BRIDGE_ROOM, "muted": true, "display": "listener"},
                "jsep": {"type": "offer", "sdp": offer.to_sdp_string()}});
            janus_call(http, &format!("/janus/{session}/{handle}"), body).await;
            let answer = janus_event(http, session, sdp).await;
            rtc.sdp_api().accept_answer(pending, SdpAnswer::from_sdp_string(&answer).unwrap()).unwrap();
        }
    }
    tokio::spawn(receive(rtc, socket, counters, probe, stop));
}

/// AudioBridge's source: a plain RTP participant. Returns where Janus wants its RTP.
async fn janus_bridge_source(http: SocketAddr) -> (String, u16) {
    let (session, handle) = janus_attach(http, "janus.plugin.audiobridge").await;
    let body = serde_json::json!({"janus": "message", "transaction": "t",
        "body": {"request": "join", "room": BRIDGE_ROOM, "display": "floor",
                 "rtp": {"ip": "127.0.0.1", "port": 15_030, "payload_type": 111}}});
    janus_call(http, &format!("/janus/{session}/{handle}"), body).await;
    janus_event(http, session, |ev| {
        let rtp = &ev["plugindata"]["data"]["rtp"];
        Some((rtp["ip"].as_str()?.to_string(), rtp["port"].as_u64()? as u16))
    })
    .await
}

/// CPU seconds and resident bytes of another process.
/// The most resident memory the process has had (VmHWM): the peak of a join storm.
fn peak_rss(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the process is running");
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .expect("VmHWM in /proc/<pid>/status");
    kb * 1024.0
}

fn usage_of(pid: u32) -> (f64, f64) {
    let (cpu, rss) = tolk::io::metrics::usage(&pid.to_string()).expect("the process is running");
    (cpu, rss as f64)
}

/// The same measurement against Janus: its Streaming plugin (its own encode-once fan-out) or
/// its AudioBridge (a mix per participant), fed a 440 Hz Opus stream over RTP by ffmpeg.
async fn run_janus(n: usize, plugin: Plugin) {
    let dir = std::env::temp_dir().join(format!("tolk-load-janus-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (http_port, rtp_port) = (18_188, 15_010);
    janus_network();
    janus_config(&dir, http_port, rtp_port, plugin);
    // At the nice of tolk's media threads (`nice` execs janus: the pid is Janus's).
    let janus = tokio::process::Command::new("nice")
        .args(["-n", &SERVER_NICE.to_string(), "janus"])
        .arg(format!("--config={}", dir.join("janus.jcfg").display()))
        .arg(format!("--configs-folder={}", dir.display()))
        .arg(format!("--ice-enforce-list={JANUS_IF}"))
        .arg("--debug-level=2")
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("janus runs (apt-get install janus)");
    let pid = janus.id().unwrap();
    let http: SocketAddr = format!("127.0.0.1:{http_port}").parse().unwrap();
    let until = Instant::now() + Duration::from_secs(15);
    while tokio::net::TcpStream::connect(http).await.is_err() {
        assert!(Instant::now() < until, "janus did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rtp_to = match plugin {
        Plugin::Streaming => format!("rtp://127.0.0.1:{rtp_port}"),
        Plugin::AudioBridge => {
            let (ip, port) = janus_bridge_source(http).await;
            eprintln!("  AudioBridge wants the source RTP at {ip}:{port}");
            // From the port it was told: Janus only takes the participant's RTP from there.
            format!("rtp://{ip}:{port}?localrtpport=15030")
        }
    };
    let _ffmpeg = tokio::process::Command::new("ffmpeg")
        .args([
            "-nostdin",
            "-loglevel",
            "error",
            "-re",
            "-f",
            "lavfi",
            "-i",
            // 1 kHz, the tone the probe listens for.
            "sine=frequency=1000:sample_rate=48000",
        ])
        .args([
            "-c:a",
            "libopus",
            "-b:a",
            "64k",
            "-frame_duration",
            "20",
            "-ac",
            "1",
            "-payload_type",
            "111",
            "-f",
            "rtp",
        ])
        .arg(rtp_to)
        .kill_on_drop(true)
        .spawn()
        .expect("ffmpeg runs");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, rss_empty) = usage_of(pid);
    let stop = Arc::new(AtomicBool::new(false));
    let counters = Arc::new(Counters::default());
    let heard: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let t = Instant::now();
    for i in 0..n {
        // The first viewer decodes: it proves the source's tone reaches the listeners.
        let probe = (i == 0).then(|| heard.clone());
        janus_viewer(http, plugin, counters.clone(), probe, stop.clone()).await;
        if (i + 1) % 250 == 0 || i + 1 == n {
            eprintln!("  janus, {n} viewers: {} connected after {:.1} s", i + 1, t.elapsed().as_secs_f64());
        }
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (cpu0, _) = usage_of(pid);
    let (p0, l0) = (counters.packets.load(Ordering::Relaxed), counters.lost.load(Ordering::Relaxed));
    let m0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(MEASURE_SECS)).await;
    let secs = m0.elapsed().as_secs_f64();
    let (cpu1, rss) = usage_of(pid);
    let (p1, l1) = (counters.packets.load(Ordering::Relaxed), counters.lost.load(Ordering::Relaxed));
    stop.store(true, Ordering::Relaxed);
    let peak = peak_rss(pid);
    let frames = heard.lock().unwrap().len();
    eprintln!("  {}: the probe heard the 1 kHz source in {frames} frames", plugin.name());
    assert!(frames > 50, "{}: the listeners do not hear the source", plugin.name());
    let cpu_per = (cpu1 - cpu0) / (n as f64 * secs) * 1e6;
    let size = counters.datagram_size();
    let bare = bare_send(n, size, MEASURE_SECS).await / (n as f64 * MEASURE_SECS as f64) * 1e6;
    let got = (p1 - p0) as f64;
    println!(
        "| {n} ({}) | {cpu_per:.0} us | {bare:.0} us | {:.2}x | {:.0} KiB | {:.0} KiB | {:.3} % | {:.3} % | n/a |",
        plugin.name(),
        cpu_per / bare,
        (rss - rss_empty) / n as f64 / 1024.0,
        (peak - rss_empty) / n as f64 / 1024.0,
        ((l1 - l0) as f64 / got.max(1.0)) * 100.0,
        (1.0 - got / (n as f64 * 50.0 * secs)).max(0.0) * 100.0,
    );
    drop(janus);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Open files of a process.
fn files_of(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// A churning listener: joins, listens a while, switches channel, listens, leaves; again until
/// `stop`. A cycle that fails (a reply that did not come within 5 s) is counted and the next
/// one starts.
async fn churn(
    http: SocketAddr,
    token: String,
    seed: u64,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
    cycles: Arc<(AtomicU64, AtomicU64)>,
) {
    let channels = [None, Some("en"), Some("es"), Some("fr")];
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let mut next = move || {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        x >> 33
    };
    while !stop.load(Ordering::Relaxed) {
        let media_stop = Arc::new(AtomicBool::new(false));
        let (first, then) = (channels[(next() % 4) as usize], channels[(next() % 4) as usize]);
        let (wait1, wait2) = (2_500 + next() % 12_500, 2_500 + next() % 12_500);
        let (token, counters, ms) = (token.clone(), counters.clone(), media_stop.clone());
        let cycle = tokio::spawn(async move {
            let mut sig = listener(http, &token, first, counters, None, ms).await;
            sig.drain(wait1).await;
            sig.ask(ClientMsg::Select { channel: then.map(str::to_string), only: false, balance: None })
                .await;
            sig.drain(wait2).await;
        });
        let ok = cycle.await.is_ok();
        media_stop.store(true, Ordering::Relaxed);
        if ok { &cycles.0 } else { &cycles.1 }.fetch_add(1, Ordering::Relaxed);
    }
}

/// Holds `n` listeners for `minutes` with churn beside them; one table row every 5 minutes.
async fn soak(n: usize, minutes: u64) {
    const CHURNERS: usize = 100;
    let dir = std::env::temp_dir().join(format!("tolk-soak-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let server = start_server(&dir).await;
    let (http, pid) = (server.http, server.child.id().unwrap());
    let mut sources = Vec::new();
    let mut floor = Signal::connect_to(http).await;
    floor.join(&mint(http, "demo", "floor", None).await, None).await;
    sources.push((common::media_with(&mut floor, Some(Sound::Tone(440.0)), false).await, floor));
    for (lang, hz) in [("es", 880.0), ("en", 660.0), ("fr", 1320.0)] {
        let mut sig = Signal::connect_to(http).await;
        sig.join(&mint(http, "demo", "interpreter", Some(lang)).await, None).await;
        sources.push((common::media_with(&mut sig, Some(Sound::Tone(hz)), true).await, sig));
    }
    let token = mint(http, "demo", "listener", None).await;
    let (stop, counters) = (Arc::new(AtomicBool::new(false)), Arc::new(Counters::default()));
    let cycles: Arc<(AtomicU64, AtomicU64)> = Arc::default();
    // A failed churn cycle is counted in the table, not printed with a backtrace.
    std::panic::set_hook(Box::new(|p| eprintln!("  churn cycle failed: {p}")));
    let channels = [None, Some("en"), Some("es"), Some("fr")];
    let mut sessions = Vec::with_capacity(n);
    for i in 0..n {
        sessions.push(
            listener(http, &token, channels[i % 4], counters.clone(), None, stop.clone()).await.read_on(),
        );
    }
    let mut churners = Vec::new();
    for i in 0..CHURNERS {
        churners.push(tokio::spawn(churn(
            http,
            token.clone(),
            i as u64,
            counters.clone(),
            stop.clone(),
            cycles.clone(),
        )));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    println!("| minute | listeners (steady + churning) | churn cycles (failed) | server RSS | open files | server CPU (cores) | seq gaps | packets received | ticks skipped |");
    println!("|---|---|---|---|---|---|---|---|---|");
    let start = Instant::now();
    let (mut cpu_then, mut at_then) = (server_usage(http).await.0, Instant::now());
    for minute in (0..=minutes).step_by(5) {
        tokio::time::sleep(
            (start + Duration::from_secs(minute * 60)).saturating_duration_since(Instant::now()),
        )
        .await;
        let (cpu, rss) = server_usage(http).await;
        let cores = (cpu - cpu_then) / at_then.elapsed().as_secs_f64().max(1e-3);
        (cpu_then, at_then) = (cpu, Instant::now());
        println!(
            "| {minute} | {n} + {CHURNERS} | {} ({}) | {:.0} MiB | {} | {} | {} | {} | {} |",
            cycles.0.load(Ordering::Relaxed),
            cycles.1.load(Ordering::Relaxed),
            rss / 1048576.0,
            files_of(pid),
            if minute == 0 { "-".to_string() } else { format!("{cores:.2}") },
            counters.lost.load(Ordering::Relaxed),
            counters.packets.load(Ordering::Relaxed),
            metric(http, "tolk_ticks_skipped_total").await,
        );
    }
    stop.store(true, Ordering::Relaxed);
    for s in sessions {
        s.abort();
    }
    for c in churners {
        c.abort();
    }
    drop(sources);
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    let janus = std::env::args().any(|a| a == "--janus");
    let bridge = std::env::args().any(|a| a == "--audiobridge");
    let args: Vec<String> = std::env::args().collect();
    let rooms = args
        .iter()
        .position(|a| a == "--rooms")
        .and_then(|i| args.get(i + 1))
        .and_then(|r| r.parse().ok())
        .unwrap_or(1usize)
        .clamp(1, 16);
    let counts: Vec<usize> = args
        .iter()
        .enumerate()
        .skip(1)
        .filter(|(i, _)| args[i - 1] != "--rooms")
        .filter_map(|(_, a)| a.parse().ok())
        .filter(|n| (1..=5000).contains(n))
        .collect();
    let counts = if counts.is_empty() { vec![250, 1000] } else { counts };
    let nodes =
        args.iter().position(|a| a == "--nodes").and_then(|i| args.get(i + 1)).and_then(|r| r.parse().ok());
    let counts: Vec<usize> = match nodes {
        Some(k) => counts.into_iter().filter(|c| *c != k).collect(),
        None => counts,
    };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    if let Some(i) = args.iter().position(|a| a == "--soak") {
        let minutes = args.get(i + 1).and_then(|m| m.parse().ok()).unwrap_or(30);
        let n = args.get(i + 2).and_then(|m| m.parse().ok()).unwrap_or(2000);
        tolk::io::sys::raise_file_limit().expect("the open-file limit can be raised");
        rt.block_on(soak(n, minutes));
        return;
    }
    println!("| listeners | server CPU per listener-second | bare send per listener-second | ratio | server memory per listener | peak while joining | seq gaps | packets short of 50/s | latency p50 / p99 |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for n in counts {
        if let Some(k) = nodes {
            tolk::io::sys::raise_file_limit().expect("the open-file limit can be raised");
            rt.block_on(run(n, 1, ""));
            rt.block_on(run_cluster(n, k));
            continue;
        }
        if !bridge {
            rt.block_on(run(n, rooms, ""));
        }
        if janus {
            rt.block_on(run_janus(n, Plugin::Streaming));
        }
        if bridge {
            rt.block_on(run_janus(n, Plugin::AudioBridge));
        }
    }
}

/// `--nodes K`: the listeners spread over K nodes of a cluster on one NATS server; the sources
/// on the first node, which so mixes the room. Probes on es on the first node and the second.
async fn run_cluster(n: usize, nodes: usize) {
    let dir = std::env::temp_dir().join(format!("tolk-cluster-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let free = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (port, monitor) = (free(), free());
    // NATS carries media between the nodes: at the media threads' priority, as the README says to run it.
    let _nats = tokio::process::Command::new("nice")
        .args(["-n", &SERVER_NICE.to_string(), "nats-server", "-js", "-a", "127.0.0.1"])
        .args(["-p", &port.to_string(), "-m", &monitor.to_string(), "-sd"])
        .arg(dir.join("nats"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("nats-server runs (apt install nats-server)");
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut servers = Vec::new();
    for k in 0..nodes {
        let d = dir.join(format!("n{k}"));
        std::fs::create_dir_all(&d).unwrap();
        let extra = format!("[cluster]\nnats = \"nats://127.0.0.1:{port}\"\nnode = \"n{k}\"\n");
        servers.push(start_server_with(&d, &extra).await);
    }
    let https: Vec<SocketAddr> = servers.iter().map(|s| s.http).collect();
    let origin = https[0];
    let stop = Arc::new(AtomicBool::new(false));
    let marker = marker_sound();
    let mut sources = Vec::new();
    let mut floor = Signal::connect_to(origin).await;
    floor.join(&mint(origin, "demo", "floor", None).await, None).await;
    sources.push((common::media_with(&mut floor, Some(Sound::Tone(440.0)), false).await, floor));
    for (lang, sound) in
        [("es", Sound::Pcm(Arc::new(marker))), ("en", Sound::Tone(660.0)), ("fr", Sound::Tone(1320.0))]
    {
        let mut sig = Signal::connect_to(origin).await;
        sig.join(&mint(origin, "demo", "interpreter", Some(lang)).await, None).await;
        sources.push((common::media_with(&mut sig, Some(sound), true).await, sig));
    }
    let token = mint(origin, "demo", "listener", None).await;
    let counters = Arc::new(Counters::default());
    // Probes 0 and 1 on the origin, 2 and 3 on the second node.
    let arrivals: Vec<Arc<Mutex<Vec<Instant>>>> = (0..PROBES).map(|_| Arc::default()).collect();
    let channels = [None, Some("en"), Some("es"), Some("fr")];
    let mut sessions = Vec::with_capacity(n);
    let t = Instant::now();
    for i in 0..n {
        let (node, channel, probe) = if i < PROBES {
            (i / 2 % nodes, Some("es"), Some(arrivals[i].clone()))
        } else {
            (i % nodes, channels[i % 4], None)
        };
        sessions.push(
            listener(https[node], &token, channel, counters.clone(), probe, stop.clone()).await.read_on(),
        );
        if (i + 1) % 500 == 0 || i + 1 == n {
            eprintln!(
                "  {n} listeners on {nodes} nodes: {} connected after {:.1} s",
                i + 1,
                t.elapsed().as_secs_f64()
            );
        }
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let t = Instant::now();
    loop {
        let mut settled = 0.0;
        for h in &https {
            settled += metric(*h, "tolk_listeners_settled").await;
        }
        if settled >= n as f64 || t.elapsed() > Duration::from_secs(20) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let varz = |field: &'static str| async move {
        let addr: SocketAddr = format!("127.0.0.1:{monitor}").parse().unwrap();
        let (_, body) = common::http_at(addr, "GET", "/varz", None, "", "").await;
        serde_json::from_str::<serde_json::Value>(&body).unwrap()[field].as_f64().unwrap()
    };
    let mut cpu0 = Vec::new();
    for h in &https {
        cpu0.push(server_usage(*h).await.0);
    }
    let (bytes0, msgs0) = (varz("in_bytes").await, varz("in_msgs").await);
    let (p0, l0) = (counters.packets.load(Ordering::Relaxed), counters.lost.load(Ordering::Relaxed));
    let m0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(MEASURE_SECS)).await;
    let secs = m0.elapsed().as_secs_f64();
    let mut cpu1 = Vec::new();
    for h in &https {
        cpu1.push(server_usage(*h).await.0);
    }
    let (bytes1, msgs1) = (varz("in_bytes").await, varz("in_msgs").await);
    let (p1, l1) = (counters.packets.load(Ordering::Relaxed), counters.lost.load(Ordering::Relaxed));
    stop.store(true, Ordering::Relaxed);

    let marker_start = sources[1].0.first_sent.lock().unwrap().expect("the es interpreter sent");
    let (mut on_origin, mut on_edge) =
        (marker_latencies(&arrivals[..2], marker_start), marker_latencies(&arrivals[2..], marker_start));
    let size = counters.datagram_size();
    let per_node = n / nodes;
    let bare = bare_send(per_node, size, MEASURE_SECS).await / (per_node as f64 * MEASURE_SECS as f64) * 1e6;
    println!();
    println!("| node ({n} listeners on {nodes} nodes) | listeners | CPU per listener-second | bare send | ratio | busy |");
    println!("|---|---|---|---|---|---|");
    for k in 0..nodes {
        let listeners =
            (0..n).filter(|i| if *i < PROBES { i / 2 % nodes == k } else { i % nodes == k }).count();
        let cpu = (cpu1[k] - cpu0[k]) / (listeners as f64 * secs) * 1e6;
        let role = if k == 0 { "origin" } else { "edge" };
        println!(
            "| n{k} ({role}) | {listeners} | {cpu:.0} us | {bare:.0} us | {:.2}x | {:.2} cores |",
            cpu / bare,
            (cpu1[k] - cpu0[k]) / secs
        );
    }
    let streams = 4.0;
    let got = (p1 - p0) as f64;
    println!(
        "NATS: {:.0} bytes/s and {:.0} messages/s published, {:.0} bytes/s per stream ({streams} streams); listeners: {:.3} % seq gaps, {:.3} % packets short",
        (bytes1 - bytes0) / secs,
        (msgs1 - msgs0) / secs,
        (bytes1 - bytes0) / secs / streams,
        ((l1 - l0) as f64 / got.max(1.0)) * 100.0,
        (1.0 - got / (n as f64 * 50.0 * secs)).max(0.0) * 100.0
    );
    let (o50, e50) = (percentile(&mut on_origin.clone(), 0.5), percentile(&mut on_edge.clone(), 0.5));
    println!(
        "latency p50 / p99: origin {o50:.1} / {:.1} ms, edge {e50:.1} / {:.1} ms: an edge adds {:.1} ms (p50)",
        percentile(&mut on_origin, 0.99),
        percentile(&mut on_edge, 0.99),
        e50 - o50
    );
    for s in sessions {
        s.abort();
    }
    drop(sources);
    drop(servers);
    let _ = std::fs::remove_dir_all(&dir);
}
