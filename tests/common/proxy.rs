//! A fault-injecting UDP proxy on loopback, between real WebRTC clients and the server: the
//! server advertises the proxy's address as its candidate, and the proxy drops a share of
//! the RTP media packets clients send (never STUN, DTLS or RTCP), from a seeded generator.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub struct Proxy {
    /// Where clients send: put it in the server's candidates.
    pub addr: SocketAddr,
    socket: Option<UdpSocket>,
    stop: Arc<AtomicBool>,
    /// Media packets dropped so far.
    pub dropped: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Proxy {
    pub fn bind() -> Proxy {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = socket.local_addr().unwrap();
        Proxy { addr, socket: Some(socket), stop: Arc::default(), dropped: Arc::default(), thread: None }
    }

    /// Forwards between clients and `server`, dropping `loss` of the clients' media packets.
    pub fn start(&mut self, server: SocketAddr, loss: f64, seed: u64) {
        let front = self.socket.take().expect("started once");
        front.set_nonblocking(true).unwrap();
        let (stop, dropped) = (self.stop.clone(), self.dropped.clone());
        self.thread = Some(std::thread::spawn(move || {
            // One socket toward the server per client, so the server tells clients apart.
            let mut back: HashMap<SocketAddr, UdpSocket> = HashMap::new();
            let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                let mut idle = true;
                while let Ok((n, client)) = front.recv_from(&mut buf) {
                    idle = false;
                    let media = matches!(buf[0], 128..=191) && n > 1 && !matches!(buf[1], 192..=223);
                    rng ^= rng >> 12;
                    rng ^= rng << 25;
                    rng ^= rng >> 27;
                    let draw = (rng.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64;
                    if media && draw < loss {
                        dropped.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    let up = back.entry(client).or_insert_with(|| {
                        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
                        s.set_nonblocking(true).unwrap();
                        s
                    });
                    let _ = up.send_to(&buf[..n], server);
                }
                for (client, up) in &back {
                    while let Ok((n, _)) = up.recv_from(&mut buf) {
                        idle = false;
                        let _ = front.send_to(&buf[..n], client);
                    }
                }
                if idle {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }));
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
