//! Benchmarks of the media plane, driven in memory through the sans-IO engine:
//! - `tick`: one room tick (jitter, decode, mix, limit, encode) for 1 floor + 4 channels;
//! - `fanout`: the server's cost per listener per packet (header, SRTP, RTCP and STUN in), N listeners on one channel.
//!
//! Run: `cargo bench --bench engine`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use str0m::change::SdpAnswer;
use str0m::media::{Direction, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Input, Output, Rtc};
use tolk::core::engine::{self, Admission, Engine, EngineConfig};
use tolk::core::media::codec::{Encoder, FRAME, MAX_PAYLOAD};
use tolk::core::media::mixer::DuckSettings;
use tolk::core::room::{Channel, Member, Room, Source, Stream};
use tolk::core::spec::{ChannelSpec, RoomSpec};
use tolk::protocol::Role;

fn tone_packets(hz: f32, n: usize) -> Vec<Vec<u8>> {
    let mut enc = Encoder::new();
    let mut out = [0u8; MAX_PAYLOAD];
    (0..n)
        .map(|f| {
            let mut pcm = [0f32; FRAME];
            for (i, s) in pcm.iter_mut().enumerate() {
                *s = 0.3 * (2.0 * std::f32::consts::PI * hz * (f * FRAME + i) as f32 / 48_000.0).sin();
            }
            let len = enc.encode(&pcm, &mut out).unwrap();
            out[..len].to_vec()
        })
        .collect()
}

fn tick(c: &mut Criterion) {
    let mut room = Room::new("bench".into(), None);
    room.floor.push(Source::new(0));
    let mut streams = vec![Stream::Floor];
    for (i, lang) in ["en", "es", "fr", "de"].iter().enumerate() {
        let mut ch = Channel::new(lang.to_string(), lang.to_string(), DuckSettings::default());
        let peer = i as u64 + 1;
        ch.booth.join(Member::new(peer, lang.to_string()));
        ch.booth.publish(peer, Source::new(peer)).unwrap();
        room.channels.push(ch);
        streams.push(Stream::Channel(lang.to_string()));
    }
    let packets: Vec<Vec<Vec<u8>>> =
        [440.0, 880.0, 1320.0, 660.0, 990.0].iter().map(|hz| tone_packets(*hz, 50)).collect();
    let mut ts = 0u64;
    let mut k = 0usize;
    c.bench_function("tick 1 floor + 4 channels (decode, mix, encode)", |b| {
        b.iter(|| {
            room.floor[0].push(ts, &packets[0][k % 50]).unwrap();
            for (i, ch) in room.channels.iter_mut().enumerate() {
                ch.booth.members[0].source.as_mut().unwrap().push(ts, &packets[i + 1][k % 50]).unwrap();
            }
            room.tick(&streams);
            ts += FRAME as u64;
            k += 1;
        })
    });
}

/// N listener peers connected to one engine over an in-memory network.
struct Net {
    engine: Engine,
    clients: HashMap<SocketAddr, Rtc>,
    server: SocketAddr,
    now: Instant,
}

