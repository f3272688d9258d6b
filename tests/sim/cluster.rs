//! A room across two nodes on the simulation: an origin engine mixes room `r`, an edge engine
//! mirrors it. The edge says which streams its listeners hear, the origin hands out those
//! streams' payloads each tick, and the edge sends them on to its listeners at once: they hear
//! the floor and a channel, switch as fast as on the origin, and are counted in the origin's
//! state. Sources cannot join a mirror, and a room that becomes a mirror sends its sources away.

use crate::harness::{Sim, Sound};
use crate::{first_from, level, now_rtp, MS};
use std::time::Duration;
use tolk::core::engine::{Caption, Relay};
use tolk::core::room::Stream;
use tolk::protocol::{ClientMsg, ErrorCode, Role, ServerMsg};

/// Runs both nodes `d` in lockstep, carrying wants edge → origin and media and state origin →
/// edge, as the cluster link does; returns how many payloads crossed.
fn run(origin: &mut Sim, edge: &mut Sim, d: Duration) -> usize {
    link(origin, edge, d, true)
}

/// The same, with the link up (`carried`) or down: all that crosses while down is lost.
fn link(origin: &mut Sim, edge: &mut Sim, d: Duration, carried: bool) -> usize {
    let mut crossed = 0;
    let until = origin.now + d;
    while origin.now < until {
        origin.step();
        edge.step();
        for r in std::mem::take(&mut edge.relays).into_iter().filter(|_| carried) {
            if let Relay::Want { room, streams } = r {
                origin.engine.set_wants(origin.now, &room, "edge", streams);
            }
        }
        for r in std::mem::take(&mut origin.relays).into_iter().filter(|_| carried) {
            match r {
                Relay::Media { stream, ts, payload, .. } => {
                    edge.relay_in(&stream, ts, payload);
                    crossed += 1;
                }
                Relay::State { room, msg } => edge.engine.handle_remote_state(&room, msg),
                _ => {}
            }
        }
    }
    crossed
}

/// Two nodes of a cluster: the origin of room `r`, with the floor (440 Hz) and Ana live on es
/// (880 Hz), and an edge that mirrors it.
fn origin_and_edge(seed: u64) -> (Sim, Sim) {
    let mut origin = Sim::node(seed);
    let edge = Sim::node(seed + 1);
    origin.engine.set_origin("r", true).unwrap();
    origin.add(Role::Floor, None, "Floor", Some(Sound::Tone(440.0)));
    origin.add(Role::Interpreter, Some("es"), "Ana", Some(Sound::Tone(880.0)));
    (origin, edge)
}

#[test]
fn an_edge_plays_the_origins_streams_and_its_listeners_switch_at_once() {
    let (mut origin, mut edge) = origin_and_edge(31);
    // A source cannot join the mirror: its session belongs on the origin.
    let refused = edge.try_join(Role::Interpreter, Some("es"), &[], "Bea", None).unwrap_err();
    assert_eq!(refused.code, ErrorCode::NotJoined);

    let l = edge.add(Role::Listener, None, "Lena", None);
    let crossed = run(&mut origin, &mut edge, Duration::from_secs(3));
    assert!(crossed >= 100, "{crossed} payloads crossed in 3 s");
    let c = &edge.clients[&l];
    let from = now_rtp(c) - 1000 * MS;
    let floor = level(c, from, 1000, 440.0);
    println!("edge listener hears the floor at {floor:.1} dBFS ({crossed} payloads relayed)");
    assert!(floor > -20.0 && level(c, from, 1000, 880.0) < -40.0);
    // One frame per 20 ms of media time, the origin's timestamps.
    let frames: Vec<u64> = c.heard.iter().map(|h| h.rtp).filter(|t| *t >= from).collect();
    assert!(frames.windows(2).all(|w| w[1] - w[0] == 960), "consecutive frames");

    // The origin counts the edge's listener.
    origin.run(Duration::from_millis(300));
    let host = origin.join(Role::Host, None, "Hana");
    run(&mut origin, &mut edge, Duration::from_millis(600));
    let state =
        origin.clients[&host].inbox.iter().rev().find(|m| matches!(m, ServerMsg::State { .. })).cloned();
    let Some(ServerMsg::State { floor, .. }) = state else { panic!("the host gets the room's state") };
    assert_eq!(floor.listeners, 1, "the listener on the edge is counted on the origin");

    // A switch on the edge: es within 100 ms of media time.
    let before = now_rtp(&edge.clients[&l]);
    edge.send(l, ClientMsg::Select { channel: Some("es".into()), only: false, balance: None }).unwrap();
    run(&mut origin, &mut edge, Duration::from_secs(1));
    let took = first_from(&edge.clients[&l], before, |h| crate::harness::tone_db(&h.pcm, 880.0) > -25.0)
        .expect("es heard on the edge");
    println!("switch on the edge: es heard {took} ms of media time later");
    assert!(took <= 100, "switch took {took} ms");
    // No frame missing or twice across the switch: the floor goes on until es comes.
    let across: Vec<u64> =
        edge.clients[&l].heard.iter().map(|h| h.rtp).filter(|t| *t + 500 * MS >= before).collect();
    assert!(across.len() > 50 && across.windows(2).all(|w| w[1] - w[0] == 960), "a gap or a frame twice");
    // The origin now encodes es for the edge, and no longer the floor (nobody hears it there).
    let wanted: Vec<Stream> = {
        run(&mut origin, &mut edge, Duration::from_millis(100));
        let mut s = Vec::new();
        for _ in 0..5 {
            origin.step();
            for r in std::mem::take(&mut origin.relays) {
                if let Relay::Media { stream, .. } = r {
                    s.push(stream);
                }
            }
        }
        s
    };
    assert!(wanted.iter().all(|s| *s == Stream::Channel("es".into())), "{wanted:?}");
}

