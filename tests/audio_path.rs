//! The audio path end to end over loopback WebRTC: floor 440 Hz, es interpreter 880 Hz,
//! fr interpreter 1320 Hz; listeners' decoded audio is analysed, in media time.

mod common;

use common::*;
use std::time::{Duration, Instant};
use tolk::protocol::{Role, ServerMsg};

const F: u64 = FRAME as u64;
const MS: u64 = 48; // samples per millisecond

fn after(frames: &[Frame], t: Instant) -> Vec<Frame> {
    frames.iter().filter(|f| f.at >= t).cloned().collect()
}

fn tail(frames: &[Frame], ms: u64) -> Vec<f32> {
    let last = frames.last().expect("frames received").rtp;
    window(frames, last.saturating_sub(ms * MS), last + 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_duck_the_floor_switch_seamlessly_and_release() {
    let s = server().await;

    let mut floor_sig = Signal::connect(&s).await;
    assert!(matches!(
        floor_sig.join(&token(&s, Role::Floor, None, "Floor"), None).await,
        ServerMsg::Joined { .. }
    ));
    let _floor = media(&mut floor_sig, Some(440.0), false).await;

    let mut es_sig = Signal::connect(&s).await;
    es_sig.join(&token(&s, Role::Interpreter, Some("es"), "Ana"), None).await;
    let es = media(&mut es_sig, Some(880.0), true).await;
    es_sig
        .wait_booth("the first interpreter in a booth goes on air", |b| {
            matches!(b, ServerMsg::Booth { live: true, .. })
        })
        .await;

    let mut fr_sig = Signal::connect(&s).await;
    fr_sig.join(&token(&s, Role::Interpreter, Some("fr"), "Luc"), None).await;
    let fr = media(&mut fr_sig, Some(1320.0), true).await;

    let mut l_sig = Signal::connect(&s).await;
    l_sig.join(&token(&s, Role::Listener, None, "Lena"), None).await;
    assert_eq!(
        l_sig.select(Some("es")).await,
        ServerMsg::Selected { channel: Some("es".into()), only: false, balance: 2 }
    );
    let listener = media(&mut l_sig, None, true).await;

    let mut f_sig = Signal::connect(&s).await;
    f_sig.join(&token(&s, Role::Listener, None, "Otto"), None).await;
    let floor_listener = media(&mut f_sig, None, true).await;

    // Two seconds of media: ducking has long settled.
    listener.wait_frames(100, 10).await;
    floor_listener.wait_frames(100, 10).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    // A listener on es hears the interpreter, the floor at least 12 dB below it.
    let l = tail(&listener.frames(), 500);
    let (v, fl) = (tone_db(&l, 880.0), tone_db(&l, 440.0));
    println!("es listener: 880 Hz {v:.1} dB, 440 Hz {fl:.1} dB, 1320 Hz {:.1} dB", tone_db(&l, 1320.0));
    assert!(v > -20.0, "interpreter audible: {v:.1} dBFS");
    assert!(v - fl >= 12.0, "floor ducked at least 12 dB under the interpreter: {v:.1} vs {fl:.1}");
    assert!(fl > -45.0, "floor still present, ducked not gone: {fl:.1}");

    // A listener on the floor hears 440 Hz only.
    let f = tail(&floor_listener.frames(), 500);
    let full = tone_db(&f, 440.0);
    println!(
        "floor listener: 440 Hz {full:.1} dB, 880 Hz {:.1}, 1320 Hz {:.1}",
        tone_db(&f, 880.0),
        tone_db(&f, 1320.0)
    );
    assert!(full > -20.0);
    assert!(
        full - tone_db(&f, 880.0) > 40.0 && full - tone_db(&f, 1320.0) > 40.0,
        "no interpreter on the floor"
    );

    // An interpreter hears the floor, never its own voice.
    let e = tail(&es.frames(), 500);
    println!(
        "es interpreter hears: 440 Hz {:.1} dB, 880 Hz {:.1} dB",
        tone_db(&e, 440.0),
        tone_db(&e, 880.0)
    );
    assert!(tone_db(&e, 440.0) - tone_db(&e, 880.0) > 40.0, "own voice absent from the interpreter's return");

    // Switch es -> fr: 1320 Hz within 100 ms of media time, no gap over 40 ms.
    let switch = Instant::now();
    assert_eq!(
        l_sig.select(Some("fr")).await,
        ServerMsg::Selected { channel: Some("fr".into()), only: false, balance: 2 }
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    let frames = listener.frames();
    let from = after(&frames, switch).first().expect("frames after the switch").rtp;
    let heard = frames
        .iter()
        .find(|f| {
            f.rtp >= from
                && tone_db(&f.pcm, 1320.0) > -25.0
                && tone_db(&f.pcm, 1320.0) > tone_db(&f.pcm, 880.0)
        })
        .expect("1320 Hz heard after the switch")
        .rtp;
    println!("switch took {} ms of media time", (heard - from) / MS);
    assert!(heard - from <= 100 * MS, "switch took {} ms", (heard - from) / MS);

    // Stop the fr interpreter: the floor returns to full level within 2.5 s of media time.
    let stop = Instant::now();
    fr.sending.store(false, std::sync::atomic::Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let frames = listener.frames();
    let from = after(&frames, stop).first().expect("frames after the stop").rtp;
    let back = frames
        .iter()
        .filter(|f| f.rtp >= from)
        .find(|f| tone_db(&f.pcm, 440.0) >= full - 1.0)
        .expect("the floor returns to full level")
        .rtp;
    println!("floor back at full level {} ms after the interpreter stopped", (back - from) / MS);
    assert!(back - from <= 2500 * MS, "floor back after {} ms", (back - from) / MS);
    let l = tail(&frames, 300);
    assert!(tone_db(&l, 440.0) >= full - 1.0, "and it stays at full level");

    // One continuous track throughout: consecutive sequence numbers and timestamps, no gap over 40 ms.
    let mut prev: Option<&Frame> = None;
    let mut max_gap = 0;
    for f in &frames {
        if let Some(p) = prev {
            assert_eq!(f.seq, p.seq + 1, "sequence numbers are continuous");
            max_gap = max_gap.max(f.rtp - p.rtp);
        }
        prev = Some(f);
    }
    println!("largest media-time step between packets: {} ms over {} packets", max_gap / MS, frames.len());
    assert!(max_gap <= 40 * MS, "gap of {} ms", max_gap / MS);
    assert!(frames.windows(2).all(|w| w[1].rtp - w[0].rtp == F), "one frame per 20 ms");
}