impl Net {
    fn new(listeners: usize) -> Net {
        let server: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        let mut now = Instant::now();
        let mut engine = Engine::new(
            EngineConfig {
                candidates: vec![server],
                tcp_candidates: Vec::new(),
                captions: false,
                recording: false,
                cluster: false,
            },
            now,
        );
        engine
            .create_room(RoomSpec {
                id: "r".into(),
                floor_lang: None,
                channels: vec![ChannelSpec {
                    lang: "es".into(),
                    name: String::new(),
                    duck: Default::default(),
                }],
            })
            .unwrap();
        // One interpreter source so the channel has a voice to encode.
        let mut clients = HashMap::new();
        for i in 0..listeners {
            let addr: SocketAddr = format!("10.1.{}.{}:4000", i / 250, i % 250 + 1).parse().unwrap();
            let who = Admission {
                resume: None,
                room: "r".into(),
                role: Role::Listener,
                channel: Some("es".into()),
                also: vec![],
                name: format!("l{i}"),
                invitation: String::new(),
            };
            engine.handle_join(now, i as u64, &who, None).unwrap();
            let mut rtc = Rtc::builder().clear_codecs().enable_opus(true, false).build(now);
            rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap());
            let mut api = rtc.sdp_api();
            api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
            let (offer, pending) = api.apply().unwrap();
            let offer = tolk::core::engine::Offer::parse(&offer.to_sdp_string()).unwrap();
            let answer = engine.handle_offer(now, i as u64, offer).unwrap();
            rtc.sdp_api().accept_answer(pending, SdpAnswer::from_sdp_string(&answer).unwrap()).unwrap();
            clients.insert(addr, rtc);
        }
        let mut net = Net { engine, clients, server, now };
        for _ in 0..2000 {
            now += Duration::from_millis(5);
            net.now = now;
            net.engine.handle_timeout(now);
            net.pump(true);
            if net.clients.values().all(|c| c.is_connected()) {
                break;
            }
        }
        assert!(net.clients.values().all(|c| c.is_connected()), "all listeners connect in memory");
        net
    }

    /// Hands the last tick's media packets to the clients (outside the timed engine work).
    fn deliver_batch(&mut self) {
        for (dest, data) in self.engine.batch().iter() {
            if let (Some(c), Ok(r)) =
                (self.clients.get_mut(&dest), Receive::new(Protocol::Udp, self.server, dest, data))
            {
                let _ = c.handle_input(Input::Receive(self.now, r));
            }
        }
    }

    /// Moves datagrams both ways until quiet; returns the time spent inside the engine.
    fn pump(&mut self, deliver: bool) -> Duration {
        let mut engine_time = Duration::ZERO;
        for _ in 0..10 {
            let mut to_clients = Vec::new();
            let t = Instant::now();
            loop {
                match self.engine.poll_output() {
                    engine::Output::Transmit { destination, contents, .. } => {
                        to_clients.push((destination, contents))
                    }
                    engine::Output::Event { .. }
                    | engine::Output::Audio { .. }
                    | engine::Output::Record(_)
                    | engine::Output::Relay(_) => {}
                    engine::Output::Timeout(_) => break,
                }
            }
            engine_time += t.elapsed();
            let mut to_server = Vec::new();
            for (dest, data) in &to_clients {
                if let (true, Some(c)) = (deliver, self.clients.get_mut(dest)) {
                    if let Ok(r) = Receive::new(Protocol::Udp, self.server, *dest, data) {
                        let _ = c.handle_input(Input::Receive(self.now, r));
                    }
                }
            }
            for (addr, c) in self.clients.iter_mut() {
                let _ = c.handle_input(Input::Timeout(self.now));
                while let Ok(o) = c.poll_output() {
                    match o {
                        Output::Transmit(t) => to_server.push((*addr, Vec::from(t.contents))),
                        Output::Timeout(_) => break,
                        Output::Event(_) => {}
                    }
                }
            }
            if to_server.is_empty() && to_clients.is_empty() {
                break;
            }
            let t = Instant::now();
            for (from, data) in &to_server {
                let _ = self.engine.handle_datagram(self.now, *from, self.server, data);
            }
            engine_time += t.elapsed();
        }
        engine_time
    }
}

fn fanout(c: &mut Criterion) {
    let mut group = c.benchmark_group("fanout per listener per packet");
    group.sample_size(20).measurement_time(Duration::from_secs(8));
    for n in [50usize, 200] {
        let mut net = Net::new(n);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    net.now += engine::TICK;
                    let t = Instant::now();
                    net.engine.handle_timeout(net.now);
                    spent += t.elapsed();
                    net.deliver_batch();
                    spent += net.pump(true);
                }
                spent
            })
        });
    }
    group.finish();
}

criterion_group!(benches, tick, fanout);
criterion_main!(benches);
