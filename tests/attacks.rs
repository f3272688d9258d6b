//! A hostile participant with one invitation link and one ordinary client machine, at a bounded
//! scale: each attack runs beside a witness room on the same engine (a WHIP floor at 440 Hz and
//! a WHEP listener), which must keep every frame: consecutive sequence numbers, no step over
//! 40 ms of media time, the tone intact.

mod common;

use common::*;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};
use str0m::media::{Direction, MediaKind};
use str0m::{Candidate, Rtc};
use tokio::io::AsyncWriteExt;
use tolk::core::spec::{RoomSpec, TapSpec};
use tolk::io::Running;
use tolk::protocol::{ClientMsg, ErrorCode, Role, ServerMsg};

/// The attacks load the machine; on two cores they take turns.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One engine, so that the witness shares it with the attacked room.
async fn one_engine(adjust: impl FnOnce(&mut tolk::config::Config)) -> Running {
    server_with(|c| {
        c.engines = Some(1);
        adjust(c);
    })
    .await
}

/// A room `w` with a WHIP floor at 440 Hz and a WHEP listener that logs every frame.
struct Witness {
    _floor: Media,
    listener: Media,
    /// Frames heard before the attack.
    from: usize,
}

async fn witness(http: SocketAddr, mint: impl Fn(Role) -> String) -> Witness {
    let floor = media_at(
        Door::Whip { http, token: &mint(Role::Floor) },
        Some(Sound::Tone(440.0)),
        false,
        Receiver::default(),
    )
    .await;
    let listener =
        media_at(Door::Whep { http, token: &mint(Role::Listener) }, None, true, Receiver::default()).await;
    listener.wait_frames(50, 15).await;
    let from = listener.frames().len();
    Witness { _floor: floor, listener, from }
}

async fn witness_in(s: &Running) -> Witness {
    s.app.create_room(RoomSpec { id: "w".into(), floor_lang: None, channels: vec![] }).await.unwrap();
    witness(s.http, |role| s.app.mint("w", role, None, "Witness", None).token).await
}

impl Witness {
    /// Waits for 50 more frames (1 s of audio), then checks every frame since the attack began.
    async fn kept_every_frame(&self, attack: &str) {
        let now = self.listener.frames().len();
        self.listener.wait_frames(now + 50, 30).await;
        let frames = self.listener.frames();
        let heard = &frames[self.from - 1..];
        let max_step = heard.windows(2).map(|w| w[1].rtp - w[0].rtp).max().unwrap_or(0);
        let missing: u64 = heard.windows(2).map(|w| (w[1].seq - w[0].seq).saturating_sub(1)).sum();
        let pcm: Vec<f32> = frames[frames.len() - 25..].iter().flat_map(|f| f.pcm.iter().copied()).collect();
        let tone = tone_db(&pcm, 440.0);
        println!(
            "witness during {attack}: {} frames, {missing} missing, largest step {} ms of media time, 440 Hz at {tone:.1} dBFS",
            heard.len(),
            max_step / 48
        );
        assert_eq!(missing, 0, "the witness lost frames during {attack}");
        assert!(max_step <= 40 * 48, "a {} ms gap in the witness during {attack}", max_step / 48);
        assert!(tone > -20.0, "the witness's tone during {attack}: {tone:.1} dBFS");
    }
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb / 1024.0
}

fn code(m: &ServerMsg) -> Option<ErrorCode> {
    match m {
        ServerMsg::Error { code, .. } => Some(*code),
        _ => None,
    }
}

async fn health(http: SocketAddr, key: &str) -> serde_json::Value {
    let (status, body) = http_at(http, "GET", "/health", Some(key), "", "").await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// An offer a real WebRTC stack makes, and the ICE username fragment it uses.
fn client_offer(receive_only: bool) -> (String, String) {
    let mut rtc = Rtc::builder().clear_codecs().enable_opus(true, false).build(Instant::now());
    rtc.add_local_candidate(Candidate::host("127.0.0.1:9".parse().unwrap(), "udp").unwrap());
    let mut api = rtc.sdp_api();
    let dir = if receive_only { Direction::RecvOnly } else { Direction::SendOnly };
    api.add_media(MediaKind::Audio, dir, None, None, None);
    let (offer, _) = api.apply().unwrap();
    let ufrag = rtc.direct_api().local_ice_credentials().ufrag;
    (offer.to_sdp_string(), ufrag)
}

fn sdp_attr<'a>(sdp: &'a str, name: &str) -> &'a str {
    sdp.lines().find_map(|l| l.strip_prefix(name)).unwrap_or_else(|| panic!("{name} in {sdp}")).trim()
}

