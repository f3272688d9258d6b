//! The booth on the simulation: handover at a tick, a live interpreter dropping out, relay,
//! bidirectional work, interpretation only, floor return, the cough button, who may press
//! which control, and the audience count.

use crate::harness::{Sim, Sound};
use crate::{code, first_from, is_live, last_booth, level, now_rtp, window, MS};
use std::time::Duration;
use tolk::protocol::{ClientMsg, ErrorCode, HandoverAction, Role, ServerMsg};

fn handover(action: HandoverAction) -> ClientMsg {
    ClientMsg::Handover { action, channel: None }
}

fn select(channel: &str, only: bool) -> ClientMsg {
    ClientMsg::Select { channel: Some(channel.into()), only, balance: None }
}

#[test]
fn handover_moves_the_voice_at_one_tick_both_ways_and_by_the_host() {
    let mut sim = Sim::new(1);
    sim.add(Role::Floor, None, "Floor", Some(Sound::Tone(440.0)));
    let a = sim.add(Role::Interpreter, Some("es"), "Ana", Some(Sound::Tone(880.0)));
    let b = sim.add(Role::Interpreter, Some("es"), "Bea", Some(Sound::Tone(990.0)));
    let host = sim.join(Role::Host, None, "Hanna");
    let l = sim.join(Role::Listener, None, "Lena");
    sim.send(l, select("es", true)).unwrap();
    sim.connect(l, None, true).unwrap();
    sim.run(Duration::from_secs(2));
    assert!(is_live(&sim.clients[&a]) && !is_live(&sim.clients[&b]), "the first microphone is on air");
    assert!(level(&sim.clients[&l], now_rtp(&sim.clients[&l]) - 400 * MS, 400, 880.0) > -20.0);

    // Bea says ready, Ana hands over: from the tick of the booth message, Bea's voice.
    sim.send(b, handover(HandoverAction::Ready)).unwrap();
    sim.send(a, handover(HandoverAction::Go)).unwrap();
    let ServerMsg::Booth { media_time: at, live: true, .. } = last_booth(&sim.clients[&b]).clone() else {
        panic!("Bea is live: {:?}", last_booth(&sim.clients[&b]))
    };
    sim.run(Duration::from_millis(600));
    let listener = &sim.clients[&l];
    let heard = first_from(listener, at, |h| crate::harness::tone_db(&h.pcm, 990.0) > -20.0).unwrap();
    println!("handover Ana -> Bea: Bea heard {heard} ms of media time after the handover tick");
    assert!(heard <= 20, "Bea on air within one frame: {heard} ms");
    assert!(level(listener, at + 40 * MS, 400, 880.0) < -40.0, "Ana is off air");
    assert!(longest_gap(&sim, l, at - 200 * MS) <= 20, "no silence between the voices");

    // Back by the host.
    sim.send(host, ClientMsg::Assign { channel: "es".into(), peer: a }).unwrap();
    let ServerMsg::Booth { media_time: at, .. } = last_booth(&sim.clients[&a]).clone() else {
        unreachable!()
    };
    assert!(is_live(&sim.clients[&a]));
    sim.run(Duration::from_millis(600));
    let listener = &sim.clients[&l];
    assert!(level(listener, at + 20 * MS, 400, 880.0) > -20.0, "Ana back on air");
    assert!(level(listener, at + 40 * MS, 400, 990.0) < -40.0, "Bea off air");
    assert!(longest_gap(&sim, l, at - 200 * MS) <= 20, "no silence between the voices");

    // Take: Bea takes over without asking.
    sim.send(b, handover(HandoverAction::Take)).unwrap();
    assert!(is_live(&sim.clients[&b]) && !is_live(&sim.clients[&a]));
}

/// The longest run of frames (ms) heard by `l` from media time `from` in which neither booth voice plays;
/// also checks the track is continuous (one frame per 20 ms).
fn longest_gap(sim: &Sim, l: u64, from: u64) -> u64 {
    let frames: Vec<_> = sim.clients[&l].heard.iter().filter(|h| h.rtp >= from).collect();
    assert!(frames.windows(2).all(|w| w[1].rtp - w[0].rtp == 960), "one continuous track");
    let (mut gap, mut run) = (0, 0);
    for h in frames {
        let t = &crate::harness::tone_db;
        if t(&h.pcm, 880.0).max(t(&h.pcm, 990.0)) < -30.0 {
            run += 20;
            gap = gap.max(run);
        } else {
            run = 0;
        }
    }
    gap
}

