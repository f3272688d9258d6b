//! The standard doors: a plain RTP floor tap fed by ffmpeg, an RTP output, WHIP and WHEP
//! with aiortc (Python) and with Chromium's plain fetch calls, and their refusals.

mod common;

use common::*;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tolk::core::spec::RtpOutSpec;
use tolk::core::spec::TapSpec;
use tolk::protocol::Role;

/// The media tests here each run real-time clients (ffmpeg, aiortc, Chromium); on two
/// cores they disturb each other's timing, so they take turns.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn tone_file(hz: f32, secs: f32) -> PathBuf {
    let path = std::env::temp_dir().join(format!("tolk-doors-{}-{hz}.wav", std::process::id()));
    write_tone_wav(&path, hz, secs);
    path
}

async fn health(s: &tolk::io::Running) -> serde_json::Value {
    let (status, body) = http(s, "GET", "/health", Some("test-api-key"), None).await;
    assert_eq!(status, 200);
    serde_json::from_str(&body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_feeds_the_floor_through_the_rtp_tap_and_an_rtp_output_carries_it_out() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let out = UdpSocket::bind("127.0.0.1:0").unwrap();
    out.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let out_addr = out.local_addr().unwrap();
    let s = server_with(|c| {
        c.rtp_tap = Some(TapSpec {
            bind: "127.0.0.1:0".parse().unwrap(),
            room: "r".into(),
            payload_type: 111,
            ssrc: None,
            source: None,
        });
        c.rtp_out =
            vec![RtpOutSpec { room: "r".into(), channel: None, to: out_addr, payload_type: 96, ssrc: 7 }];
    })
    .await;
    let tap = s.tap.expect("tap bound");
    let wav = tone_file(440.0, 8.0);
    let mut ffmpeg = tokio::process::Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-re", "-i"])
        .arg(&wav)
        .args(["-c:a", "libopus", "-b:a", "64k", "-frame_duration", "20", "-ar", "48000", "-ac", "1"])
        .args(["-payload_type", "111", "-f", "rtp"])
        .arg(format!("rtp://{tap}"))
        .kill_on_drop(true)
        .spawn()
        .expect("ffmpeg runs (apt-get install ffmpeg; ./tolk.sh test does it)");

    let mut l = Signal::connect(&s).await;
    l.join(&token(&s, Role::Listener, None, "Lena"), None).await;
    let listener = media(&mut l, None, true).await;
    listener.wait_frames(100, 15).await;
    let frames = listener.frames();
    let pcm: Vec<f32> = frames[frames.len() - 50..].iter().flat_map(|f| f.pcm.iter().copied()).collect();
    let (tone, other) = (tone_db(&pcm, 440.0), tone_db(&pcm, 880.0));
    println!("WebRTC floor listener, fed by ffmpeg over the RTP tap: 440 Hz {tone:.1} dBFS, 880 Hz {other:.1} dBFS");
    assert!(tone > -20.0 && tone - other > 40.0);

    // The RTP output carries the same floor as plain RTP Opus.
    let mut dec = opus::Decoder::new(48_000, opus::Channels::Mono).unwrap();
    let mut buf = [0u8; 1500];
    let mut decoded = Vec::new();
    let mut last_seq = None;
    while decoded.len() < 48_000 {
        let n = out.recv(&mut buf).expect("RTP output packets arrive");
        let p = tolk::core::wire::rtp::parse(&buf[..n]).expect("valid RTP");
        assert_eq!((p.payload_type, p.ssrc), (96, 7));
        if let Some(prev) = last_seq {
            assert_eq!(p.seq, u16::wrapping_add(prev, 1), "consecutive sequence numbers");
        }
        last_seq = Some(p.seq);
        let mut pcm = [0f32; 960];
        assert_eq!(dec.decode_float(p.payload, &mut pcm, false).unwrap(), 960);
        decoded.extend_from_slice(&pcm);
    }
    let level = tone_db(&decoded[24_000..], 440.0);
    println!("RTP output: 440 Hz {level:.1} dBFS");
    assert!(level > -20.0);
    let h = health(&s).await;
    println!("tap before garbage: {h}");
    assert!(h["tap_packets"].as_u64().unwrap() > 50, "{h}");

    // Garbage and the wrong payload type on the tap port are dropped and counted; the floor goes on.
    let junk = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut wrong_pt = Vec::new();
    tolk::core::wire::rtp::write(&mut wrong_pt, 0, 1, 0, 99, &[1, 2, 3]);
    for _ in 0..20 {
        junk.send_to(&wrong_pt, tap).unwrap();
        junk.send_to(b"definitely not RTP", tap).unwrap();
        junk.send_to(&[0x80, 111], tap).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let h = health(&s).await;
    println!("tap after garbage: {h}");
    assert!(h["dropped"]["tap_rejected"].as_u64().unwrap() >= 60, "{h}");
    let frames = listener.frames();
    let pcm: Vec<f32> = frames[frames.len() - 20..].iter().flat_map(|f| f.pcm.iter().copied()).collect();
    assert!(tone_db(&pcm, 440.0) > -20.0, "the floor still plays");
    ffmpeg.kill().await.ok();
    let _ = std::fs::remove_file(&wav);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aiortc_publishes_over_whip_and_plays_over_whep() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let s = server().await;
    let whip = token(&s, Role::Interpreter, Some("es"), "Ana");
    let whep = token(&s, Role::Listener, None, "Lena");
    // Browsers and str0m pick AES-GCM; this run checks the server's AES-CM packets.
    let env = [("SRTP_PROFILE", "aes-cm")];
    let r = aiortc_whip_whep(&s, (&whip, &whep), "880", "es", &env, Duration::from_secs(90)).await;
    println!("aiortc WHEP player on es, aiortc WHIP publisher at 880 Hz: {r}");
    let at = |hz: &str| r["levels"][hz].as_f64().unwrap();
    assert!(at("880") > -20.0, "{r}");
    assert!(at("880") - at("440") > 40.0 && at("880") - at("1320") > 40.0, "{r}");
    assert_eq!(r["deletes"], serde_json::json!([200, 200]));
    assert_eq!(r["delete_again"], 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_publishes_over_whip_and_plays_over_whep_with_plain_fetch() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let s = server().await;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        dir.join("node_modules/playwright-core").exists(),
        "run `npm ci --prefix tests/browser` (./tolk.sh test does it)"
    );
    let wav = tone_file(1320.0, 10.0);
    let whip = token(&s, Role::Floor, None, "Floor");
    let whep = token(&s, Role::Listener, None, "Lena");
    let run = tokio::process::Command::new("node")
        .arg(dir.join("whip.mjs"))
        .args([&format!("http://{}", s.http), &whip, &whep, wav.to_str().unwrap()])
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("browser finishes")
        .expect("node runs");
    let _ = std::fs::remove_file(&wav);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "browser WHIP/WHEP failed:\n{stderr}\n{stdout}");
    let r: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    println!("Chromium WHEP player, Chromium WHIP floor at 1320 Hz: {r}");
    assert!((r["peakHz"].as_f64().unwrap() - 1320.0).abs() < 25.0, "{r}");
    assert_eq!(r["whipStatus"], 201);
    assert_eq!(r["deleteStatus"], 200);
}

#[tokio::test]
async fn whip_and_whep_refusals() {
    let s = server().await;
    let offer = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=rtpmap:96 VP8/90000\r\na=sendonly\r\n";
    let floor = token(&s, Role::Floor, None, "Floor");
    let listener = token(&s, Role::Listener, None, "Lena");
    let raw = |method: &'static str,
               path: &'static str,
               auth: Option<String>,
               ctype: &'static str,
               body: String| {
        let s = &s;
        async move { raw_http(s, method, path, auth.as_deref(), ctype, &body).await }
    };
    let (st, body) = raw("POST", "/whip", None, "application/sdp", offer.into()).await;
    assert_eq!(st, 401, "{body}");
    let (st, body) = raw("POST", "/whip", Some("nonsense".into()), "application/sdp", offer.into()).await;
    assert_eq!(st, 401, "{body}");
    let (st, body) = raw("POST", "/whip", Some(floor.clone()), "text/plain", offer.into()).await;
    assert_eq!(st, 415, "{body}");
    assert!(body.contains("application/sdp"), "{body}");
    let (st, body) = raw("POST", "/whip", Some(floor.clone()), "application/sdp", "hello".into()).await;
    assert_eq!(st, 400, "{body}");
    assert!(body.contains("not an SDP offer"), "{body}");
    let (st, body) = raw("POST", "/whip", Some(floor.clone()), "application/sdp", offer.into()).await;
    assert_eq!(st, 400, "{body}");
    assert!(body.contains("one audio section"), "{body}");
    let (st, body) = raw("POST", "/whip", Some(listener.clone()), "application/sdp", offer.into()).await;
    assert_eq!(st, 403, "{body}");
    assert!(body.contains("WHEP"), "{body}");
    let (st, _) = raw("POST", "/whep", Some(floor), "application/sdp", offer.into()).await;
    assert_eq!(st, 403);
    let (st, _) = raw("DELETE", "/whip/0123456789abcdef", None, "", String::new()).await;
    assert_eq!(st, 404);
    let (st, _) =
        raw("PATCH", "/whep/0123456789abcdef", None, "application/trickle-ice-sdpfrag", "a=x".into()).await;
    assert_eq!(st, 404);
    let (st, _) = raw("OPTIONS", "/whip", None, "", String::new()).await;
    assert_eq!(st, 204);
    assert_eq!(health(&s).await["status"], "ok");
}
