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
use tolk::core::engine::{Admission, Engine, EngineConfig, Offer, Output};
use tolk::core::spec::RoomSpec;
use tolk::protocol::Role;

struct State {
    engine: Engine,
    now: Instant,
}

const SERVER: &str = "127.0.0.1:50000";

thread_local! {
    static STATE: RefCell<State> = RefCell::new({
        let now = Instant::now();
        let server: SocketAddr = SERVER.parse().unwrap();
        let config = EngineConfig { candidates: vec![server], tcp_candidates: vec![], captions: false };
        let mut engine = Engine::new(config, now);
        engine.create_room(RoomSpec { id: "r".into(), floor_lang: None, channels: vec![] }).unwrap();
        let who = Admission {
            room: "r".into(),
            role: Role::Listener,
            name: "fuzz".into(),
            channel: None,
            also: vec![],
            resume: None,
        };
        engine.handle_join(now, 1, &who, None).unwrap();
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
