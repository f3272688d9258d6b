//! A real client through a faulty network: aiortc publishes a tone over WHIP through a UDP
//! proxy on loopback that drops 5 % of its media packets, and an aiortc player on the channel
//! must hear it without a hole. The simulation (tests/sim/playout.rs) covers the faults in
//! detail; this checks the same receive path against a WebRTC stack tolk did not write.

mod common;

use common::proxy::{Faults, Proxy};
use common::*;
use std::time::Duration;
use tolk::protocol::Role;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_has_no_hole_when_its_interpreter_loses_5_percent_of_packets() {
    let mut proxy = Proxy::bind();
    let candidate = proxy.addr;
    let s = server_with(|c| {
        // One engine, so the proxy forwards to the one media socket; bound to every address,
        // the engine takes its advertised candidate (the proxy) as where datagrams come to,
        // as behind a NAT.
        c.engines = Some(1);
        c.udp = "0.0.0.0:0".parse().unwrap();
        c.candidates = vec![candidate];
    })
    .await;
    let loss: f64 = std::env::var("LOSS").ok().and_then(|v| v.parse().ok()).unwrap_or(0.05);
    proxy.start(([127, 0, 0, 1], s.udp.port()).into(), 5);
    proxy.set_all(Faults { up_loss: loss, ..Faults::default() });
    let whip = token(&s, Role::Interpreter, Some("es"), "Ana");
    let whep = token(&s, Role::Listener, None, "Lena");
    let env = [("SECONDS_TO_LISTEN", "12")];
    let r = aiortc_whip_whep(&s, (&whip, &whep), "880", "es", &env, Duration::from_secs(120)).await;
    let dropped = proxy.dropped.load(std::sync::atomic::Ordering::Relaxed);
    println!("5 % of the interpreter's packets dropped ({dropped}); the es player heard: {r}");
    assert!(dropped >= 10, "the proxy dropped packets: {dropped}");
    assert!(r["levels"]["880"].as_f64().unwrap() > -20.0, "{r}");
    let runs: Vec<u64> = r["quiet_runs_ms"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    assert!(runs.iter().all(|ms| *ms <= 40), "no hole over 40 ms in the voice: {runs:?}");
    assert_eq!(r["gaps_ms"], serde_json::json!([]), "no frame missing at the player: {r}");
}
