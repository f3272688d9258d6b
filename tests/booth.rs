//! The interpreter's booth over loopback WebRTC: handover (both ways and by the host),
//! a live interpreter dropping out, relay, bidirectional work, the cough button,
//! interpretation only, floor return, and who may press which control.
//! Floor 440 Hz; booth partners 880 and 990 Hz; other channels 1320 and 660 Hz.

mod common;

use common::*;
use std::time::{Duration, Instant};
use tolk::protocol::{ClientMsg, ErrorCode, HandoverAction, Role, ServerMsg};

const MS: u64 = 48;

async fn joined(s: &tolk::io::Running, role: Role, channel: Option<&str>, name: &str) -> (Signal, u64) {
    let mut sig = Signal::connect(s).await;
    match sig.join(&token(s, role, channel, name), None).await {
        ServerMsg::Joined { id, .. } => (sig, id),
        other => panic!("join failed: {other:?}"),
    }
}

fn is_live(b: &ServerMsg) -> bool {
    matches!(b, ServerMsg::Booth { live: true, .. })
}

fn code(m: &ServerMsg) -> ErrorCode {
    match m {
        ServerMsg::Error { code, .. } => *code,
        other => panic!("expected an error, got {other:?}"),
    }
}

/// Level of `hz` in the frames received after `t`, over `ms` of media time starting `skip_ms` in.
fn level_after(m: &Media, t: Instant, skip_ms: u64, ms: u64, hz: f32) -> f32 {
    let frames = m.frames();
    let from = frames.iter().find(|f| f.at >= t).expect("frames after the instant").rtp + skip_ms * MS;
    tone_db(&window(&frames, from, from + ms * MS), hz)
}

/// First media time (relative to the first frame after `t`) at which `pred` holds for a frame.
fn first_after(m: &Media, t: Instant, pred: impl Fn(&Frame) -> bool) -> Option<u64> {
    let frames = m.frames();
    let from = frames.iter().find(|f| f.at >= t)?.rtp;
    frames.iter().filter(|f| f.rtp >= from).find(|f| pred(f)).map(|f| (f.rtp - from) / MS)
}

/// Longest run of frames (in ms) after `t` in which neither voice is audible, and sequence continuity.
fn longest_voice_gap(m: &Media, t: Instant, a: f32, b: f32) -> u64 {
    let frames = m.frames();
    let mut gap = 0;
    let mut run = 0;
    let mut prev: Option<&Frame> = None;
    for f in frames.iter().filter(|f| f.at >= t) {
        if let Some(p) = prev {
            assert_eq!(f.seq, p.seq + 1, "continuous sequence numbers");
            assert_eq!(f.rtp - p.rtp, 960, "one frame per 20 ms");
        }
        prev = Some(f);
        if tone_db(&f.pcm, a).max(tone_db(&f.pcm, b)) < -30.0 {
            run += 20;
            gap = gap.max(run);
        } else {
            run = 0;
        }
    }
    gap
}

