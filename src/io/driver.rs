//! The media thread: owns the engine and the shared UDP socket, feeds it datagrams, time and commands, carries out its outputs, and makes the engine again if it panics.

use super::tcp::Tcp;
use crate::asr::{Asr, Chunk};
use crate::core::engine::{
    Admission, Caption, Engine, EngineConfig, Offer, Output, Relay, RoomView, Snapshot,
};
use crate::core::room::{Payload, PeerId, Stream};
use crate::core::spec::{ChannelSpec, RoomSpec, RtpOutSpec, TapSpec};
use crate::protocol::{ClientMsg, Error, ErrorCode, ServerMsg};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, error, info, warn};

/// Commands from the HTTP and signalling tasks. Each carries its own reply channel.
pub enum Command {
    Join {
        peer: PeerId,
        who: Admission,
        publish: Option<String>,
        /// Where the session's messages go; `None` for WHIP and WHEP (no signalling session).
        events: Option<mpsc::Sender<Box<ServerMsg>>>,
        reply: oneshot::Sender<Result<ServerMsg, Error>>,
    },
    /// An SDP offer, read off the media thread.
    Offer {
        peer: PeerId,
        offer: Box<Offer>,
        reply: oneshot::Sender<Result<Option<ServerMsg>, Error>>,
    },
    /// Any other request after join.
    Message {
        peer: PeerId,
        msg: ClientMsg,
        reply: oneshot::Sender<Result<Option<ServerMsg>, Error>>,
    },
    Leave {
        peer: PeerId,
    },
    /// A new room, or one restored from the database with its captioned sources (`None`: the
    /// floor) and whether it was being recorded.
    CreateRoom {
        spec: RoomSpec,
        captions: Vec<Option<String>>,
        recording: bool,
        reply: oneshot::Sender<Result<RoomView, Error>>,
    },
    DeleteRoom {
        id: String,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    AddChannel {
        room: String,
        spec: ChannelSpec,
        reply: oneshot::Sender<Result<RoomView, Error>>,
    },
    RenameChannel {
        room: String,
        lang: String,
        name: String,
        reply: oneshot::Sender<Result<RoomView, Error>>,
    },
    /// End the sessions of a revoked invitation.
    Revoke {
        room: String,
        invitation: String,
        reply: oneshot::Sender<Result<usize, Error>>,
    },
    /// Start or stop recording a room.
    Record {
        room: String,
        on: bool,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    Room {
        id: String,
        reply: oneshot::Sender<Option<RoomView>>,
    },
    Snapshot {
        reply: oneshot::Sender<Snapshot>,
    },
    /// Every peer the engine holds.
    Peers {
        reply: oneshot::Sender<Vec<PeerId>>,
    },
    /// Test hook ([`super::App::crash_engine`]): the thread panics, as a bug would.
    Crash,
    /// A cluster's word on a room: mixed here, or a mirror of another node's mix.
    Origin {
        room: String,
        here: bool,
    },
    /// Another node's listeners hear these streams of a room (each with how many hear it).
    Wants {
        room: String,
        node: String,
        streams: Vec<(Stream, u32)>,
    },
    /// One tick of a mirrored room's stream, from its origin.
    Relayed {
        room: String,
        stream: Stream,
        ts: u32,
        payload: Payload,
    },
    /// The origin's state of a mirrored room.
    RemoteState {
        room: String,
        msg: ServerMsg,
    },
    /// A caption of a mirrored room, from its origin.
    RemoteCaption(Caption),
}

/// What a media thread needs to make its engine, and to make it again after a panic.
pub struct Setup {
    pub index: usize,
    pub engine: EngineConfig,
    /// The plain RTP floor tap and its socket (engine 0).
    pub tap: Option<(TapSpec, UdpSocket)>,
    pub outs: Vec<RtpOutSpec>,
    pub socket: UdpSocket,
    /// ICE-TCP connections on the same port number, when configured and free.
    pub tcp: Option<Tcp>,
    /// The address datagrams arrive at, as peers see it.
    pub destination: SocketAddr,
    pub asr: Option<Asr>,
    /// Writes the recordings of this engine's rooms.
    pub recorder: super::record::Recorder,
    pub tick: Histogram,
    /// Counts restarts (`tolk_engine_restarts_total`).
    pub restarts: Counter,
    /// Told the engine's index after a restart, so that its rooms are put back.
    pub restarted: mpsc::UnboundedSender<usize>,
    /// What goes to the other nodes of a cluster (bounded: a stalled link loses it, never stalls media).
    pub relay: Option<mpsc::Sender<Relay>>,
}

/// Runs an engine until every command sender is gone. A panic (a bug) is caught and logged,
/// the engine is made again, its sessions are told to join again (pages do, by themselves), and
/// its rooms come back from the database; the other engines' rooms play on meanwhile.
pub fn supervise(mut setup: Setup, mut commands: mpsc::Receiver<Command>) {
    let mut sessions = HashMap::new();
    loop {
        let mut engine = Engine::new(setup.engine.clone(), Instant::now());
        let tap = setup.tap.as_ref().map(|(spec, socket)| (engine.add_tap(spec.clone()), socket));
        for o in &setup.outs {
            engine.add_rtp_out(o.clone());
        }
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run(
                engine,
                Media { udp: &setup.socket, tcp: setup.tcp.as_mut() },
                setup.destination,
                tap,
                setup.asr.as_ref(),
                &mut setup.recorder,
                setup.relay.as_ref(),
                &setup.tick,
                &mut commands,
                &mut sessions,
            )
        }));
        let Err(panic) = ran else { return };
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        error!(engine = setup.index, "media engine panicked ({what}): restarting it with its rooms");
        setup.restarts.inc();
        let again = Error::new(ErrorCode::NotJoined, "the media engine restarted; join again").to_msg();
        for (_, tx) in sessions.drain() {
            let _ = tx.try_send(Box::new(again.clone()));
        }
        let _ = setup.restarted.send(setup.index);
    }
}

