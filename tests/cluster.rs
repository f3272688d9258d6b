//! Three tolk nodes on one NATS server (with JetStream), over loopback: a floor (440 Hz) and an
//! es interpreter (880 Hz) on node A, listeners on B and C; a switch on an edge, a handover
//! pressed on another node, the origin killed, NATS restarted. Judged in the listeners' media
//! time (their RTP timestamps), never by wall-clock rates.

mod common;

use common::*;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};
use tolk::protocol::{ClientMsg, HandoverAction, ServerMsg};

const MS: u64 = 48;

/// A nats-server with JetStream on a free loopback port, its store in `dir` (kept across restarts).
struct Nats {
    child: tokio::process::Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl Nats {
    async fn start(dir: &Path, port: Option<u16>) -> Nats {
        let port = port.unwrap_or_else(|| {
            std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
        });
        let child = tokio::process::Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("nats-server runs (apt install nats-server; ./tolk.sh test does it)");
        let until = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(Instant::now() < until, "nats-server did not open port {port}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Nats { child, port, dir: dir.to_path_buf() }
    }

    async fn restart(mut self) -> Nats {
        self.child.kill().await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        Nats::start(&self.dir.clone(), Some(self.port)).await
    }
}

/// A tolk node of the cluster, named `node`.
async fn node(nats: u16, node: &str) -> (tokio::process::Child, SocketAddr) {
    let dir = fresh_dir(&format!("cluster-{node}"));
    let config = dir.join("tolk.toml");
    std::fs::write(
        &config,
        format!(
            r#"http = "127.0.0.1:0"
udp = "127.0.0.1:0"
engines = 1
media_nice = 0
secret = "a cluster secret of enough length"
api_key = "k"
demo = false
captions = false
data_dir = "{}"
[cluster]
nats = "nats://127.0.0.1:{nats}"
node = "{node}"
"#,
            dir.join("data").display()
        ),
    )
    .unwrap();
    spawn_tolk(&config, None).await
}

async fn mint(addr: SocketAddr, body: &str) -> String {
    let (st, b) = http_at(addr, "POST", "/api/rooms/r/tokens", Some("k"), "application/json", body).await;
    assert_eq!(st, 201, "{b}");
    serde_json::from_str::<serde_json::Value>(&b).unwrap()["token"].as_str().unwrap().to_string()
}

async fn join(addr: SocketAddr, token: &str) -> Signal {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let mut sig = Signal::connect_to(addr).await;
        match sig.join(token, None).await {
            ServerMsg::Joined { .. } => return sig,
            other => {
                assert!(Instant::now() < until, "join on {addr} failed: {other:?}");
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    }
}

/// Publishes `hz` with WHIP through `addr`, following the cluster's redirect to the room's node;
/// retried (as a publisher does) until a node takes it.
async fn whip(addr: SocketAddr, token: &str, hz: f32, within: Duration) -> (Media, SocketAddr) {
    let until = Instant::now() + within;
    loop {
        let (st, body) = raw_whip(addr, token).await;
        let target = match st {
            307 => body.parse::<SocketAddr>().ok(),
            400 => Some(addr), // taken here: the unusable offer was refused
            _ => None,
        };
        // The node named must take it too (a node just killed may still be named for a moment).
        if let Some(t) = target.filter(|t| *t == addr) {
            let m =
                media_at(Door::Whip { http: t, token }, Some(Sound::Tone(hz)), false, Receiver::default())
                    .await;
            return (m, t);
        }
        if let Some(t) = target {
            if raw_whip(t, token).await.0 == 400 {
                let m = media_at(
                    Door::Whip { http: t, token },
                    Some(Sound::Tone(hz)),
                    false,
                    Receiver::default(),
                )
                .await;
                return (m, t);
            }
        }
        assert!(Instant::now() < until, "no node took the WHIP publisher: {st} {body}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// A WHIP POST with a minimal (unusable) offer, to see where the cluster sends it: (status,
/// redirect target as host:port or the body).
async fn raw_whip(addr: SocketAddr, token: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else { return (0, "refused".into()) };
    let body = "v=0\r\n";
    let req = format!(
        "POST /whip HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    if s.write_all(req.as_bytes()).await.is_err() {
        return (0, "reset".into());
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let location = text
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("location: ").map(|_| l[10..].trim().to_string()));
    match (status, location) {
        (307, Some(l)) => (307, l.trim_start_matches("http://").trim_end_matches("/whip").to_string()),
        _ => (status, text),
    }
}

/// Level (dBFS) of `hz` over `ms` of media time from media time `from`.
fn level(m: &Media, from: u64, ms: u64, hz: f32) -> f32 {
    tone_db(&window(&m.frames(), from, from + ms * MS), hz)
}

/// Checks that frames in `[from, to)` of media time are one per 20 ms with consecutive sequence numbers.
fn continuous(m: &Media, from: u64, to: u64) -> usize {
    let frames: Vec<Frame> = m.frames().into_iter().filter(|f| f.rtp >= from && f.rtp < to).collect();
    for w in frames.windows(2) {
        assert_eq!(w[1].seq, w[0].seq + 1, "consecutive sequence numbers");
        assert_eq!(w[1].rtp - w[0].rtp, 960, "one frame per 20 ms of media time");
    }
    frames.len()
}

/// From media time `from` on: the longest gap between frames in media time (ms), and the
/// longest wait between their arrivals (ms of wall time, for the record only).
fn gaps(m: &Media, from: u64) -> (u64, u128) {
    let frames: Vec<Frame> = m.frames().into_iter().filter(|f| f.rtp >= from).collect();
    let media = frames.windows(2).map(|w| w[1].rtp - w[0].rtp).max().unwrap_or(0) / MS;
    let wall = frames.windows(2).map(|w| (w[1].at - w[0].at).as_millis()).max().unwrap_or(0);
    (media, wall)
}

fn last_rtp(m: &Media) -> u64 {
    m.frames().last().map_or(0, |f| f.rtp)
}

/// Waits (at most `secs` s) for the first frame after media time `after` where `hz` is the
/// loudest of the tones; returns its media time.
async fn heard(m: &Media, after: u64, hz: f32, secs: u64) -> u64 {
    let until = Instant::now() + Duration::from_secs(secs);
    loop {
        let found = m.frames().into_iter().filter(|f| f.rtp > after).find(|f| {
            let own = tone_db(&f.pcm, hz);
            own > -30.0
                && [440.0, 880.0, 990.0].iter().filter(|o| **o != hz).all(|o| tone_db(&f.pcm, *o) < own - 6.0)
        });
        if let Some(f) = found {
            return f.rtp;
        }
        assert!(Instant::now() < until, "{hz} Hz not heard after media time {after} within {secs} s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A nats-server, nodes a, b and c, and room `r` (`room`'s JSON) made on a.
async fn three_nodes(room: &str) -> (Nats, [(tokio::process::Child, SocketAddr); 3]) {
    let nats = Nats::start(&fresh_dir("nats"), None).await;
    let nodes = [node(nats.port, "a").await, node(nats.port, "b").await, node(nats.port, "c").await];
    let (st, body) = http_at(nodes[0].1, "POST", "/api/rooms", Some("k"), "application/json", room).await;
    assert_eq!(st, 201, "{body}");
    (nats, nodes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_room_plays_across_three_nodes_and_survives_its_node_and_nats() {
    // The room is made on A; B and C read it from the cluster.
    let room = r#"{"id":"r","floor_lang":"en","channels":[{"lang":"es","name":"Español"},{"lang":"fr","name":"Français"}]}"#;
    let (nats, [(mut a, a_addr), (_b, b_addr), (_c, c_addr)]) = three_nodes(room).await;
    for n in [b_addr, c_addr] {
        let until = Instant::now() + Duration::from_secs(5);
        while http_at(n, "GET", "/api/rooms/r", Some("k"), "", "").await.0 != 200 {
            assert!(Instant::now() < until, "node {n} does not hold room r");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let floor = mint(a_addr, r#"{"role":"floor","name":"Floor"}"#).await;
    let ana = mint(b_addr, r#"{"role":"interpreter","channel":"es","name":"Ana"}"#).await;
    let bea = mint(c_addr, r#"{"role":"interpreter","channel":"es","name":"Bea"}"#).await;
    let listener = mint(a_addr, r#"{"role":"listener","name":"Lena"}"#).await;

    // Floor and Ana on A: the room is placed on A, the node they came to.
    let (floor_media, at) = whip(a_addr, &floor, 440.0, Duration::from_secs(10)).await;
    assert_eq!(at, a_addr, "the room is mixed where its first source came");
    let mut ana_sig = join(a_addr, &ana).await;
    let _ana_media = media(&mut ana_sig, Some(880.0), true).await;
    ana_sig.wait_booth("Ana on air", |m| matches!(m, ServerMsg::Booth { live: true, .. })).await;

    // Listeners on B (floor) and C (floor, then es).
    let mut lb = join(b_addr, &listener).await;
    let on_b = media(&mut lb, None, true).await;
    let mut lc = join(c_addr, &listener).await;
    let on_c = media(&mut lc, None, true).await;
    let mut la = join(a_addr, &listener).await;
    let on_a = media(&mut la, None, true).await;
    on_b.wait_frames(100, 15).await;
    on_c.wait_frames(100, 15).await;
    on_a.wait_frames(100, 15).await;
    let from = last_rtp(&on_b);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let n = continuous(&on_b, from, from + 1500 * MS);
    assert!(n >= 70, "{n} frames in 1.5 s of media time on B");
    let floor_b = level(&on_b, from, 1000, 440.0);
    println!("B hears the floor: 440 Hz at {floor_b:.1} dBFS, {n} consecutive frames");
    // The same frames on the origin and on an edge: what the edge adds.
    let at_a: std::collections::HashMap<u64, Instant> = on_a.frames().iter().map(|f| (f.rtp, f.at)).collect();
    let mut added: Vec<f64> = on_b
        .frames()
        .iter()
        .filter_map(|f| at_a.get(&f.rtp).map(|a| f.at.duration_since(*a).as_secs_f64() * 1000.0))
        .collect();
    added.sort_by(|x, y| x.partial_cmp(y).unwrap());
    assert!(added.len() > 50, "{} frames seen on both", added.len());
    let p50 = added[added.len() / 2];
    println!(
        "an edge adds {p50:.2} ms (p50), {:.2} ms (p90) over {} frames",
        added[added.len() * 9 / 10],
        added.len()
    );
    assert!(floor_b > -20.0);
    let from_c = last_rtp(&on_c);
    // C's session gets the room's state from A: Ana live on es, every node's listeners counted.
    lc.drain(1500).await;
    let state = lc.seen.iter().rev().find_map(|m| match m {
        ServerMsg::State { floor, channels, .. } => Some((floor.listeners, channels.clone())),
        _ => None,
    });
    let (listeners, channels) = state.expect("the room's state reaches a session on an edge");
    let es = channels.iter().find(|c| c.lang == "es").unwrap();
    println!("C's state: es live {:?}, {listeners} floor listeners", es.live);
    assert_eq!(es.live.as_deref(), Some("Ana"));
    assert_eq!(listeners, 3, "the floor's listeners on A, B and C");
    assert!(level(&on_c, from_c, 400, 440.0) > -20.0, "C hears the floor");

    // C switches to es: 880 Hz within 100 ms of media time.
    let before = last_rtp(&on_c);
    lc.select(Some("es")).await;
    let switched = heard(&on_c, before, 880.0, 5).await;
    let took = (switched - before) / MS;
    println!("C switched to es: 880 Hz {took} ms of media time after its last floor frame");
    assert!(took <= 100, "switch took {took} ms of media time");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let es_c = level(&on_c, switched + 100 * MS, 1000, 880.0);
    let n = continuous(&on_c, before, switched + 1100 * MS);
    println!("C on es: 880 Hz at {es_c:.1} dBFS; {n} consecutive frames across the switch");
    assert!(es_c > -20.0);

    // Bea, on B, is carried to A; she takes over and C hears her.
    let mut bea_sig = join(b_addr, &bea).await;
    let _bea_media = media(&mut bea_sig, Some(990.0), true).await;
    bea_sig
        .wait_booth("Bea in the booth", |m| matches!(m, ServerMsg::Booth { members, .. } if members.len() == 2 && members.iter().all(|m| m.publishing)))
        .await;
    let before = last_rtp(&on_c);
    bea_sig.send(&ClientMsg::Handover { action: HandoverAction::Take, channel: None }).await;
    bea_sig.wait_booth("Bea live", |m| matches!(m, ServerMsg::Booth { live: true, .. })).await;
    let bea_heard = heard(&on_c, before, 990.0, 5).await;
    println!("handover pressed on B: C hears Bea {} ms of media time later", (bea_heard - before) / MS);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(level(&on_c, bea_heard + 100 * MS, 1000, 990.0) > -20.0, "Bea on air on C");
    assert!(level(&on_c, bea_heard + 100 * MS, 1000, 880.0) < -40.0, "Ana off air on C");
    drop(bea_sig);
    drop(ana_sig);

    // A dies. The floor's publisher posts again (as it does when its connection dies); the
    // room is taken over by a surviving node and the listeners hear it without joining again.
    let (b_last, c_last) = (last_rtp(&on_b), last_rtp(&on_c));
    a.kill().await.unwrap();
    drop(floor_media);
    let killed = Instant::now();
    let (floor_media, at) = whip(b_addr, &floor, 440.0, Duration::from_secs(15)).await;
    println!("after the kill: the floor publishes on {at} after {} ms", killed.elapsed().as_millis());
    assert!(at == b_addr || at == c_addr);
    let back_b = heard(&on_b, b_last, 440.0, 15).await;
    let back_c = heard(&on_c, c_last, 440.0, 15).await;
    let (gap_b, gap_c) = ((back_b - b_last) / MS, (back_c - c_last) / MS);
    // When it came back, after the kill (the media time a listener sees across the takeover
    // depends on which node took the room: its clock ran on, or it resumed from the last frame).
    let since_kill = |m: &Media, rtp: u64| {
        m.frames().iter().find(|f| f.rtp == rtp).map_or(u128::MAX, |f| (f.at - killed).as_millis())
    };
    let (wall_b, wall_c) = (since_kill(&on_b, back_b), since_kill(&on_c, back_c));
    println!(
        "origin killed: B hears the floor again {wall_b} ms after the kill ({gap_b} ms of media time), C {wall_c} ms ({gap_c} ms)"
    );
    assert!(wall_b <= 10_000 && wall_c <= 10_000, "the room came back after {wall_b} / {wall_c} ms");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let n = continuous(&on_c, back_c + 100 * MS, back_c + 900 * MS);
    assert!(n >= 35, "C plays on: {n} frames");

    // NATS restarts: the nodes reconnect and the room plays on for both listeners.
    let (b_last, c_last) = (last_rtp(&on_b), last_rtp(&on_c));
    let nats = nats.restart().await;
    let restarted = Instant::now();
    let again_b = heard(&on_b, b_last, 440.0, 15).await;
    // The listener on the room's new node hears it on; the one on the edge hears nothing while
    // NATS is down, then the floor again, with no join.
    let until = Instant::now() + Duration::from_secs(20);
    let again_c = loop {
        let frames = on_c.frames();
        if let Some(f) =
            frames.iter().find(|f| f.at > restarted && f.rtp > c_last && tone_db(&f.pcm, 440.0) > -30.0)
        {
            break f.rtp;
        }
        assert!(Instant::now() < until, "C does not hear the floor after NATS restarted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (gap_b, stall_b) = gaps(&on_b, b_last);
    let (gap_c, stall_c) = gaps(&on_c, c_last);
    let (role_b, role_c) = if at == b_addr { ("origin", "edge") } else { ("edge", "origin") };
    println!(
        "NATS restarted: B ({role_b}) longest gap {gap_b} ms of media time, arrivals {stall_b} ms apart at most; \
         C ({role_c}) {gap_c} ms of media time, arrivals {stall_c} ms apart at most; floor again on B at +{} ms, C at +{} ms",
        (again_b - b_last) / MS,
        (again_c - c_last) / MS
    );
    assert!(gap_b < 15_000 && gap_c < 15_000, "gaps of {gap_b} / {gap_c} ms");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(level(&on_c, again_c, 600, 440.0) > -20.0, "C hears the floor after NATS restarted");
    drop(floor_media);
    drop(nats);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_are_sent_to_a_less_loaded_node() {
    let (_nats, [(_a, a_addr), (_b, b_addr), (_c, c_addr)]) =
        three_nodes(r#"{"id":"r","channels":[{"lang":"es"}]}"#).await;
    let listener = mint(a_addr, r#"{"role":"listener","name":"L"}"#).await;

    // No node is busier than another: the page is served where it was asked for.
    let (st, _) = http_at(a_addr, "GET", "/listen.html", None, "", "").await;
    assert_eq!(st, 200);
    // Fifteen sessions on A: a new listener goes to B or C, by page and by WHEP.
    let mut held = Vec::new();
    for _ in 0..15 {
        held.push(join(a_addr, &listener).await);
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (st, head) = raw(a_addr, "GET /listen.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    if st != 307 {
        let (_, nodes) = http_at(a_addr, "GET", "/api/node", None, "", "").await;
        panic!("A's page is not sent elsewhere ({st}); the nodes as A sees them: {nodes}");
    }
    let to = location(&head);
    println!("a listener's page on A (15 sessions) is sent to {to}");
    assert!(
        to == format!("http://{b_addr}/listen.html") || to == format!("http://{c_addr}/listen.html"),
        "{to}"
    );
    let req = format!(
        "POST /whep HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {listener}\r\nContent-Type: application/sdp\r\nContent-Length: 5\r\nConnection: close\r\n\r\nv=0\r\n"
    );
    let (st, head) = raw(a_addr, &req).await;
    assert_eq!(st, 307, "{head}");
    assert!(location(&head).ends_with("/whep") && !location(&head).contains(&a_addr.to_string()));
    // The node a platform would send a listener to, and every live node.
    let (st, body) = http_at(a_addr, "GET", "/api/node", None, "", "").await;
    assert_eq!(st, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["nodes"].as_array().unwrap().len(), 3, "{body}");
    assert_ne!(v["node"]["node"], "a", "{body}");
    // The operator's view of a node: its name, NATS reached, the live nodes, the rooms it mixes.
    let (_, body) = http_at(a_addr, "GET", "/health", Some("k"), "", "").await;
    let h: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(h["cluster"]["node"], "a", "{body}");
    assert_eq!(h["cluster"]["connected"], true, "{body}");
    assert_eq!(h["cluster"]["nodes"].as_array().unwrap().len(), 3, "{body}");
    assert_eq!(h["cluster"]["mixed_here"], serde_json::json!(["r"]), "{body}");
    // B, as idle as C, serves its own listeners.
    let (st, _) = http_at(b_addr, "GET", "/listen.html", None, "", "").await;
    assert_eq!(st, 200);
    drop(held);

    // A channel added on B is on C too.
    let (st, body) =
        http_at(b_addr, "POST", "/api/rooms/r/channels", Some("k"), "application/json", r#"{"lang":"de"}"#)
            .await;
    assert_eq!(st, 201, "{body}");
    let until = Instant::now() + Duration::from_secs(5);
    while !http_at(c_addr, "GET", "/api/rooms", Some("k"), "", "").await.1.contains("\"de\"") {
        assert!(Instant::now() < until, "the channel added on B did not reach C");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The room's live state is asked of the node that mixes it (A, where its listeners came first).
    let (st, head) = raw(
        c_addr,
        "GET /api/rooms/r HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(st, 307, "{head}");
    assert_eq!(location(&head), format!("http://{a_addr}/api/rooms/r"));
    let (st, body) = http_at(a_addr, "GET", "/api/rooms/r", Some("k"), "", "").await;
    assert_eq!(st, 200, "{body}");
    assert!(body.contains("\"de\""), "{body}");
    // A link revoked on A ends its session on C and joins nowhere.
    let revoked = mint(c_addr, r#"{"role":"listener","name":"Gone"}"#).await;
    let mut on_c = join(c_addr, &revoked).await;
    let body = format!(r#"{{"link":"{revoked}"}}"#);
    let (st, b) = http_at(a_addr, "POST", "/api/rooms/r/revoke", Some("k"), "application/json", &body).await;
    assert_eq!(st, 200, "{b}");
    loop {
        match on_c.next_within(Duration::from_secs(5)).await {
            ServerMsg::Error { code, .. } => break assert_eq!(code, tolk::protocol::ErrorCode::Revoked),
            ServerMsg::State { .. } => continue,
            other => panic!("the session on C was not ended: {other:?}"),
        }
    }
    let mut again = Signal::connect_to(b_addr).await;
    match again.join(&revoked, None).await {
        ServerMsg::Error { code, .. } => assert_eq!(code, tolk::protocol::ErrorCode::Revoked),
        other => panic!("a revoked link joined on B: {other:?}"),
    }

    // Deleted on A and made again there: the room is mixed afresh (not left a mirror on the
    // node that mixed it before) and plays to a listener on A and one on C.
    drop((on_c, again));
    let (st, b) = http_at(a_addr, "DELETE", "/api/rooms/r", Some("k"), "", "").await;
    assert_eq!(st, 204, "{b}");
    let room = r#"{"id":"r","channels":[{"lang":"es"}]}"#;
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let (st, b) = http_at(a_addr, "POST", "/api/rooms", Some("k"), "application/json", room).await;
        if st == 201 {
            break;
        }
        assert!(Instant::now() < until, "room r not made again: {st} {b}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let floor = mint(a_addr, r#"{"role":"floor","name":"Floor"}"#).await;
    let listener = mint(a_addr, r#"{"role":"listener","name":"L"}"#).await;
    let (_floor, at) = whip(a_addr, &floor, 440.0, Duration::from_secs(10)).await;
    let mut la = join(a_addr, &listener).await;
    let on_a = media(&mut la, None, true).await;
    let mut lc = join(c_addr, &listener).await;
    let on_c = media(&mut lc, None, true).await;
    let (ta, tc) = (heard(&on_a, 0, 440.0, 10).await, heard(&on_c, 0, 440.0, 10).await);
    let on = if at == a_addr { "A, which mixed it before" } else { "another node" };
    println!("room r made again, mixed on {on}: the floor heard on A and on C (media time {ta}, {tc})");
}

async fn raw(addr: SocketAddr, req: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    let text = String::from_utf8_lossy(&out).to_string();
    (text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0), text)
}

fn location(head: &str) -> String {
    head.lines()
        .find(|l| l.to_ascii_lowercase().starts_with("location:"))
        .map(|l| l[9..].trim().to_string())
        .unwrap_or_default()
}
