//! Hostile or broken input from the network gets a clear error and is dropped; other rooms go on.

mod common;

use common::*;
use std::net::UdpSocket;
use std::time::{SystemTime, UNIX_EPOCH};
use tolk::core::spec::{ChannelSpec, RoomSpec};
use tolk::protocol::{ErrorCode, Role, ServerMsg, MAX_MESSAGE};
use tolk::token::Claims;

fn code(msg: &ServerMsg) -> ErrorCode {
    match msg {
        ServerMsg::Error { code, .. } => *code,
        other => panic!("expected an error, got {other:?}"),
    }
}

fn message(msg: &ServerMsg) -> &str {
    match msg {
        ServerMsg::Error { message, .. } => message,
        other => panic!("expected an error, got {other:?}"),
    }
}

#[tokio::test]
async fn signalling_errors_are_clear_and_the_session_survives() {
    let s = server().await;
    let mut sig = Signal::connect(&s).await;

    sig.send_raw("{not json").await;
    let e = sig.next().await;
    assert_eq!(code(&e), ErrorCode::BadMessage);
    assert!(message(&e).starts_with("bad message"), "{e:?}");

    sig.send_raw(r#"{"type":"teleport"}"#).await;
    let e = sig.next().await;
    assert_eq!(code(&e), ErrorCode::BadMessage);
    assert!(message(&e).contains("unknown variant `teleport`"), "{e:?}");

    sig.send_raw(&format!(r#"{{"type":"join","token":"{}"}}"#, "x".repeat(MAX_MESSAGE))).await;
    assert_eq!(code(&sig.next().await), ErrorCode::TooLarge);

    sig.send_raw(r#"{"type":"offer","sdp":"v=0"}"#).await;
    assert_eq!(code(&sig.next().await), ErrorCode::NotJoined);

    assert_eq!(code(&sig.join("eyJhbGciOiJIUzI1NiJ9.e30.c2ln", None).await), ErrorCode::BadToken);
    let forged = tolk::token::Keys::new(b"someone else's secret!").sign(&Claims {
        room: "r".into(),
        role: Role::Host,
        channel: None,
        also: vec![],
        name: "Mallory".into(),
        exp: u64::MAX / 2,
        jti: String::new(),
    });
    assert_eq!(code(&sig.join(&forged, None).await), ErrorCode::BadToken);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let expired = s.app.keys().sign(&Claims {
        room: "r".into(),
        role: Role::Listener,
        channel: None,
        also: vec![],
        name: "Late".into(),
        exp: now - 10,
        jti: String::new(),
    });
    assert_eq!(code(&sig.join(&expired, None).await), ErrorCode::TokenExpired);

    // After all that, the same session joins and works.
    let joined = sig.join(&token(&s, Role::Listener, None, "Lena"), None).await;
    assert!(matches!(joined, ServerMsg::Joined { ref channels, .. } if channels.len() == 3), "{joined:?}");
    assert_eq!(
        code(&sig.join(&token(&s, Role::Listener, None, "Lena"), None).await),
        ErrorCode::AlreadyJoined
    );
    assert_eq!(code(&sig.select(Some("xx")).await), ErrorCode::NotFound);
    sig.send_raw(r#"{"type":"offer","sdp":"hello"}"#).await;
    assert_eq!(code(&sig.next().await), ErrorCode::BadSdp);
}

#[tokio::test]
async fn roles_cannot_publish_beyond_their_token() {
    let s = server().await;

    let mut l = Signal::connect(&s).await;
    let e = l.join(&token(&s, Role::Listener, None, "Lena"), Some("es")).await;
    assert_eq!(code(&e), ErrorCode::Forbidden);
    assert!(message(&e).contains("cannot publish"), "{e:?}");
    // A listener that joins, then offers a sending track, is refused too.
    l.join(&token(&s, Role::Listener, None, "Lena"), None).await;
    let mut rtc = str0m::Rtc::builder().build(std::time::Instant::now());
    let mut api = rtc.sdp_api();
    api.add_media(str0m::media::MediaKind::Audio, str0m::media::Direction::SendOnly, None, None, None);
    let (offer, _) = api.apply().unwrap();
    l.send(&tolk::protocol::ClientMsg::Offer { sdp: offer.to_sdp_string() }).await;
    let e = l.next().await;
    assert_eq!(code(&e), ErrorCode::Forbidden, "{e:?}");

    let mut i = Signal::connect(&s).await;
    let e = i.join(&token(&s, Role::Interpreter, Some("es"), "Ana"), Some("fr")).await;
    assert_eq!(code(&e), ErrorCode::Forbidden);
    assert!(message(&e).contains("only into channel es"), "{e:?}");

    let mut f = Signal::connect(&s).await;
    assert_eq!(code(&f.join(&token(&s, Role::Floor, None, "Floor"), Some("es")).await), ErrorCode::Forbidden);

    let mut i = Signal::connect(&s).await;
    i.join(&token(&s, Role::Interpreter, Some("es"), "Ana"), None).await;
    assert_eq!(code(&i.select(Some("es")).await), ErrorCode::Forbidden, "no listening to one's own channel");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_udp_port_and_a_huge_message_leave_other_rooms_playing() {
    let s = server().await;
    s.app
        .create_room(RoomSpec {
            id: "other".into(),
            floor_lang: None,
            channels: vec![ChannelSpec { lang: "de".into(), name: String::new(), duck: Default::default() }],
        })
        .await
        .unwrap();
    let mut floor_sig = Signal::connect(&s).await;
    floor_sig.join(&token(&s, Role::Floor, None, "Floor"), None).await;
    let _floor = media(&mut floor_sig, Some(440.0), false).await;
    let mut l_sig = Signal::connect(&s).await;
    l_sig.join(&token(&s, Role::Listener, None, "Lena"), None).await;
    let listener = media(&mut l_sig, None, true).await;
    listener.wait_frames(25, 10).await;

    // Well-formed ICE checks for usernames that are not ours, from 200 addresses: each is one
    // lookup and a drop, whatever the number of peers.
    let unrouted_before = health_count(&s, "datagrams_unrouted").await;
    for i in 0..200u32 {
        let from = UdpSocket::bind("127.0.0.1:0").unwrap();
        let username = format!("nobody{i}:forger");
        let mut buf = [0u8; 256];
        let n = str0m::ice::StunMessage::binding_request(
            &username,
            str0m::ice::TransId::new(),
            true,
            1,
            1,
            false,
        )
        .to_bytes(Some(b"a guessed password"), &mut buf, tolk::core::wire::srtp::hmac_sha1)
        .unwrap();
        from.send_to(&buf[..n], s.udp).unwrap();
        if i % 50 == 49 {
            // Paced, so that the server's receive buffer never overflows on a busy machine.
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
    let mut unrouted = 0;
    for _ in 0..50 {
        unrouted = health_count(&s, "datagrams_unrouted").await - unrouted_before;
        if unrouted >= 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(unrouted, 200, "every forged ICE check is dropped and counted as unrouted");

    // Garbage: random bytes, a fake RTP header, a truncated STUN message, an empty datagram.
    let junk = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut x: u32 = 12345;
    for i in 0..500 {
        let len = (i * 7) % 1400 + 1;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (x >> 16) as u8
            })
            .collect();
        junk.send_to(&bytes, s.udp).unwrap();
        if i % 50 == 49 {
            // 5,000 datagrams a second: garbage, not a flood that outruns the kernel's buffer.
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
    junk.send_to(&[0x80, 111, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3], s.udp).unwrap();
    junk.send_to(&[0x00, 0x01, 0x00, 0x50, 0x21, 0x12, 0xa4, 0x42], s.udp).unwrap();
    junk.send_to(&[], s.udp).unwrap();
    // A message far beyond any limit closes that one WebSocket only.
    let mut big = Signal::connect(&s).await;
    big.send_raw(&"y".repeat(8 * MAX_MESSAGE)).await;

    // Still receiving, judged in media time rather than by how many frames a busy
    // test machine delivered in a wall-clock second: 50 more frames (1 s of audio),
    // every one 20 ms after the last, none missing.
    let before = listener.frames().len();
    listener.wait_frames(before + 50, 10).await;
    let frames = listener.frames();
    let after = &frames[before.saturating_sub(1)..];
    let max_step = after.windows(2).map(|w| w[1].rtp - w[0].rtp).max().unwrap_or(0);
    assert!(max_step <= 960, "still receiving: a {} ms gap after the garbage", max_step / 48);
    assert!(after.windows(2).all(|w| w[1].seq == w[0].seq + 1), "still receiving every packet");
    let last = &frames[frames.len() - 25..];
    let pcm: Vec<f32> = last.iter().flat_map(|f| f.pcm.iter().copied()).collect();
    assert!(tone_db(&pcm, 440.0) > -20.0, "the floor tone still plays: {:.1}", tone_db(&pcm, 440.0));

    let (status, body) = http(&s, "GET", "/health", Some("test-api-key"), None).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"rooms\":2"), "{body}");
}

/// One count of dropped input from /health.
async fn health_count(s: &tolk::io::Running, name: &str) -> u64 {
    let (_, body) = http(s, "GET", "/health", Some("test-api-key"), None).await;
    let v: serde_json::Value = serde_json::from_str(&body).expect("/health is JSON");
    v["dropped"][name].as_u64().unwrap_or_else(|| panic!("dropped.{name} in /health: {body}"))
}

/// A WebSocket that never joins is told so and closed after 5 s: idle connections do not
/// pile up. One that joins in time stays.
#[tokio::test]
async fn a_websocket_that_never_joins_is_closed() {
    let s = server().await;
    let mut idle = Signal::connect(&s).await;
    let mut joined = Signal::connect(&s).await;
    assert!(matches!(
        joined.join(&token(&s, Role::Listener, None, "Lena"), None).await,
        ServerMsg::Joined { .. }
    ));
    let t = std::time::Instant::now();
    let e = idle.next_within(std::time::Duration::from_secs(20)).await;
    assert_eq!(code(&e), ErrorCode::NotJoined);
    assert!(message(&e).contains("no join"), "{e:?}");
    println!("an idle WebSocket was closed after {:.1} s", t.elapsed().as_secs_f64());
    assert!(t.elapsed() >= std::time::Duration::from_secs(4), "not before its time");
    assert!(
        matches!(
            joined
                .ask(tolk::protocol::ClientMsg::Select {
                    channel: Some("es".into()),
                    only: false,
                    balance: None
                })
                .await,
            ServerMsg::Selected { .. }
        ),
        "the joined session is still there"
    );
}
