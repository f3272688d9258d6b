//! The thin IO layer: binds sockets, starts the media thread, serves HTTP; holds no media state.

pub mod cluster;
pub mod driver;
pub mod http;
pub mod limits;
pub mod listen;
pub mod metrics;
pub mod record;
pub mod signal;
pub mod sys;
pub mod tcp;
pub mod turn;
pub mod whip;

use crate::asr::Asr;
use crate::config::{Config, ConfigError};
use crate::core::engine::{EngineConfig, RoomView, Snapshot};
use crate::core::room::PeerId;
use crate::core::spec::{ChannelSpec, RoomSpec};
use crate::protocol::{Error, ErrorCode, Role};
use crate::store::Store;
use crate::token::{Claims, Keys};
use driver::Command;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot};

/// Receive buffer asked for on each media socket; the kernel caps it at net.core.rmem_max.
const RECV_BUFFER: usize = 8 << 20;
/// How often peers gone from the engines are forgotten and rooms are checked for expiry.
pub const EXPIRE_EVERY: Duration = Duration::from_secs(60);
/// How often memory freed by settled listeners is handed back to the system.
const TRIM_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot bind {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    #[error("server failed: {0}")]
    Serve(std::io::Error),
    #[error("cluster: {0}")]
    Cluster(String),
}

/// What HTTP handlers and signalling sessions share: the way into the media thread, and the keys.
#[derive(Clone)]
pub struct App {
    inner: Arc<Inner>,
}

struct Inner {
    /// One media engine per core, each with its own thread and UDP socket.
    /// Each engine's command queue and its thread, woken when a command is queued.
    engines: Vec<(mpsc::Sender<Command>, std::thread::Thread)>,
    /// Which engine holds each room, and each joined peer.
    placement: std::sync::Mutex<Placement>,
    /// Rooms that must live on engine 0 (named by the RTP tap or outputs).
    pinned: std::collections::HashSet<String>,
    /// Rooms, channels, caption settings and transcripts.
    store: Arc<Store>,
    /// Whether a speech recogniser runs (hosts can turn captions on).
    captions: bool,
    asr_skipped: Arc<AtomicU64>,
    metrics: metrics::Metrics,
    next_peer: AtomicU64,
    resources: std::sync::Mutex<HashMap<String, PeerId>>,
    keys: Keys,
    api_key: String,
    /// Also lets a scraper read `/metrics` and `/health`'s details.
    metrics_token: Option<String>,
    /// The TURN relay pages are told about, if any.
    turn: Option<crate::config::TurnConfig>,
    public_url: String,
    token_ttl_secs: u64,
    links: limits::Links,
    /// When each room last had a session (as seen by [`App::expire_rooms`]).
    used: std::sync::Mutex<HashMap<String, std::time::Instant>>,
    /// Where recordings are written.
    recordings: std::path::PathBuf,
    /// The takes being written now, shared with the recorders.
    open_takes: record::OpenTakes,
    /// Signs recording download links (a key of its own, derived from the token secret).
    file_key: aws_lc_rs::hmac::Key,
    /// Invitations revoked by their hosts (their ids), kept in the database too.
    revoked: std::sync::Mutex<std::collections::HashSet<String>>,
    /// This node's link to the others, when it is one of a cluster's.
    cluster: std::sync::OnceLock<Arc<cluster::Cluster>>,
}

/// An invitation: a token and the page it opens.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Invite {
    pub role: Role,
    pub channel: Option<String>,
    pub name: String,
    pub token: String,
    pub url: String,
    /// When the link stops working (seconds since the Unix epoch).
    #[serde(default)]
    pub expires_at: u64,
    /// The link as a QR code (SVG), when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qr: Option<String>,
}

fn stored(e: crate::store::StoreError) -> Error {
    // The database's own words (paths, SQL) go to the log, not to the client.
    tracing::error!("{e}");
    Error::new(ErrorCode::Busy, "not saved: the server could not write its database; try again later")
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("the clock is after 1970").as_secs()
}

/// A recordings error as the client hears it (the details go to the log).
pub(crate) fn disk(e: std::io::Error) -> Error {
    tracing::error!("recordings: {e}");
    Error::new(ErrorCode::Busy, "the server could not read its recordings; try again later")
}

fn gone() -> Error {
    Error::new(ErrorCode::Busy, "the media engine is not running")
}

/// Rooms and peers to engines. A room lives on one engine, with all its peers.
#[derive(Default)]
struct Placement {
    rooms: HashMap<String, usize>,
    /// Each peer's engine, and when its join was answered.
    peers: HashMap<PeerId, (usize, std::time::Instant)>,
    /// Rooms per engine, to place a new room on the least loaded.
    load: Vec<usize>,
}