async fn settle(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handover_both_ways_and_by_the_host_without_gaps() {
    let s = server().await;
    let (mut floor_sig, _) = joined(&s, Role::Floor, None, "Floor").await;
    let _floor = media(&mut floor_sig, Some(440.0), false).await;
    let (mut a, _a_id) = joined(&s, Role::Interpreter, Some("es"), "Ana").await;
    let a_media = media(&mut a, Some(880.0), true).await;
    a.wait_booth("Ana goes on air", is_live).await;
    let (mut b, b_id) = joined(&s, Role::Interpreter, Some("es"), "Bea").await;
    let b_media = media(&mut b, Some(990.0), true).await;
    b.wait_booth("Bea is in the booth, not live", |m| matches!(m, ServerMsg::Booth { live: false, members, .. } if members.len() == 2 && members.iter().all(|m| m.publishing)))
        .await;
    let (mut host, _) = joined(&s, Role::Host, None, "Hanna").await;
    let (mut l, _) = joined(&s, Role::Listener, None, "Lena").await;
    l.select(Some("es")).await;
    let listener = media(&mut l, None, true).await;
    listener.wait_frames(50, 10).await;
    settle(300).await;

    let t0 = Instant::now();
    settle(300).await;
    assert!(level_after(&listener, t0, 0, 200, 880.0) > -20.0, "Ana on air");
    assert!(level_after(&listener, t0, 0, 200, 990.0) < -40.0, "Bea not on air");
    // The passive partner hears the floor and the live partner; the live one only the floor.
    assert!(level_after(&b_media, t0, 0, 200, 880.0) > -20.0, "Bea follows Ana");
    assert!(level_after(&b_media, t0, 0, 200, 440.0) > -20.0, "Bea hears the floor");
    assert!(level_after(&a_media, t0, 0, 200, 990.0) < -40.0, "Ana does not hear Bea");

    // Bea is ready, Ana hands over.
    b.send(&ClientMsg::Handover { action: HandoverAction::Ready, channel: None }).await;
    a.wait_booth("Bea shows as ready", |m| matches!(m, ServerMsg::Booth { members, .. } if members.iter().any(|m| m.name == "Bea" && m.ready)))
        .await;
    let t1 = Instant::now();
    a.send(&ClientMsg::Handover { action: HandoverAction::Go, channel: None }).await;
    b.wait_booth("Bea goes live", is_live).await;
    settle(500).await;
    let took = first_after(&listener, t1, |f| tone_db(&f.pcm, 990.0) > -20.0).expect("Bea heard");
    println!(
        "handover go: Bea heard {took} ms after the request; longest gap {} ms",
        longest_voice_gap(&listener, t1, 880.0, 990.0)
    );
    assert!(longest_voice_gap(&listener, t1, 880.0, 990.0) <= 40);
    assert!(level_after(&listener, t1, 200, 200, 880.0) < -40.0, "Ana off air");

    // Ana takes it back.
    let t2 = Instant::now();
    a.send(&ClientMsg::Handover { action: HandoverAction::Take, channel: None }).await;
    a.wait_booth("Ana live again", is_live).await;
    settle(500).await;
    assert!(level_after(&listener, t2, 200, 200, 880.0) > -20.0, "Ana back on air");
    assert!(longest_voice_gap(&listener, t2, 880.0, 990.0) <= 40);

    // The host assigns Bea.
    let t3 = Instant::now();
    host.send(&ClientMsg::Assign { channel: "es".into(), peer: b_id }).await;
    b.wait_booth("the host put Bea on air", is_live).await;
    settle(500).await;
    assert!(level_after(&listener, t3, 200, 200, 990.0) > -20.0, "Bea on air after the host's assignment");
    let gap = longest_voice_gap(&listener, t3, 880.0, 990.0);
    println!("host assignment: longest gap {gap} ms");
    assert!(gap <= 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_live_interpreter_falls_back_to_the_floor_within_200ms() {
    let s = server().await;
    let (mut floor_sig, _) = joined(&s, Role::Floor, None, "Floor").await;
    let _floor = media(&mut floor_sig, Some(440.0), false).await;
    let (mut a, _) = joined(&s, Role::Interpreter, Some("es"), "Ana").await;
    let a_media = media(&mut a, Some(880.0), true).await;
    a.wait_booth("Ana live", is_live).await;
    let (mut b, _) = joined(&s, Role::Interpreter, Some("es"), "Bea").await;
    let _b_media = media(&mut b, Some(990.0), true).await;
    let (mut l, _) = joined(&s, Role::Listener, None, "Lena").await;
    let floor_listener = media(&mut l, None, true).await;
    let (mut l2, _) = joined(&s, Role::Listener, None, "Lars").await;
    l2.select(Some("es")).await;
    let listener = media(&mut l2, None, true).await;
    listener.wait_frames(75, 10).await;
    let full = tone_db(&window(&floor_listener.frames(), 0, u64::MAX), 440.0);

    let t = Instant::now();
    drop(a);
    drop(a_media);
    let told = b
        .wait_booth(
            "Bea is told at once",
            |m| matches!(m, ServerMsg::Booth { warning: Some(_), members, .. } if members.len() == 1),
        )
        .await;
    let ServerMsg::Booth { media_time: at, .. } = told else { unreachable!() };
    settle(800).await;
    // From the tick the engine saw the drop, in the listener's media time.
    let frames = listener.frames();
    let back = frames
        .iter()
        .filter(|f| f.rtp >= at)
        .find(|f| tone_db(&f.pcm, 440.0) >= full - 1.0)
        .map(|f| (f.rtp - at) / MS)
        .expect("floor back at full level");
    println!("live interpreter dropped: floor back at full level after {back} ms of media time");
    assert!(back <= 200, "floor back after {back} ms");
    assert!(level_after(&listener, t, 300, 300, 880.0) < -40.0, "Ana's voice is gone");
    assert!(level_after(&listener, t, 300, 300, 990.0) < -40.0, "Bea is not put on air without asking");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_bidirectional_interpretation_only_and_floor_return() {
    let s = server().await;
    let (mut floor_sig, _) = joined(&s, Role::Floor, None, "Floor").await;
    let _floor = media(&mut floor_sig, Some(440.0), false).await;
    let (mut es, _) = joined(&s, Role::Interpreter, Some("es"), "Ana").await;
    let es_media = media(&mut es, Some(880.0), true).await;
    // fr works from es (relay).
    let (mut fr, _) = joined(&s, Role::Interpreter, Some("fr"), "Luc").await;
    let fr_media = media(&mut fr, Some(1320.0), true).await;
    fr.send(&ClientMsg::Input { channel: Some("es".into()) }).await;
    fr.wait_booth("Luc relays es", |m| matches!(m, ServerMsg::Booth { input: Some(i), .. } if i == "es"))
        .await;
    // A bidirectional interpreter for en and de, starting in en.
    let mut bi = Signal::connect(&s).await;
    let claims = tolk::token::Claims {
        room: "r".into(),
        role: Role::Interpreter,
        channel: Some("en".into()),
        also: vec!["fr".into()],
        name: "Bo".into(),
        exp: 0,
    };
    bi.join(&s.app.invite(claims, None).token, None).await;
    let _bi_media = media(&mut bi, Some(660.0), true).await;
    bi.wait_booth(
        "Bo live in en",
        |m| matches!(m, ServerMsg::Booth { live: true, channel, .. } if channel == "en"),
    )
    .await;

    let (mut only, _) = joined(&s, Role::Listener, None, "Ola").await;
    assert_eq!(
        only.ask(ClientMsg::Select { channel: Some("es".into()), only: true }).await,
        ServerMsg::Selected { channel: Some("es".into()), only: true }
    );
    let only_media = media(&mut only, None, true).await;
    let (mut en, _) = joined(&s, Role::Listener, None, "Eve").await;
    en.select(Some("en")).await;
    let en_media = media(&mut en, None, true).await;
    let (mut fl, _) = joined(&s, Role::Listener, None, "Flo").await;
    let floor_media = media(&mut fl, None, true).await;
    let (mut host, _) = joined(&s, Role::Host, None, "Hanna").await;
    only_media.wait_frames(50, 10).await;
    en_media.wait_frames(50, 10).await;
    settle(300).await;

    let t = Instant::now();
    settle(400).await;
    // Relay: Luc hears es's interpreter, not the floor.
    let (v, f) = (level_after(&fr_media, t, 0, 300, 880.0), level_after(&fr_media, t, 0, 300, 440.0));
    println!("relay: fr interpreter hears 880 Hz {v:.1} dB, 440 Hz {f:.1} dB");
    assert!(v > -20.0 && f < -40.0);
    // Interpretation only: no floor.
    let (v, f) = (level_after(&only_media, t, 0, 300, 880.0), level_after(&only_media, t, 0, 300, 440.0));
    println!("interpretation only: 880 Hz {v:.1} dB, 440 Hz {f:.1} dB");
    assert!(v > -20.0 && f < -50.0, "interpretation only carries no floor tone");
    assert!(level_after(&en_media, t, 0, 300, 660.0) > -20.0, "Bo on air in en");

    // Bidirectional: Bo switches output to fr, where Luc is live; Bo waits as partner.
    bi.send(&ClientMsg::Publish { channel: "fr".into() }).await;
    bi.wait_booth(
        "Bo now in the fr booth",
        |m| matches!(m, ServerMsg::Booth { channel, .. } if channel == "fr"),
    )
    .await;
    bi.send(&ClientMsg::Handover { action: HandoverAction::Take, channel: None }).await;
    bi.wait_booth(
        "Bo live in fr",
        |m| matches!(m, ServerMsg::Booth { live: true, channel, .. } if channel == "fr"),
    )
    .await;
    let t2 = Instant::now();
    settle(500).await;
    assert!(level_after(&en_media, t2, 100, 300, 660.0) < -40.0, "Bo's voice left en");
    assert!(level_after(&en_media, t2, 100, 300, 440.0) > -15.0, "en falls back to the floor");
    let (mut frl, _) = joined(&s, Role::Listener, None, "Fred").await;
    frl.select(Some("fr")).await;
    let fr_listener = media(&mut frl, None, true).await;
    fr_listener.wait_frames(20, 10).await;
    let t3 = Instant::now();
    settle(300).await;
    assert!(level_after(&fr_listener, t3, 0, 200, 660.0) > -20.0, "Bo's voice is in fr");

    // Floor return: the host lets es be heard on the floor; es's own interpreter never hears itself.
    host.send(&ClientMsg::FloorReturn { channel: Some("es".into()) }).await;
    settle(200).await;
    let t4 = Instant::now();
    settle(400).await;
    assert!(level_after(&floor_media, t4, 0, 300, 880.0) > -20.0, "es is on the floor");
    assert!(level_after(&floor_media, t4, 0, 300, 440.0) > -20.0, "with the floor itself");
    let own = level_after(&es_media, t4, 0, 300, 880.0);
    println!("floor return: es interpreter hears own voice at {own:.1} dB");
    assert!(own < -40.0, "no own voice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cough_button_silences_within_one_frame_and_open_mics_are_warned() {
    let s = server().await;
    let (mut a, _) = joined(&s, Role::Interpreter, Some("es"), "Ana").await;
    let _a_media = media(&mut a, Some(880.0), true).await;
    a.wait_booth("Ana live", is_live).await;
    let (mut b, _) = joined(&s, Role::Interpreter, Some("es"), "Bea").await;
    let _b_media = media(&mut b, Some(990.0), true).await;
    b.wait_booth(
        "both microphones open: warning",
        |m| matches!(m, ServerMsg::Booth { warning: Some(w), .. } if w.contains("more than one")),
    )
    .await;
    b.send(&ClientMsg::Mute { muted: true }).await;
    a.wait_booth(
        "warning gone once Bea mutes",
        |m| matches!(m, ServerMsg::Booth { warning: None, members, .. } if members.iter().any(|m| m.muted)),
    )
    .await;

    let (mut l, _) = joined(&s, Role::Listener, None, "Lena").await;
    l.ask(ClientMsg::Select { channel: Some("es".into()), only: true }).await;
    let listener = media(&mut l, None, true).await;
    listener.wait_frames(50, 10).await;

    a.send(&ClientMsg::Mute { muted: true }).await;
    let ack = a.wait_booth("Ana muted", |m| matches!(m, ServerMsg::Booth { muted: true, .. })).await;
    let ServerMsg::Booth { media_time: at, .. } = ack else { unreachable!() };
    settle(400).await;
    let frames = listener.frames();
    // The frame before the mute took effect still carries the voice; from the next
    // tick on there is silence, but for Opus's own 6.5 ms algorithmic delay.
    let before = window(&frames, at - 20 * MS, at);
    let after = window(&frames, at + 10 * MS, at + 200 * MS);
    println!(
        "cough button: {:.1} dBFS in the frame before, {:.1} dBFS from 10 ms after",
        rms_db(&before),
        rms_db(&after)
    );
    assert!(rms_db(&before) > -20.0, "on air until the tick the mute took effect");
    assert!(rms_db(&after) < -60.0, "silent from the next frame on: {:.1} dBFS", rms_db(&after));

    let t2 = Instant::now();
    a.send(&ClientMsg::Mute { muted: false }).await;
    a.wait_booth("Ana open again", |m| matches!(m, ServerMsg::Booth { muted: false, live: true, .. })).await;
    settle(300).await;
    assert!(level_after(&listener, t2, 60, 100, 880.0) > -20.0, "back on air");
    drop(b);
}

#[tokio::test]
async fn booth_controls_are_for_booth_members_only() {
    let s = server().await;
    let (mut es, es_id) = joined(&s, Role::Interpreter, Some("es"), "Ana").await;
    let (mut fr, _) = joined(&s, Role::Interpreter, Some("fr"), "Luc").await;
    let (mut l, _) = joined(&s, Role::Listener, None, "Lena").await;
    let (mut host, _) = joined(&s, Role::Host, None, "Hanna").await;
    let (mut floor, _) = joined(&s, Role::Floor, None, "Floor").await;

    let e = fr.ask(ClientMsg::Handover { action: HandoverAction::Take, channel: Some("es".into()) }).await;
    assert_eq!(code(&e), ErrorCode::Forbidden, "{e:?}");
    let e = fr.ask(ClientMsg::Handover { action: HandoverAction::Go, channel: None }).await;
    assert_eq!(code(&e), ErrorCode::Forbidden, "only the live interpreter hands over: {e:?}");
    let e = fr.ask(ClientMsg::Publish { channel: "es".into() }).await;
    assert_eq!(code(&e), ErrorCode::Forbidden, "{e:?}");
    let e = fr.ask(ClientMsg::Assign { channel: "fr".into(), peer: es_id }).await;
    assert_eq!(code(&e), ErrorCode::Forbidden);

    for msg in [
        ClientMsg::Handover { action: HandoverAction::Ready, channel: Some("es".into()) },
        ClientMsg::Handover { action: HandoverAction::Take, channel: Some("es".into()) },
        ClientMsg::Mute { muted: true },
        ClientMsg::Input { channel: Some("es".into()) },
        ClientMsg::Publish { channel: "es".into() },
        ClientMsg::SlowDown,
        ClientMsg::Assign { channel: "es".into(), peer: es_id },
        ClientMsg::FloorReturn { channel: Some("es".into()) },
    ] {
        let e = l.ask(msg.clone()).await;
        assert_eq!(code(&e), ErrorCode::Forbidden, "a listener pressing {msg:?}: {e:?}");
    }
    let e = host.ask(ClientMsg::Assign { channel: "es".into(), peer: es_id }).await;
    assert_eq!(code(&e), ErrorCode::NotJoined, "no microphone yet: {e:?}");
    let e = host.ask(ClientMsg::Assign { channel: "es".into(), peer: 999_999 }).await;
    assert_eq!(code(&e), ErrorCode::NotFound);

    // Slow down reaches the host and the floor speaker.
    es.send(&ClientMsg::SlowDown).await;
    for sig in [&mut host, &mut floor] {
        loop {
            if let ServerMsg::Notice { from, channel, .. } = sig.next_any().await {
                assert_eq!((from.as_str(), channel.as_deref()), ("Ana", Some("es")));
                break;
            }
        }
    }
}

#[tokio::test]
async fn the_audience_indicator_counts_listeners() {
    let s = server().await;
    let (mut es, _) = joined(&s, Role::Interpreter, Some("es"), "Ana").await;
    let _es_media = media(&mut es, Some(880.0), true).await;
    let mut listeners = Vec::new();
    for name in ["a", "b", "c"] {
        let (mut l, _) = joined(&s, Role::Listener, None, name).await;
        l.select(Some("es")).await;
        let m = media(&mut l, None, true).await;
        listeners.push((l, m));
    }
    // Any booth update carries the count; a mute toggle triggers one.
    for _ in 0..50 {
        es.send(&ClientMsg::Mute { muted: false }).await;
        es.drain(100).await;
        if es.seen.iter().rev().any(|m| matches!(m, ServerMsg::Booth { listeners: 3, .. })) {
            return;
        }
    }
    panic!("booth never showed 3 listeners: {:?}", es.seen.last());
}