/// Queue of commands into the media thread: deep enough for a burst of joins,
/// bounded so a flood of API calls waits in axum rather than in memory here.
pub const COMMAND_QUEUE: usize = 1024;
/// Longest the thread sleeps: one tick. A room's thread wakes at its tick (and at
/// its peers' DTLS and ICE deadlines), an idle one 50 times a second, and whenever a
/// command is queued (the sender unparks it). Media loses nothing by waiting, since
/// jitter buffers are read only at the tick; handshake packets wait at most this long.
const MAX_WAIT: Duration = Duration::from_millis(20);
/// Most commands applied per turn of the media loop, and the time they may take: a tick is
/// never held back by more than this much control work (plus one command).
const TURN_COMMANDS: usize = 64;
const TURN_BUDGET: Duration = Duration::from_millis(2);
/// Most datagrams taken per wakeup, so that a flood cannot hold the tick back.
const MAX_DRAIN: usize = 4096;

type Sessions = HashMap<PeerId, mpsc::Sender<Box<ServerMsg>>>;

/// An engine's media sockets: UDP, and ICE-TCP connections.
struct Media<'a> {
    udp: &'a UdpSocket,
    tcp: Option<&'a mut Tcp>,
}

impl Media<'_> {
    /// Sends over the client's TCP connection if it has one, else over UDP.
    fn send(&mut self, to: SocketAddr, data: &[u8]) {
        if self.tcp.as_mut().is_some_and(|t| t.send(to, data)) {
            return;
        }
        if let Err(e) = self.udp.send_to(data, to) {
            debug!(%to, "send failed: {e}");
        }
    }

    /// Sends a tick's datagrams (or a relayed payload's), a `sendto` each: `sendmmsg` was
    /// measured no cheaper (docs/performance.md, "Tried and not kept").
    fn send_all<'b>(&mut self, batch: impl Iterator<Item = (SocketAddr, &'b [u8])>) {
        for (to, data) in batch {
            self.send(to, data);
        }
    }
}