impl App {
    fn placement(&self) -> std::sync::MutexGuard<'_, Placement> {
        self.inner.placement.lock().expect("no panics while holding the placement")
    }

    /// The engine a command belongs to.
    fn route(&self, cmd: &Command) -> Result<usize, Error> {
        let p = self.placement();
        let room = |id: &str| {
            p.rooms.get(id).copied().ok_or_else(|| Error::new(ErrorCode::NotFound, format!("no room {id}")))
        };
        match cmd {
            Command::Join { who, .. } => room(&who.room),
            Command::Message { peer, .. } | Command::Offer { peer, .. } | Command::Leave { peer } => p
                .peers
                .get(peer)
                .map(|(e, _)| *e)
                .ok_or_else(|| Error::new(ErrorCode::NotJoined, "not joined")),
            Command::AddChannel { room: id, .. }
            | Command::RenameChannel { room: id, .. }
            | Command::Revoke { room: id, .. }
            | Command::Record { room: id, .. }
            | Command::Room { id, .. }
            | Command::DeleteRoom { id, .. } => room(id),
            Command::CreateRoom { .. } => {
                Ok(p.load.iter().enumerate().min_by_key(|(_, n)| **n).map_or(0, |(i, _)| i))
            }
            Command::Origin { room: id, .. }
            | Command::Wants { room: id, .. }
            | Command::Relayed { room: id, .. }
            | Command::RemoteState { room: id, .. } => room(id),
            Command::RemoteCaption(c) => room(&c.room),
            Command::Snapshot { .. } | Command::Peers { .. } | Command::Crash => Ok(0),
        }
    }

    async fn to_engine(&self, engine: usize, cmd: Command) -> Result<(), Error> {
        let (commands, thread) = &self.inner.engines[engine];
        commands.send(cmd).await.map_err(|_| gone())?;
        thread.unpark();
        Ok(())
    }

    pub(crate) async fn send(&self, cmd: impl FnOnce(()) -> Command) -> Result<(), Error> {
        let cmd = cmd(());
        let engine = self.route(&cmd)?;
        if let Command::Leave { peer } = &cmd {
            self.placement().peers.remove(peer);
        }
        self.to_engine(engine, cmd).await
    }

    async fn ask<T>(&self, cmd: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, Error> {
        let (tx, rx) = oneshot::channel();
        let cmd = cmd(tx);
        let engine = self.route(&cmd)?;
        self.ask_engine(engine, cmd, rx).await
    }

    async fn ask_engine<T>(&self, engine: usize, cmd: Command, rx: oneshot::Receiver<T>) -> Result<T, Error> {
        let join = match &cmd {
            Command::Join { peer, .. } => Some(*peer),
            _ => None,
        };
        self.to_engine(engine, cmd).await?;
        let reply = rx.await.map_err(|_| gone())?;
        if let Some(peer) = join {
            // Recorded whatever the outcome: a refused join leaves nothing to route, and
            // `reconcile` forgets it.
            self.placement().peers.insert(peer, (engine, std::time::Instant::now()));
        }
        Ok(reply)
    }

    /// Asks every engine and collects the answers.
    async fn ask_all<T>(&self, cmd: impl Fn(oneshot::Sender<T>) -> Command) -> Result<Vec<T>, Error> {
        let mut out = Vec::new();
        for engine in 0..self.inner.engines.len() {
            let (tx, rx) = oneshot::channel();
            out.push(self.ask_engine(engine, cmd(tx), rx).await?);
        }
        Ok(out)
    }

    pub(crate) async fn request<T>(
        &self,
        cmd: impl FnOnce(oneshot::Sender<Result<T, Error>>) -> Command,
    ) -> Result<T, Error> {
        self.ask(cmd).await?
    }

    /// Checks an invitation: signed by this server, not expired, not revoked.
    pub fn verify(&self, token: &str) -> Result<Claims, Error> {
        let claims = self.inner.keys.verify(token)?;
        if self.inner.revoked.lock().expect("no panics while holding the revoked set").contains(&claims.jti) {
            return Err(Error::new(
                ErrorCode::Revoked,
                "this invitation was revoked by the room's host: ask for a new link",
            ));
        }
        Ok(claims)
    }

    /// Revokes an invitation of `room`: it cannot join again, and its sessions end. Kept in the
    /// database until the invitation would have expired. Returns it, and how many sessions ended.
    pub async fn revoke(&self, room: &str, token: &str) -> Result<(Claims, usize), Error> {
        let claims = self.inner.keys.verify(token)?;
        if claims.room != room {
            return Err(Error::new(ErrorCode::Forbidden, "that invitation is for another room"));
        }
        if claims.jti.is_empty() {
            return Err(Error::new(ErrorCode::BadMessage, "that invitation has no id to revoke"));
        }
        self.inner.store.revoke(&claims.jti, room, claims.exp).map_err(stored)?;
        if let Some(c) = self.cluster() {
            c.revoke(&claims.jti, room, claims.exp).await?;
        }
        let ended = self.end_revoked(&claims.jti, room).await;
        Ok((claims, ended))
    }

    /// Keeps `jti` as revoked and ends this node's sessions that joined with it.
    async fn end_revoked(&self, jti: &str, room: &str) -> usize {
        self.inner.revoked.lock().expect("no panics while holding the revoked set").insert(jti.to_string());
        let (r, invitation) = (room.to_string(), jti.to_string());
        self.request(|reply| Command::Revoke { room: r, invitation, reply }).await.unwrap_or(0)
    }

    pub(crate) fn is_revoked(&self, jti: &str) -> bool {
        self.inner.revoked.lock().expect("no panics while holding the revoked set").contains(jti)
    }

    /// An invitation revoked on another node of the cluster.
    pub(crate) async fn revoked_elsewhere(&self, jti: &str, room: &str, exp: u64) {
        if let Err(e) = self.inner.store.revoke(jti, room, exp) {
            tracing::warn!("revocation from the cluster not kept in the database: {e}");
        }
        let ended = self.end_revoked(jti, room).await;
        tracing::info!(room, ended, "an invitation revoked on another node");
    }

    /// Puts a room's definition, as kept here, where every node of the cluster reads it.
    async fn share_room(&self, id: &str) -> Result<(), Error> {
        let Some(c) = self.cluster() else { return Ok(()) };
        let rooms = self.inner.store.rooms().map_err(stored)?;
        match rooms.into_iter().find(|r| r.spec.id == id) {
            Some(r) => c.put_room(&r.spec).await,
            None => Ok(()),
        }
    }

    /// A room changed on another node: its new channels and names here too.
    pub(crate) async fn follow_room(&self, spec: RoomSpec) {
        let Ok(Some(view)) = self.room(spec.id.clone()).await else { return };
        for c in spec.channels {
            let (room, lang) = (spec.id.clone(), c.lang.clone());
            let r = match view.channels.iter().find(|v| v.lang == c.lang) {
                None => self.add_channel_here(room, c).await.map(|_| ()),
                Some(v) if v.name != c.name => self.rename_channel_here(room, lang, c.name).await.map(|_| ()),
                Some(_) => Ok(()),
            };
            if let Err(e) = r {
                tracing::warn!(room = spec.id, "channel from the cluster not followed: {e}");
            }
        }
    }

    pub fn keys(&self) -> &Keys {
        &self.inner.keys
    }

    pub fn api_key(&self) -> &str {
        &self.inner.api_key
    }

    pub(crate) fn links(&self) -> &limits::Links {
        &self.inner.links
    }

    pub fn metrics_token(&self) -> Option<&str> {
        self.inner.metrics_token.as_deref()
    }

    /// Relays for a page that just joined, with fresh credentials.
    pub(crate) fn ice_servers(&self) -> Vec<crate::protocol::IceServer> {
        self.inner.turn.iter().map(|t| turn::credentials(t, unix_now())).collect()
    }

    /// Signs an invitation for a role in a room.
    pub fn mint(
        &self,
        room: &str,
        role: Role,
        channel: Option<String>,
        name: &str,
        ttl_secs: Option<u64>,
    ) -> Invite {
        let claims = Claims {
            room: room.to_string(),
            role,
            channel,
            also: Vec::new(),
            name: name.to_string(),
            exp: 0,
            jti: String::new(),
        };
        self.invite(claims, ttl_secs)
    }

    /// Signs `claims` (its expiry set from `ttl_secs` or the configured lifetime) as an invitation.
    pub fn invite(&self, mut claims: Claims, ttl_secs: Option<u64>) -> Invite {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("the clock is after 1970").as_secs();
        claims.exp = now + ttl_secs.unwrap_or(self.inner.token_ttl_secs);
        if claims.jti.is_empty() {
            claims.jti = random_hex(6);
        }
        let token = self.inner.keys.sign(&claims);
        let page = match claims.role {
            Role::Host => "host",
            Role::Floor => "floor",
            Role::Interpreter => "interpret",
            Role::Listener => "listen",
        };
        let url = format!("{}/{page}.html#token={token}", self.inner.public_url);
        Invite {
            role: claims.role,
            channel: claims.channel,
            name: claims.name,
            token,
            url,
            expires_at: claims.exp,
            qr: None,
        }
    }

    /// This node's link to the other nodes, when it is one of a cluster's.
    pub fn cluster(&self) -> Option<&Arc<cluster::Cluster>> {
        self.inner.cluster.get()
    }

    /// Sessions on this node now.
    pub(crate) fn load(&self) -> usize {
        self.placement().peers.len()
    }

    /// The rooms this node holds.
    pub(crate) fn local_rooms(&self) -> Vec<String> {
        self.placement().rooms.keys().cloned().collect()
    }

    /// A room another node of the cluster made: held here too, for listeners to join here.
    pub(crate) async fn adopt_room(&self, spec: RoomSpec) -> Result<(), Error> {
        let kept = spec.clone();
        match self.place_room(spec, Vec::new(), false).await {
            Err(e) if e.code == ErrorCode::Exists => return Ok(()),
            r => r?,
        };
        if let Err(e) = self.inner.store.insert_room(&kept, unix_now()) {
            tracing::warn!(room = kept.id, "room from the cluster not kept in the database: {e}");
        }
        Ok(())
    }

    /// A room deleted on another node of the cluster goes here too.
    pub(crate) async fn forget_room(&self, id: String) -> Result<(), Error> {
        self.remove_room(id, true).await
    }

    /// Creates a room and keeps it in the database before answering: it survives restarts.
    pub async fn create_room(&self, spec: RoomSpec) -> Result<RoomView, Error> {
        let kept = spec.clone();
        let view = self.place_room(spec, Vec::new(), false).await?;
        if let Err(e) = self.inner.store.insert_room(&kept, unix_now()) {
            // Not kept, so not made: the room goes again and the caller hears why.
            let _ = self.delete_room(kept.id.clone()).await;
            return Err(stored(e));
        }
        if let Some(c) = self.cluster() {
            // Where every node reads it; not there, not made.
            if let Err(e) = c.put_room(&kept).await {
                let _ = self.remove_room(kept.id.clone(), true).await;
                return Err(e);
            }
        }
        // Recordings left under the same id belong to an earlier meeting: a new room starts empty.
        self.delete_room_recordings(&kept.id).await;
        Ok(view)
    }

    /// Puts a room on an engine (the least loaded, or engine 0 for rooms the RTP doors name).
    async fn place_room(
        &self,
        spec: RoomSpec,
        captions: Vec<Option<String>>,
        recording: bool,
    ) -> Result<RoomView, Error> {
        let id = spec.id.clone();
        // Rooms fed by the RTP tap or sent to an RTP output live on engine 0, which owns those sockets.
        let pinned = self.inner.pinned.contains(&id);
        if self.placement().rooms.contains_key(&id) {
            return Err(Error::new(ErrorCode::Exists, format!("room {id} already exists")));
        }
        let (tx, rx) = oneshot::channel();
        let cmd = Command::CreateRoom { spec, captions, recording, reply: tx };
        let engine = if pinned { 0 } else { self.route(&cmd)? };
        let view = self.ask_engine(engine, cmd, rx).await??;
        let mut p = self.placement();
        p.rooms.insert(id, engine);
        p.load[engine] += 1;
        Ok(view)
    }

    /// Brings back every room the database holds (at start).
    async fn restore_rooms(&self) -> Result<usize, StartError> {
        let rooms = self.inner.store.rooms().map_err(|e| StartError::Serve(std::io::Error::other(e)))?;
        let n = rooms.len();
        for r in rooms {
            let id = r.spec.id.clone();
            if let Err(e) = self.place_room(r.spec, r.captions, r.recording).await {
                tracing::warn!(room = id, "stored room not restored: {e}");
            }
        }
        Ok(n)
    }

    /// Puts an engine's rooms back on it after it restarted.
    async fn restore_engine(&self, engine: usize) {
        let ids: std::collections::HashSet<String> =
            self.placement().rooms.iter().filter(|(_, e)| **e == engine).map(|(id, _)| id.clone()).collect();
        let rooms = match self.inner.store.rooms() {
            Ok(r) => r,
            Err(e) => return tracing::error!(engine, "rooms not restored: {e}"),
        };
        let mut n = 0;
        for r in rooms.into_iter().filter(|r| ids.contains(&r.spec.id)) {
            let id = r.spec.id.clone();
            let (tx, rx) = oneshot::channel();
            let cmd =
                Command::CreateRoom { spec: r.spec, captions: r.captions, recording: r.recording, reply: tx };
            match self.ask_engine(engine, cmd, rx).await {
                Ok(Ok(_)) => n += 1,
                Ok(Err(e)) | Err(e) => tracing::warn!(engine, room = id, "room not restored: {e}"),
            }
        }
        tracing::info!(engine, rooms = n, "media engine restarted with its rooms");
    }

    /// Test hook: makes an engine's thread panic, as a bug would.
    #[doc(hidden)]
    pub async fn crash_engine(&self, engine: usize) -> Result<(), Error> {
        self.to_engine(engine, Command::Crash).await
    }

    /// Deletes a room: its sessions end, its definition and transcript are deleted.
    pub async fn delete_room(&self, id: String) -> Result<(), Error> {
        if let Some(c) = self.cluster() {
            c.delete_room(&id).await?;
        }
        self.remove_room(id, true).await
    }

    /// Deletes a room, with its recordings or without them (an expired room's stay for their days).
    async fn remove_room(&self, id: String, recordings: bool) -> Result<(), Error> {
        let r = self.request(|reply| Command::DeleteRoom { id: id.clone(), reply }).await;
        // The database is cleaned even when the engine had no such room (a room that failed to restore).
        let stored = self.inner.store.delete_room(&id).map_err(stored)?;
        if recordings {
            self.delete_room_recordings(&id).await;
        }
        match r {
            Ok(()) => {
                let mut p = self.placement();
                if let Some(engine) = p.rooms.remove(&id) {
                    p.load[engine] -= 1;
                }
                Ok(())
            }
            Err(_) if stored => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Forgets the peers no engine holds any more (refused joins, WHIP and WHEP peers the engine
    /// reaped), with their WHIP and WHEP resources; returns how many. Runs every [`EXPIRE_EVERY`].
    pub async fn reconcile(&self) -> Result<usize, Error> {
        let asked = std::time::Instant::now();
        let mut live = std::collections::HashSet::new();
        for engine in 0..self.inner.engines.len() {
            let (tx, rx) = oneshot::channel();
            live.extend(self.ask_engine(engine, Command::Peers { reply: tx }, rx).await?);
        }
        let mut p = self.placement();
        let before = p.peers.len();
        // A peer that joined after the engines were asked is kept.
        p.peers.retain(|id, (_, at)| live.contains(id) || *at >= asked);
        let gone = before - p.peers.len();
        self.resources().retain(|_, peer| p.peers.contains_key(peer));
        Ok(gone)
    }

    /// Deletes every room (but those the configuration names) that has had no session for
    /// `after`, as far as this server has seen since it started; returns their ids. Runs every
    /// [`EXPIRE_EVERY`] with the configured `room_expiry_hours`.
    pub async fn expire_rooms(&self, after: Duration) -> Result<Vec<String>, Error> {
        let now = std::time::Instant::now();
        let seen = self.snapshot().await?.occupancy;
        let mut expired = Vec::new();
        {
            let mut used = self.inner.used.lock().unwrap_or_else(|e| e.into_inner());
            let present: std::collections::HashSet<&String> = seen.iter().map(|(id, _)| id).collect();
            used.retain(|id, _| present.contains(id));
            for (id, sessions) in &seen {
                let last = used.entry(id.clone()).or_insert(now);
                if *sessions > 0 {
                    *last = now;
                } else if now.duration_since(*last) >= after && !self.inner.pinned.contains(id) {
                    expired.push(id.clone());
                }
            }
        }
        for id in &expired {
            // Its recordings stay for `recording_days`: a room nobody uses is not a recording nobody wants.
            self.remove_room(id.clone(), false).await?;
            tracing::info!(room = id, "room expired: nobody joined it for {} s", after.as_secs());
        }
        Ok(expired)
    }

    pub async fn add_channel(&self, room: String, spec: ChannelSpec) -> Result<RoomView, Error> {
        let view = self.add_channel_here(room.clone(), spec).await?;
        self.share_room(&room).await?;
        Ok(view)
    }

    async fn add_channel_here(&self, room: String, spec: ChannelSpec) -> Result<RoomView, Error> {
        let kept = spec.clone();
        let view = self.request(|reply| Command::AddChannel { room: room.clone(), spec, reply }).await?;
        self.inner.store.add_channel(&room, &kept).map_err(stored)?;
        Ok(view)
    }

    /// Renames a channel, kept in the database before the answer.
    pub async fn rename_channel(&self, room: String, lang: String, name: String) -> Result<RoomView, Error> {
        let view = self.rename_channel_here(room.clone(), lang, name).await?;
        self.share_room(&room).await?;
        Ok(view)
    }

    async fn rename_channel_here(&self, room: String, lang: String, name: String) -> Result<RoomView, Error> {
        let (r, l, n) = (room.clone(), lang.clone(), name.clone());
        let view = self.request(|reply| Command::RenameChannel { room: r, lang: l, name: n, reply }).await?;
        self.inner.store.rename_channel(&room, &lang, &name).map_err(stored)?;
        Ok(view)
    }

    /// Starts or stops recording a room (the API), and keeps that so a restart goes on
    /// recording it (in new files).
    pub async fn set_recording(&self, room: &str, on: bool) -> Result<(), Error> {
        if on {
            self.room_to_record().await?;
        }
        let room_id = room.to_string();
        self.request(|reply| Command::Record { room: room_id, on, reply }).await?;
        self.keep_recording(room, on)
    }

    /// Deletes every recording of a room (off the async threads: it may be gigabytes).
    async fn delete_room_recordings(&self, id: &str) {
        let (root, room) = (self.inner.recordings.clone(), id.to_string());
        match tokio::task::spawn_blocking(move || record::delete_room(&root, &room)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(room = id, "recordings not deleted: {e}"),
            Err(e) => tracing::error!(room = id, "recordings not deleted: {e}"),
        }
    }

    /// A room's takes, oldest first (each running or not).
    pub async fn takes(&self, room: &str) -> Result<Vec<record::Take>, Error> {
        let (root, id, open) =
            (self.inner.recordings.clone(), room.to_string(), self.inner.open_takes.clone());
        tokio::task::spawn_blocking(move || record::list(&root, &id, &open))
            .await
            .map_err(|_| Error::new(ErrorCode::Busy, "try again"))?
            .map_err(disk)
    }

    /// Deletes a take, or one file of it; a take being written is refused (stop it first).
    pub async fn delete_recording(&self, room: &str, take: &str, file: Option<String>) -> Result<(), Error> {
        if record::running(&self.inner.recordings, room, take, &self.inner.open_takes) {
            return Err(Error::new(
                ErrorCode::Conflict,
                "this take is being recorded: stop the recording first",
            ));
        }
        let (root, id, t, f) =
            (self.inner.recordings.clone(), room.to_string(), take.to_string(), file.clone());
        let done = tokio::task::spawn_blocking(move || record::delete(&root, &id, &t, f.as_deref()))
            .await
            .map_err(|_| Error::new(ErrorCode::Busy, "try again"))?
            .map_err(disk)?;
        if done {
            Ok(())
        } else {
            let what = file.map_or(take.to_string(), |f| format!("{take}/{f}"));
            Err(Error::new(ErrorCode::NotFound, format!("no recording {what} in room {room}")))
        }
    }

    /// Refuses a recording when its disk has less than [`record::MIN_FREE`] free.
    pub(crate) async fn room_to_record(&self) -> Result<(), Error> {
        let root = self.inner.recordings.clone();
        let free = tokio::task::spawn_blocking(move || {
            let _ = std::fs::create_dir_all(&root);
            sys::free_bytes(&root).unwrap_or(u64::MAX)
        })
        .await
        .unwrap_or(u64::MAX);
        if free < record::MIN_FREE {
            return Err(Error::new(
                ErrorCode::Unavailable,
                "the disk is full: the server cannot record until space is freed",
            ));
        }
        Ok(())
    }

    pub(crate) fn keep_recording(&self, room: &str, on: bool) -> Result<(), Error> {
        self.inner.store.set_recording(room, on).map_err(stored)
    }

    /// A download link for one recorded file, valid for an hour without other credentials:
    /// `?exp=<unix seconds>&sig=<HMAC of room, take, file and expiry>`.
    pub fn file_url(&self, room: &str, take: &str, file: &str) -> String {
        let exp = unix_now() + 3600;
        let sig =
            aws_lc_rs::hmac::sign(&self.inner.file_key, format!("{room}/{take}/{file}/{exp}").as_bytes());
        let hex: String = sig.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        format!("/api/rooms/{room}/recordings/{take}/{file}?exp={exp}&sig={hex}")
    }

    /// Whether a download link's signature is this server's and still valid.
    pub fn file_link_valid(&self, room: &str, take: &str, file: &str, exp: u64, sig: &str) -> bool {
        if exp < unix_now() || sig.len() != 64 {
            return false;
        }
        let Ok(bytes) = (0..sig.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&sig[i..i + 2], 16))
            .collect::<Result<Vec<u8>, _>>()
        else {
            return false;
        };
        aws_lc_rs::hmac::verify(
            &self.inner.file_key,
            format!("{room}/{take}/{file}/{exp}").as_bytes(),
            &bytes,
        )
        .is_ok()
    }

    /// Where recordings are written.
    pub fn recordings(&self) -> &std::path::Path {
        &self.inner.recordings
    }

    /// Keeps a host's caption setting (applied by the engine already) so that it survives restarts.
    pub(crate) fn keep_captions(&self, room: &str, source: Option<&str>, on: bool) -> Result<(), Error> {
        let source = source.filter(|s| *s != "floor");
        self.inner.store.set_captions(room, source, on).map_err(stored)
    }

    pub async fn room(&self, id: String) -> Result<Option<RoomView>, Error> {
        self.ask(|reply| Command::Room { id, reply }).await
    }

    /// Every engine's counters, merged.
    pub async fn snapshot(&self) -> Result<Snapshot, Error> {
        Ok(Snapshot::merge(self.ask_all(|reply| Command::Snapshot { reply }).await?))
    }

    /// Prometheus text for `/metrics`.
    pub async fn metrics(&self) -> Result<String, Error> {
        let snapshots = self.ask_all(|reply| Command::Snapshot { reply }).await?;
        let root = self.inner.recordings.clone();
        let disk =
            tokio::task::spawn_blocking(move || (record::usage(&root), sys::free_bytes(&root).unwrap_or(0)))
                .await
                .unwrap_or_default();
        Ok(self.inner.metrics.render(snapshots, self.asr_skipped(), disk))
    }

    /// The database: rooms and transcripts.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Whether a speech recogniser runs, so that hosts can turn captions on.
    pub fn captions(&self) -> bool {
        self.inner.captions
    }

    /// Audio chunks the recogniser had no time for.
    pub fn asr_skipped(&self) -> u64 {
        self.inner.asr_skipped.load(Ordering::Relaxed)
    }

    /// A fresh id for a signalling session or a WHIP/WHEP resource.
    pub(crate) fn next_peer(&self) -> PeerId {
        self.inner.next_peer.fetch_add(1, Ordering::Relaxed)
    }

    /// WHIP and WHEP resources (the URL's secret part) and their peers.
    pub(crate) fn resources(&self) -> std::sync::MutexGuard<'_, HashMap<String, PeerId>> {
        self.inner.resources.lock().expect("no panics while holding the resource map")
    }
}

/// Reads an SDP offer on a blocking thread: never on the media thread, nor on a worker that
/// other sessions' messages wait for.
pub(crate) async fn read_offer(sdp: String) -> Result<crate::core::engine::Offer, Error> {
    tokio::task::spawn_blocking(move || crate::core::engine::Offer::parse(&sdp))
        .await
        .map_err(|_| Error::new(ErrorCode::Unavailable, "the offer could not be read; try again"))?
}

/// A started server: its addresses and its app. Dropping it stops the server.
pub struct Running {
    pub http: SocketAddr,
    /// The first engine's media socket.
    pub udp: SocketAddr,
    /// Every engine's media socket.
    pub udps: Vec<SocketAddr>,
    /// The RTP floor tap's address, when configured.
    pub tap: Option<SocketAddr>,
    pub app: App,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<Result<(), std::io::Error>>>,
    /// The cluster link's own runtime (a node of a cluster only).
    cluster: Option<tokio::runtime::Runtime>,
}

impl Running {
    /// Waits until the HTTP server stops (it never does on its own).
    pub async fn wait(mut self) -> Result<(), StartError> {
        match self.server.take() {
            Some(h) => {
                h.await.map_err(|e| StartError::Serve(std::io::Error::other(e)))?.map_err(StartError::Serve)
            }
            None => Ok(()),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(rt) = self.cluster.take() {
            rt.shutdown_background();
        }
    }
}

/// `bytes` random bytes from the system's generator (through aws-lc), as hex.
pub(crate) fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    aws_lc_rs::rand::fill(&mut buf).expect("the system's random generator works");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// Opens the database in the data directory (made if missing), deleting transcript lines past their days.
fn open_store(config: &Config) -> Result<Arc<Store>, StartError> {
    let dir = &config.data_dir;
    std::fs::create_dir_all(dir).map_err(|e| {
        StartError::Serve(std::io::Error::other(format!("cannot make {}: {e}", dir.display())))
    })?;
    let path = dir.join("tolk.db");
    // Before rooms were kept, the database held only transcripts, under another name.
    let old = dir.join("transcripts.db");
    if !path.exists() && old.exists() {
        std::fs::rename(&old, &path).map_err(StartError::Serve)?;
        for ext in ["-wal", "-shm"] {
            let _ =
                std::fs::rename(dir.join(format!("transcripts.db{ext}")), dir.join(format!("tolk.db{ext}")));
        }
    }
    let store = Store::open(&path).map_err(|e| StartError::Serve(std::io::Error::other(e)))?;
    match store.purge(config.transcript_days, unix_now()) {
        Ok(0) => {}
        Ok(n) => tracing::info!("deleted {n} transcript lines older than {} days", config.transcript_days),
        Err(e) => tracing::warn!("{e}"),
    }
    Ok(Arc::new(store))
}

/// The token secret: the configured one, else the one in the data directory, made there once
/// (readable by this user only), so that invitation links outlive restarts and upgrades.
fn secret(config: &Config) -> Result<String, StartError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(s) = &config.secret {
        return Ok(s.clone());
    }
    let path = config.data_dir.join("secret");
    let bad = |what: String| StartError::Config(ConfigError::Invalid(what));
    match std::fs::read_to_string(&path) {
        Ok(s) if s.trim().len() >= 16 => return Ok(s.trim().to_string()),
        Ok(_) => return Err(bad(format!("{} holds no secret of 16 or more characters", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(bad(format!("cannot read {}: {e}", path.display()))),
    }
    let s = random_hex(32);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| bad(format!("cannot make {}: {e}", path.display())))?;
    f.write_all(s.as_bytes()).and_then(|()| f.sync_all()).map_err(StartError::Serve)?;
    tracing::info!("made a token secret in {}", path.display());
    Ok(s)
}

/// Starts the recogniser; without a model, captions are off (and said so).
fn captions(config: &Config, store: &Arc<Store>, engines: usize) -> Vec<Asr> {
    if !config.captions {
        return Vec::new();
    }
    match Asr::start(config.models_dir.clone(), Some(store.clone()), crate::asr::threads(), engines) {
        Ok(asr) => asr,
        Err(e) => {
            tracing::warn!("captions unavailable: {e}");
            Vec::new()
        }
    }
}

/// Binds the sockets, starts the media thread and the HTTP server.
pub async fn start(config: Config) -> Result<Running, StartError> {
    config.validate()?;
    let files = match sys::raise_file_limit() {
        Ok(n) => {
            if n < 4096 {
                tracing::warn!(
                    "only {n} open files allowed: each WebSocket and request takes one (raise LimitNOFILE)"
                );
            }
            n
        }
        Err(e) => {
            tracing::warn!("cannot raise the open file limit: {e}");
            1024
        }
    };
    let max_connections = config.max_connections.unwrap_or_else(|| listen::connection_limit(files));
    let engines = config.engine_count();
    let listener =
        tokio::net::TcpListener::bind(config.http).await.map_err(|e| StartError::Bind(config.http, e))?;
    let http_addr = listener.local_addr().map_err(StartError::Serve)?;
    let store = open_store(&config)?;
    let secret = secret(&config)?;
    let asr = captions(&config, &store, engines);
    let captions_on = !asr.is_empty();
    let tick = metrics::tick_histogram();
    let restarts = prometheus_client::metrics::counter::Counter::default();
    let (restarted_tx, mut restarted) = mpsc::unbounded_channel::<usize>();
    let (relay_tx, relay_rx) = mpsc::channel(cluster::RELAY_QUEUE);
    let clustered = config.cluster.is_some();
    let asr_skipped = asr.first().map(|a| a.skipped.clone()).unwrap_or_default();
    let mut asr = asr.into_iter();
    let mut senders = Vec::new();
    let mut udp_addrs = Vec::new();
    let open_takes = record::OpenTakes::default();
    let mut tap_addr = None;
    for index in 0..engines {
        // Engine i listens on the configured UDP port + i (or any port, when it is 0).
        let mut bind = config.udp;
        if bind.port() != 0 {
            bind.set_port(bind.port() + index as u16);
        }
        let udp = std::net::UdpSocket::bind(bind).map_err(|e| StartError::Bind(bind, e))?;
        // The media thread reads its socket once per tick, not per datagram: a receive
        // buffer as large as the system allows (net.core.rmem_max) absorbs what comes meanwhile.
        let _ = socket2::SockRef::from(&udp).set_recv_buffer_size(RECV_BUFFER);
        let udp_addr = udp.local_addr().map_err(StartError::Serve)?;
        let candidates = config.candidates_for(udp_addr, index)?;
        let destination = if udp_addr.ip().is_unspecified() { candidates[0] } else { udp_addr };
        let asr = asr.next();
        // The plain RTP doors belong to engine 0, with the rooms they name.
        let tap = match (&config.rtp_tap, index) {
            (Some(t), 0) => {
                let socket = std::net::UdpSocket::bind(t.bind).map_err(|e| StartError::Bind(t.bind, e))?;
                socket.set_nonblocking(true).map_err(StartError::Serve)?;
                tap_addr = Some(socket.local_addr().map_err(StartError::Serve)?);
                Some((t.clone(), socket))
            }
            _ => None,
        };
        // ICE-TCP on the same address and port number, where that port is free for TCP too.
        let tcp = match config.ice_tcp {
            true => match tcp::Tcp::bind(udp_addr, tcp::connection_limit(files, engines)) {
                Ok(t) => Some(t),
                Err(e) => {
                    tracing::warn!(engine = index, %udp_addr, "no ICE-TCP on this engine: cannot bind TCP: {e}");
                    None
                }
            },
            false => None,
        };
        let tcp_candidates = if tcp.is_some() { candidates.clone() } else { Vec::new() };
        let setup = driver::Setup {
            index,
            engine: EngineConfig {
                candidates: candidates.clone(),
                tcp_candidates,
                captions: asr.is_some(),
                recording: config.recording,
                cluster: clustered,
            },
            recorder: record::Recorder::spawn(config.recordings(), store.clone(), index, open_takes.clone()),
            tcp,
            tap,
            outs: if index == 0 { config.rtp_out.clone() } else { Vec::new() },
            socket: udp,
            destination,
            asr,
            tick: tick.clone(),
            restarts: restarts.clone(),
            restarted: restarted_tx.clone(),
            relay: clustered.then(|| relay_tx.clone()),
        };
        let (commands, rx) = mpsc::channel(driver::COMMAND_QUEUE);
        let thread = std::thread::Builder::new()
            .name(format!("tolk-media-{index}"))
            .spawn({
                let nice = config.media_nice;
                move || {
                    if nice != 0 {
                        if let Err(e) = sys::set_nice(nice) {
                            tracing::warn!(engine = index, nice, error = %e,
                                "media thread runs at nice 0 (media_nice needs root or CAP_SYS_NICE): a busy machine can delay its ticks");
                        }
                    }
                    driver::supervise(setup, rx)
                }
            })
            .map_err(StartError::Serve)?;
        tracing::info!(engine = index, %udp_addr, ?candidates, "media engine up");
        senders.push((commands, thread.thread().clone()));
        udp_addrs.push(udp_addr);
    }
    let pinned = config
        .rtp_tap
        .iter()
        .map(|t| t.room.clone())
        .chain(config.rtp_out.iter().map(|o| o.room.clone()))
        .collect();

    let revoked = store
        .revoked(unix_now())
        .map_err(|e| StartError::Serve(std::io::Error::other(e)))?
        .into_iter()
        .collect();
    let api_key = config.api_key.clone().unwrap_or_else(|| random_hex(16));
    let public_url = config.public_url.clone().unwrap_or_else(|| format!("http://{http_addr}"));
    let app = App {
        inner: Arc::new(Inner {
            placement: std::sync::Mutex::new(Placement { load: vec![0; engines], ..Default::default() }),
            engines: senders,
            pinned,
            next_peer: AtomicU64::new(1),
            resources: Default::default(),
            store,
            captions: captions_on,
            asr_skipped,
            metrics: metrics::Metrics::new(tick, restarts),
            keys: Keys::new(secret.as_bytes()),
            file_key: aws_lc_rs::hmac::Key::new(
                aws_lc_rs::hmac::HMAC_SHA256,
                format!("recordings:{secret}").as_bytes(),
            ),
            api_key,
            metrics_token: config.metrics_token.clone(),
            turn: config.turn.clone(),
            public_url: public_url.trim_end_matches('/').to_string(),
            token_ttl_secs: config.token_ttl_secs,
            links: limits::Links::new(config.listeners_per_link),
            used: Default::default(),
            recordings: config.recordings(),
            open_takes,
            revoked: std::sync::Mutex::new(revoked),
            cluster: std::sync::OnceLock::new(),
        }),
    };
    let (shutdown, stop) = oneshot::channel::<()>();
    let router = http::router(app.clone());
    let server = tokio::spawn(async move {
        listen::serve(listener, router, max_connections, async {
            let _ = stop.await;
        })
        .await
    });
    // Freed memory goes back to the system every few seconds, for as long as the app lives.
    let alive = Arc::downgrade(&app.inner);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(TRIM_EVERY);
        while alive.strong_count() > 0 {
            every.tick().await;
            let _ = tokio::task::spawn_blocking(sys::trim).await;
        }
    });
    // Peers the engines no longer hold are forgotten, and rooms nobody uses go, with their transcripts.
    let recording_days = config.recording_days;
    let expiry = (config.room_expiry_hours > 0).then(|| Duration::from_secs(config.room_expiry_hours * 3600));
    let weak = Arc::downgrade(&app.inner);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(EXPIRE_EVERY);
        loop {
            every.tick().await;
            let Some(inner) = weak.upgrade() else { return };
            let app = App { inner };
            if let Err(e) = app.reconcile().await {
                tracing::warn!("peers not reconciled: {e}");
            }
            if let Some(after) = expiry {
                if let Err(e) = app.expire_rooms(after).await {
                    tracing::warn!("rooms not expired: {e}");
                }
            }
            let (root, days, open) =
                (app.inner.recordings.clone(), recording_days, app.inner.open_takes.clone());
            match tokio::task::spawn_blocking(move || record::purge(&root, days, unix_now(), &open)).await {
                Ok(Ok(0)) => {}
                Ok(Ok(n)) => tracing::info!("deleted {n} recordings older than {days} days"),
                Ok(Err(e)) => tracing::warn!("recordings not purged: {e}"),
                Err(_) => {}
            }
        }
    });
    // An engine that restarted after a panic gets its rooms back from the database (its
    // sessions were told to join again, and pages do).
    let weak = Arc::downgrade(&app.inner);
    tokio::spawn(async move {
        while let Some(engine) = restarted.recv().await {
            let Some(inner) = weak.upgrade() else { return };
            App { inner }.restore_engine(engine).await;
        }
    });
    let rooms = app.restore_rooms().await?;
    if rooms > 0 {
        tracing::info!(rooms, "rooms restored from the database");
    }
    drop(relay_tx);
    let cluster_rt = match &config.cluster {
        None => None,
        Some(cc) => {
            // The link carries media between nodes: its tasks run on a thread of their own at the
            // media threads' priority, not behind the HTTP work on the shared runtime.
            let nice = config.media_nice;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("tolk-cluster")
                .on_thread_start(move || {
                    let _ = sys::set_nice(nice);
                })
                .enable_all()
                .build()
                .map_err(StartError::Serve)?;
            let default_node = format!("node-{}", http_addr.to_string().replace([':', '.', '[', ']'], "-"));
            let (cc, url, linked) = (cc.clone(), app.inner.public_url.clone(), app.clone());
            let c = rt
                .spawn(async move {
                    let c = cluster::Cluster::connect(&cc, url, default_node).await?;
                    let _ = linked.inner.cluster.set(c.clone());
                    c.run(&linked, relay_rx).await?;
                    tracing::info!(node = c.node(), "a node of the cluster");
                    Ok::<_, StartError>(())
                })
                .await;
            match c {
                Ok(Ok(())) => Some(rt),
                Ok(Err(e)) => {
                    rt.shutdown_background();
                    return Err(e);
                }
                Err(e) => {
                    rt.shutdown_background();
                    return Err(StartError::Cluster(e.to_string()));
                }
            }
        }
    };
    tracing::info!(%http_addr, engines, max_connections, "tolk is up");
    Ok(Running {
        http: http_addr,
        udp: udp_addrs[0],
        udps: udp_addrs,
        tap: tap_addr,
        app,
        shutdown: Some(shutdown),
        server: Some(server),
        cluster: cluster_rt,
    })
}

