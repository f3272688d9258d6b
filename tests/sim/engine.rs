//! What only a simulated clock reaches: the 15 s sweep of silent peers, listeners settling and
//! their consent answers, ticks skipped by a stalled host, the order and pace of events.

use crate::harness::{Sim, Sound};
use crate::{last_booth, level, now_rtp, MS};
use std::time::Duration;
use tolk::core::engine::{Counter, SILENT_PEER};
use tolk::protocol::{ClientMsg, ErrorCode, NoticeKind, Role, ServerMsg};

fn lost_media(m: &ServerMsg) -> bool {
    matches!(m, ServerMsg::Error { code: ErrorCode::NotJoined, message } if message.contains("media connection lost"))
}

#[test]
fn a_silent_interpreter_is_dropped_after_15_s_and_the_booth_is_told() {
    let mut sim = Sim::new(20);
    let a = sim.add(Role::Interpreter, Some("es"), "Ana", Some(Sound::Tone(880.0)));
    let b = sim.add(Role::Interpreter, Some("es"), "Bea", Some(Sound::Tone(990.0)));
    sim.run(Duration::from_secs(1));
    // Ana's laptop closes: nothing more comes from it, not even a goodbye.
    sim.clients.get_mut(&a).unwrap().gone = true;
    let gone = sim.now;
    sim.run_until(SILENT_PEER + Duration::from_secs(2), |s| s.clients[&a].inbox.iter().any(lost_media));
    let after = sim.now - gone;
    println!("silent interpreter dropped after {after:?} of simulated time");
    assert!(after <= SILENT_PEER + Duration::from_millis(1100), "dropped by the sweep: {after:?}");
    let ServerMsg::Booth { warning, members, .. } = last_booth(&sim.clients[&b]) else { unreachable!() };
    assert!(warning.as_deref().is_some_and(|w| w.contains("disconnected")), "Bea is warned");
    assert!(members.iter().any(|m| m.name == "Ana" && !m.publishing), "Ana keeps her seat, without media");
    assert_eq!(sim.engine.snapshot().peers_with_media, 1);
}

#[test]
fn listeners_settle_answer_consent_for_a_minute_and_are_swept_when_silent() {
    let mut sim = Sim::new(21);
    sim.add(Role::Floor, None, "Floor", Some(Sound::Tone(440.0)));
    let l = sim.add(Role::Listener, None, "Lena", None);
    sim.run_until(Duration::from_secs(10), |s| s.engine.snapshot().listeners_settled == 1);
    println!("listener settled {:?} after connecting", sim.now - sim.start);

    // A minute on: the browser's consent checks are answered by the engine, so it stays.
    let frames = sim.clients[&l].heard.len();
    sim.run(Duration::from_secs(60));
    let c = &sim.clients[&l];
    assert!(c.rtc.as_ref().unwrap().is_connected(), "the client's ICE is still connected");
    assert!(!c.inbox.iter().any(lost_media), "not swept while it answers");
    assert_eq!(sim.engine.snapshot().listeners_settled, 1);
    let got = c.heard.len() - frames;
    assert!((2990..=3010).contains(&got), "a frame every 20 ms for a minute: {got}");
    assert!(level(c, now_rtp(c) - 500 * MS, 500, 440.0) > -20.0);
    assert!(c.heard.windows(2).all(|w| w[1].rtp - w[0].rtp == 960), "continuous media time");

    // Silent from now on: gone after the sweep.
    sim.clients.get_mut(&l).unwrap().gone = true;
    sim.run(SILENT_PEER - Duration::from_secs(1));
    assert_eq!(sim.engine.snapshot().listeners_settled, 1, "not before 15 s");
    sim.run(Duration::from_secs(2) + Duration::from_millis(100));
    assert!(sim.clients[&l].inbox.iter().any(lost_media));
    assert_eq!(sim.engine.snapshot().listeners_settled, 0);
}