/// Runs the engine until every command sender is gone.
#[allow(clippy::too_many_arguments)]
fn run(
    mut engine: Engine,
    mut media: Media,
    destination: SocketAddr,
    tap: Option<(usize, &UdpSocket)>,
    asr: Option<&Asr>,
    recorder: &mut super::record::Recorder,
    relay: Option<&mpsc::Sender<Relay>>,
    tick: &Histogram,
    commands: &mut mpsc::Receiver<Command>,
    sessions: &mut Sessions,
) {
    // Largest datagram we accept: an Ethernet MTU plus headroom; bigger is not WebRTC.
    let mut buf = vec![0u8; 2048];
    let socket = media.udp;
    socket.set_nonblocking(true).expect("a UDP socket can be non-blocking");
    loop {
        // Control work per turn is bounded (a flood of joins or offers waits in the queue, not
        // in front of the tick); what is left is taken in the next turn, without sleeping.
        let turn = Instant::now();
        let mut more = false;
        for taken in 0.. {
            if taken >= TURN_COMMANDS || turn.elapsed() >= TURN_BUDGET {
                more = true;
                break;
            }
            match commands.try_recv() {
                Ok(Command::Relayed { room, stream, ts, payload }) => {
                    // Sent at once: an edge adds no wait to what its origin sends.
                    if engine.handle_relayed(&room, &stream, ts, payload) {
                        media.send_all(engine.batch().iter());
                    }
                }
                Ok(cmd) => apply(&mut engine, sessions, cmd),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    info!("media thread stops");
                    return;
                }
            }
        }
        let deadline = loop {
            match engine.poll_output() {
                Output::Transmit { destination, contents, .. } => media.send(destination, &contents),
                Output::Event { peer, msg } => {
                    if let Some(tx) = sessions.get(&peer) {
                        // A session that does not read its messages loses them, never stalls media.
                        if tx.try_send(Box::new(msg)).is_err() {
                            debug!(peer, "session queue full or closed; message dropped");
                        }
                    }
                }
                Output::Audio { room, source, lang, ms, pcm } => {
                    if let Some(asr) = asr {
                        asr.offer(Chunk {
                            engine: 0,
                            room: room.into(),
                            source,
                            lang,
                            ms,
                            pcm,
                            at: Instant::now(),
                        });
                    }
                }
                Output::Record(r) => recorder.offer(r),
                Output::Relay(r) => {
                    if let Some(tx) = relay {
                        if tx.try_send(r).is_err() {
                            debug!("cluster link queue full; relay dropped");
                        }
                    }
                }
                Output::Timeout(t) => break t,
            }
        };
        // Sleep to the next deadline (at most MAX_WAIT), then take everything that came
        // meanwhile: one wakeup for many datagrams, not one per datagram. Media loses nothing
        // by waiting, since the jitter buffers are read at the tick, and the tick is a deadline.
        let wait = deadline.saturating_duration_since(Instant::now()).min(MAX_WAIT);
        if !wait.is_zero() && !more {
            // Woken early by a command (see `App::to_engine`); an early or spurious wakeup
            // only means one more turn of this loop.
            std::thread::park_timeout(wait);
        }
        for _ in 0..MAX_DRAIN {
            match socket.recv_from(&mut buf) {
                Ok((n, source)) => {
                    if let Err(e) = engine.handle_datagram(Instant::now(), source, destination, &buf[..n]) {
                        debug!(%source, "datagram dropped: {e}");
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                // ICMP port unreachable from a peer that left shows up here on Linux.
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => {}
                Err(e) => {
                    warn!("UDP receive failed: {e}");
                    break;
                }
            }
        }
        if let Some(tcp) = media.tcp.as_mut() {
            tcp.poll(Instant::now(), |source, data| {
                if let Err(e) = engine.handle_tcp_frame(Instant::now(), source, destination, data) {
                    debug!(%source, "TCP frame dropped: {e}");
                }
            });
        }
        if let Some((index, tap)) = tap {
            // Drain the tap without blocking: its packets wait at most one loop; bounded like
            // the media socket, so that a flood on the tap port cannot hold the tick back.
            for _ in 0..MAX_DRAIN {
                let Ok((n, source)) = tap.recv_from(&mut buf) else { break };
                match engine.handle_tap(index, source, &buf[..n]) {
                    Ok(Some(from)) => warn!(%from, "the RTP tap locked onto a new sender"),
                    Ok(None) => {}
                    Err(e) => debug!(%source, "RTP tap packet dropped: {e}"),
                }
            }
        }
        if let Some(asr) = asr {
            while let Some(c) = asr.poll_caption() {
                engine.handle_caption(c);
            }
        }
        while let Some((room, why)) = recorder.poll_failed() {
            engine.recording_failed(&room, &why);
        }
        let started = Instant::now();
        if engine.handle_timeout(started) {
            media.send_all(engine.batch().iter());
            tick.observe(started.elapsed().as_secs_f64());
        }
    }
}

fn apply(engine: &mut Engine, sessions: &mut Sessions, cmd: Command) {
    // A reply nobody waits for any more (the session closed) is simply dropped.
    match cmd {
        Command::Join { peer, who, publish, events, reply } => {
            let r = engine.handle_join(Instant::now(), peer, &who, publish);
            if r.is_ok() {
                match events {
                    Some(events) => {
                        sessions.insert(peer, events);
                    }
                    None => engine.detach(peer),
                }
            }
            let _ = reply.send(r);
        }
        Command::Offer { peer, offer, reply } => {
            let answer = engine.handle_offer(Instant::now(), peer, *offer);
            let _ = reply.send(answer.map(|sdp| Some(ServerMsg::Answer { sdp })));
        }
        Command::Message { peer, msg, reply } => {
            let _ = reply.send(engine.handle_message(Instant::now(), peer, msg));
        }
        Command::Leave { peer } => {
            sessions.remove(&peer);
            engine.handle_leave(Instant::now(), peer);
        }
        Command::CreateRoom { spec, captions, recording, reply } => {
            let id = spec.id.clone();
            let r = engine.create_room(spec).inspect(|_| {
                for source in captions {
                    if let Err(e) = engine.set_captions(&id, source, true) {
                        warn!(room = id, "captions not restored: {e}");
                    }
                }
                if recording {
                    // Recording goes on after a restart, in new files.
                    if let Err(e) = engine.set_recording(&id, true) {
                        warn!(room = id, "recording not resumed: {e}");
                    }
                }
            });
            let _ = reply.send(r.map(|v| engine.room_view(&v.id).unwrap_or(v)));
        }
        Command::DeleteRoom { id, reply } => {
            let _ = reply.send(engine.delete_room(&id));
        }
        Command::AddChannel { room, spec, reply } => {
            let _ = reply.send(engine.add_channel(&room, spec));
        }
        Command::RenameChannel { room, lang, name, reply } => {
            let _ = reply.send(engine.rename_channel(&room, &lang, name));
        }
        Command::Revoke { room, invitation, reply } => {
            let _ = reply.send(Ok(engine.revoke(&room, &invitation)));
        }
        Command::Record { room, on, reply } => {
            let _ = reply.send(engine.set_recording(&room, on));
        }
        Command::Room { id, reply } => {
            let _ = reply.send(engine.room_view(&id));
        }
        Command::Snapshot { reply } => {
            let _ = reply.send(engine.snapshot());
        }
        Command::Peers { reply } => {
            let _ = reply.send(engine.peer_ids());
        }
        Command::Crash => panic!("asked to crash (a test)"),
        Command::Origin { room, here } => {
            if let Err(e) = engine.set_origin(&room, here) {
                debug!(room, "origin not set: {e}");
            }
        }
        Command::Wants { room, node, streams } => engine.set_wants(Instant::now(), &room, &node, streams),
        // Taken by `run`, which holds the sockets to send it on with.
        Command::Relayed { .. } => {}
        Command::RemoteState { room, msg } => engine.handle_remote_state(&room, msg),
        Command::RemoteCaption(c) => engine.handle_remote_caption(c),
    }
}
