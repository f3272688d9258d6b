//! The audio path on the simulation: a channel ducks the floor under its interpreter, a
//! switch is seamless on one track, the floor comes back when the interpreter stops, and
//! an interpreter never hears itself.

use crate::harness::{tone_db, Sim, Sound};
use crate::{first_from, level, now_rtp, MS};
use std::time::Duration;
use tolk::protocol::{ClientMsg, Role, ServerMsg};

#[test]
fn channels_duck_the_floor_switch_seamlessly_and_release() {
    let mut sim = Sim::new(10);
    sim.add(Role::Floor, None, "Floor", Some(Sound::Tone(440.0)));
    let es = sim.add(Role::Interpreter, Some("es"), "Ana", Some(Sound::Tone(880.0)));
    let fr = sim.add(Role::Interpreter, Some("fr"), "Luc", Some(Sound::Tone(1320.0)));
    let l = sim.join(Role::Listener, None, "Lena");
    let selected =
        sim.send(l, ClientMsg::Select { channel: Some("es".into()), only: false, balance: None }).unwrap();
    assert_eq!(selected, Some(ServerMsg::Selected { channel: Some("es".into()), only: false, balance: 2 }));
    sim.connect(l, None, true).unwrap();
    let f = sim.add(Role::Listener, None, "Otto", None);
    sim.run(Duration::from_secs(2));

    // A listener on es hears the interpreter, the floor at least 12 dB below it.
    let t = now_rtp(&sim.clients[&l]) - 500 * MS;
    let (v, fl) = (level(&sim.clients[&l], t, 500, 880.0), level(&sim.clients[&l], t, 500, 440.0));
    println!("es listener: 880 Hz {v:.1} dB, 440 Hz {fl:.1} dB");
    assert!(v > -20.0, "interpreter audible: {v:.1} dBFS");
    assert!(v - fl >= 12.0, "floor ducked at least 12 dB under the interpreter: {v:.1} vs {fl:.1}");
    assert!(fl > -45.0, "floor still present, ducked not gone: {fl:.1}");
    // A listener on the floor hears 440 Hz only.
    let full = level(&sim.clients[&f], t, 500, 440.0);
    assert!(full > -20.0);
    assert!(full - level(&sim.clients[&f], t, 500, 880.0) > 40.0, "no interpreter on the floor");
    assert!(full - level(&sim.clients[&f], t, 500, 1320.0) > 40.0, "no interpreter on the floor");
    // An interpreter hears the floor, never its own voice.
    let e = &sim.clients[&es];
    assert!(level(e, t, 500, 440.0) - level(e, t, 500, 880.0) > 40.0, "own voice absent from the return");

    // Switch es -> fr: 1320 Hz from the next tick.
    let from = now_rtp(&sim.clients[&l]) + 20 * MS;
    sim.send(l, ClientMsg::Select { channel: Some("fr".into()), only: false, balance: None }).unwrap();
    sim.run(Duration::from_millis(400));
    let heard = first_from(&sim.clients[&l], from, |h| {
        tone_db(&h.pcm, 1320.0) > -25.0 && tone_db(&h.pcm, 1320.0) > tone_db(&h.pcm, 880.0)
    })
    .expect("1320 Hz heard after the switch");
    println!("switch took {heard} ms of media time");
    assert!(heard <= 40, "switch took {heard} ms");

    // Stop the fr interpreter: the floor returns to full level within 2.5 s of media time.
    let stop = now_rtp(&sim.clients[&l]);
    sim.clients.get_mut(&fr).unwrap().sound = None;
    sim.run(Duration::from_secs(3));
    let back = first_from(&sim.clients[&l], stop, |h| tone_db(&h.pcm, 440.0) >= full - 1.0)
        .expect("the floor returns to full level");
    println!("floor back at full level {back} ms after the interpreter stopped");
    assert!(back <= 2500, "floor back after {back} ms");
    assert!(level(&sim.clients[&l], now_rtp(&sim.clients[&l]) - 300 * MS, 300, 440.0) >= full - 1.0);

    // One continuous track throughout: a frame every 20 ms of media time, none missing.
    let frames = &sim.clients[&l].heard;
    assert!(frames.len() > 250, "{} frames", frames.len());
    assert!(frames.windows(2).all(|w| w[1].rtp - w[0].rtp == 960), "one frame per 20 ms, no gap");
}

/// A listener's balance: each step beside the channel as mixed moves the floor under the
/// interpreter by 9 dB and leaves the interpreter as it is; the ends are the floor alone and the
/// interpretation alone. Each step is a stream of its own, encoded once for whoever hears it.
#[test]
fn balance_steps_move_the_floor_under_the_interpreter_by_the_stated_db() {
    let mut sim = Sim::new(21);
    sim.add(Role::Floor, None, "Floor", Some(Sound::Tone(440.0)));
    sim.add(Role::Interpreter, Some("es"), "Ana", Some(Sound::Tone(880.0)));
    let mut at = Vec::new();
    for step in 0..5u8 {
        let l = sim.join(Role::Listener, None, &format!("step {step}"));
        let r =
            sim.send(l, ClientMsg::Select { channel: Some("es".into()), only: false, balance: Some(step) });
        let only = step == 4;
        assert_eq!(r.unwrap(), Some(ServerMsg::Selected { channel: Some("es".into()), only, balance: step }));
        sim.connect(l, None, true).unwrap();
        at.push(l);
    }
    let twice = sim.join(Role::Listener, None, "also step 1");
    sim.send(twice, ClientMsg::Select { channel: Some("es".into()), only: false, balance: Some(1) }).unwrap();
    sim.connect(twice, None, true).unwrap();
    let bad =
        sim.send(twice, ClientMsg::Select { channel: Some("es".into()), only: false, balance: Some(5) });
    assert_eq!(crate::code(bad), tolk::protocol::ErrorCode::BadMessage);
    sim.run(Duration::from_secs(3));

    let t = now_rtp(&sim.clients[&at[2]]) - 1000 * MS;
    let levels: Vec<(f32, f32)> = at
        .iter()
        .map(|l| (level(&sim.clients[l], t, 1000, 440.0), level(&sim.clients[l], t, 1000, 880.0)))
        .collect();
    for (step, (floor, voice)) in levels.iter().enumerate() {
        println!("balance {step}: floor 440 Hz {floor:.1} dBFS, interpreter 880 Hz {voice:.1} dBFS");
    }
    let (standard_floor, standard_voice) = levels[2];
    assert!(
        (levels[1].0 - standard_floor - 9.0).abs() <= 1.5,
        "one step toward the original: +9 dB of floor"
    );
    assert!((levels[3].0 - standard_floor + 9.0).abs() <= 1.5, "one step toward the interpretation: -9 dB");
    for step in [1, 3] {
        assert!((levels[step].1 - standard_voice).abs() <= 1.0, "the interpreter stays at its level");
    }
    assert!(levels[0].1 < -45.0 && levels[0].0 > -20.0, "step 0 is the floor alone");
    assert!(levels[4].0 < -45.0 && levels[4].1 > -20.0, "step 4 is the interpretation alone");
}