#[test]
fn a_stalled_host_catches_up_200ms_and_skips_the_rest() {
    let mut sim = Sim::new(22);
    sim.add(Role::Floor, None, "Floor", Some(Sound::Tone(440.0)));
    let l = sim.add(Role::Listener, None, "Lena", None);
    sim.run(Duration::from_secs(1));
    let ticks = sim.ticks;
    let rtp = now_rtp(&sim.clients[&l]);
    sim.engine_stalled_until = Some(sim.now + Duration::from_millis(500));
    sim.run(Duration::from_millis(500) - crate::harness::STEP);
    assert_eq!(sim.ticks, ticks, "no tick while the host is stalled");
    let ran = sim.engine.snapshot().stats.get(Counter::Ticks);
    sim.step();
    let caught_up = sim.engine.snapshot().stats.get(Counter::Ticks) - ran;
    let skipped = sim.engine.snapshot().stats.get(Counter::TicksSkipped);
    println!("500 ms stall: {caught_up} ticks caught up at once, {skipped} skipped");
    assert_eq!(caught_up, 10, "the last 200 ms are mixed and sent at once");
    assert_eq!(skipped, 15, "the rest is counted as skipped");
    sim.run(Duration::from_secs(1));
    let c = &sim.clients[&l];
    let after: Vec<_> = c.heard.iter().filter(|h| h.rtp > rtp).collect();
    assert!(after.windows(2).all(|w| w[1].rtp - w[0].rtp == 960), "the track goes on without a gap");
    assert!(level(c, now_rtp(c) - 400 * MS, 400, 440.0) > -20.0, "the floor plays");
}

#[test]
fn events_come_in_order_and_room_state_at_most_every_250ms() {
    let mut sim = Sim::new(23);
    let a = sim.join(Role::Interpreter, Some("es"), "Ana");
    let inbox = &sim.clients[&a].inbox;
    assert!(matches!(inbox[0], ServerMsg::Joined { ref channel, .. } if channel.as_deref() == Some("es")));
    assert!(matches!(inbox[1], ServerMsg::Booth { ref members, .. } if members.len() == 1), "{:?}", inbox[1]);
    let first = sim.join(Role::Listener, None, "first");
    // 20 people join within 100 ms: the room state goes out twice, not 20 times.
    for i in 0..20 {
        sim.join(Role::Listener, None, &format!("l{i}"));
        if i % 4 == 0 {
            sim.step();
        }
    }
    sim.run(Duration::from_millis(600));
    let states: Vec<_> =
        sim.clients[&first].inbox.iter().filter(|m| matches!(m, ServerMsg::State { .. })).collect();
    println!("{} state messages for 20 joins", states.len());
    assert!((1..=4).contains(&states.len()), "{} state messages", states.len());
    // The reply to a request comes before anything it causes.
    let reply = sim
        .send(first, ClientMsg::Select { channel: Some("es".into()), only: false, balance: None })
        .unwrap();
    assert!(matches!(reply, Some(ServerMsg::Selected { .. })));
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let run = |seed| {
        let mut sim = Sim::new(seed);
        let f = sim.add(Role::Floor, None, "Floor", Some(Sound::Tone(440.0)));
        let up = &mut sim.clients.get_mut(&f).unwrap().up;
        (up.loss, up.jitter, up.only_media) = (0.05, Duration::from_millis(30), true);
        let l = sim.add(Role::Listener, None, "Lena", None);
        sim.run(Duration::from_secs(3));
        let heard: Vec<u64> = sim.clients[&l].heard.iter().map(|h| h.rtp).collect();
        (heard, sim.engine.snapshot().stats.get(Counter::FramesConcealed))
    };
    assert_eq!(run(7), run(7), "a seed replays exactly");
    assert_ne!(run(7), run(8), "another seed, other faults");
}

