//! The interpreter's booth end to end, over loopback WebRTC and real signalling: handover
//! both ways and by the host. The booth's other rules (a live interpreter dropping out,
//! relay, bidirectional work, the cough button, interpretation only, floor return, who may
//! press which control, the audience count) are tested on the simulation, in tests/sim/booth.rs.
//! Floor 440 Hz; booth partners 880 and 990 Hz; other channels 1320 and 660 Hz.

mod common;

use common::*;
use std::time::{Duration, Instant};
use tolk::protocol::{ChatThread, ClientMsg, ErrorCode, HandoverAction, Role, ServerMsg};

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

/// An interpreter whose page reconnects (same token, same resume key) while the server still
/// holds the old session: the old one is ended, and the new one is on air again, since the
/// partner did not take over meanwhile. The listener hears the voice again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_returning_interpreter_replaces_its_old_session_and_is_on_air_again() {
    let s = server().await;
    let ana = token(&s, Role::Interpreter, Some("es"), "Ana");
    let mut a = Signal::connect(&s).await;
    assert!(matches!(a.join_again(&ana, None, Some("page-1")).await, ServerMsg::Joined { .. }));
    let _a_media = media(&mut a, Some(880.0), true).await;
    a.wait_booth("Ana goes on air", is_live).await;
    let (mut b, _) = joined(&s, Role::Interpreter, Some("es"), "Bea").await;
    let _b_media = media(&mut b, Some(990.0), true).await;
    b.wait_booth("Bea is in, not live", |m| matches!(m, ServerMsg::Booth { live: false, members, .. } if members.len() == 2 && members.iter().all(|m| m.publishing))).await;
    let (mut l, _) = joined(&s, Role::Listener, None, "Lena").await;
    l.select(Some("es")).await;
    let listener = media(&mut l, None, true).await;
    listener.wait_frames(25, 10).await;

    // A stranger with another key does not push Ana out.
    let mut other = Signal::connect(&s).await;
    assert!(matches!(other.join_again(&ana, None, Some("page-2")).await, ServerMsg::Joined { .. }));
    a.wait_booth("Ana still live", is_live).await;
    drop(other);

    // Ana's page comes back with its key: the old session ends, the new one goes on air.
    let mut a2 = Signal::connect(&s).await;
    assert!(matches!(a2.join_again(&ana, None, Some("page-1")).await, ServerMsg::Joined { .. }));
    match a.next_reply().await {
        ServerMsg::Error { code: tolk::protocol::ErrorCode::Ended, message } => {
            println!("old session: {message}")
        }
        other => panic!("the old session is ended, not {other:?}"),
    }
    let t = Instant::now();
    let _a2_media = media(&mut a2, Some(660.0), true).await;
    a2.wait_booth("the returning Ana is live again", is_live).await;
    b.wait_booth("Bea sees the new Ana live", |m| matches!(m, ServerMsg::Booth { live: false, members, .. } if members.iter().any(|m| m.name == "Ana" && m.live))).await;
    settle(600).await;
    let back = first_after(&listener, t, |f| tone_db(&f.pcm, 660.0) > -20.0).expect("the new Ana is heard");
    println!("the returning interpreter is heard {back} ms (media time) after rejoining");
    assert!(level_after(&listener, t, back + 100, 200, 990.0) < -40.0, "Bea stays off air");
}

/// A WHIP interpreter whose client dies without a DELETE and posts again with the same
/// invitation replaces its old session at once: the new one goes on air, instead of the
/// channel staying silent until the dead session times out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whip_interpreter_that_posts_again_is_on_air_at_once() {
    let s = server().await;
    let ana = token(&s, Role::Interpreter, Some("es"), "Ana");
    let (mut l, _) = joined(&s, Role::Listener, None, "Lena").await;
    l.select(Some("es")).await;
    let listener = media(&mut l, None, true).await;
    let first = media_whip(&s, &ana, Sound::Tone(880.0)).await;
    listener.wait_frames(25, 10).await;
    let t0 = Instant::now();
    settle(600).await;
    assert!(level_after(&listener, t0, 200, 200, 880.0) > -20.0, "Ana's first WHIP client is on air");

    // The client dies (no DELETE) and comes back with the same invitation.
    drop(first);
    let t = Instant::now();
    let _second = media_whip(&s, &ana, Sound::Tone(660.0)).await;
    settle(1500).await;
    let back =
        first_after(&listener, t, |f| tone_db(&f.pcm, 660.0) > -20.0).expect("the new WHIP session is heard");
    println!("the WHIP interpreter posting again is heard {back} ms (media time) later");
    assert!(back < 1000, "on air at once, not after the old session times out: {back} ms");
    let (_, body) = http(&s, "GET", "/api/rooms/r", Some("test-api-key"), None).await;
    let room: serde_json::Value = serde_json::from_str(&body).unwrap();
    let es = room["channels"].as_array().unwrap().iter().find(|c| c["lang"] == "es").unwrap().clone();
    assert_eq!(
        es["members"].as_array().map(Vec::len),
        Some(1),
        "the old session is gone from the booth: {es}"
    );
}

/// The chat lines `sig` received so far (and within `ms` more), as (thread, text, past).
async fn chat_seen(sig: &mut Signal, ms: u64) -> Vec<(ChatThread, String, bool)> {
    sig.drain(ms).await;
    sig.seen
        .iter()
        .filter_map(|m| match m {
            ServerMsg::Chat { messages, past } => {
                Some(messages.iter().map(move |l| (l.thread, l.text.clone(), *past)))
            }
            _ => None,
        })
        .flatten()
        .collect()
}