#[test]
fn a_room_that_becomes_a_mirror_sends_its_sources_away_and_keeps_its_listeners() {
    let mut sim = Sim::new(33);
    let ana = sim.add(Role::Interpreter, Some("es"), "Ana", Some(Sound::Tone(880.0)));
    let l = sim.add(Role::Listener, None, "Lena", None);
    sim.run(Duration::from_secs(1));
    sim.engine.set_origin("r", false).unwrap();
    sim.pump();
    let told = sim.clients[&ana].inbox.iter().any(
        |m| matches!(m, ServerMsg::Error { code: ErrorCode::NotJoined, message, .. } if message.contains("another node")),
    );
    assert!(told, "the interpreter is told to join again: {:?}", sim.clients[&ana].inbox);
    let reply = sim.send(l, ClientMsg::Select { channel: Some("fr".into()), only: false, balance: None });
    assert!(reply.unwrap().is_some(), "the listener's session goes on");
    // Taken back: mixed here again, and a source may join.
    sim.engine.set_origin("r", true).unwrap();
    assert!(sim.try_join(Role::Interpreter, Some("es"), &[], "Ana2", None).is_ok());
}

#[test]
fn an_edge_gives_its_listeners_the_origins_captions_and_state_and_ignores_its_own_recogniser() {
    let mut edge = Sim::new(34);
    edge.engine.set_origin("r", false).unwrap();
    let l = edge.add(Role::Listener, None, "Lena", None);
    edge.run(Duration::from_secs(1));
    // A caption of the floor from the origin reaches the floor's listener here.
    let caption = Caption {
        room: "r".into(),
        source: None,
        lang: Some("en".into()),
        text: "good morning".into(),
        is_final: true,
        start_ms: 500,
        end_ms: 900,
        skipped_ms: 0,
    };
    edge.engine.handle_remote_caption(caption.clone());
    // What this node's own recogniser might say of a mirror is not delivered: the origin captions it.
    edge.engine.handle_caption(Caption { text: "not from here".into(), ..caption });
    edge.pump();
    let texts: Vec<&str> = edge.clients[&l]
        .inbox
        .iter()
        .filter_map(|m| match m {
            ServerMsg::Caption { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(texts, ["good morning"]);
    // The origin's state replaces the mirror's own (which knows no interpreter).
    let mut origin = Sim::new(35);
    origin.add(Role::Interpreter, Some("es"), "Ana", Some(Sound::Tone(880.0)));
    let host = origin.join(Role::Host, None, "Hana");
    origin.run(Duration::from_millis(600));
    let state =
        origin.clients[&host].inbox.iter().rev().find(|m| matches!(m, ServerMsg::State { .. })).cloned();
    edge.engine.handle_remote_state("r", state.expect("the origin's state"));
    edge.pump();
    let seen = edge.clients[&l].inbox.iter().rev().find_map(|m| match m {
        ServerMsg::State { channels, .. } => {
            channels.iter().find(|c| c.lang == "es").and_then(|c| c.live.clone())
        }
        _ => None,
    });
    assert_eq!(seen.as_deref(), Some("Ana"), "the listener on the edge sees who is live at the origin");
}

#[test]
fn what_a_stalled_link_lost_is_made_good_within_a_second_and_a_promoted_mirror_stops_wanting() {
    let (mut origin, mut edge) = origin_and_edge(36);
    // The listener comes while the link is down: its want, said once on the change, is lost,
    // and so is the origin's state of the room with Ana live.
    let l = edge.add(Role::Listener, None, "Lena", None);
    link(&mut origin, &mut edge, Duration::from_millis(1500), false);
    assert!(edge.clients[&l].heard.is_empty(), "nothing crossed a link that is down");
    let back = edge.now;
    run(&mut origin, &mut edge, Duration::from_secs(2));
    let c = &edge.clients[&l];
    let first = c.heard.iter().find(|h| crate::harness::tone_db(&h.pcm, 440.0) > -25.0);
    let took = first.expect("the floor heard once the link is back").at.duration_since(back).as_millis();
    println!("link back: the floor heard after {took} ms of media time");
    assert!(took <= 1100, "the want was said again only after {took} ms");
    let live = c.inbox.iter().rev().find_map(|m| match m {
        ServerMsg::State { channels, .. } => {
            channels.iter().find(|ch| ch.lang == "es").map(|ch| ch.live.clone())
        }
        _ => None,
    });
    assert_eq!(live, Some(Some("Ana".to_string())), "the origin's state said again");
    // Told once, not every second: the same state again is not sent to the sessions.
    let states =
        |c: &crate::harness::Client| c.inbox.iter().filter(|m| matches!(m, ServerMsg::State { .. })).count();
    let before = states(&edge.clients[&l]);
    run(&mut origin, &mut edge, Duration::from_secs(3));
    assert_eq!(states(&edge.clients[&l]), before, "an unchanged state is not told again");

    // The edge becomes the room's origin: it says at once that it wants nothing relayed.
    edge.relays.clear();
    edge.engine.set_origin("r", true).unwrap();
    edge.run(Duration::from_secs(2));
    let wants: Vec<usize> = edge
        .relays
        .iter()
        .filter_map(|r| match r {
            Relay::Want { streams, .. } => Some(streams.len()),
            _ => None,
        })
        .collect();
    assert_eq!(wants, [0], "one empty want, then none");
}