/// Booth messages used to go to every member on every change (300 sessions leaving together
/// cost 620 MB and a 1 s gap elsewhere). Now a booth holds 16, a link 4 sessions, and booth
/// messages are coalesced per turn of the media loop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crowd_on_interpreter_links_is_bounded_and_leaves_together_unheard() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let s = one_engine(|_| {}).await;
    let w = witness_in(&s).await;
    let rss_before = rss_mib();

    // 300 sessions on one interpreter link.
    let link = token(&s, Role::Interpreter, Some("es"), "Ana");
    let mut crowd = Vec::new();
    let (mut joined, mut refused) = (0, Vec::new());
    for _ in 0..300 {
        let mut sig = Signal::connect(&s).await;
        match sig.join(&link, None).await {
            ServerMsg::Joined { .. } => joined += 1,
            other => refused.push(code(&other)),
        }
        crowd.push(sig);
    }
    println!(
        "one link, 300 sessions: {joined} joined, refused {:?}",
        refused.iter().take(3).collect::<Vec<_>>()
    );
    assert_eq!(joined, 4, "an interpreter link holds 4 sessions");
    assert!(refused.iter().all(|c| matches!(c, Some(ErrorCode::Busy | ErrorCode::RateLimited))));

    // 300 sessions with 300 links of the same booth.
    let mut booth = 0;
    for i in 0..300 {
        let mut sig = Signal::connect(&s).await;
        let t = s.app.mint("r", Role::Interpreter, Some("fr".into()), &format!("I{i}"), None).token;
        if matches!(sig.join(&t, None).await, ServerMsg::Joined { .. }) {
            booth += 1;
        }
        crowd.push(sig);
    }
    println!("300 links into one booth: {booth} joined");
    assert_eq!(booth, 16, "a booth holds 16 interpreters");
    let grown = rss_mib() - rss_before;

    // Everyone leaves at once.
    drop(crowd);
    w.kept_every_frame("600 interpreter sessions joining and leaving together").await;
    let grown = grown.max(rss_mib() - rss_before);
    println!("server and clients grew by {grown:.1} MiB");
    // The clients' 600 WebSockets are in this process too.
    assert!(grown < 128.0, "memory stays bounded: {grown:.1} MiB more");
    let h = health(s.http, "test-api-key").await;
    assert_eq!(h["peers"], 2, "only the witness is left: {h}");
    let forgotten = s.app.reconcile().await.unwrap();
    println!("routes of refused and departed sessions forgotten: {forgotten}");
    assert_eq!(s.app.reconcile().await.unwrap(), 0, "nothing is left to forget");
}

/// A 64 KiB offer padded with rtpmap lines took 33 ms of the media thread; four sessions kept
/// it busy for 15 s. Offers are now read off the media thread, bounded in lines, and each
/// session's messages are rate limited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_flood_from_four_sessions_never_reaches_the_media_thread() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let s = one_engine(|_| {}).await;
    let w = witness_in(&s).await;
    let link = token(&s, Role::Listener, None, "Lena");
    let (offer, _) = client_offer(true);
    // Too many lines, and lines long enough to fill a message under the line limit.
    let mut padded = offer.clone();
    for pt in 0..2_400 {
        padded.push_str(&format!("a=rtpmap:{} x/8000\r\n", pt % 128));
    }
    padded.truncate(50 * 1024);
    let mut long = offer.clone();
    let filler = "x".repeat(500);
    while long.len() < 56 * 1024 {
        long.push_str(&format!("a=x-pad:{filler}\r\n"));
    }

    let mut tasks = Vec::new();
    for i in 0..4 {
        let mut sig = Signal::connect(&s).await;
        assert!(matches!(sig.join(&link, None).await, ServerMsg::Joined { .. }));
        let sdp = if i % 2 == 0 { padded.clone() } else { long.clone() };
        tasks.push(tokio::spawn(async move {
            let until = Instant::now() + Duration::from_secs(3);
            let mut codes = std::collections::BTreeMap::new();
            while Instant::now() < until {
                sig.send(&ClientMsg::Offer { sdp: sdp.clone() }).await;
                let reply = sig.next_reply().await;
                *codes.entry(format!("{:?}", code(&reply))).or_insert(0) += 1;
            }
            codes
        }));
    }
    let mut total = std::collections::BTreeMap::new();
    for t in tasks {
        for (k, v) in t.await.unwrap() {
            *total.entry(k).or_insert(0) += v;
        }
    }
    println!("replies to 3 s of offers from 4 sessions: {total:?}");
    assert!(total.contains_key("Some(RateLimited)"), "the flood is rate limited: {total:?}");
    assert!(total.contains_key("Some(BadSdp)"), "padded offers are refused: {total:?}");
    w.kept_every_frame("an offer flood from 4 sessions").await;
    let h = health(s.http, "test-api-key").await;
    assert_eq!(h["dropped"]["ticks_skipped"], 0, "no tick skipped: {h}");
}

