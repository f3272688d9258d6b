//! The real world's networks on the simulation: loss, jitter, duplicates and stalls on the
//! way in and out, and garbage datagrams, judged by what listeners hear in media time.

use crate::harness::{tone_db, Faults, Sim, Sound};
use crate::{level, now_rtp, MS};
use std::net::SocketAddr;
use std::time::Duration;
use tolk::core::engine::{Counter, DatagramError};
use tolk::protocol::Role;

/// The share of frames from media time `from` on in which `hz` plays.
fn playing(sim: &Sim, peer: u64, from: u64, hz: f32) -> f64 {
    let frames: Vec<_> = sim.clients[&peer].heard.iter().filter(|h| h.rtp >= from).collect();
    frames.iter().filter(|h| tone_db(&h.pcm, hz) > -20.0).count() as f64 / frames.len().max(1) as f64
}

/// The share of media time from `from` to the last frame in which `hz` plays (frames never sent count as silence).
fn playing_in_media_time(sim: &Sim, peer: u64, from: u64, hz: f32) -> f64 {
    let frames: Vec<_> = sim.clients[&peer].heard.iter().filter(|h| h.rtp >= from).collect();
    let Some(last) = frames.last() else { return 0.0 };
    let span = (last.rtp - frames[0].rtp) / 960 + 1;
    frames.iter().filter(|h| tone_db(&h.pcm, hz) > -20.0).count() as f64 / span as f64
}

/// The holes in a listener's track from `from` on: runs of media time with no packet, in ms.
fn holes(sim: &Sim, peer: u64, from: u64) -> Vec<u64> {
    let frames: Vec<_> = sim.clients[&peer].heard.iter().filter(|h| h.rtp >= from).collect();
    frames.windows(2).map(|w| (w[1].rtp - w[0].rtp) / MS).filter(|ms| *ms > 20).map(|ms| ms - 20).collect()
}

#[test]
fn loss_jitter_and_duplicates_on_the_way_in_leave_the_floor_playing() {
    let mut sim = Sim::new(30);
    let f = sim.add(Role::Floor, None, "Floor", Some(Sound::Tone(440.0)));
    let l = sim.add(Role::Listener, None, "Lena", None);
    sim.run(Duration::from_secs(1));
    let from = now_rtp(&sim.clients[&l]);
    sim.clients.get_mut(&f).unwrap().up = Faults {
        loss: 0.03,
        duplicate: 0.02,
        jitter: Duration::from_millis(30),
        only_media: true,
        ..Faults::default()
    };
    sim.run(Duration::from_secs(20));
    let share = playing_in_media_time(&sim, l, from, 440.0);
    let s = sim.engine.snapshot().stats;
    let holes = holes(&sim, l, from);
    println!(
        "3 % loss, 2 % duplicates, 30 ms jitter in: floor plays in {:.1} % of 20 s of media time; {} concealed, \
         {} refused; holes in the listener's track (ms): {holes:?}",
        share * 100.0,
        s.get(Counter::FramesConcealed),
        s.get(Counter::MediaRejected)
    );
    // The floor is forwarded as its sender encoded it: a frame lost on the way in is not sent
    // on (the listener's decoder conceals it in step with the sender's), so the listener's
    // track misses the lost frames and nothing more.
    assert!(share > 0.95, "the floor plays through the faults: {:.1} %", share * 100.0);
    assert!(s.get(Counter::FramesConcealed) > 0, "lost packets are concealed for the mixes");
    let missing: u64 = holes.iter().sum::<u64>() / 20;
    assert!(missing <= s.get(Counter::FramesConcealed), "only lost frames are missing: {holes:?}");
    assert!(holes.iter().all(|ms| *ms <= 40), "no hole longer than 40 ms: {holes:?}");
}

#[test]
fn loss_on_the_way_out_costs_only_the_lost_packets() {
    let mut sim = Sim::new(31);
    sim.add(Role::Floor, None, "Floor", Some(Sound::Tone(440.0)));
    // A listener that takes plain Opus, without RED's redundancy.
    let l = sim.join(Role::Listener, None, "Lena");
    sim.connect_with(l, None, true, false).unwrap();
    let witness = sim.add(Role::Listener, None, "Wanda", None);
    sim.run(Duration::from_secs(1));
    let (from, before) = (now_rtp(&sim.clients[&l]), sim.clients[&l].heard.len());
    sim.clients.get_mut(&l).unwrap().down = Faults { loss: 0.05, only_media: true, ..Faults::default() };
    sim.run(Duration::from_secs(20));
    let got = sim.clients[&l].heard.len() - before;
    println!("5 % loss toward one listener: {got} of 1000 frames arrived");
    assert!((920..=980).contains(&got), "about 95 % arrive: {got}");
    assert!(playing(&sim, l, from, 440.0) > 0.99, "what arrives plays");
    let w = &sim.clients[&witness];
    assert!(w.heard.windows(2).all(|x| x[1].rtp - x[0].rtp == 960), "another listener loses nothing");
}

