//! A fault-injecting UDP proxy on loopback, between real WebRTC clients and the server: the
//! server advertises the proxy's address as its candidate, and the proxy drops, delays or
//! holds the RTP media packets (never STUN, DTLS or RTCP) of each client, from a seeded
//! generator, as that client's [`Faults`] say.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What happens to one client's media packets.
#[derive(Clone, Copy, Debug, Default)]
pub struct Faults {
    /// Share of the client's media packets to the server that are dropped.
    pub up_loss: f64,
    /// Each media packet to the server is held a random time in [0, up_jitter] (so packets
    /// also arrive out of order).
    pub up_jitter: Duration,
    /// Media packets to the server sent in [from, to) are held until `to`, then go in a burst.
    pub up_stall: Option<(Instant, Instant)>,
    /// Share of the media packets to the client that are dropped, chosen by RTP sequence
    /// number: listeners of one stream lose the same frames.
    pub down_loss: f64,
}

type Faulted = Arc<Mutex<(Faults, HashMap<SocketAddr, Faults>)>>;

pub struct Proxy {
    /// Where clients send: put it in the server's candidates.
    pub addr: SocketAddr,
    socket: Option<UdpSocket>,
    stop: Arc<AtomicBool>,
    /// Media packets dropped so far, both ways.
    pub dropped: Arc<AtomicU64>,
    faults: Faulted,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// A packet held for later: (when, order) first so the heap yields the earliest.
type Held = Reverse<(Instant, u64, SocketAddr, Vec<u8>)>;

impl Proxy {
    pub fn bind() -> Proxy {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = socket.local_addr().unwrap();
        Proxy {
            addr,
            socket: Some(socket),
            stop: Arc::default(),
            dropped: Arc::default(),
            faults: Arc::default(),
            thread: None,
        }
    }

    /// The faults of every client not given its own.
    pub fn set_all(&self, f: Faults) {
        self.faults.lock().unwrap().0 = f;
    }

    /// The faults of the client sending from `client`.
    pub fn set(&self, client: SocketAddr, f: Faults) {
        self.faults.lock().unwrap().1.insert(client, f);
    }

    /// Forwards between clients and `server`, drawing faults from `seed`.
    pub fn start(&mut self, server: SocketAddr, seed: u64) {
        let front = self.socket.take().expect("started once");
        front.set_nonblocking(true).unwrap();
        let (stop, dropped, faults) = (self.stop.clone(), self.dropped.clone(), self.faults.clone());
        self.thread = Some(std::thread::spawn(move || {
            // One socket toward the server per client, so the server tells clients apart.
            let mut back: HashMap<SocketAddr, UdpSocket> = HashMap::new();
            let mut held: BinaryHeap<Held> = BinaryHeap::new();
            let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            let mut order = 0u64;
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                let mut idle = true;
                while let Ok((n, client)) = front.recv_from(&mut buf) {
                    idle = false;
                    let now = Instant::now();
                    let f = faults_of(&faults, client);
                    let mut due = now;
                    if is_media(&buf[..n]) {
                        if unit(&mut rng) < f.up_loss {
                            dropped.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        due += f.up_jitter.mul_f64(unit(&mut rng));
                        if let Some((from, to)) = f.up_stall {
                            if now >= from && now < to {
                                due = due.max(to);
                            }
                        }
                    }
                    let up = back.entry(client).or_insert_with(|| {
                        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
                        s.set_nonblocking(true).unwrap();
                        s
                    });
                    if due <= now {
                        let _ = up.send_to(&buf[..n], server);
                    } else {
                        order += 1;
                        held.push(Reverse((due, order, client, buf[..n].to_vec())));
                    }
                }
                for (client, up) in &back {
                    while let Ok((n, _)) = up.recv_from(&mut buf) {
                        idle = false;
                        let f = faults_of(&faults, *client);
                        if is_media(&buf[..n]) && f.down_loss > 0.0 {
                            let seq = u16::from_be_bytes([buf[2], buf[3]]) as u64;
                            if unit(&mut (seed ^ seq.wrapping_mul(0xD6E8_FEB8_6659_FD93) | 1)) < f.down_loss {
                                dropped.fetch_add(1, Ordering::Relaxed);
                                continue;
                            }
                        }
                        let _ = front.send_to(&buf[..n], client);
                    }
                }
                let now = Instant::now();
                while held.peek().is_some_and(|Reverse((due, ..))| *due <= now) {
                    let Reverse((_, _, client, data)) = held.pop().unwrap();
                    let _ = back[&client].send_to(&data, server);
                }
                if idle {
                    std::thread::sleep(Duration::from_micros(500));
                }
            }
        }));
    }
}

fn faults_of(faults: &Faulted, client: SocketAddr) -> Faults {
    let f = faults.lock().unwrap();
    f.1.get(&client).copied().unwrap_or(f.0)
}

/// An RTP packet (not RTCP).
fn is_media(data: &[u8]) -> bool {
    data.len() > 12 && matches!(data[0], 128..=191) && !matches!(data[1], 192..=223)
}

/// A uniform draw in [0, 1) from a xorshift generator.
fn unit(rng: &mut u64) -> f64 {
    *rng ^= *rng >> 12;
    *rng ^= *rng << 25;
    *rng ^= *rng >> 27;
    (rng.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