/// A client knows its own ICE password: valid checks from 24,000 source ports each added a
/// remote candidate and kept the media thread at 99 %. A peer now takes checks from 8 addresses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_checks_from_5000_ports_add_no_more_than_a_few_candidates() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let s = one_engine(|_| {}).await;
    let w = witness_in(&s).await;
    let mut sig = Signal::connect(&s).await;
    sig.join(&token(&s, Role::Listener, None, "Lena"), None).await;
    let (offer, client_ufrag) = client_offer(true);
    let answer = match sig.ask(ClientMsg::Offer { sdp: offer }).await {
        ServerMsg::Answer { sdp } => sdp,
        other => panic!("an answer, not {other:?}"),
    };
    let (ufrag, pwd) = (sdp_attr(&answer, "a=ice-ufrag:"), sdp_attr(&answer, "a=ice-pwd:"));
    let username = format!("{ufrag}:{client_ufrag}");
    let unrouted = |h: &serde_json::Value| h["dropped"]["datagrams_unrouted"].as_u64().unwrap();
    let before = unrouted(&health(s.http, "test-api-key").await);
    let mut answered = 0;
    // Every socket kept to the end, so that no port is used twice.
    tolk::io::sys::raise_file_limit().unwrap();
    let mut sockets = Vec::new();
    for i in 0..5_000u32 {
        let from = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut buf = [0u8; 512];
        let n = str0m::ice::StunMessage::binding_request(
            &username,
            str0m::ice::TransId::new(),
            true,
            u64::from(i),
            1_000,
            true,
        )
        .to_bytes(Some(pwd.as_bytes()), &mut buf, tolk::core::wire::srtp::hmac_sha1)
        .unwrap();
        from.send_to(&buf[..n], s.udp).unwrap();
        if i < 20 {
            // The first few get their answer; whether later ones do is the point.
            from.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
            if from.recv(&mut buf).is_ok() {
                answered += 1;
            }
        }
        sockets.push(from);
        if i % 100 == 99 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let mut dropped = 0;
    for _ in 0..50 {
        dropped = unrouted(&health(s.http, "test-api-key").await) - before;
        if dropped >= 4_992 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("5,000 valid checks from 5,000 ports: {answered} of the first 20 answered, {dropped} dropped");
    assert_eq!(answered, 8, "checks from the first 8 addresses are answered");
    assert_eq!(dropped, 4_992, "every check from a ninth or later address is dropped");
    w.kept_every_frame("valid ICE checks from 5,000 ports").await;
}

/// Aborted WHIP and WHEP requests left peers that never left (ghost interpreters; a full
/// engine after 24,000). Peers that never connect are now reaped, whatever door they used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_aborted_whip_and_whep_posts_leave_no_peer() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let s = one_engine(|_| {}).await;
    let w = witness_in(&s).await;
    let (publish, _) = client_offer(false);
    let (play, _) = client_offer(true);
    let started = Instant::now();
    for i in 0..1_000 {
        let (path, role, sdp) =
            if i % 2 == 0 { ("/whip", Role::Floor, &publish) } else { ("/whep", Role::Listener, &play) };
        let t = s.app.mint("r", role, None, &format!("A{i}"), None).token;
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {t}\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        );
        let mut c = tokio::net::TcpStream::connect(s.http).await.unwrap();
        c.write_all(req.as_bytes()).await.unwrap();
        // Gone before the answer.
        drop(c);
        if i % 50 == 49 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let h = health(s.http, "test-api-key").await;
    println!(
        "{:.1} s after the first of 1,000 aborted POSTs: {} peers",
        started.elapsed().as_secs_f64(),
        h["peers"]
    );
    w.kept_every_frame("1,000 aborted WHIP and WHEP requests").await;
    let until = Instant::now() + Duration::from_secs(40);
    loop {
        let h = health(s.http, "test-api-key").await;
        if h["peers"] == 2 {
            println!(
                "{:.1} s after the first: only the witness's 2 peers left",
                started.elapsed().as_secs_f64()
            );
            break;
        }
        assert!(Instant::now() < until, "aborted requests left peers behind: {h}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let room = s.app.room("r".into()).await.unwrap().unwrap();
    assert_eq!(room.floor.sources, 0, "no ghost on the floor: {:?}", room.floor);
    // Nor in the layer around the engines: the routes of the peers it reaped go too.
    let forgotten = s.app.reconcile().await.unwrap();
    println!("the reaped peers' routes forgotten: {forgotten}");
    assert!(forgotten > 0 && forgotten <= 1_000, "{forgotten}");
    assert_eq!(s.app.reconcile().await.unwrap(), 0);
    w.kept_every_frame("the reaping of 1,000 aborted requests").await;
}

/// 1,100 idle connections made /health time out under systemd's default 1,024 open files.
/// The server now holds at most half its files in connections (closing more at once), reads
/// headers for 5 s and waits 5 s for a join.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_idle_connections_under_1024_files_leave_health_answering() {
    let _turn = ONE_AT_A_TIME.lock().await;
    tolk::io::sys::raise_file_limit().unwrap();
    let dir = fresh_dir("idle");
    let config = dir.join("tolk.toml");
    std::fs::write(
        &config,
        format!(
            "http = \"127.0.0.1:0\"\nudp = \"127.0.0.1:0\"\nsecret = \"a test secret of enough length\"\n\
             api_key = \"k\"\ndemo = false\ncaptions = false\nengines = 1\ndata_dir = {:?}\n",
            dir.join("data")
        ),
    )
    .unwrap();
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new("prlimit")
        .args(["--nofile=1024:1024", "--"])
        .arg(env!("CARGO_BIN_EXE_tolk"))
        .args(["serve", "--config"])
        .arg(&config)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("prlimit runs (util-linux)");
    let pid = child.id().unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let http: SocketAddr = loop {
        let line = lines.next_line().await.unwrap().expect("tolk prints its address");
        if let Some(rest) = line.strip_prefix("tolk is serving http://") {
            break rest.split_whitespace().next().unwrap().parse().unwrap();
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let (st, b) = http_at(http, "POST", "/api/rooms", Some("k"), "application/json", r#"{"id":"w"}"#).await;
    assert_eq!(st, 201, "{b}");
    let mut tokens = Vec::new();
    for role in ["floor", "listener"] {
        let body = format!(r#"{{"role":"{role}","name":"Witness"}}"#);
        let (st, b) =
            http_at(http, "POST", "/api/rooms/w/tokens", Some("k"), "application/json", &body).await;
        assert_eq!(st, 201, "{b}");
        tokens.push(
            serde_json::from_str::<serde_json::Value>(&b).unwrap()["token"].as_str().unwrap().to_string(),
        );
    }
    let w = witness(http, |role| tokens[usize::from(role == Role::Listener)].clone()).await;

    let started = Instant::now();
    let mut held = Vec::new();
    let mut websockets = 0;
    for _ in 0..1_000 {
        if let Ok(Ok((ws, _))) = tokio::time::timeout(
            Duration::from_secs(2),
            tokio_tungstenite::connect_async(format!("ws://{http}/ws")),
        )
        .await
        {
            websockets += 1;
            held.push(Box::new(ws) as Box<dyn std::any::Any + Send>);
        }
    }
    let mut half = 0;
    for _ in 0..1_000 {
        if let Ok(mut c) = tokio::net::TcpStream::connect(http).await {
            if c.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n").await.is_ok() {
                half += 1;
            }
            held.push(Box::new(c));
        }
    }
    let files = std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count();
    println!(
        "{:.1} s: {websockets} idle WebSockets opened, {half} half-sent requests sent; the server holds {files} files",
        started.elapsed().as_secs_f64()
    );
    assert!(files < 1_024, "the server stays under its file limit: {files}");

    // /health answers (at once, or once the idle connections' time is up), while every
    // idle connection is still held open by the client.
    let until = Instant::now() + Duration::from_secs(20);
    let answered = loop {
        let asked = Instant::now();
        if let Ok(Some(body)) = tokio::time::timeout(Duration::from_secs(3), probe(http)).await {
            assert!(body.contains("\"status\":\"ok\""), "{body}");
            break asked;
        }
        assert!(Instant::now() < until, "/health never answered");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    println!(
        "/health answered {:.1} s after the attack began",
        answered.duration_since(started).as_secs_f64()
    );
    w.kept_every_frame("2,000 idle connections").await;
    drop(held);
    child.kill().await.ok();
}

/// `GET /health` without credentials: the body of a 200 answer, or `None` for a refused or
/// closed connection.
async fn probe(http: SocketAddr) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let mut c = tokio::net::TcpStream::connect(http).await.ok()?;
    c.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.ok()?;
    let mut out = Vec::new();
    c.read_to_end(&mut out).await.ok()?;
    let text = String::from_utf8_lossy(&out).to_string();
    text.starts_with("HTTP/1.1 200")
        .then(|| text.split_once("\r\n\r\n").map_or(String::new(), |(_, b)| b.to_string()))
}

/// A tap sender that pauses for 1 s lost the floor to anyone who reached the tap port. Pinned
/// to its address, the tap refuses everyone else; unpinned, it tells the hosts who took it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tap_intruder_after_a_pause_is_refused_when_pinned_and_reported_when_not() {
    let _turn = ONE_AT_A_TIME.lock().await;
    for pinned in [true, false] {
        let s = one_engine(|c| {
            c.rtp_tap = Some(TapSpec {
                bind: "127.0.0.1:0".parse().unwrap(),
                room: "r".into(),
                payload_type: 111,
                ssrc: None,
                source: pinned.then(|| "127.0.0.1".parse().unwrap()),
            });
        })
        .await;
        let tap = s.tap.unwrap();
        let w = witness_in(&s).await;
        let mut host = Signal::connect(&s).await;
        host.join(&token(&s, Role::Host, None, "Hana"), None).await;
        let mut l = Signal::connect(&s).await;
        l.join(&token(&s, Role::Listener, None, "Lena"), None).await;
        let listener = media(&mut l, None, true).await;

        // The media server at 127.0.0.1 sends 440 Hz for 2 s, pauses; an intruder at
        // 127.0.0.2 sends 880 Hz for 2 s after 1.5 s of silence.
        let send = |from: &'static str, hz: f32, ssrc: u32| {
            std::thread::spawn(move || {
                let sock = UdpSocket::bind(from).unwrap();
                let mut enc =
                    opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Audio).unwrap();
                let mut next = Instant::now();
                for n in 0..100u32 {
                    let pcm: Vec<f32> = (0..960)
                        .map(|i| {
                            0.3 * (2.0 * std::f32::consts::PI * hz * (n * 960 + i) as f32 / 48_000.0).sin()
                        })
                        .collect();
                    let mut out = [0u8; 1275];
                    let len = enc.encode_float(&pcm, &mut out).unwrap();
                    let mut packet = Vec::new();
                    tolk::core::wire::rtp::write(&mut packet, 111, n as u16, n * 960, ssrc, &out[..len]);
                    sock.send_to(&packet, tap).unwrap();
                    next += Duration::from_millis(20);
                    std::thread::sleep(next.saturating_duration_since(Instant::now()));
                }
            })
        };
        send("127.0.0.1:0", 440.0, 1).join().unwrap();
        std::thread::sleep(Duration::from_millis(1_500));
        let heard_before = listener.frames().len();
        send("127.0.0.2:0", 880.0, 2).join().unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let frames = listener.frames();
        let pcm: Vec<f32> = frames[heard_before..].iter().flat_map(|f| f.pcm.iter().copied()).collect();
        // Nothing at all is heard while the floor is silent.
        let intruder = if pcm.is_empty() { f32::NEG_INFINITY } else { tone_db(&pcm, 880.0) };
        let h = health(s.http, "test-api-key").await;
        println!(
            "pinned {pinned}: the intruder's 880 Hz reached listeners at {intruder:.1} dBFS; tap_rejected {}, tap_sender_changes {}",
            h["dropped"]["tap_rejected"], h["tap_sender_changes"]
        );
        if pinned {
            assert!(intruder < -60.0, "a pinned tap refuses the intruder");
            assert!(h["dropped"]["tap_rejected"].as_u64().unwrap() >= 100, "{h}");
            assert_eq!(h["tap_sender_changes"], 1, "{h}");
        } else {
            assert!(intruder > -20.0, "an unpinned tap follows the new sender");
            assert_eq!(h["tap_sender_changes"], 2, "{h}");
            let notice = loop {
                let m = host.next_within(Duration::from_secs(5)).await;
                if matches!(&m, ServerMsg::Notice { from, .. } if from.starts_with("127.0.0.2:")) {
                    break m;
                }
            };
            println!("the host was told: {notice:?}");
        }
        w.kept_every_frame(if pinned { "a refused tap intruder" } else { "a tap sender change" }).await;
    }
}