#[test]
fn a_live_interpreter_leaving_puts_the_floor_back_within_200ms_and_warns_the_partner() {
    let mut sim = Sim::new(2);
    sim.add(Role::Floor, None, "Floor", Some(Sound::Tone(440.0)));
    let a = sim.add(Role::Interpreter, Some("es"), "Ana", Some(Sound::Tone(880.0)));
    let b = sim.add(Role::Interpreter, Some("es"), "Bea", Some(Sound::Tone(990.0)));
    let f = sim.add(Role::Listener, None, "Flo", None);
    let l = sim.join(Role::Listener, None, "Lars");
    sim.send(l, select("es", false)).unwrap();
    sim.connect(l, None, true).unwrap();
    sim.run(Duration::from_secs(2));
    let full = level(&sim.clients[&f], now_rtp(&sim.clients[&f]) - 500 * MS, 500, 440.0);

    sim.leave(a);
    let ServerMsg::Booth { media_time: at, warning, members, live, .. } =
        last_booth(&sim.clients[&b]).clone()
    else {
        unreachable!()
    };
    assert!(warning.is_some_and(|w| w.contains("disconnected")), "Bea is told at once");
    assert_eq!((members.len(), live), (1, false), "Bea is not put on air without asking");
    sim.run(Duration::from_millis(800));
    let listener = &sim.clients[&l];
    let back = first_from(listener, at, |h| crate::harness::tone_db(&h.pcm, 440.0) >= full - 1.0)
        .expect("floor back at full level");
    println!("live interpreter left: floor back at full level after {back} ms of media time");
    assert!(back <= 200, "floor back after {back} ms");
    assert!(level(listener, at + 300 * MS, 300, 880.0) < -40.0, "Ana's voice is gone");
    assert!(level(listener, at + 300 * MS, 300, 990.0) < -40.0, "Bea stays off air");
}

#[test]
fn relay_bidirectional_interpretation_only_and_floor_return() {
    let mut sim = Sim::new(3);
    sim.add(Role::Floor, None, "Floor", Some(Sound::Tone(440.0)));
    let es = sim.add(Role::Interpreter, Some("es"), "Ana", Some(Sound::Tone(880.0)));
    let fr = sim.add(Role::Interpreter, Some("fr"), "Luc", Some(Sound::Tone(1320.0)));
    sim.send(fr, ClientMsg::Input { channel: Some("es".into()) }).unwrap();
    assert!(matches!(last_booth(&sim.clients[&fr]), ServerMsg::Booth { input: Some(i), .. } if i == "es"));
    let bi = sim.try_join(Role::Interpreter, Some("en"), &["fr"], "Bo", None).unwrap();
    sim.connect(bi, Some(Sound::Tone(660.0)), true).unwrap();
    let only = sim.join(Role::Listener, None, "Ola");
    assert_eq!(
        sim.send(only, select("es", true)).unwrap(),
        Some(ServerMsg::Selected { channel: Some("es".into()), only: true, balance: 4 })
    );
    sim.connect(only, None, true).unwrap();
    let en = sim.join(Role::Listener, None, "Eve");
    sim.send(en, select("en", false)).unwrap();
    sim.connect(en, None, true).unwrap();
    let fl = sim.add(Role::Listener, None, "Flo", None);
    let host = sim.join(Role::Host, None, "Hanna");
    sim.run(Duration::from_secs(2));
    let t = now_rtp(&sim.clients[&fl]) - 400 * MS;

    // Relay: Luc hears es's interpreter, not the floor.
    let (v, f) = (level(&sim.clients[&fr], t, 300, 880.0), level(&sim.clients[&fr], t, 300, 440.0));
    println!("relay: fr interpreter hears 880 Hz {v:.1} dB, 440 Hz {f:.1} dB");
    assert!(v > -20.0 && f < -40.0);
    // Interpretation only: no floor.
    let (v, f) = (level(&sim.clients[&only], t, 300, 880.0), level(&sim.clients[&only], t, 300, 440.0));
    assert!(v > -20.0 && f < -50.0, "interpretation only carries no floor tone: {v:.1} {f:.1}");
    assert!(level(&sim.clients[&en], t, 300, 660.0) > -20.0, "Bo on air in en");

    // Bidirectional: Bo moves to fr, where Luc is live, and takes over.
    sim.send(bi, ClientMsg::Publish { channel: "fr".into() }).unwrap();
    assert!(
        matches!(last_booth(&sim.clients[&bi]), ServerMsg::Booth { channel, live: false, .. } if channel == "fr")
    );
    sim.send(bi, handover(HandoverAction::Take)).unwrap();
    let ServerMsg::Booth { media_time: at, .. } = last_booth(&sim.clients[&bi]).clone() else {
        unreachable!()
    };
    assert!(is_live(&sim.clients[&bi]));
    let frl = sim.join(Role::Listener, None, "Fred");
    sim.send(frl, select("fr", false)).unwrap();
    sim.connect(frl, None, true).unwrap();
    sim.run(Duration::from_secs(1));
    assert!(level(&sim.clients[&en], at + 100 * MS, 300, 660.0) < -40.0, "Bo's voice left en");
    assert!(level(&sim.clients[&en], at + 100 * MS, 300, 440.0) > -20.0, "en falls back to the floor");
    let t3 = now_rtp(&sim.clients[&frl]) - 200 * MS;
    assert!(level(&sim.clients[&frl], t3, 200, 660.0) > -20.0, "Bo's voice is in fr");

    // Floor return: es is heard on the floor; es's own interpreter never hears itself.
    sim.send(host, ClientMsg::FloorReturn { channel: Some("es".into()) }).unwrap();
    let t4 = now_rtp(&sim.clients[&fl]) + 40 * MS;
    sim.run(Duration::from_millis(500));
    assert!(level(&sim.clients[&fl], t4, 300, 880.0) > -20.0, "es is on the floor");
    assert!(level(&sim.clients[&fl], t4, 300, 440.0) > -20.0, "with the floor itself");
    let own = level(&sim.clients[&es], t4, 300, 880.0);
    println!("floor return: es interpreter hears own voice at {own:.1} dB");
    assert!(own < -40.0, "no own voice");
}