fn chat(thread: ChatThread, channel: Option<&str>, text: &str) -> ClientMsg {
    ClientMsg::Chat { thread, channel: channel.map(str::to_string), text: text.into(), big: false }
}

fn refused(reply: Option<ServerMsg>) -> ErrorCode {
    match reply {
        Some(ServerMsg::Error { code, .. }) => code,
        other => panic!("a refusal, not {other:?}"),
    }
}

/// Booth chat over real signalling: a booth's own thread reaches its partners and nobody else,
/// its host line the booth and the hosts, a host's line to every booth every interpreter; a
/// listener or floor speaker can neither write nor read it; limits answer clearly; a partner
/// who comes back gets the last lines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn booth_chat_reaches_its_booth_and_the_hosts_only() {
    let s = server().await;
    let (mut a, _) = joined(&s, Role::Interpreter, Some("es"), "Ana").await;
    let b_token = token(&s, Role::Interpreter, Some("es"), "Bea");
    let mut b = Signal::connect(&s).await;
    b.join_again(&b_token, None, Some("bea-page")).await;
    let (mut c, _) = joined(&s, Role::Interpreter, Some("fr"), "Cleo").await;
    let (mut h, _) = joined(&s, Role::Host, None, "Hana").await;
    let (mut l, _) = joined(&s, Role::Listener, None, "Lena").await;
    let (mut f, _) = joined(&s, Role::Floor, None, "Fred").await;

    a.send(&chat(ChatThread::Booth, None, "number? <b>1,250</b>")).await;
    let heard = chat_seen(&mut b, 500).await;
    assert!(heard.contains(&(ChatThread::Booth, "number? <b>1,250</b>".into(), false)), "{heard:?}");
    for (who, sig) in
        [("the fr booth", &mut c), ("the host", &mut h), ("a listener", &mut l), ("the floor", &mut f)]
    {
        assert!(chat_seen(sig, 0).await.is_empty(), "{who} got the es booth's own thread");
    }

    // The host line: the booth and the hosts; a host's line to every booth.
    b.send(&chat(ChatThread::Hosts, None, "your sound is breaking up")).await;
    assert!(chat_seen(&mut h, 500)
        .await
        .iter()
        .any(|(t, x, _)| *t == ChatThread::Hosts && x == "your sound is breaking up"));
    assert!(chat_seen(&mut c, 0).await.is_empty(), "the fr booth does not get es's host line");
    h.send(&chat(ChatThread::Hosts, None, "speaker switches to French in 2 minutes")).await;
    for sig in [&mut a, &mut b, &mut c] {
        let lines = chat_seen(sig, 500).await;
        assert!(lines.iter().any(|(_, x, _)| x == "speaker switches to French in 2 minutes"), "{lines:?}");
    }
    for sig in [&mut l, &mut f] {
        assert!(chat_seen(sig, 0).await.is_empty(), "no chat for listeners or the floor");
    }

    // Who may write, and the limits: each refusal leaves the session usable.
    assert_eq!(refused(l.ask_opt(chat(ChatThread::Booth, None, "hi")).await), ErrorCode::Forbidden);
    assert_eq!(refused(f.ask_opt(chat(ChatThread::Hosts, None, "hi")).await), ErrorCode::Forbidden);
    assert_eq!(refused(h.ask_opt(chat(ChatThread::Booth, Some("es"), "hi")).await), ErrorCode::Forbidden);
    assert_eq!(refused(c.ask_opt(chat(ChatThread::Booth, Some("es"), "hi")).await), ErrorCode::Forbidden);
    let long = "x".repeat(tolk::protocol::MAX_CHAT + 1);
    assert_eq!(refused(a.ask_opt(chat(ChatThread::Booth, None, &long)).await), ErrorCode::TooLarge);
    assert_eq!(refused(a.ask_opt(chat(ChatThread::Booth, None, "   ")).await), ErrorCode::BadMessage);
    a.seen.clear();
    for i in 0..8 {
        a.send(&chat(ChatThread::Booth, None, &format!("quick {i}"))).await;
    }
    a.drain(500).await;
    let limited =
        a.seen.iter().filter(|m| matches!(m, ServerMsg::Error { code: ErrorCode::RateLimited, .. })).count();
    let sent = chat_seen(&mut a, 0).await.len();
    println!("eight lines at once: {sent} delivered, {limited} refused as rate_limited");
    assert!(limited >= 3 && sent + limited == 8, "{:?}", a.seen);
    assert_eq!(a.ask_opt(ClientMsg::Input { channel: None }).await, None, "the session is still usable");

    // Bea's page comes back: its new session gets the last lines, marked as past.
    let mut b2 = Signal::connect(&s).await;
    b2.join_again(&b_token, None, Some("bea-page")).await;
    let past = chat_seen(&mut b2, 500).await;
    println!("Bea, back: {past:?}");
    assert!(past.iter().all(|(_, _, p)| *p));
    assert!(past.iter().any(|(_, x, _)| x == "number? <b>1,250</b>"));
    assert!(past.iter().any(|(_, x, _)| x == "speaker switches to French in 2 minutes"));
}
