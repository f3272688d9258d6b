//! RTP on the plain tap port (a meeting's media server feeding the floor): a run of packets,
//! each refused with an error or played (decoded, concealed, mixed) at the ticks between them.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::cell::RefCell;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tolk::core::engine::{Engine, Output};
use tolk::core::spec::TapSpec;
use tolk::protocol::Role;
use tolk_fuzz::{admission, engine};

struct State {
    engine: Engine,
    tap: usize,
    now: Instant,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new({
        let now = Instant::now();
        let mut engine = engine(now, false);
        let tap = engine.add_tap(TapSpec {
            bind: "127.0.0.1:0".parse().unwrap(),
            room: "r".into(),
            payload_type: 111,
            ssrc: None,
            source: None,
        });
        // A host, so that the tap's sender notices have someone to go to.
        engine.handle_join(now, 1, &admission(Role::Host), None).unwrap();
        State { engine, tap, now }
    });
}

fuzz_target!(|data: &[u8]| {
    STATE.with_borrow_mut(|s| {
        // Packets as [length, from, bytes...]: length and sender chosen by the input.
        let mut rest = data;
        while let [len, from, tail @ ..] = rest {
            let n = (*len as usize).min(tail.len());
            let (packet, next) = tail.split_at(n);
            let source = SocketAddr::from(([192, 0, 2, from % 4], 5004));
            let _ = s.engine.handle_tap(s.tap, source, packet);
            if from & 0x80 != 0 {
                s.now += Duration::from_millis(20);
                s.engine.handle_timeout(s.now);
            }
            rest = next;
        }
        s.now += Duration::from_millis(20);
        s.engine.handle_timeout(s.now);
        while !matches!(s.engine.poll_output(), Output::Timeout(_)) {}
    });
});
