//! Recording on the simulation: a recorded room hands its writer one payload per track per
//! tick, in media time with no gap, even while nobody listens; a channel whose live interpreter
//! has not consented gets the floor's payload, and its own once they agree.

use crate::harness::{Sim, Sound};
use std::time::Duration;
use tolk::core::engine::Record;
use tolk::core::room::Payload;
use tolk::protocol::{ClientMsg, Role};

/// One tick as the writer gets it: media time, and each track's payload.
type Tick<'a> = (u64, &'a Vec<(String, Option<Payload>)>);

#[test]
fn a_recorded_room_hands_every_track_a_payload_each_tick_and_consent_decides_the_channel() {
    let mut sim = Sim::new(18);
    sim.add(Role::Floor, None, "Floor", Some(Sound::Tone(440.0)));
    let es = sim.add(Role::Interpreter, Some("es"), "Ana", Some(Sound::Tone(880.0)));
    let host = sim.join(Role::Host, None, "Hana");
    sim.run(Duration::from_secs(1));
    assert!(sim.records.is_empty(), "nothing is recorded before a host asks");
    assert_eq!(sim.send(host, ClientMsg::Record { on: true }).unwrap(), None);
    sim.run(Duration::from_secs(2));
    assert_eq!(sim.send(es, ClientMsg::Consent { record: true }).unwrap(), None);
    sim.run(Duration::from_secs(2));
    assert_eq!(sim.send(host, ClientMsg::Record { on: false }).unwrap(), None);
    sim.run(Duration::from_millis(500));

    let Some(Record::Start { ms: start, .. }) = sim.records.first() else { panic!("a take starts") };
    let Some(Record::Stop { ms: stop, .. }) = sim.records.last() else { panic!("and stops") };
    let frames: Vec<Tick> = sim
        .records
        .iter()
        .filter_map(|r| match r {
            Record::Frame { ms, tracks, .. } => Some((*ms, tracks)),
            _ => None,
        })
        .collect();
    assert_eq!(frames.len() as u64, (stop - start) / 20, "one frame a tick from start to stop");
    for (i, (ms, tracks)) in frames.iter().enumerate() {
        assert_eq!(*ms, start + 20 * (i as u64 + 1), "frames in media time, no gap");
        let names: Vec<&str> = tracks.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["floor", "en", "es", "fr"]);
    }
    // Before consent the es track is the floor's payload; after it, its own mix.
    let same = |(_, t): &Tick| t[2].1.is_some() && t[2].1 == t[0].1;
    let declined = &frames[10..90];
    let agreed = &frames[frames.len() - 80..];
    assert!(declined.iter().all(same), "the es file carries the floor until Ana agrees");
    assert!(agreed.iter().all(|f| !same(f) && f.1[2].1.is_some()), "and her channel once she does");
    // Nobody listens, yet every track had audio for the whole take but its first ticks.
    let silent = frames[10..].iter().flat_map(|(_, t)| t.iter()).filter(|(_, p)| p.is_none()).count();
    assert_eq!(silent, 0, "every track encoded every tick while recorded");
}

/// A channel returned to the floor while recording: its interpreter, not having agreed, is in
/// no track (the floor is recorded without it, and so are the other channels); once they agree,
/// their voice is in the floor's track as everyone hears it.
#[test]
fn a_returned_channel_whose_interpreter_declined_is_in_no_track() {
    use tolk::core::media::codec::{Decoder, FRAME};
    let mut sim = Sim::new(23);
    sim.add(Role::Floor, None, "Floor", Some(Sound::Tone(440.0)));
    let es = sim.add(Role::Interpreter, Some("es"), "Ana", Some(Sound::Tone(880.0)));
    sim.add(Role::Interpreter, Some("fr"), "Luc", Some(Sound::Tone(1320.0)));
    let host = sim.join(Role::Host, None, "Hana");
    sim.run(Duration::from_secs(1));
    sim.send(host, ClientMsg::FloorReturn { channel: Some("es".into()) }).unwrap();
    sim.send(host, ClientMsg::Record { on: true }).unwrap();
    sim.run(Duration::from_secs(2));
    let declined = sim.records.len();
    sim.send(es, ClientMsg::Consent { record: true }).unwrap();
    sim.run(Duration::from_secs(2));

    // Each track decoded over the last second of each stretch.
    let track = |from: usize, to: usize, name: &str| {
        let mut dec = Decoder::new();
        let mut pcm = Vec::new();
        for r in &sim.records[from..to] {
            if let Record::Frame { tracks, .. } = r {
                let p = &tracks.iter().find(|(n, _)| n == name).expect("every track every tick").1;
                let mut out = [0f32; FRAME];
                dec.decode(p.as_deref(), &mut out).unwrap();
                pcm.extend_from_slice(&out);
            }
        }
        let last = pcm.len().saturating_sub(48_000);
        pcm[last..].to_vec()
    };
    let (floor, fr) = (track(0, declined, "floor"), track(0, declined, "fr"));
    let (db, fr_db) = (crate::harness::tone_db(&floor, 880.0), crate::harness::tone_db(&fr, 880.0));
    println!(
        "declined: the floor's track 440 Hz {:.1}, 880 Hz {db:.1}; fr's 880 Hz {fr_db:.1} dBFS",
        crate::harness::tone_db(&floor, 440.0)
    );
    assert!(db < -45.0 && fr_db < -45.0, "the returned interpreter who declined is in no track");
    assert!(crate::harness::tone_db(&floor, 440.0) > -20.0, "the floor is");
    let agreed = track(declined, sim.records.len(), "floor");
    let db = crate::harness::tone_db(&agreed, 880.0);
    println!("agreed: the floor's track 880 Hz {db:.1} dBFS");
    assert!(db > -25.0, "once agreed, the returned voice is in the floor as everyone hears it");
}