#[test]
fn the_cough_button_silences_from_the_next_frame_and_open_mics_are_warned() {
    let mut sim = Sim::new(4);
    let a = sim.add(Role::Interpreter, Some("es"), "Ana", Some(Sound::Tone(880.0)));
    let b = sim.add(Role::Interpreter, Some("es"), "Bea", Some(Sound::Tone(990.0)));
    assert!(
        matches!(last_booth(&sim.clients[&b]), ServerMsg::Booth { warning: Some(w), .. } if w.contains("more than one")),
        "both microphones open: warning"
    );
    sim.send(b, ClientMsg::Mute { muted: true }).unwrap();
    assert!(
        matches!(last_booth(&sim.clients[&a]), ServerMsg::Booth { warning: None, .. }),
        "warning gone once Bea mutes"
    );
    let l = sim.join(Role::Listener, None, "Lena");
    sim.send(l, select("es", true)).unwrap();
    sim.connect(l, None, true).unwrap();
    sim.run(Duration::from_secs(1));

    sim.send(a, ClientMsg::Mute { muted: true }).unwrap();
    let ServerMsg::Booth { media_time: at, muted: true, .. } = last_booth(&sim.clients[&a]).clone() else {
        panic!("Ana muted")
    };
    sim.run(Duration::from_millis(400));
    let listener = &sim.clients[&l];
    // The frame before still carries the voice; from the next tick on there is silence,
    // but for Opus's own 6.5 ms algorithmic delay.
    let before = crate::harness::rms_db(&window(listener, at - 20 * MS, at));
    let after = crate::harness::rms_db(&window(listener, at + 10 * MS, at + 200 * MS));
    println!("cough button: {before:.1} dBFS in the frame before, {after:.1} dBFS from 10 ms after");
    assert!(before > -20.0, "on air until the tick the mute took effect");
    assert!(after < -60.0, "silent from the next frame on: {after:.1} dBFS");

    sim.send(a, ClientMsg::Mute { muted: false }).unwrap();
    let ServerMsg::Booth { media_time: at, .. } = last_booth(&sim.clients[&a]).clone() else {
        unreachable!()
    };
    sim.run(Duration::from_millis(300));
    assert!(level(&sim.clients[&l], at + 20 * MS, 100, 880.0) > -20.0, "back on air");
}

