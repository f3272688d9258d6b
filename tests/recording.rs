//! Recording: each channel and the floor as its own Ogg Opus file (ffprobe and ffmpeg read
//! them; tones analysed in what they decode), the interpreters' consent, kill -9 mid-take, who
//! may record and download, and a full disk. Every timing is the room's media time.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tolk::protocol::{ClientMsg, ErrorCode, NoticeKind, Role, ServerMsg};

const KEY: &str = "test-api-key";

/// ffprobe's stream codec, sample rate and the file's duration (s).
fn probe(path: &Path) -> (String, String, f64) {
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,sample_rate:format=duration",
            "-of",
            "json",
        ])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    assert!(out.status.success(), "ffprobe {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = &v["streams"][0];
    (
        s["codec_name"].as_str().unwrap().to_string(),
        s["sample_rate"].as_str().unwrap().to_string(),
        v["format"]["duration"].as_str().unwrap().parse().unwrap(),
    )
}

/// The file decoded by ffmpeg to 48 kHz mono samples; panics if ffmpeg reports an error.
fn decode(path: &Path) -> Vec<f32> {
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-f", "f32le", "-ac", "1", "-ar", "48000", "-"])
        .output()
        .expect("ffmpeg runs");
    assert!(out.status.success(), "ffmpeg {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    out.stdout.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

/// Samples of `pcm` between `from` and `to` ms of the file.
fn span(pcm: &[f32], from: u64, to: u64) -> &[f32] {
    let (a, b) = ((from * 48) as usize, (to * 48) as usize);
    &pcm[a.min(pcm.len())..b.min(pcm.len())]
}

/// The one take of room `r` in `root`: its directory and `take.json`.
fn only_take(root: &Path) -> (PathBuf, serde_json::Value) {
    let dirs: Vec<PathBuf> = std::fs::read_dir(root.join("r")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(dirs.len(), 1, "one take: {dirs:?}");
    let info = serde_json::from_slice(&std::fs::read(dirs[0].join("take.json")).unwrap()).unwrap();
    (dirs[0].clone(), info)
}

/// A floor at 440 Hz and an es interpreter at 880 Hz, live, and a host.
struct Room {
    s: tolk::io::Running,
    host: Signal,
    es: Signal,
    _floor: Media,
    voice: Media,
    _floor_sig: Signal,
}

async fn room(recordings: &Path) -> Room {
    let dir = recordings.to_path_buf();
    let s = server_with(move |c| c.recordings_dir = Some(dir)).await;
    let mut floor_sig = Signal::connect(&s).await;
    floor_sig.join(&token(&s, Role::Floor, None, "Floor"), None).await;
    let floor = media(&mut floor_sig, Some(440.0), false).await;
    let mut es = Signal::connect(&s).await;
    es.join(&token(&s, Role::Interpreter, Some("es"), "Ana"), None).await;
    let voice = media(&mut es, Some(880.0), true).await;
    es.wait_booth("the interpreter goes on air", |b| matches!(b, ServerMsg::Booth { live: true, .. })).await;
    let mut host = Signal::connect(&s).await;
    host.join(&token(&s, Role::Host, None, "Host"), None).await;
    Room { s, host, es, _floor: floor, voice, _floor_sig: floor_sig }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_channel_and_the_floor_become_ogg_opus_files_of_the_right_length_and_tone() {
    let root = fresh_dir("recordings");
    let mut r = room(&root).await;
    r.es.send(&ClientMsg::Consent { record: true }).await;
    r.es.wait_booth(
        "consent is shown",
        |b| matches!(b, ServerMsg::Booth { members, .. } if members.iter().all(|m| m.consent)),
    )
    .await;
    assert_eq!(r.host.ask_opt(ClientMsg::Record { on: true }).await, None);
    let b =
        r.es.wait_booth("the console says the voice is recorded", |b| {
            matches!(b, ServerMsg::Booth { recording: true, recorded: true, .. })
        })
        .await;
    let ServerMsg::Booth { media_time: began, .. } = b else { unreachable!() };
    // Ten seconds of the room's media time, as the frames the console hears are stamped.
    while r.voice.frames().last().is_none_or(|f| f.rtp < began + 10 * 48_000) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A take being written is listed as running and cannot be deleted.
    let (st, list) = http(&r.s, "GET", "/api/rooms/r/recordings", Some(KEY), None).await;
    assert_eq!(st, 200);
    let running: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(running["takes"][0]["running"], true, "{list}");
    let take = running["takes"][0]["take"].as_str().unwrap().to_string();
    let (st, b) = http(&r.s, "DELETE", &format!("/api/rooms/r/recordings/{take}"), Some(KEY), None).await;
    assert_eq!(st, 409, "{b}");
    assert_eq!(r.host.ask_opt(ClientMsg::Record { on: false }).await, None);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let (dir, info) = only_take(&root);
    let start = info["media_start_ms"].as_u64().unwrap();
    let end = info["media_end_ms"].as_u64().expect("a stopped take has its end");
    let expected = (end - start) as f64 / 1000.0;
    assert!(expected >= 10.0, "{expected} s recorded");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["en.opus", "es.opus", "floor.opus", "fr.opus", "take.json"]);
    for (file, tone, other) in [("floor.opus", 440.0, 880.0), ("es.opus", 880.0, 440.0)] {
        let path = dir.join(file);
        let (codec, rate, duration) = probe(&path);
        println!("{file}: {codec}, {rate} Hz, {duration:.3} s (media time {expected:.3} s)");
        assert_eq!((codec.as_str(), rate.as_str()), ("opus", "48000"));
        assert!((duration - expected).abs() <= 0.040, "{file}: {duration} s, expected {expected} s");
        let pcm = decode(&path);
        let middle = span(&pcm, 1000, (end - start) - 1000);
        let (want, not) = (tone_db(middle, tone), tone_db(middle, other));
        println!("{file}: {tone} Hz at {want:.1} dBFS, {other} Hz at {not:.1} dBFS");
        assert!(want > -20.0, "{file}: {tone} Hz at {want} dBFS");
        assert!(want - not > 10.0, "{file}: {tone} Hz {want} dBFS against {other} Hz {not} dBFS");
    }
    // A channel without an interpreter records the floor as its listeners hear it.
    let fr = decode(&dir.join("fr.opus"));
    assert!(tone_db(span(&fr, 1000, 9000), 440.0) > -20.0);

    // The API lists the take; the file downloads whole and by range, as players seek.
    let (st, list) = http(&r.s, "GET", "/api/rooms/r/recordings", Some(KEY), None).await;
    assert_eq!(st, 200, "{list}");
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list["takes"][0]["take"], take.as_str());
    assert_eq!(list["takes"][0]["running"], false);
    assert_eq!(list["takes"][0]["files"][0]["name"], "floor.opus");
    let size = std::fs::metadata(dir.join("es.opus")).unwrap().len();
    let path = format!("/api/rooms/r/recordings/{take}/es.opus");
    let (st, head, body) = get(r.s.http, &path, Some(KEY), None).await;
    assert_eq!((st, body.len() as u64), (200, size), "{head}");
    assert!(head.to_ascii_lowercase().contains("content-type: audio/ogg"), "{head}");
    let (st, head, part) = get(r.s.http, &path, Some(KEY), Some("bytes=100-199")).await;
    assert_eq!((st, part.len()), (206, 100), "{head}");
    assert_eq!(part, body[100..200]);
    let (st, _, _) =
        get(r.s.http, &format!("/api/rooms/r/recordings/{take}/../../secret"), Some(KEY), None).await;
    assert!(st == 404 || st == 400, "{st}");
    // The es transcript on the file's timeline: a caption at media time start + 1.5 s is at 1.5 s.
    let line = |text: &str, at: u64| tolk::store::Line {
        source: "es".into(),
        lang: Some("es".into()),
        start_ms: at,
        end_ms: at + 900,
        text: text.into(),
    };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    r.s.app.store().append("r", &line("dentro", start + 1500), now).unwrap();
    r.s.app.store().append("r", &line("después", end + 5000), now).unwrap();
    // A line of another run of the server (long ago) at the same media time is not this take's.
    r.s.app.store().append("r", &line("antes", start + 1500), now - 86_400).unwrap();
    let (st, vtt) =
        http(&r.s, "GET", &format!("/api/rooms/r/recordings/{take}/es.vtt"), Some(KEY), None).await;
    assert_eq!(st, 200);
    assert!(vtt.contains("00:00:01.500 --> 00:00:02.400\ndentro"), "{vtt}");
    assert!(!vtt.contains("después"), "a caption after the take is not in it: {vtt}");
    assert!(!vtt.contains("antes"), "nor one of another run: {vtt}");
    // Deleting the take removes its files.
    let (st, _) = http(&r.s, "DELETE", &format!("/api/rooms/r/recordings/{take}"), Some(KEY), None).await;
    assert_eq!(st, 204);
    assert!(!dir.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interpreter_who_declines_is_recorded_as_the_floor_for_that_stretch() {
    let root = fresh_dir("recordings");
    let mut r = room(&root).await;
    r.es.send(&ClientMsg::Consent { record: false }).await;
    assert_eq!(r.host.ask_opt(ClientMsg::Record { on: true }).await, None);
    r.es.wait_booth("recording, the voice not recorded", |b| {
        matches!(b, ServerMsg::Booth { recording: true, recorded: false, .. })
    })
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    r.es.send(&ClientMsg::Consent { record: true }).await;
    let ServerMsg::Booth { media_time: agreed, .. } =
        r.es.wait_booth("recorded once agreed", |b| matches!(b, ServerMsg::Booth { recorded: true, .. }))
            .await
    else {
        unreachable!()
    };
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(r.host.ask_opt(ClientMsg::Record { on: false }).await, None);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let (dir, info) = only_take(&root);
    let start = info["media_start_ms"].as_u64().unwrap();
    let end = info["media_end_ms"].as_u64().unwrap();
    // Where the interpreter agreed, on the file's timeline.
    let at = agreed / 48 - start;
    let es = decode(&dir.join("es.opus"));
    let floor = decode(&dir.join("floor.opus"));
    let before = span(&es, 500, at - 500);
    let after = span(&es, at + 500, end - start - 500);
    let (b440, b880) = (tone_db(before, 440.0), tone_db(before, 880.0));
    let (a440, a880) = (tone_db(after, 440.0), tone_db(after, 880.0));
    println!(
        "declined for {} ms: 440 Hz {b440:.1}, 880 Hz {b880:.1} dBFS; agreed: 440 Hz {a440:.1}, 880 Hz {a880:.1} dBFS",
        at
    );
    assert!(b440 > -20.0 && b880 < -45.0, "while declined the es file carries the floor only");
    assert!(a880 > -20.0, "once agreed the voice is recorded");
    // The timeline is kept: the es file is as long as the floor's.
    assert_eq!(es.len(), floor.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_hosts_record_list_and_download() {
    let root = fresh_dir("recordings");
    let mut r = room(&root).await;
    let body = Some(r#"{"on":true}"#);
    for role in [Role::Listener, Role::Interpreter, Role::Floor] {
        let t = token(&r.s, role, (role == Role::Interpreter).then_some("es"), "X");
        let (st, b) = http(&r.s, "POST", "/api/rooms/r/recording", Some(&t), body).await;
        assert_eq!(st, 403, "{role:?}: {b}");
        let (st, _) = http(&r.s, "GET", "/api/rooms/r/recordings", Some(&t), None).await;
        assert_eq!(st, 403, "{role:?}");
        let (st, _, _) = get(r.s.http, "/api/rooms/r/recordings/x/floor.opus", Some(&t), None).await;
        assert_eq!(st, 403, "{role:?}");
    }
    match r.es.ask(ClientMsg::Record { on: true }).await {
        ServerMsg::Error { code: ErrorCode::Forbidden, .. } => {}
        other => panic!("an interpreter started a recording: {other:?}"),
    }
    let mut l = Signal::connect(&r.s).await;
    l.join(&token(&r.s, Role::Listener, None, "L"), None).await;
    assert!(matches!(
        l.ask(ClientMsg::Record { on: true }).await,
        ServerMsg::Error { code: ErrorCode::Forbidden, .. }
    ));
    assert!(matches!(
        l.ask(ClientMsg::Consent { record: true }).await,
        ServerMsg::Error { code: ErrorCode::Forbidden, .. }
    ));
    // A host token of the room does all of it; the list's signed links download without it.
    let host = token(&r.s, Role::Host, None, "H");
    let (st, b) = http(&r.s, "POST", "/api/rooms/r/recording", Some(&host), body).await;
    assert_eq!(st, 200, "{b}");
    // The listener's page is told.
    while !matches!(l.next_any().await, ServerMsg::State { recording: true, .. }) {}
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (st, list) = http(&r.s, "GET", "/api/rooms/r/recordings", Some(&host), None).await;
    assert_eq!(st, 200);
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    let take = list["takes"][0]["take"].as_str().unwrap();
    let (st, _, bytes) =
        get(r.s.http, &format!("/api/rooms/r/recordings/{take}/floor.opus"), Some(&host), None).await;
    assert_eq!(st, 200);
    assert_eq!(&bytes[..4], b"OggS");
    let signed = list["takes"][0]["files"][0]["url"].as_str().unwrap().to_string();
    assert!(!signed.contains(&host), "no token in a link");
    let (st, _, bytes) = get(r.s.http, &signed, None, None).await;
    assert_eq!((st, &bytes[..4]), (200, &b"OggS"[..]), "a signed link needs no credentials");
    let forged = signed.replace("floor.opus", "es.opus");
    let (st, _, _) = get(r.s.http, &forged, None, None).await;
    assert_eq!(st, 401, "a signature is for one file");
    let late = signed.replace("exp=", "exp=1");
    let (st, _, _) = get(r.s.http, &late, None, None).await;
    assert_eq!(st, 401, "nor for another expiry");
    let (st, _, _) =
        get(r.s.http, &format!("/api/rooms/r/recordings/{take}/floor.opus?token={host}"), None, None).await;
    assert_eq!(st, 400, "a token is never taken from a URL");
    // Turned off for the server: refused, with the reason.
    let dir = fresh_dir("recordings");
    let off = server_with(move |c| {
        c.recording = false;
        c.recordings_dir = Some(dir);
    })
    .await;
    let (st, b) = http(&off, "POST", "/api/rooms/r/recording", Some(KEY), body).await;
    assert_eq!(st, 503, "{b}");
    assert!(b.contains("turned off"), "{b}");
    let _ = &mut r.host;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_kill_9_the_files_play_to_the_last_second_and_a_restart_records_in_new_files() {
    let data = fresh_dir("recording-crash");
    let config = data.join("tolk.toml");
    std::fs::write(
        &config,
        format!(
            "http = \"127.0.0.1:0\"\nudp = \"127.0.0.1:0\"\nsecret = \"a test secret of enough length\"\napi_key = \"k\"\n\
             captions = false\ndemo_channels = [\"es\"]\ndata_dir = {:?}\n",
            data.join("data")
        ),
    )
    .unwrap();
    let (mut child, addr) = spawn_tolk(&config, None).await;
    let mint = |role: &'static str| mint_demo(addr, role);
    let mut floor = Signal::connect_to(addr).await;
    floor.join(&mint("floor").await, None).await;
    let _speaker = media(&mut floor, Some(440.0), false).await;
    let mut l = Signal::connect_to(addr).await;
    l.join(&mint("listener").await, None).await;
    let listener = media(&mut l, None, true).await;
    let (st, b) =
        http_at(addr, "POST", "/api/rooms/demo/recording", Some("k"), "application/json", r#"{"on":true}"#)
            .await;
    assert_eq!(st, 200, "{b}");
    listener.wait_frames(50, 10).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let heard = listener.frames().last().unwrap().rtp; // the room's media clock, 48 kHz
    child.kill().await.unwrap(); // SIGKILL: no shutdown, no flush

    let takes = data.join("data/recordings/demo");
    let dirs: Vec<PathBuf> = std::fs::read_dir(&takes).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(dirs.len(), 1);
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dirs[0].join("take.json")).unwrap()).unwrap();
    let recorded_ms = heard / 48 - info["media_start_ms"].as_u64().unwrap();
    for file in ["floor.opus", "es.opus"] {
        let pcm = decode(&dirs[0].join(file));
        let ms = pcm.len() as u64 / 48;
        println!("{file} after kill -9: {ms} ms decoded of about {recorded_ms} ms recorded");
        assert!(ms + 1100 >= recorded_ms, "{file}: only {ms} ms of {recorded_ms} ms");
        assert!(tone_db(span(&pcm, 500, ms - 100), 440.0) > -20.0, "{file} plays the floor");
    }

    // The restart goes on recording the room, in a take of its own.
    let (_child, addr) = spawn_tolk(&config, None).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (st, list) = http_at(addr, "GET", "/api/rooms/demo/recordings", Some("k"), "", "").await;
    assert_eq!(st, 200, "{list}");
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    let takes = list["takes"].as_array().unwrap();
    assert_eq!(takes.len(), 2, "{list}");
    assert!(takes[0]["stopped_at"].is_null() && takes[1]["stopped_at"].is_null());
    assert_eq!(
        (&takes[0]["running"], &takes[1]["running"]),
        (&false.into(), &true.into()),
        "the cut-off take is not running: {list}"
    );
    assert!(takes[1]["files"][0]["bytes"].as_u64().unwrap() > 0, "{list}");
    let (_, room) = http_at(addr, "GET", "/api/rooms/demo", Some("k"), "", "").await;
    assert!(room.contains(r#""recording":true"#), "{room}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_the_recording_with_a_message_and_the_room_plays_on() {
    let data = fresh_dir("recording-full");
    let recordings = data.join("recordings");
    std::fs::create_dir_all(&recordings).unwrap();
    let config = data.join("tolk.toml");
    std::fs::write(
        &config,
        format!(
            "http = \"127.0.0.1:0\"\nudp = \"127.0.0.1:0\"\nsecret = \"a test secret of enough length\"\napi_key = \"k\"\n\
             captions = false\ndemo_channels = [\"es\"]\ndata_dir = {:?}\nrecordings_dir = {:?}\n",
            data.join("data"),
            recordings
        ),
    )
    .unwrap();
    // The recordings on a 4 MiB tmpfs of the server's own (a mount namespace).
    let (_child, addr) = spawn_tolk(&config, Some(&recordings)).await;
    let mint = |role: &'static str| mint_demo(addr, role);
    let mut floor = Signal::connect_to(addr).await;
    floor.join(&mint("floor").await, None).await;
    let _speaker = media(&mut floor, Some(440.0), false).await;
    let mut l = Signal::connect_to(addr).await;
    l.join(&mint("listener").await, None).await;
    let listener = media(&mut l, None, true).await;
    let mut host = Signal::connect_to(addr).await;
    host.join(&mint("host").await, None).await;
    assert_eq!(host.ask_opt(ClientMsg::Record { on: true }).await, None);
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Another process fills the disk.
    let pid = _child.id().unwrap();
    let mounted = PathBuf::from(format!("/proc/{pid}/root")).join(recordings.strip_prefix("/").unwrap());
    let mut filler = std::fs::File::create(mounted.join("filler")).unwrap();
    let chunk = vec![7u8; 64 * 1024];
    loop {
        use std::io::Write;
        if filler.write_all(&chunk).and_then(|()| filler.sync_all()).is_err() {
            break;
        }
    }
    let filled = listener.frames().last().unwrap().rtp;
    let notice = loop {
        match host.next_within(Duration::from_secs(10)).await {
            ServerMsg::Notice { kind: NoticeKind::RecordingStopped, from, .. } => break from,
            _ => continue,
        }
    };
    println!("host told: recording stopped: {notice}");
    assert_eq!(notice, "disk_full");
    // The room plays on: two more seconds of media, every frame there.
    let n = listener.frames().len();
    listener.wait_frames(n + 100, 10).await;
    let frames: Vec<Frame> = listener.frames().into_iter().filter(|f| f.rtp >= filled).collect();
    for w in frames.windows(2) {
        assert_eq!(w[1].seq, w[0].seq + 1, "a frame lost after the disk filled");
        assert_eq!(w[1].rtp - w[0].rtp, FRAME as u64, "a gap in media time after the disk filled");
    }
    assert!(tone_db(&frames.iter().flat_map(|f| f.pcm.clone()).collect::<Vec<_>>(), 440.0) > -20.0);
    // Starting again is refused while the disk is full.
    match host.ask(ClientMsg::Record { on: true }).await {
        ServerMsg::Error { code: ErrorCode::Unavailable, message } => {
            assert!(message.contains("disk is full"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    let (_, room) = http_at(addr, "GET", "/api/rooms/demo", Some("k"), "", "").await;
    assert!(room.contains(r#""recording":false"#), "{room}");
}

/// A GET, optionally with a bearer and a Range header: (status, head, body bytes).
async fn get(
    addr: std::net::SocketAddr,
    path: &str,
    auth: Option<&str>,
    range: Option<&str>,
) -> (u16, String, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let auth = auth.map(|a| format!("Authorization: Bearer {a}\r\n")).unwrap_or_default();
    let range = range.map(|r| format!("Range: {r}\r\n")).unwrap_or_default();
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{auth}{range}Connection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    stream.read_to_end(&mut out).await.unwrap();
    let split = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&out[..split]).to_string();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head, out[split + 4..].to_vec())
}
