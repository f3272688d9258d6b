//! SDP offers (the signalling `offer` and WHIP/WHEP bodies): read off the media thread, then
//! accepted by the engine for a joined floor speaker or listener, which leaves again.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::cell::RefCell;
use std::time::Instant;
use tolk::core::engine::{Admission, Engine, EngineConfig, Offer, Output};
use tolk::core::spec::RoomSpec;
use tolk::protocol::Role;

struct State {
    engine: Engine,
    next: u64,
    now: Instant,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new({
        let now = Instant::now();
        let config = EngineConfig {
            candidates: vec!["127.0.0.1:50000".parse().unwrap()],
            tcp_candidates: vec!["127.0.0.1:50000".parse().unwrap()],
            captions: false,
        };
        let mut engine = Engine::new(config, now);
        engine.create_room(RoomSpec { id: "r".into(), floor_lang: None, channels: vec![] }).unwrap();
        State { engine, next: 1, now }
    });
}

fuzz_target!(|data: &[u8]| {
    let Some((&role, rest)) = data.split_first() else { return };
    let Ok(sdp) = std::str::from_utf8(rest) else { return };
    let Ok(offer) = Offer::parse(sdp) else { return };
    STATE.with_borrow_mut(|s| {
        let peer = s.next;
        s.next += 1;
        let role = if role & 1 == 0 { Role::Listener } else { Role::Floor };
        let who = Admission {
            room: "r".into(),
            role,
            name: "fuzz".into(),
            channel: None,
            also: vec![],
            resume: None,
        };
        s.engine.handle_join(s.now, peer, &who, None).unwrap();
        let _ = s.engine.handle_offer(s.now, peer, offer);
        s.engine.handle_leave(s.now, peer);
        while !matches!(s.engine.poll_output(), Output::Timeout(_)) {}
    });
});