#[test]
fn booth_controls_are_for_booth_members_only_and_refusals_say_why() {
    let mut sim = Sim::new(5);
    let es = sim.join(Role::Interpreter, Some("es"), "Ana");
    let fr = sim.join(Role::Interpreter, Some("fr"), "Luc");
    let l = sim.join(Role::Listener, None, "Lena");
    let host = sim.join(Role::Host, None, "Hanna");
    let floor = sim.join(Role::Floor, None, "Floor");

    let on_es = |action| ClientMsg::Handover { action, channel: Some("es".into()) };
    assert_eq!(code(sim.send(fr, on_es(HandoverAction::Take))), ErrorCode::Forbidden);
    assert_eq!(
        code(sim.send(fr, handover(HandoverAction::Go))),
        ErrorCode::Forbidden,
        "only the live one hands over"
    );
    assert_eq!(code(sim.send(fr, ClientMsg::Publish { channel: "es".into() })), ErrorCode::Forbidden);
    assert_eq!(
        code(sim.send(fr, ClientMsg::Assign { channel: "fr".into(), peer: es })),
        ErrorCode::Forbidden
    );
    for msg in [
        on_es(HandoverAction::Ready),
        on_es(HandoverAction::Take),
        ClientMsg::Mute { muted: true },
        ClientMsg::Input { channel: Some("es".into()) },
        ClientMsg::Publish { channel: "es".into() },
        ClientMsg::SlowDown,
        ClientMsg::Assign { channel: "es".into(), peer: es },
        ClientMsg::FloorReturn { channel: Some("es".into()) },
    ] {
        assert_eq!(code(sim.send(l, msg.clone())), ErrorCode::Forbidden, "a listener pressing {msg:?}");
    }
    // States, not permissions: conflict.
    assert_eq!(code(sim.send(es, handover(HandoverAction::Take))), ErrorCode::Conflict, "no microphone yet");
    let assign = ClientMsg::Assign { channel: "es".into(), peer: es };
    assert_eq!(code(sim.send(host, assign)), ErrorCode::Conflict, "no microphone yet");
    let assign = ClientMsg::Assign { channel: "es".into(), peer: 999_999 };
    assert_eq!(code(sim.send(host, assign)), ErrorCode::NotFound);
    assert_eq!(code(sim.send(es, ClientMsg::Input { channel: Some("es".into()) })), ErrorCode::Forbidden);
    assert_eq!(code(sim.send(es, ClientMsg::Input { channel: Some("xx".into()) })), ErrorCode::NotFound);
    let captions = ClientMsg::Captions { source: Some("xx".into()), on: true };
    assert_eq!(code(sim.send(host, captions)), ErrorCode::NotFound);

    // Slow down reaches the host and the floor speaker, and nobody else.
    sim.send(es, ClientMsg::SlowDown).unwrap();
    for (peer, wants) in [(host, true), (floor, true), (l, false), (fr, false)] {
        let got = sim.clients[&peer].inbox.iter().any(|m| {
            matches!(m, ServerMsg::Notice { from, channel, .. } if from == "Ana" && channel.as_deref() == Some("es"))
        });
        assert_eq!(got, wants, "slow-down notice to peer {peer}");
    }
}

#[test]
fn the_audience_count_follows_the_listeners_of_the_channel() {
    let mut sim = Sim::new(6);
    let es = sim.add(Role::Interpreter, Some("es"), "Ana", Some(Sound::Tone(880.0)));
    let mut ls = Vec::new();
    for name in ["a", "b", "c"] {
        let l = sim.join(Role::Listener, None, name);
        sim.send(l, select("es", false)).unwrap();
        sim.connect(l, None, true).unwrap();
        ls.push(l);
    }
    sim.add(Role::Listener, None, "on the floor", None);
    sim.run(Duration::from_secs(1));
    sim.send(es, ClientMsg::Mute { muted: false }).unwrap();
    assert!(matches!(last_booth(&sim.clients[&es]), ServerMsg::Booth { listeners: 3, .. }));
    sim.send(ls[0], ClientMsg::Select { channel: None, only: false, balance: None }).unwrap();
    sim.leave(ls[1]);
    sim.send(es, ClientMsg::Mute { muted: false }).unwrap();
    assert!(matches!(last_booth(&sim.clients[&es]), ServerMsg::Booth { listeners: 1, .. }));
}