#[test]
fn captions_reach_the_listeners_of_their_source_and_only_while_on() {
    let mut sim = Sim::new(24);
    let host = sim.join(Role::Host, None, "Hanna");
    let interpreter = sim.add(Role::Interpreter, Some("fr"), "Luc", Some(Sound::Tone(1320.0)));
    let floor_listener = sim.add(Role::Listener, None, "Flo", None);
    let es = sim.join(Role::Listener, Some("es"), "Eva");
    sim.connect(es, None, true).unwrap();
    sim.run(Duration::from_millis(500));
    let got = |sim: &Sim, peer, text: &str| {
        sim.clients[&peer].inbox.iter().any(|m| matches!(m, ServerMsg::Caption { text: t, .. } if t == text))
    };

    sim.caption(None, "before it was turned on");
    assert!(!got(&sim, floor_listener, "before it was turned on"), "captions off: nothing goes out");
    for source in [None, Some("es".to_string())] {
        sim.send(host, ClientMsg::Captions { source, on: true }).unwrap();
    }
    sim.run(Duration::from_millis(300));
    assert!(sim.audio.iter().any(|(_, s, _)| s.is_none()), "the floor's audio goes to the recogniser");
    assert!(sim.audio.iter().any(|(_, s, _)| s.as_deref() == Some("es")), "and the es channel's");
    let floor: Vec<u64> = sim.audio.iter().filter(|(_, s, _)| s.is_none()).map(|(_, _, ms)| *ms).collect();
    assert!(floor.windows(2).all(|w| w[1] == w[0] + 20), "20 ms chunks stamped with the room's media time");
    assert!(floor.last().unwrap().abs_diff(sim.ms()) <= 20, "the room's clock is the simulation's");

    sim.caption(None, "good morning");
    sim.caption(Some("es"), "buenos días");
    for (peer, floor, es_text) in
        [(floor_listener, true, false), (interpreter, true, false), (es, false, true)]
    {
        assert_eq!(got(&sim, peer, "good morning"), floor, "floor caption to peer {peer}");
        assert_eq!(got(&sim, peer, "buenos días"), es_text, "es caption to peer {peer}");
    }
    // The recogniser fell behind on es and dropped 3 s: the host is told, listeners see nothing.
    let captions_before =
        sim.clients[&es].inbox.iter().filter(|m| matches!(m, ServerMsg::Caption { .. })).count();
    sim.caption_after(Some("es"), "", 3000);
    assert!(
        sim.clients[&host].inbox.iter().any(|m| matches!(m, ServerMsg::Notice { kind: NoticeKind::CaptionsBehind, from, channel } if from.contains("3000 ms") && channel.as_deref() == Some("es"))),
        "the host hears that captions fell behind"
    );
    assert_eq!(
        sim.clients[&es].inbox.iter().filter(|m| matches!(m, ServerMsg::Caption { .. })).count(),
        captions_before,
        "no empty caption reaches listeners"
    );
    assert!(
        !sim.clients[&floor_listener].inbox.iter().any(|m| matches!(m, ServerMsg::Notice { .. })),
        "nor the notice"
    );

    sim.send(host, ClientMsg::Captions { source: None, on: false }).unwrap();
    sim.caption(None, "after it was turned off");
    assert!(
        !got(&sim, floor_listener, "after it was turned off"),
        "a late caption of a turned-off source is dropped"
    );
}

/// A WHIP or WHEP request that died between its join and its offer leaves a peer with no
/// session and no media: it is reaped after SETUP_LIMIT, while a signalling session without
/// media yet (its page still asking for the microphone) stays.
#[test]
fn a_door_peer_that_never_offers_is_reaped() {
    let mut sim = Sim::new(41);
    let before = sim.engine.snapshot().peers;
    let aborted = sim.join(Role::Floor, None, "aborted WHIP");
    sim.engine.detach(aborted);
    let page = sim.join(Role::Listener, None, "a page still asking");
    sim.run(tolk::core::engine::SETUP_LIMIT - Duration::from_secs(2));
    assert_eq!(sim.engine.snapshot().peers, before + 2, "not before its time");
    sim.run(Duration::from_secs(4));
    assert_eq!(sim.engine.snapshot().peers, before + 1, "the aborted door's peer is gone, the page stays");
    assert!(sim.send(page, ClientMsg::Select { channel: None, only: false, balance: None }).is_ok());
}