/// Human names for the demo room's channels.
fn language_name(lang: &str) -> String {
    match lang {
        "en" => "English",
        "es" => "Español",
        "fr" => "Français",
        "de" => "Deutsch",
        "it" => "Italiano",
        "pt" | "pt-BR" => "Português",
        "nl" => "Nederlands",
        "ar" => "العربية",
        "zh" => "中文",
        "ru" => "Русский",
        "ja" => "日本語",
        "ase" => "ASL",
        other => other,
    }
    .to_string()
}

/// Creates the demo room and returns its invitations.
pub async fn demo(app: &App, channels: &[String]) -> Result<Vec<Invite>, Error> {
    let spec = RoomSpec {
        id: "demo".into(),
        floor_lang: None,
        channels: channels
            .iter()
            .map(|l| ChannelSpec { lang: l.clone(), name: language_name(l), duck: Default::default() })
            .collect(),
    };
    match app.create_room(spec).await {
        // Kept from an earlier run, with whatever its host changed since.
        Err(e) if e.code == ErrorCode::Exists => {}
        r => {
            r?;
        }
    }
    let mut invites = vec![
        app.mint("demo", Role::Host, None, "Host", None),
        app.mint("demo", Role::Floor, None, "Floor", None),
    ];
    for l in channels {
        invites.push(app.mint("demo", Role::Interpreter, Some(l.clone()), &format!("Interpreter {l}"), None));
    }
    invites.push(app.mint("demo", Role::Listener, None, "Listener", None));
    Ok(invites)
}

