//! The host HTTP API: rooms, channels, invitations, and its refusals.

mod common;

use common::*;
use tolk::protocol::Role;

#[tokio::test]
async fn host_api_creates_rooms_channels_and_invitations() {
    let s = server().await;
    let key = Some("test-api-key");

    let (st, body) = http(
        &s,
        "POST",
        "/api/rooms",
        key,
        Some(r#"{"id":"conf","channels":[{"lang":"de","name":"Deutsch"}]}"#),
    )
    .await;
    assert_eq!(st, 201, "{body}");
    assert!(body.contains("\"Deutsch\""), "{body}");

    let (st, body) = http(&s, "POST", "/api/rooms/conf/channels", key, Some(r#"{"lang":"pt-BR"}"#)).await;
    assert_eq!(st, 201, "{body}");
    assert!(body.contains("pt-BR"), "{body}");

    let (st, body) = http(
        &s,
        "POST",
        "/api/rooms/conf/tokens",
        key,
        Some(r#"{"role":"interpreter","channel":"de","name":"Jan"}"#),
    )
    .await;
    assert_eq!(st, 201, "{body}");
    let invite: tolk::io::Invite = serde_json::from_str(&body).unwrap();
    assert!(invite.url.ends_with(&format!("/interpret.html#token={}", invite.token)));
    let claims = s.app.keys().verify(&invite.token).unwrap();
    assert_eq!(
        (claims.room.as_str(), claims.role, claims.channel.as_deref()),
        ("conf", Role::Interpreter, Some("de"))
    );

    // A host token manages its own room, and only that.
    let host = s.app.mint("conf", Role::Host, None, "Hanna", None).token;
    let (st, body) = http(&s, "GET", "/api/rooms/conf", Some(&host), None).await;
    assert_eq!(st, 200, "{body}");
    let (st, _) = http(&s, "GET", "/api/rooms/r", Some(&host), None).await;
    assert_eq!(st, 403);
    let (st, _) = http(&s, "POST", "/api/rooms", Some(&host), Some(r#"{"id":"mine"}"#)).await;
    assert_eq!(st, 403, "hosts do not create rooms");
    let listener = s.app.mint("conf", Role::Listener, None, "Lena", None).token;
    let (st, _) = http(&s, "GET", "/api/rooms/conf", Some(&listener), None).await;
    assert_eq!(st, 403);

    // The web client is served: the page, its script, its catalogues.
    let (st, body) = http(&s, "GET", "/listen.html", None, None).await;
    assert_eq!(st, 200);
    assert!(body.contains("listen.js"), "{body}");
    let (st, body) = http(&s, "GET", "/listen.js", None, None).await;
    assert_eq!(st, 200);
    assert!(body.contains("./tolk.js"), "{body}");
    let (st, body) = http(&s, "GET", "/i18n/ar.json", None, None).await;
    assert_eq!(st, 200);
    assert!(body.contains("\"listen.start\""), "{body}");
    let (st, _) = http(&s, "GET", "/i18n/xx.json", None, None).await;
    assert_eq!(st, 404);
}

#[tokio::test]
async fn api_refusals_say_why() {
    let s = server().await;
    let key = Some("test-api-key");
    // (method, path, bearer, body, status, what the message says)
    type Case<'a> = (&'a str, &'a str, Option<&'a str>, Option<&'a str>, u16, &'a str);
    let cases: &[Case] = &[
        ("POST", "/api/rooms", None, Some(r#"{"id":"a"}"#), 401, "Bearer"),
        ("POST", "/api/rooms", Some("wrong"), Some(r#"{"id":"a"}"#), 401, "not a valid invitation"),
        ("POST", "/api/rooms", key, Some("{oops"), 400, "bad JSON body"),
        ("POST", "/api/rooms", key, Some(r#"{"id":"bad id!"}"#), 400, "room id"),
        ("POST", "/api/rooms", key, Some(r#"{"id":"r"}"#), 409, "already exists"),
        (
            "POST",
            "/api/rooms",
            key,
            Some(r#"{"id":"z","channels":[{"lang":"<script>"}]}"#),
            400,
            "language tag",
        ),
        ("GET", "/api/rooms/nope", key, None, 404, "no room nope"),
        ("POST", "/api/rooms/r/channels", key, Some(r#"{"lang":"es"}"#), 409, "already exists"),
        (
            "POST",
            "/api/rooms/r/tokens",
            key,
            Some(r#"{"role":"interpreter","name":"X"}"#),
            400,
            "needs a channel",
        ),
        (
            "POST",
            "/api/rooms/r/tokens",
            key,
            Some(r#"{"role":"listener","channel":"xx","name":"X"}"#),
            404,
            "no channel xx",
        ),
        ("POST", "/api/rooms/r/tokens", key, Some(r#"{"role":"king","name":"X"}"#), 400, "unknown variant"),
        (
            "POST",
            "/api/rooms/r/tokens",
            key,
            Some(r#"{"role":"listener","name":"X","ttl_secs":0}"#),
            400,
            "ttl_secs",
        ),
    ];
    for (method, path, auth, body, want, says) in cases {
        let (st, text) = http(&s, method, path, *auth, *body).await;
        assert_eq!(st, *want, "{method} {path} {body:?}: {text}");
        assert!(text.contains(says), "{method} {path}: {text} should say {says:?}");
    }
    let huge = format!(r#"{{"id":"{}"}}"#, "a".repeat(100_000));
    let (st, _) = http(&s, "POST", "/api/rooms", key, Some(&huge)).await;
    assert_eq!(st, 413);
}

#[tokio::test]
async fn metrics_are_served_in_prometheus_text() {
    let s = server().await;
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let (st, body) = http(&s, "GET", "/metrics", Some("test-api-key"), None).await;
    assert_eq!(st, 200);
    for want in [
        "tolk_rooms 1",
        "tolk_listeners{room=\"r\",stream=\"es\"} 0",
        "tolk_ticks_total",
        "tolk_tick_duration_seconds_bucket",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
    ] {
        assert!(body.contains(want), "{want:?} missing from:\n{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_spread_over_engines_and_each_plays() {
    let s = server_with(|c| c.engines = Some(2)).await;
    s.app
        .create_room(tolk::core::spec::RoomSpec { id: "second".into(), floor_lang: None, channels: vec![] })
        .await
        .unwrap();
    assert_eq!(s.udps.len(), 2, "one UDP socket per engine");
    let (_, body) = http(&s, "GET", "/metrics", Some("test-api-key"), None).await;
    assert!(body.contains("tolk_engines 2"), "{body}");
    // Room r went to the first engine, "second" to the other: both carry audio.
    for room in ["r", "second"] {
        let token = |role| s.app.mint(room, role, None, "x", None).token;
        let mut floor = Signal::connect(&s).await;
        floor.join(&token(Role::Floor), None).await;
        let _f = media(&mut floor, Some(440.0), false).await;
        let mut l = Signal::connect(&s).await;
        assert!(matches!(
            l.join(&token(Role::Listener), None).await,
            tolk::protocol::ServerMsg::Joined { .. }
        ));
        let m = media(&mut l, None, true).await;
        m.wait_frames(25, 10).await;
        let frames = m.frames();
        let pcm: Vec<f32> = frames[frames.len() - 10..].iter().flat_map(|f| f.pcm.iter().copied()).collect();
        assert!(tone_db(&pcm, 440.0) > -20.0, "room {room} plays");
    }
    let (_, body) = http(&s, "GET", "/metrics", Some("test-api-key"), None).await;
    let peers: Vec<&str> = body.lines().filter(|l| l.starts_with("tolk_rooms ")).collect();
    assert_eq!(peers, vec!["tolk_rooms 2"]);
}

/// A server on loopback keeping its database in `data`, with no configured secret.
async fn server_in(data: &std::path::Path) -> tolk::io::Running {
    let config = tolk::config::Config {
        http: "127.0.0.1:0".parse().unwrap(),
        udp: "127.0.0.1:0".parse().unwrap(),
        api_key: Some("test-api-key".into()),
        demo: false,
        captions: false,
        data_dir: data.to_path_buf(),
        ..Default::default()
    };
    tolk::io::start(config).await.expect("server starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_and_links_survive_a_restart_and_a_deleted_room_ends_its_sessions() {
    use std::os::unix::fs::PermissionsExt;
    use tolk::protocol::{ErrorCode, ServerMsg};
    let data = fresh_dir("restart");
    let key = Some("test-api-key");
    let s = server_in(&data).await;
    let body = r#"{"id":"conf","floor_lang":"en","channels":[{"lang":"de","name":"Deutsch","duck":{"depth_db":-12,"attack_ms":50,"release_ms":400,"hold_ms":600}}]}"#;
    let (st, b) = http(&s, "POST", "/api/rooms", key, Some(body)).await;
    assert_eq!(st, 201, "{b}");
    let (st, b) =
        http(&s, "POST", "/api/rooms/conf/channels", key, Some(r#"{"lang":"fr","name":"Français"}"#)).await;
    assert_eq!(st, 201, "{b}");
    let (st, b) =
        http(&s, "POST", "/api/rooms/conf/tokens", key, Some(r#"{"role":"listener","name":"Lena"}"#)).await;
    assert_eq!(st, 201, "{b}");
    let listener: tolk::io::Invite = serde_json::from_str(&b).unwrap();
    let host = s.app.mint("conf", Role::Host, None, "Hanna", None).token;
    let mode = std::fs::metadata(data.join("secret")).expect("a secret is made").permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the secret is readable by its owner only");
    drop(s);

    // A new process (here: a new server on the same data directory) has the room and takes the old links.
    let s = server_in(&data).await;
    let (st, b) = http(&s, "GET", "/api/rooms/conf", key, None).await;
    assert_eq!(st, 200, "the room is back: {b}");
    let view: serde_json::Value = serde_json::from_str(&b).unwrap();
    let names: Vec<_> =
        view["channels"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Deutsch", "Français"], "{b}");
    assert_eq!(view["floor_lang"], "en");
    let mut lena = Signal::connect(&s).await;
    assert!(
        matches!(lena.join(&listener.token, None).await, ServerMsg::Joined { .. }),
        "an invitation from before the restart works"
    );

    // Deleting: not for listeners; a host may, and everyone in the room is told and let go.
    let (st, _) = http(&s, "DELETE", "/api/rooms/conf", Some(&listener.token), None).await;
    assert_eq!(st, 403);
    let (st, b) = http(&s, "DELETE", "/api/rooms/conf", Some(&host), None).await;
    assert_eq!(st, 204, "{b}");
    match lena.next().await {
        ServerMsg::Error { code: ErrorCode::Ended, message } => {
            assert!(message.contains("deleted"), "{message}")
        }
        other => panic!("the listener is told the room is gone, not {other:?}"),
    }
    let (st, _) = http(&s, "GET", "/api/rooms/conf", key, None).await;
    assert_eq!(st, 404);
    let (st, _) = http(&s, "DELETE", "/api/rooms/conf", key, None).await;
    assert_eq!(st, 404, "deleted once");
    drop(s);
    let s = server_in(&data).await;
    let (st, _) = http(&s, "GET", "/api/rooms/conf", key, None).await;
    assert_eq!(st, 404, "and it stays deleted after a restart");
    let mut again = Signal::connect(&s).await;
    match again.join(&listener.token, None).await {
        ServerMsg::Error { code: ErrorCode::NotFound, .. } => {}
        other => panic!("a link to a deleted room is refused, not {other:?}"),
    }
    let _ = std::fs::remove_dir_all(&data);
}

/// A panic on a media thread (a bug; here the test hook) is caught: the engine is made again
/// with its rooms from the database, its sessions are told to join again and, when they do,
/// the room plays; a room on the other engine plays on without a gap meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_media_thread_that_panics_comes_back_with_its_rooms() {
    use tolk::protocol::{ErrorCode, ServerMsg};
    let s = server_with(|c| c.engines = Some(2)).await;
    let spec = tolk::core::spec::RoomSpec { id: "second".into(), floor_lang: None, channels: vec![] };
    s.app.create_room(spec).await.unwrap();
    let join = |room: &'static str, role: Role| {
        let token = s.app.mint(room, role, None, "x", None).token;
        async move {
            let mut sig = Signal::connect_to(s.http).await;
            assert!(matches!(sig.join(&token, None).await, ServerMsg::Joined { .. }), "{room} joined");
            sig
        }
    };
    let loud = |m: &Media, hz: f32| {
        let frames = m.frames();
        let pcm: Vec<f32> = frames[frames.len() - 10..].iter().flat_map(|f| f.pcm.iter().copied()).collect();
        tone_db(&pcm, hz)
    };
    // Room r (engine 0) and room "second" (engine 1) each have a floor and a listener.
    let mut floor_r = join("r", Role::Floor).await;
    let _fr = media(&mut floor_r, Some(440.0), false).await;
    let mut listen_r = join("r", Role::Listener).await;
    let lr = media(&mut listen_r, None, true).await;
    let mut floor_2 = join("second", Role::Floor).await;
    let _f2 = media(&mut floor_2, Some(660.0), false).await;
    let mut listen_2 = join("second", Role::Listener).await;
    let l2 = media(&mut listen_2, None, true).await;
    lr.wait_frames(25, 10).await;
    l2.wait_frames(25, 10).await;
    assert!(loud(&lr, 440.0) > -20.0 && loud(&l2, 660.0) > -20.0, "both rooms play");

    s.app.crash_engine(0).await.unwrap();
    for sig in [&mut floor_r, &mut listen_r] {
        match sig.next_reply().await {
            ServerMsg::Error { code: ErrorCode::NotJoined, message } => {
                assert!(message.contains("restarted"), "{message}")
            }
            other => panic!("a session of the crashed engine is told to join again, not {other:?}"),
        }
    }
    // The other engine's room did not notice: its listener's frames kept coming, one per 20 ms of media.
    let before = l2.frames().len();
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    let frames = l2.frames();
    assert!(frames.len() - before >= 40, "room second plays on: {} frames in 1 s", frames.len() - before);
    assert!(frames.windows(2).all(|w| w[1].seq == w[0].seq + 1), "without a lost frame");
    assert!(loud(&l2, 660.0) > -20.0);

    // The pages of room r join again (as they do by themselves), and it plays again.
    let mut floor_r = join("r", Role::Floor).await;
    let _fr = media(&mut floor_r, Some(440.0), false).await;
    let mut listen_r = join("r", Role::Listener).await;
    let lr = media(&mut listen_r, None, true).await;
    lr.wait_frames(25, 10).await;
    assert!(loud(&lr, 440.0) > -20.0, "room r plays again after the restart");
    let (_, body) = http(&s, "GET", "/metrics", Some("test-api-key"), None).await;
    assert!(body.lines().any(|l| l == "tolk_engine_restarts_total 1"), "the restart is counted: {body}");
    assert!(body.lines().any(|l| l == "tolk_rooms 2"), "{body}");
}

/// Monitoring names rooms and counts listeners: `/metrics` and `/health`'s details need the API
/// key or the metrics token; anyone gets only a bare liveness answer.
#[tokio::test]
async fn monitoring_details_are_for_the_operator_only() {
    let s = server_with(|c| c.metrics_token = Some("scraper-token".into())).await;
    let (st, body) = http(&s, "GET", "/metrics", None, None).await;
    assert_eq!(st, 401, "{body}");
    assert!(!body.contains("tolk_listeners") && !body.contains("room=\"r\""), "no room ids: {body}");
    let listener = token(&s, Role::Listener, None, "Lena");
    let (st, _) = http(&s, "GET", "/metrics", Some(&listener), None).await;
    assert_eq!(st, 401, "an invitation is not a metrics token");
    let (st, body) = http(&s, "GET", "/metrics", Some("scraper-token"), None).await;
    assert_eq!(st, 200);
    assert!(body.contains("tolk_listeners{room=\"r\""), "{body}");
    let (st, body) = http(&s, "GET", "/health", None, None).await;
    assert_eq!(st, 200);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap(),
        serde_json::json!({"status": "ok"})
    );
    let (_, body) = http(&s, "GET", "/health", Some("test-api-key"), None).await;
    assert!(body.contains("\"rooms\":1"), "the operator sees the details: {body}");
}

/// What organisers and pages need beside the basics: the list of rooms (API key only), a channel
/// renamed and kept across a restart, an invitation as a QR code, and a link checked when its
/// page opens (good, expired, forged, or its room deleted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_are_listed_channels_renamed_links_checked_and_drawn_as_qr_codes() {
    let data = fresh_dir("organise");
    let key = Some("test-api-key");
    let s = server_in(&data).await;
    let (st, b) =
        http(&s, "POST", "/api/rooms", key, Some(r#"{"id":"conf","channels":[{"lang":"de"}]}"#)).await;
    assert_eq!(st, 201, "{b}");
    let (st, list) = http(&s, "GET", "/api/rooms", key, None).await;
    assert_eq!(st, 200, "{list}");
    assert!(list.contains(r#""id":"conf""#), "{list}");
    let host = s.app.mint("conf", Role::Host, None, "H", None).token;
    let (st, _) = http(&s, "GET", "/api/rooms", Some(&host), None).await;
    assert_eq!(st, 403, "a host token does not list every room");

    let (st, b) =
        http(&s, "PATCH", "/api/rooms/conf/channels/de", Some(&host), Some(r#"{"name":"Deutsch"}"#)).await;
    assert_eq!(st, 200, "{b}");
    assert!(b.contains(r#""name":"Deutsch""#), "{b}");
    let (st, _) = http(&s, "PATCH", "/api/rooms/conf/channels/xx", key, Some(r#"{"name":"X"}"#)).await;
    assert_eq!(st, 404);
    let (st, _) = http(&s, "PATCH", "/api/rooms/conf/channels/de", key, Some(r#"{"name":""}"#)).await;
    assert_eq!(st, 400);

    let body = r#"{"role":"listener","name":"Hall","ttl_secs":3600,"qr":true}"#;
    let (st, b) = http(&s, "POST", "/api/rooms/conf/tokens", Some(&host), Some(body)).await;
    assert_eq!(st, 201, "{b}");
    let invite: serde_json::Value = serde_json::from_str(&b).unwrap();
    let qr = invite["qr"].as_str().unwrap();
    assert!(qr.contains("<svg") && qr.contains("<path"), "{qr}");
    let expires = invite["expires_at"].as_u64().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    assert!((expires as i64 - (now + 3600) as i64).abs() <= 2, "expires in an hour: {expires}");

    let token = invite["token"].as_str().unwrap().to_string();
    let (st, b) = http(&s, "GET", "/api/link", Some(&token), None).await;
    assert_eq!(st, 200, "{b}");
    assert!(b.contains(r#""role":"listener""#) && b.contains(r#""room":"conf""#), "{b}");
    let (st, b) = http(&s, "GET", "/api/link", Some("not.a.token"), None).await;
    assert_eq!(st, 401, "{b}");
    assert!(b.contains("bad_token"), "{b}");
    let old = tolk::token::Claims {
        room: "conf".into(),
        role: Role::Listener,
        channel: None,
        also: vec![],
        name: "Old".into(),
        exp: now - 120,
        jti: "x".into(),
    };
    let expired = s.app.keys().sign(&old);
    let (st, b) = http(&s, "GET", "/api/link", Some(&expired), None).await;
    assert_eq!(st, 401, "{b}");
    assert!(b.contains("token_expired"), "{b}");

    // A revoked link says so, cannot join, and stays revoked after a restart; a host cannot
    // revoke another room's links.
    let other = s.app.mint("r2", Role::Listener, None, "X", None).token;
    let (st, _) =
        http(&s, "POST", "/api/rooms/conf/revoke", Some(&host), Some(&format!(r#"{{"link":"{other}"}}"#)))
            .await;
    assert_eq!(st, 403);
    let link = invite["url"].as_str().unwrap();
    let (st, b) =
        http(&s, "POST", "/api/rooms/conf/revoke", Some(&host), Some(&format!(r#"{{"link":"{link}"}}"#)))
            .await;
    assert_eq!(st, 200, "{b}");
    assert!(b.contains(r#""name":"Hall""#), "{b}");
    let (st, b) = http(&s, "GET", "/api/link", Some(&token), None).await;
    assert_eq!(st, 401, "{b}");
    assert!(b.contains(r#""code":"revoked""#), "{b}");
    let mut sig = Signal::connect(&s).await;
    match sig.join(&token, None).await {
        tolk::protocol::ServerMsg::Error { code: tolk::protocol::ErrorCode::Revoked, .. } => {}
        other => panic!("a revoked link joined: {other:?}"),
    }

    // The new name outlives a restart, and so does the revocation.
    drop(s);
    let s = server_in(&data).await;
    let (st, _) = http(&s, "GET", "/api/link", Some(&token), None).await;
    assert_eq!(st, 401, "still revoked after a restart");
    let (_, room) = http(&s, "GET", "/api/rooms/conf", key, None).await;
    assert!(room.contains(r#""name":"Deutsch""#), "{room}");
    let kept = s.app.mint("conf", Role::Listener, None, "Kept", None).token;
    let (st, _) = http(&s, "DELETE", "/api/rooms/conf", key, None).await;
    assert_eq!(st, 204);
    let (st, b) = http(&s, "GET", "/api/link", Some(&kept), None).await;
    assert_eq!(st, 404, "a link to a deleted room: {b}");
}
