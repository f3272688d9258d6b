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
