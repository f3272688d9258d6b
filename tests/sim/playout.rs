//! Audio that survives real networks, on the simulation: a lost packet costs one concealed
//! frame and no delay, a stall costs its length once, loss with jitter leaves no hole,
//! duplicates and reordering change nothing, and a forwarded floor never carries a frame
//! of ours among the sender's. Mouth-to-ear is timed on beeps: from the frame that starts
//! one leaving its publisher to its first frame arriving at the listener.

use crate::harness::{Faults, Sim, Sound};
use crate::{now_rtp, MS};
use std::time::{Duration, Instant};
use tolk::core::engine::Counter;
use tolk::core::room::PeerId;
use tolk::protocol::{ClientMsg, Role};

const BEEPS: Sound = Sound::Beeps { hz: 880.0, every: 25, len: 10 };

/// A room with a beeping es interpreter that sends plain Opus (no RED) and a listener of its voice.
fn beeping(seed: u64) -> (Sim, PeerId, PeerId) {
    beeping_with(seed, false)
}

fn beeping_with(seed: u64, red: bool) -> (Sim, PeerId, PeerId) {
    let mut sim = Sim::new(seed);
    let es = sim.join(Role::Interpreter, Some("es"), "Ana");
    sim.connect_with(es, Some(BEEPS), true, red).unwrap();
    let l = sim.join(Role::Listener, None, "Lena");
    sim.send(l, ClientMsg::Select { channel: Some("es".into()), only: true, balance: None }).unwrap();
    sim.connect(l, None, true).unwrap();
    sim.run(Duration::from_secs(3));
    (sim, es, l)
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

/// The delays of the beeps sent from `from` on, in ms.
fn delays_from(sim: &Sim, publisher: PeerId, listener: PeerId, from: Instant) -> Vec<(u64, u64)> {
    sim.beep_delays(publisher, listener)
        .into_iter()
        .filter(|(sent, _)| *sent >= from)
        .map(|(sent, d)| (ms(sent - from), ms(d)))
        .collect()
}

/// The baseline: the median delay of the beeps heard so far.
fn baseline(sim: &Sim, publisher: PeerId, listener: PeerId) -> u64 {
    let mut d: Vec<u64> = sim.beep_delays(publisher, listener).into_iter().map(|(_, d)| ms(d)).collect();
    assert!(d.len() >= 4, "beeps heard: {d:?}");
    d.sort_unstable();
    d[d.len() / 2]
}

/// Media-time gaps (ms beyond one frame) in what `listener` received from media time `from` on.
fn holes(sim: &Sim, listener: PeerId, from: u64) -> Vec<u64> {
    let frames: Vec<_> = sim.clients[&listener].heard.iter().filter(|h| h.rtp >= from).collect();
    frames.windows(2).map(|w| (w[1].rtp - w[0].rtp) / MS).filter(|ms| *ms > 20).map(|ms| ms - 20).collect()
}

/// Runs of silent frames (ms) inside beeps heard by `listener` from media time `from` on:
/// a beep lasts 200 ms and the silence between two 300 ms, so a silent run between loud
/// frames shorter than 200 ms is a hole in the voice.
fn silent_runs_in_beeps(sim: &Sim, listener: PeerId, from: u64) -> Vec<u64> {
    let loud: Vec<bool> = sim.clients[&listener]
        .heard
        .iter()
        .filter(|h| h.rtp >= from)
        .map(|h| crate::harness::tone_db(&h.pcm, 880.0) > -30.0)
        .collect();
    let mut runs = Vec::new();
    let mut run = None;
    for (i, l) in loud.iter().enumerate() {
        match (l, run) {
            (false, None) if loud[..i].contains(&true) => run = Some(i),
            (true, Some(start)) => {
                runs.push(20 * (i - start) as u64);
                run = None;
            }
            _ => {}
        }
    }
    runs.retain(|ms| *ms < 200);
    runs
}

#[test]
fn one_lost_packet_costs_one_concealed_frame_and_no_delay() {
    let (mut sim, es, l) = beeping(40);
    let base = baseline(&sim, es, l);
    let concealed = sim.engine.snapshot().stats.get(Counter::FramesConcealed);
    let from = now_rtp(&sim.clients[&l]);
    let t = sim.now;
    sim.clients.get_mut(&es).unwrap().up.drop_media = 1;
    sim.run(Duration::from_secs(4));
    let concealed = sim.engine.snapshot().stats.get(Counter::FramesConcealed) - concealed;
    let after = delays_from(&sim, es, l, t);
    println!("one lost packet: baseline {base} ms; {concealed} frame concealed; beeps after (sent at, delay ms): {after:?}");
    assert_eq!(concealed, 1, "the lost packet is concealed in its own slot");
    assert!(holes(&sim, l, from).is_empty(), "the listener's track has no hole");
    let silent = silent_runs_in_beeps(&sim, l, from);
    assert!(silent.iter().all(|ms| *ms <= 20), "at most the concealed frame is quiet: {silent:?}");
    assert!(
        after.iter().filter(|(at, _)| *at >= 2000).all(|(_, d)| *d <= base + 20),
        "delay back within 2 s: {after:?}"
    );
}

#[test]
fn a_200ms_stall_costs_its_length_once() {
    let (mut sim, es, l) = beeping(41);
    let base = baseline(&sim, es, l);
    let t = sim.now;
    let until = t + Duration::from_millis(200);
    sim.clients.get_mut(&es).unwrap().up =
        Faults { stall_until: Some(until), only_media: true, ..Faults::default() };
    sim.run(Duration::from_secs(6));
    let after = delays_from(&sim, es, l, t);
    println!("200 ms stall: baseline {base} ms; beeps after (sent at, delay ms): {after:?}");
    assert!(
        after.iter().filter(|(at, _)| *at >= 5000).all(|(_, d)| *d <= base + 20),
        "delay back within 5 s: {after:?}"
    );
    assert!(after.iter().all(|(_, d)| *d <= base + 240), "the stall costs its length, once: {after:?}");
}

#[test]
fn loss_with_jitter_leaves_no_hole_in_an_encoded_channel() {
    for (seed, loss) in [(42, 0.03), (43, 0.10)] {
        let (mut sim, es, l) = beeping(seed);
        let from = now_rtp(&sim.clients[&l]);
        let t = sim.now;
        sim.clients.get_mut(&es).unwrap().up =
            Faults { loss, jitter: Duration::from_millis(30), only_media: true, ..Faults::default() };
        sim.run(Duration::from_secs(20));
        let holes = holes(&sim, l, from);
        let silent = silent_runs_in_beeps(&sim, l, from);
        let mut d: Vec<u64> = delays_from(&sim, es, l, t).into_iter().map(|(_, d)| d).collect();
        d.sort_unstable();
        let s = sim.engine.snapshot().stats;
        println!(
            "{:.0} % loss, 30 ms jitter in: {} concealed, {} late; delay p50 {} ms, max {} ms; silent runs in beeps {silent:?}",
            loss * 100.0,
            s.get(Counter::FramesConcealed),
            s.get(Counter::MediaRejected),
            d[d.len() / 2],
            d[d.len() - 1]
        );
        assert!(holes.is_empty(), "no packet missing toward the listener: {holes:?}");
        assert!(silent.iter().all(|ms| *ms <= 40), "no hole over 40 ms in the voice: {silent:?}");
    }
}

#[test]
fn duplicates_and_reordering_change_nothing() {
    let (mut sim, es, l) = beeping(44);
    let base = baseline(&sim, es, l);
    let before = sim.engine.snapshot().stats;
    let t = sim.now;
    // Up to 15 ms of jitter reorders packets sent 20 ms apart now and then; a tenth come twice.
    sim.clients.get_mut(&es).unwrap().up =
        Faults { duplicate: 0.1, jitter: Duration::from_millis(15), only_media: true, ..Faults::default() };
    sim.run(Duration::from_secs(10));
    let s = sim.engine.snapshot().stats;
    let after = delays_from(&sim, es, l, t);
    println!("duplicates and reordering: baseline {base} ms; after {after:?}");
    // A duplicate is dropped by SRTP's replay check, or by the jitter buffer if one got through.
    assert_eq!(s.get(Counter::FramesConcealed), before.get(Counter::FramesConcealed), "nothing concealed");
    assert!(after.iter().all(|(_, d)| *d <= base + 20), "no added delay: {after:?}");
}

#[test]
fn a_forwarded_floor_never_carries_a_frame_of_ours() {
    let mut sim = Sim::new(45);
    let f = sim.add(Role::Floor, None, "Floor", Some(Sound::Tone(440.0)));
    let l = sim.add(Role::Listener, None, "Lena", None);
    let interpreter = sim.add(Role::Interpreter, Some("es"), "Ana", Some(Sound::Silence));
    sim.run(Duration::from_secs(1));
    let from = now_rtp(&sim.clients[&l]);
    sim.clients.get_mut(&f).unwrap().up =
        Faults { loss: 0.03, jitter: Duration::from_millis(30), only_media: true, ..Faults::default() };
    sim.run(Duration::from_secs(20));
    for (who, peer) in [("floor listener", l), ("interpreter", interpreter)] {
        let c = &sim.clients[&peer];
        let peak = c
            .heard
            .iter()
            .filter(|h| h.rtp >= from)
            .flat_map(|h| h.pcm.iter())
            .fold(0f32, |m, x| m.max(x.abs()));
        let missing: u64 = holes(&sim, peer, from).iter().sum::<u64>() / 20;
        println!(
            "3 % loss on a forwarded floor: {who} peak {:.1} dBFS, {missing} frames not sent",
            20.0 * peak.log10()
        );
        // The tone is sent at 0.3 (-10.5 dBFS); a frame of our encoder among the sender's
        // throws the listener's decoder out of step, which it hears as bursts far above that.
        assert!(peak < 0.4, "{who}: peak {peak}");
    }
}

#[test]
fn red_recovers_single_losses_toward_a_listener() {
    let mut sim = Sim::new(46);
    sim.add(Role::Interpreter, Some("es"), "Ana", Some(Sound::Tone(880.0)));
    let mut listeners = Vec::new();
    for (name, red) in [("with RED", true), ("without", false)] {
        let l = sim.join(Role::Listener, Some("es"), name);
        sim.connect_with(l, None, true, red).unwrap();
        listeners.push(l);
    }
    sim.run(Duration::from_secs(2));
    let from = now_rtp(&sim.clients[&listeners[0]]);
    for l in &listeners {
        sim.clients.get_mut(l).unwrap().down = Faults { loss: 0.05, only_media: true, ..Faults::default() };
    }
    sim.run(Duration::from_secs(20));
    let missing: Vec<u64> =
        listeners.iter().map(|l| holes(&sim, *l, from).iter().sum::<u64>() / 20).collect();
    println!("5 % loss toward listeners: frames missing with RED {}, without {}", missing[0], missing[1]);
    assert!(missing[1] >= 20, "the loss is there: {missing:?}");
    assert!(missing[0] * 5 <= missing[1], "RED recovers single losses: {missing:?}");
    let c = &sim.clients[&listeners[0]];
    let level = crate::level(c, now_rtp(c) - 500 * MS, 500, 880.0);
    assert!(level > -20.0, "and plays the right audio: {level:.1}");
}

/// The true peak (dBTP) of what `peer` decoded from media time `from` on: the highest sample
/// after 4x oversampling with a windowed-sinc interpolator (ITU-R BS.1770-4, annex 2).
fn true_peak_dbtp(sim: &Sim, peer: PeerId, from: u64) -> f32 {
    let pcm: Vec<f32> =
        sim.clients[&peer].heard.iter().filter(|h| h.rtp >= from).flat_map(|h| h.pcm.clone()).collect();
    const TAPS: i32 = 12;
    let sinc =
        |x: f32| if x == 0.0 { 1.0 } else { (std::f32::consts::PI * x).sin() / (std::f32::consts::PI * x) };
    let mut peak = pcm.iter().fold(0f32, |m, x| m.max(x.abs()));
    for phase in 1..4 {
        let frac = phase as f32 / 4.0;
        let kernel: Vec<f32> = (-TAPS + 1..=TAPS)
            .map(|k| {
                let x = k as f32 - frac;
                let window = 0.5 + 0.5 * (std::f32::consts::PI * x / TAPS as f32).cos();
                sinc(x) * window
            })
            .collect();
        for n in TAPS as usize..pcm.len().saturating_sub(TAPS as usize) {
            let v: f32 = kernel.iter().enumerate().map(|(i, k)| k * pcm[n + i + 1 - TAPS as usize]).sum();
            peak = peak.max(v.abs());
        }
    }
    20.0 * peak.max(1e-9).log10()
}

#[test]
fn nothing_decoded_goes_above_minus_1_dbtp_even_from_clipped_input() {
    for (what, sound) in [
        ("clipped noise", Sound::ClippedNoise),
        ("a tone at +6 dBFS", Sound::ToneAt { hz: 880.0, dbfs: 6.0 }),
        ("a tone at -1 dBFS", Sound::ToneAt { hz: 3000.0, dbfs: -1.0 }),
    ] {
        let mut sim = Sim::new(48);
        sim.add(Role::Floor, None, "Floor", Some(sound.clone()));
        let es = sim.add(Role::Interpreter, Some("es"), "Ana", Some(sound));
        let l = sim.join(Role::Listener, Some("es"), "Lena");
        sim.connect(l, None, true).unwrap();
        let f = sim.add(Role::Listener, None, "Flo", None);
        sim.run(Duration::from_secs(1));
        let from = now_rtp(&sim.clients[&l]);
        sim.run(Duration::from_secs(4));
        for (who, peer) in [("es listener", l), ("floor listener", f), ("es interpreter", es)] {
            let peak = true_peak_dbtp(&sim, peer, from);
            println!("{what} in: {who} decodes a true peak of {peak:.1} dBTP");
            assert!(peak <= -1.0, "{what}: {who} at {peak:.1} dBTP");
        }
    }
}

#[test]
fn a_quiet_and_a_loud_interpreter_end_at_the_same_level_as_the_floor_and_both_duck_it() {
    let mut sim = Sim::new(49);
    sim.add(Role::Floor, None, "Floor", Some(Sound::Tone(440.0)));
    let floor = sim.add(Role::Listener, None, "Otto", None);
    sim.add(Role::Interpreter, Some("es"), "Quiet", Some(Sound::ToneAt { hz: 660.0, dbfs: -30.0 }));
    sim.add(Role::Interpreter, Some("fr"), "Loud", Some(Sound::ToneAt { hz: 990.0, dbfs: -6.0 }));
    let mut ls = Vec::new();
    for lang in ["es", "fr"] {
        let l = sim.join(Role::Listener, Some(lang), lang);
        sim.connect(l, None, true).unwrap();
        ls.push(l);
    }
    sim.run(Duration::from_secs(12));
    let at = now_rtp(&sim.clients[&ls[0]]) - 1000 * MS;
    let (es, fr) = (&sim.clients[&ls[0]], &sim.clients[&ls[1]]);
    let (quiet, loud) = (crate::level(es, at, 1000, 660.0), crate::level(fr, at, 1000, 990.0));
    let (floor_es, floor_fr) = (crate::level(es, at, 1000, 440.0), crate::level(fr, at, 1000, 440.0));
    let full = crate::level(&sim.clients[&floor], at, 1000, 440.0);
    println!(
        "interpreters at -30 and -6 dBFS peaks: heard at {quiet:.1} and {loud:.1} dBFS; the floor (sent at -10.5) at {full:.1}, under them {floor_es:.1} and {floor_fr:.1}"
    );
    assert!((quiet - loud).abs() <= 2.0, "within 2 dB of each other: {quiet:.1} vs {loud:.1}");
    assert!(
        (full - quiet).abs() <= 2.0,
        "and of the floor: switching changes language, not level: {full:.1}"
    );
    assert!(
        quiet - floor_es >= 12.0,
        "the quiet interpreter's voice ducks the floor: {quiet:.1} vs {floor_es:.1}"
    );
    assert!(loud - floor_fr >= 12.0, "and so does the loud one's: {loud:.1} vs {floor_fr:.1}");
}