/// An interpreter whose connection drops keeps its place in the booth (shown as away) for the
/// grace period: its page coming back with its resume key takes that place and is on air
/// again, unless a partner took over meanwhile; one that does not come back loses the place.
#[test]
fn a_dropped_interpreter_keeps_its_place_and_comes_back_on_air() {
    let mut sim = Sim::new(33);
    sim.add(Role::Floor, None, "Floor", Some(Sound::Tone(440.0)));
    let a = sim.join_again(Role::Interpreter, Some("es"), "Ana", "ana-page");
    sim.connect(a, Some(Sound::Tone(880.0)), true).unwrap();
    let b = sim.add(Role::Interpreter, Some("es"), "Bea", Some(Sound::Tone(990.0)));
    let l = sim.join(Role::Listener, None, "Lena");
    sim.send(l, select("es", true)).unwrap();
    sim.connect(l, None, true).unwrap();
    sim.run(Duration::from_secs(2));
    assert!(is_live(&sim.clients[&a]), "Ana on air");

    // Ana's WebSocket closes: her place stays, shown as away; the floor is on air meanwhile.
    sim.leave(a);
    sim.run(Duration::from_millis(400));
    let ServerMsg::Booth { members, live: false, warning, .. } = last_booth(&sim.clients[&b]).clone() else {
        panic!("Bea is told: {:?}", last_booth(&sim.clients[&b]))
    };
    assert_eq!(members.len(), 2, "{members:?}");
    assert!(members[0].name == "Ana" && members[0].away && !members[0].live, "{members:?}");
    assert!(warning.is_some(), "Bea is warned that the live interpreter is gone");
    let heard = now_rtp(&sim.clients[&l]);
    assert!(level(&sim.clients[&l], heard - 200 * MS, 200, 880.0) < -40.0, "Ana is off the air");

    // Her page comes back with its key: the same place, on air again (Bea did not take over).
    let a2 = sim.join_again(Role::Interpreter, Some("es"), "Ana", "ana-page");
    sim.connect(a2, Some(Sound::Tone(880.0)), true).unwrap();
    sim.run(Duration::from_secs(1));
    let ServerMsg::Booth { members, live: true, .. } = last_booth(&sim.clients[&a2]).clone() else {
        panic!("Ana is live again: {:?}", last_booth(&sim.clients[&a2]))
    };
    assert_eq!((members.len(), members[0].id, members[0].away), (2, a2, false), "her old place: {members:?}");
    let heard = now_rtp(&sim.clients[&l]);
    assert!(level(&sim.clients[&l], heard - 300 * MS, 300, 880.0) > -20.0, "the listener hears Ana again");

    // Dropped again, and Bea takes over meanwhile: Ana comes back off air.
    sim.leave(a2);
    sim.run(Duration::from_millis(200));
    sim.send(b, handover(HandoverAction::Take)).unwrap();
    let a3 = sim.join_again(Role::Interpreter, Some("es"), "Ana", "ana-page");
    sim.connect(a3, Some(Sound::Tone(880.0)), true).unwrap();
    sim.run(Duration::from_secs(1));
    assert!(!is_live(&sim.clients[&a3]) && is_live(&sim.clients[&b]), "Bea stays on air");

    // Dropped for good: after the grace her place goes.
    sim.leave(a3);
    sim.run(tolk::core::engine::BOOTH_GRACE + Duration::from_secs(2));
    let ServerMsg::Booth { members, .. } = last_booth(&sim.clients[&b]).clone() else { unreachable!() };
    assert_eq!(members.len(), 1, "only Bea: {members:?}");
}

/// A booth holds at most MAX_BOOTH interpreters (every booth change goes to each of them, so
/// hundreds of sessions on one interpreter link would cost the engine quadratically): the
/// next is refused with a clear error, and a place freed is taken again.
#[test]
fn a_booth_is_bounded() {
    let mut sim = Sim::new(34);
    let max = tolk::core::engine::MAX_BOOTH;
    let members: Vec<u64> =
        (0..max).map(|i| sim.join(Role::Interpreter, Some("es"), &format!("i{i}"))).collect();
    let e = sim.try_join(Role::Interpreter, Some("es"), &[], "one too many", None).unwrap_err();
    assert_eq!(e.code, ErrorCode::Busy, "{e:?}");
    assert!(e.message.contains("booth es is full"), "{}", e.message);
    // Other booths are not affected, and a place that frees is taken again.
    sim.join(Role::Interpreter, Some("fr"), "elsewhere");
    sim.leave(members[0]);
    sim.run(tolk::core::engine::BOOTH_GRACE + Duration::from_secs(2));
    sim.join(Role::Interpreter, Some("es"), "in again");
}