/// `tolk serve`: start, print the invitations, run until Ctrl-C.
pub async fn serve(config: Config) -> Result<(), StartError> {
    let demo_channels = config.demo.then(|| config.demo_channels.clone());
    let api_key_set = config.api_key.is_some();
    let running = start(config).await?;
    // The demo room exists before the address is announced, so whoever reads it can use the room.
    let invites = match demo_channels {
        Some(channels) => Some(demo(&running.app, &channels).await),
        None => None,
    };
    let udp: Vec<String> = running.udps.iter().map(|a| a.to_string()).collect();
    println!("tolk is serving http://{} (media on UDP {})", running.http, udp.join(", "));
    if !api_key_set {
        println!("host API key (random for this run): {}", running.app.api_key());
    }
    if let Some(invites) = invites {
        match invites {
            Ok(invites) => {
                println!("demo room \"demo\", invite links:");
                for i in invites {
                    let what = match &i.channel {
                        Some(c) => format!("{} ({c})", i.role.as_str()),
                        None => i.role.as_str().to_string(),
                    };
                    println!("  {what:<18} {}", i.url);
                }
            }
            Err(e) => eprintln!("demo room not created: {e}"),
        }
    }
    tokio::select! {
        r = running.wait() => r,
        _ = tokio::signal::ctrl_c() => {
            println!("tolk stops");
            Ok(())
        }
    }
}
