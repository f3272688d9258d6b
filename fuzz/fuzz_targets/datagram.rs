//! Datagrams on the media port (STUN, DTLS, SRTP, SRTCP or garbage) from any address, with a
//! listener mid-setup that they may be routed to: dropped with an error or handled, and the
//! engine ticks on.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::cell::RefCell;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use str0m::media::{Direction, MediaKind};
use str0m::{Candidate, Rtc};
use tolk::core::engine::{Engine, Offer, Output};
use tolk::protocol::Role;
use tolk_fuzz::{admission, engine, SERVER};

struct State {
    engine: Engine,
    now: Instant,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new({
        let now = Instant::now();
        let mut engine = engine(now, false);
        engine.handle_join(now, 1, &admission(Role::Listener), None).unwrap();
        let mut rtc = Rtc::builder().clear_codecs().enable_opus(true, false).build(now);
        rtc.add_local_candidate(Candidate::host("127.0.0.1:40000".parse().unwrap(), "udp").unwrap());
        let mut api = rtc.sdp_api();
        api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        let (offer, _) = api.apply().unwrap();
        engine.handle_offer(now, 1, Offer::parse(&offer.to_sdp_string()).unwrap()).unwrap();
        State { engine, now }
    });
}

fuzz_target!(|data: &[u8]| {
    let Some((&from, rest)) = data.split_first() else { return };
    STATE.with_borrow_mut(|s| {
        let source = SocketAddr::from(([127, 0, 0, 1], 40000 + u16::from(from % 16)));
        let _ = s.engine.handle_datagram(s.now, source, SERVER.parse().unwrap(), rest);
        s.now += Duration::from_millis(20);
        s.engine.handle_timeout(s.now);
        while !matches!(s.engine.poll_output(), Output::Timeout(_)) {}
    });
});