#[test]
fn a_stalled_publisher_is_heard_again_once_its_packets_flow() {
    let mut sim = Sim::new(32);
    let f = sim.add(Role::Floor, None, "Floor", Some(Sound::Tone(440.0)));
    let l = sim.add(Role::Listener, None, "Lena", None);
    sim.run(Duration::from_secs(1));
    let until = sim.now + Duration::from_millis(200);
    sim.clients.get_mut(&f).unwrap().up =
        Faults { stall_until: Some(until), only_media: true, ..Faults::default() };
    sim.run(Duration::from_millis(200));
    let end = now_rtp(&sim.clients[&l]);
    sim.run(Duration::from_secs(2));
    let c = &sim.clients[&l];
    let back = c
        .heard
        .iter()
        .filter(|h| h.rtp >= end)
        .find(|h| tone_db(&h.pcm, 440.0) > -20.0)
        .map(|h| (h.rtp - end) / MS)
        .expect("the floor plays again");
    println!("200 ms stall on the way in: the floor plays again {back} ms after it ends");
    assert!(back <= 500, "heard again {back} ms after the stall");
    assert!(level(c, now_rtp(c) - 500 * MS, 500, 440.0) > -20.0, "and keeps playing");
}

#[test]
fn garbage_datagrams_are_refused_and_counted_and_the_room_plays_on() {
    let mut sim = Sim::new(33);
    sim.add(Role::Floor, None, "Floor", Some(Sound::Tone(440.0)));
    let l = sim.add(Role::Listener, None, "Lena", None);
    sim.run(Duration::from_secs(1));
    let stats = |sim: &Sim, c| sim.engine.snapshot().stats.get(c);
    let (unparsed, unrouted) =
        (stats(&sim, Counter::DatagramsUnparsed), stats(&sim, Counter::DatagramsUnrouted));

    // Well-formed ICE checks for usernames that are not ours, from 200 addresses.
    for i in 0..200u32 {
        let from: SocketAddr = format!("10.9.{}.{}:{}", i / 200, i % 200 + 1, 6000 + i).parse().unwrap();
        let mut buf = [0u8; 256];
        let n = str0m::ice::StunMessage::binding_request(
            &format!("nobody{i}:forger"),
            str0m::ice::TransId::new(),
            true,
            1,
            1,
            false,
        )
        .to_bytes(Some(b"a guessed password"), &mut buf, tolk::core::wire::srtp::hmac_sha1)
        .unwrap();
        assert_eq!(sim.inject(from, &buf[..n]), Err(DatagramError::Unrouted(from)));
    }
    assert_eq!(
        stats(&sim, Counter::DatagramsUnrouted) - unrouted,
        200,
        "each forged check is one lookup and a drop"
    );

    // Random bytes, a fake RTP header from nowhere, a truncated STUN message, an empty datagram.
    let junk: SocketAddr = "10.9.9.9:9999".parse().unwrap();
    let mut rng = crate::harness::Rng::new(33);
    for i in 0..500usize {
        let len = (i * 7) % 1400 + 1;
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        assert!(sim.inject(junk, &bytes).is_err(), "garbage is refused");
        if i % 25 == 0 {
            sim.step();
        }
    }
    assert!(sim.inject(junk, &[0x80, 111, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3]).is_err());
    assert!(sim.inject(junk, &[0x00, 0x01, 0x00, 0x50, 0x21, 0x12, 0xa4, 0x42]).is_err());
    assert_eq!(sim.inject(junk, &[]), Err(DatagramError::Unparsed));
    assert!(stats(&sim, Counter::DatagramsUnparsed) > unparsed, "unreadable datagrams are counted");

    // The listener's track went on through it all, and goes on.
    sim.run(Duration::from_secs(1));
    let c = &sim.clients[&l];
    assert!(c.heard.windows(2).all(|w| w[1].rtp - w[0].rtp == 960), "no frame lost");
    assert!(level(c, now_rtp(c) - 500 * MS, 500, 440.0) > -20.0, "the floor tone still plays");
}
