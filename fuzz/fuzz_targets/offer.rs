//! SDP offers (the signalling `offer` and WHIP/WHEP bodies): read off the media thread, then
//! accepted by the engine for a joined floor speaker or listener, which leaves again.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::cell::RefCell;
use std::time::Instant;
use tolk::core::engine::{Engine, Offer, Output};
use tolk::protocol::Role;
use tolk_fuzz::{admission, engine};

struct State {
    engine: Engine,
    next: u64,
    now: Instant,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new({
        let now = Instant::now();
        State { engine: engine(now, true), next: 1, now }
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
        s.engine.handle_join(s.now, peer, &admission(role), None).unwrap();
        let _ = s.engine.handle_offer(s.now, peer, offer);
        s.engine.handle_leave(s.now, peer);
        while !matches!(s.engine.poll_output(), Output::Timeout(_)) {}
    });
});
