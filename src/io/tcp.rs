//! ICE-TCP (RFC 6544) for a media thread: a passive TCP listener on the engine's port number, RFC 4571 framing, bounded buffers per connection.
//!
//! Clients whose network lets only TCP through connect here (the answer offers a passive TCP
//! candidate); each frame goes to the engine as a datagram would, and whatever the engine sends
//! to such a client's address is framed onto its connection. Non-blocking, polled by the media
//! thread once per wakeup like the UDP socket.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// Most connections an engine keeps (fewer under a low open-file limit, see
/// [`connection_limit`]); more are closed at once.
const MAX_CONNECTIONS: usize = 4096;
/// Bytes waiting to be written to one connection; beyond it, packets to it are dropped (a
/// congested TCP path loses packets, as UDP would, rather than growing memory and delay).
const MAX_PENDING: usize = 64 * 1024;
/// A connection that sent no complete frame for this long is closed.
const IDLE: Duration = Duration::from_secs(30);
/// New connections taken per poll.
const ACCEPTS_PER_POLL: usize = 64;

struct Connection {
    stream: TcpStream,
    /// Bytes read and not yet a whole frame.
    rx: Vec<u8>,
    /// Framed bytes not yet written.
    tx: Vec<u8>,
    heard: Instant,
}

impl Connection {
    /// Writes what it can; false when the connection is broken.
    fn flush(&mut self) -> bool {
        while !self.tx.is_empty() {
            match self.stream.write(&self.tx) {
                Ok(0) => return false,
                Ok(n) => {
                    self.tx.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
                Err(_) => return false,
            }
        }
        true
    }
}

pub struct Tcp {
    listener: TcpListener,
    connections: HashMap<SocketAddr, Connection>,
    limit: usize,
}

/// ICE-TCP connections each of `engines` engines keeps under a limit of `files` open files: a
/// quarter of them shared out (HTTP takes half), at most [`MAX_CONNECTIONS`].
pub fn connection_limit(files: u64, engines: usize) -> usize {
    ((files / 4) as usize / engines.max(1)).clamp(16, MAX_CONNECTIONS)
}

impl Tcp {
    pub fn bind(addr: SocketAddr, limit: usize) -> std::io::Result<Tcp> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        Ok(Tcp { listener, connections: HashMap::new(), limit })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Takes new connections, reads what arrived and hands every whole frame to `frame`
    /// (the client's address, the payload); closes broken and idle connections.
    pub fn poll(&mut self, now: Instant, mut frame: impl FnMut(SocketAddr, &[u8])) {
        for _ in 0..ACCEPTS_PER_POLL {
            match self.listener.accept() {
                Ok((stream, addr)) => {
                    if self.connections.len() >= self.limit || stream.set_nonblocking(true).is_err() {
                        continue; // dropped: closed
                    }
                    let _ = stream.set_nodelay(true);
                    self.connections
                        .insert(addr, Connection { stream, rx: Vec::new(), tx: Vec::new(), heard: now });
                }
                Err(_) => break,
            }
        }
        let mut buf = [0u8; 8192];
        self.connections.retain(|addr, c| {
            loop {
                match c.stream.read(&mut buf) {
                    Ok(0) => return false,
                    Ok(n) => c.rx.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => return false,
                }
                // A frame is at most 64 KiB: more unframed bytes than that is not RFC 4571.
                if c.rx.len() > 2 + usize::from(u16::MAX) + buf.len() {
                    break;
                }
            }
            let mut at = 0;
            while let Some(len) = c.rx.get(at..at + 2).map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
            {
                let Some(data) = c.rx.get(at + 2..at + 2 + len) else { break };
                frame(*addr, data);
                c.heard = now;
                at += 2 + len;
            }
            c.rx.drain(..at);
            now.saturating_duration_since(c.heard) < IDLE && c.flush()
        });
    }

    /// Frames `data` onto the connection from `to`; false when `to` is not a TCP client (send it over UDP).
    pub fn send(&mut self, to: SocketAddr, data: &[u8]) -> bool {
        let Some(c) = self.connections.get_mut(&to) else { return false };
        let Ok(len) = u16::try_from(data.len()) else { return true };
        if c.tx.len() + 2 + data.len() <= MAX_PENDING {
            c.tx.extend_from_slice(&len.to_be_bytes());
            c.tx.extend_from_slice(data);
            if !c.flush() {
                self.connections.remove(&to);
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_come_out_whole_and_go_back_framed() {
        let mut tcp = Tcp::bind("127.0.0.1:0".parse().unwrap(), 16).unwrap();
        let mut client = TcpStream::connect(tcp.local_addr().unwrap()).unwrap();
        // Two frames, the second split across writes.
        client.write_all(&[0, 3, b'a', b'b', b'c', 0, 2, b'x']).unwrap();
        let mut got = Vec::new();
        let t = Instant::now();
        while got.is_empty() && t.elapsed() < Duration::from_secs(5) {
            tcp.poll(Instant::now(), |from, data| got.push((from, data.to_vec())));
        }
        assert_eq!(got.len(), 1, "only the whole frame");
        assert_eq!(got[0].1, b"abc");
        client.write_all(b"y").unwrap();
        let t = Instant::now();
        while got.len() < 2 && t.elapsed() < Duration::from_secs(5) {
            tcp.poll(Instant::now(), |from, data| got.push((from, data.to_vec())));
        }
        assert_eq!(got[1].1, b"xy");
        let from = got[0].0;
        assert!(tcp.send(from, b"hello"));
        assert!(!tcp.send("127.0.0.1:9".parse().unwrap(), b"x"), "not a TCP client: UDP's");
        let mut back = [0u8; 7];
        client.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"\x00\x05hello");
        drop(client);
        let t = Instant::now();
        while !tcp.connections.is_empty() && t.elapsed() < Duration::from_secs(5) {
            tcp.poll(Instant::now(), |_, _| {});
        }
        assert!(tcp.connections.is_empty(), "a closed connection goes");
    }
}