/// Many booth changes in one turn of the media loop (a crowd leaving together) make one
/// booth message per remaining member, carrying the state after all of them.
#[test]
fn booth_changes_in_one_turn_make_one_message_per_member() {
    let mut sim = Sim::new(35);
    let members: Vec<u64> =
        (0..12).map(|i| sim.join(Role::Interpreter, Some("es"), &format!("i{i}"))).collect();
    let stay = members[0];
    sim.clients.get_mut(&stay).unwrap().inbox.clear();
    // Eleven leave before the engine's outputs are polled once.
    for &m in &members[1..] {
        sim.engine.handle_leave(sim.now, m);
        sim.clients.remove(&m);
    }
    sim.pump();
    let booths: Vec<&ServerMsg> =
        sim.clients[&stay].inbox.iter().filter(|m| matches!(m, ServerMsg::Booth { .. })).collect();
    assert_eq!(booths.len(), 1, "one message for eleven departures: {booths:?}");
    let ServerMsg::Booth { members: list, .. } = booths[0] else { unreachable!() };
    let here = list.iter().filter(|m| !m.away).count();
    assert_eq!(here, 1, "it says how the booth stands after all of them: {list:?}");
}

/// The console's audience count follows listeners as they come, switch and go, without any
/// booth event; a member who relays a channel whose interpreter leaves is told the relay is
/// silent, and told again when someone is on air there.
#[test]
fn the_audience_count_is_live_and_a_silent_relay_is_told() {
    let mut sim = Sim::new(19);
    sim.add(Role::Floor, None, "Floor", Some(Sound::Tone(440.0)));
    let es = sim.add(Role::Interpreter, Some("es"), "Ana", Some(Sound::Tone(880.0)));
    let fr = sim.add(Role::Interpreter, Some("fr"), "Luc", Some(Sound::Tone(1320.0)));
    sim.run(Duration::from_secs(1));
    let audience = |sim: &Sim| match last_booth(&sim.clients[&es]) {
        ServerMsg::Booth { listeners, .. } => *listeners,
        _ => unreachable!(),
    };
    assert_eq!(audience(&sim), 0);
    let mut listeners = Vec::new();
    for (i, balance) in [None, Some(1), Some(4)].into_iter().enumerate() {
        let l = sim.join(Role::Listener, None, &format!("L{i}"));
        sim.send(l, ClientMsg::Select { channel: Some("es".into()), only: false, balance }).unwrap();
        sim.connect(l, None, true).unwrap();
        listeners.push(l);
    }
    sim.run(Duration::from_millis(600));
    assert_eq!(audience(&sim), 3, "every balance counts, told within a state period");
    sim.send(listeners[0], select("fr", false)).unwrap();
    sim.leave(listeners[1]);
    sim.run(Duration::from_millis(600));
    assert_eq!(audience(&sim), 1, "a switch and a leave are counted too");

    // Luc relays es; Ana leaves: his relay is silent, and he is told.
    sim.send(fr, ClientMsg::Input { channel: Some("es".into()) }).unwrap();
    sim.run(Duration::from_millis(300));
    assert!(matches!(last_booth(&sim.clients[&fr]), ServerMsg::Booth { relay_silent: false, .. }));
    sim.leave(es);
    sim.run(Duration::from_millis(600));
    assert!(
        matches!(last_booth(&sim.clients[&fr]), ServerMsg::Booth { relay_silent: true, .. }),
        "told the relay is silent: {:?}",
        last_booth(&sim.clients[&fr])
    );
    let back = sim.add(Role::Interpreter, Some("es"), "Bea", Some(Sound::Tone(990.0)));
    sim.run(Duration::from_secs(1));
    assert!(is_live(&sim.clients[&back]));
    assert!(
        matches!(last_booth(&sim.clients[&fr]), ServerMsg::Booth { relay_silent: false, .. }),
        "and when it plays again"
    );
}
