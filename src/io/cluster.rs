//! The cluster link on NATS: this node's heartbeat, which node mixes each room (JetStream key-value, compare-and-set), room definitions, and the encoded streams, room state and captions carried between nodes.
//!
//! Subjects and buckets (every node uses the same names):
//! - bucket `tolk_nodes`: node name → [`NodeInfo`], put every [`HEARTBEAT`]; a node whose
//!   entry has not changed for [`DEAD_AFTER`] is dead.
//! - bucket `tolk_origins`: room → the node that mixes it. Claimed with `create` (only if no
//!   node holds it) or `update` at the revision read (only if nobody claimed it meanwhile), so
//!   two nodes never both mix a room.
//! - bucket `tolk_rooms`: room → its definition ([`RoomSpec`]), for every node to hold
//!   (channels added or renamed on one node follow on the others).
//! - bucket `tolk_revoked`: a revoked invitation's id → its room, so that no node lets it in.
//! - `tolk.media.<room>.<stream>`: one message per tick and stream, the RTP timestamp (4
//!   bytes, big-endian) and the Opus payload, published by the origin for streams edges want.
//! - `tolk.want.<room>`: an edge's streams of the room and how many listeners hear each,
//!   repeated every second.
//! - `tolk.state.<room>`, `tolk.caption.<room>`: the origin's room state and captions.
//!
//! The buckets are read by polling once a second rather than watched: a poll needs no
//! consumer that must survive a NATS restart. A bucket whose last sequence has not moved is
//! not read further, so an idle cluster costs one request per bucket per second.

use super::driver::Command;
use super::{App, StartError};
use crate::config::ClusterConfig;
use crate::core::engine::{Caption, Relay};
use crate::core::room::Stream;
use crate::core::spec::RoomSpec;
use crate::protocol::{Error, ErrorCode, ServerMsg};
use async_nats::jetstream::kv;
use futures_util::StreamExt;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// How often a node says it is alive (and how often it reads the others and the rooms' origins).
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// A node whose heartbeat has not changed for this long is dead: its rooms are taken over.
pub const DEAD_AFTER: Duration = Duration::from_secs(3);
/// What the media threads may queue for the cluster link (a few seconds of a busy node's ticks).
pub const RELAY_QUEUE: usize = 8192;
/// An edge repeats what it wants this often (an origin forgets it after `WANT_TTL`).
const WANT_EVERY: Duration = Duration::from_secs(1);

/// A node as the others see it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct NodeInfo {
    pub node: String,
    /// Where clients and the other nodes reach its HTTP (pages, WebSocket, WHIP/WHEP).
    pub url: String,
    pub region: String,
    /// Its sessions now (listeners, sources, hosts).
    pub load: u64,
}

/// Where a room is mixed, for a session that must be there.
#[derive(Debug, Clone, PartialEq)]
pub enum Origin {
    Here,
    /// Another node, at this base URL.
    There(String),
}

struct Seen {
    info: NodeInfo,
    revision: u64,
    /// When this node last saw the entry change (its own clock: no clocks compared).
    changed: Instant,
}

#[derive(Default)]
struct View {
    nodes: HashMap<String, Seen>,
    /// Room → (node, revision of the claim).
    origins: HashMap<String, (String, u64)>,
    /// Since when this node's heartbeats have gone through (none: NATS unreachable now).
    connected_since: Option<Instant>,
    /// What each local room was last told: mixed here or not.
    applied: HashMap<String, bool>,
    /// Rooms read from `tolk_rooms` (so a room deleted there goes here too), with the revision
    /// of their definition last followed.
    rooms: HashMap<String, u64>,
    /// Each bucket's last sequence when it was last read (`origins`, `rooms`, `revoked`).
    seqs: [u64; 3],
}

pub struct Cluster {
    me: NodeInfo,
    client: async_nats::Client,
    nodes: kv::Store,
    origins: kv::Store,
    rooms: kv::Store,
    revoked: kv::Store,
    js: async_nats::jetstream::Context,
    view: Mutex<View>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct RevokedMsg {
    room: String,
    exp: u64,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct WantMsg {
    node: String,
    streams: Vec<(String, u32)>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct StateMsg {
    node: String,
    msg: ServerMsg,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct CaptionMsg {
    node: String,
    caption: Caption,
}

fn unreachable_cluster(e: impl std::fmt::Display) -> Error {
    tracing::warn!("cluster: {e}");
    Error::new(ErrorCode::Busy, "the cluster cannot be reached now; try again in a moment")
}

async fn bucket(
    js: &async_nats::jetstream::Context,
    name: &str,
    max_age: Duration,
) -> Result<kv::Store, String> {
    if let Ok(s) = js.get_key_value(name).await {
        return Ok(s);
    }
    // The bucket's stream made as the client's `create_key_value` makes it, without the account
    // query that the NATS server of Debian 12 (2.9) answers in a shape this client cannot read.
    use async_nats::jetstream::stream;
    js.get_or_create_stream(stream::Config {
        name: format!("KV_{name}"),
        subjects: vec![format!("$KV.{name}.>")],
        max_messages_per_subject: 1,
        max_age,
        storage: stream::StorageType::File,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        num_replicas: 1,
        discard: stream::DiscardPolicy::New,
        ..Default::default()
    })
    .await
    .map_err(|e| {
        format!("cannot make the key-value bucket {name} (is JetStream on? nats-server -js): {e}")
    })?;
    js.get_key_value(name).await.map_err(|e| format!("cannot open the key-value bucket {name}: {e}"))
}

impl Cluster {
    /// Connects to NATS and opens the buckets; fails at once when NATS cannot be reached
    /// (later outages are waited out: the client reconnects by itself).
    pub async fn connect(
        config: &ClusterConfig,
        url: String,
        default_node: String,
    ) -> Result<Arc<Cluster>, StartError> {
        let fail = |what: String| StartError::Cluster(what);
        let node = config.node.clone().unwrap_or(default_node);
        let mut options = async_nats::ConnectOptions::new()
            .name(format!("tolk {node}"))
            .connection_timeout(Duration::from_secs(5))
            .request_timeout(Some(Duration::from_secs(2)));
        // A user and password in the URL (`nats://user:pass@host:4222`) are given to NATS as such.
        let mut url_text = config.nats.clone();
        if let Some((scheme, rest)) = config.nats.split_once("://") {
            if let Some((cred, host)) = rest.rsplit_once('@') {
                let (user, pass) = cred.split_once(':').unwrap_or((cred, ""));
                options = options.user_and_password(user.to_string(), pass.to_string());
                url_text = format!("{scheme}://{host}");
            }
        }
        let shown = url_text.clone();
        let client = async_nats::connect_with_options(url_text.as_str(), options)
            .await
            .map_err(|e| fail(format!("cannot reach NATS at {shown}: {e}")))?;
        let js = async_nats::jetstream::new(client.clone());
        let nodes = bucket(&js, "tolk_nodes", Duration::from_secs(60)).await.map_err(fail)?;
        let origins = bucket(&js, "tolk_origins", Duration::ZERO).await.map_err(fail)?;
        let rooms = bucket(&js, "tolk_rooms", Duration::ZERO).await.map_err(fail)?;
        let revoked = bucket(&js, "tolk_revoked", Duration::ZERO).await.map_err(fail)?;
        let me = NodeInfo { node, url, region: config.region.clone(), load: 0 };
        Ok(Arc::new(Cluster {
            me,
            client,
            nodes,
            origins,
            rooms,
            revoked,
            js,
            view: Mutex::new(View::default()),
        }))
    }

    pub fn node(&self) -> &str {
        &self.me.node
    }

    fn view(&self) -> std::sync::MutexGuard<'_, View> {
        self.view.lock().expect("no panics while holding the cluster view")
    }

    /// Starts the heartbeat, the readers of the buckets and subjects, and the relay of what
    /// the media threads hand out.
    pub async fn run(self: &Arc<Self>, app: &App, relay: mpsc::Receiver<Relay>) -> Result<(), StartError> {
        // The first beat and reading before anything is served, so that placement sees the nodes.
        self.beat(app).await;
        self.read_nodes().await;
        self.read_origins(app).await;
        self.read_rooms(app).await;
        self.read_revoked(app).await;
        let weak = Arc::downgrade(&app.inner);
        let me = self.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(HEARTBEAT);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                let app = App { inner };
                me.beat(&app).await;
                me.read_nodes().await;
                me.read_origins(&app).await;
                me.take_over(&app).await;
                me.read_rooms(&app).await;
                me.read_revoked(&app).await;
            }
        });
        let subscribe = |subject: &'static str| {
            let client = self.client.clone();
            async move {
                client
                    .subscribe(subject)
                    .await
                    .map_err(|e| StartError::Cluster(format!("cannot subscribe: {e}")))
            }
        };
        let mut wants = subscribe("tolk.want.*").await?;
        let mut states = subscribe("tolk.state.*").await?;
        let mut captions = subscribe("tolk.caption.*").await?;
        let weak = Arc::downgrade(&app.inner);
        let me = self.node().to_string();
        tokio::spawn(async move {
            loop {
                let (subject, payload) = tokio::select! {
                    Some(m) = wants.next() => (m.subject, m.payload),
                    Some(m) = states.next() => (m.subject, m.payload),
                    Some(m) = captions.next() => (m.subject, m.payload),
                    else => return,
                };
                let Some(inner) = weak.upgrade() else { return };
                let app = App { inner };
                let mut parts = subject.as_str().splitn(3, '.');
                let (Some(_), Some(kind), Some(room)) = (parts.next(), parts.next(), parts.next()) else {
                    continue;
                };
                let room = room.to_string();
                let cmd = match kind {
                    "want" => match serde_json::from_slice::<WantMsg>(&payload) {
                        Ok(w) if w.node != me => {
                            let streams = w
                                .streams
                                .iter()
                                .filter_map(|(k, n)| Some((Stream::from_key(k)?, *n)))
                                .collect();
                            Command::Wants { room, node: w.node, streams }
                        }
                        _ => continue,
                    },
                    "state" => match serde_json::from_slice::<StateMsg>(&payload) {
                        Ok(s) if s.node != me => Command::RemoteState { room, msg: s.msg },
                        _ => continue,
                    },
                    _ => match serde_json::from_slice::<CaptionMsg>(&payload) {
                        Ok(c) if c.node != me && c.caption.room == room => Command::RemoteCaption(c.caption),
                        _ => continue,
                    },
                };
                let _ = app.send(|_| cmd).await;
            }
        });
        let weak = Arc::downgrade(&app.inner);
        let me = self.clone();
        tokio::spawn(async move { me.relay(weak, relay).await });
        Ok(())
    }

    /// Says this node is alive, with its load.
    async fn beat(&self, app: &App) {
        let info = NodeInfo { load: app.load() as u64, ..self.me.clone() };
        let body = serde_json::to_vec(&info).expect("node info serialises");
        let ok = self.nodes.put(&self.me.node, body.into()).await.is_ok();
        let mut v = self.view();
        match (ok, v.connected_since) {
            (true, None) => v.connected_since = Some(Instant::now()),
            (false, Some(_)) => {
                tracing::warn!("cluster: NATS unreachable; rooms play on, edges wait");
                v.connected_since = None;
            }
            _ => {}
        }
    }

    async fn read_nodes(&self) {
        let Ok(keys) = self.nodes.keys().await else { return };
        let keys: Vec<String> = keys.filter_map(|k| async { k.ok() }).collect().await;
        for key in keys {
            let Ok(Some(e)) = self.nodes.entry(key.clone()).await else { continue };
            let Ok(info) = serde_json::from_slice::<NodeInfo>(&e.value) else { continue };
            let now = Instant::now();
            let mut v = self.view();
            match v.nodes.get_mut(&key) {
                Some(s) if s.revision == e.revision => {}
                Some(s) => {
                    s.revision = e.revision;
                    s.info = info;
                    s.changed = now;
                }
                None => {
                    // First seen: as old as NATS says the beat is (a dead node's entry stays a minute).
                    let age = SystemTime::now()
                        .duration_since(SystemTime::UNIX_EPOCH)
                        .map(|n| n.as_secs_f64() - e.created.unix_timestamp() as f64)
                        .unwrap_or(0.0)
                        .clamp(0.0, 60.0);
                    let changed = now.checked_sub(Duration::from_secs_f64(age)).unwrap_or(now);
                    v.nodes.insert(key, Seen { info, revision: e.revision, changed });
                }
            }
        }
    }

    fn alive(v: &View, me: &str, node: &str) -> bool {
        node == me || v.nodes.get(node).is_some_and(|s| s.changed.elapsed() < DEAD_AFTER)
    }

    /// The live nodes, least loaded first (this node first among equals).
    pub fn nodes(&self) -> Vec<NodeInfo> {
        let v = self.view();
        let mut all: Vec<NodeInfo> = v
            .nodes
            .values()
            .filter(|s| s.info.node != self.me.node && Self::alive(&v, &self.me.node, &s.info.node))
            .map(|s| s.info.clone())
            .collect();
        let mine = v.nodes.get(&self.me.node).map_or(0, |s| s.info.load);
        all.push(NodeInfo { load: mine, ..self.me.clone() });
        all.sort_by(|a, b| {
            (a.load, a.node != self.me.node, &a.node).cmp(&(b.load, b.node != self.me.node, &b.node))
        });
        all
    }

    /// For `/health`: this node, whether NATS answers, the live nodes and the rooms mixed here.
    pub fn health(&self) -> serde_json::Value {
        let nodes = self.nodes();
        let v = self.view();
        let mut mixed: Vec<&String> =
            v.origins.iter().filter(|(_, (n, _))| *n == self.me.node).map(|(r, _)| r).collect();
        mixed.sort();
        serde_json::json!({
            "node": self.me.node,
            "region": self.me.region,
            "connected": v.connected_since.is_some(),
            "nodes": nodes,
            "mixed_here": mixed,
        })
    }

    /// The node a new room (or one whose node died) goes to: the least loaded live node of
    /// `region` (any, when none is there), this node first among equals.
    fn pick(&self, region: &str) -> NodeInfo {
        let all = self.nodes();
        all.iter().find(|n| n.region == region).unwrap_or(&all[0]).clone()
    }

    /// The node a listener of `region` (unset: this node's) is best served by: the least
    /// loaded live node of that region.
    pub fn listener_node(&self, region: Option<&str>) -> NodeInfo {
        self.pick(region.unwrap_or(&self.me.region))
    }

    /// Where a listener arriving here with `load` sessions on this node should go instead:
    /// a node of `region` with clearly fewer sessions (by 10, or a tenth), else nowhere.
    pub fn send_listener(&self, load: usize, region: Option<&str>) -> Option<NodeInfo> {
        let best = self.listener_node(region);
        let margin = (best.load / 10).max(10);
        let elsewhere = best.node != self.me.node || region.is_some_and(|r| r != self.me.region);
        (elsewhere && load as u64 > best.load + margin).then_some(best)
    }

    /// Whether bucket `which` (0: origins, 1: rooms, 2: revoked) changed since it was last read.
    async fn moved(&self, bucket: &str, which: usize) -> bool {
        // The client's `status` is its cached view: the stream's own information is asked for.
        let Ok(stream) = self.js.get_stream(format!("KV_{bucket}")).await else { return true };
        let seq = stream.cached_info().state.last_sequence;
        let mut v = self.view();
        let moved = v.seqs[which] != seq;
        v.seqs[which] = seq;
        moved
    }

    async fn read_origins(&self, app: &App) {
        if !self.moved("tolk_origins", 0).await {
            for room in app.local_rooms() {
                self.apply(app, &room).await;
            }
            return;
        }
        let Ok(keys) = self.origins.keys().await else { return };
        let keys: Vec<String> = keys.filter_map(|k| async { k.ok() }).collect().await;
        let mut found = HashMap::new();
        for key in keys {
            if let Ok(Some(e)) = self.origins.entry(key.clone()).await {
                if e.operation == kv::Operation::Put {
                    found.insert(key, (String::from_utf8_lossy(&e.value).into_owned(), e.revision));
                }
            }
        }
        self.view().origins = found;
        for room in app.local_rooms() {
            self.apply(app, &room).await;
        }
    }

    /// Tells the local room whether it is mixed here, when that changed.
    async fn apply(&self, app: &App, room: &str) {
        let here = {
            let mut v = self.view();
            let here = v.origins.get(room).is_some_and(|(n, _)| *n == self.me.node);
            if v.applied.get(room) == Some(&here) {
                return;
            }
            v.applied.insert(room.to_string(), here);
            here
        };
        if here {
            tracing::info!(room, "this node mixes the room");
        }
        let room = room.to_string();
        if app.send(|_| Command::Origin { room, here }).await.is_err() {
            // Not on an engine yet (being placed): asked again at the next read.
            self.view().applied.clear();
        }
    }

    /// The base URL of the live node that mixes `room`, when that is another node (as last
    /// read: at most a second old). Places nothing.
    pub fn mixed_elsewhere(&self, room: &str) -> Option<String> {
        let v = self.view();
        let (node, _) = v.origins.get(room)?;
        if *node == self.me.node || !Self::alive(&v, &self.me.node, node) {
            return None;
        }
        v.nodes.get(node).map(|s| s.info.url.clone())
    }

    /// Where `room` is mixed, choosing (and claiming) a node when none is, or when its node is
    /// dead. Reads the bucket itself, so a session is never sent to a node that lost the room.
    pub async fn origin(&self, app: &App, room: &str) -> Result<Origin, Error> {
        if !app.local_rooms().iter().any(|r| r == room) {
            // Made on another node since this one last read the rooms: read it now.
            if let Ok(Some(body)) = self.rooms.get(room).await {
                if let Ok(spec) = serde_json::from_slice::<RoomSpec>(&body) {
                    app.adopt_room(spec).await?;
                }
            }
        }
        for _ in 0..3 {
            let entry = self.origins.entry(room).await.map_err(unreachable_cluster)?;
            let current = entry
                .filter(|e| e.operation == kv::Operation::Put)
                .map(|e| (String::from_utf8_lossy(&e.value).into_owned(), e.revision));
            let live = {
                let v = self.view();
                current.as_ref().filter(|(n, _)| Self::alive(&v, &self.me.node, n)).cloned()
            };
            let (node, revision) = match live {
                Some(c) => c,
                None => {
                    let pick = self.pick(&self.me.region).node;
                    let claimed = match &current {
                        Some((_, rev)) => self.origins.update(room, pick.clone().into(), *rev).await.ok(),
                        None => self.origins.create(room, pick.clone().into()).await.ok(),
                    };
                    let Some(revision) = claimed else { continue }; // claimed meanwhile: read again
                    tracing::info!(room, node = pick, "room placed on a node");
                    (pick, revision)
                }
            };
            self.view().origins.insert(room.to_string(), (node.clone(), revision));
            self.apply(app, room).await;
            if node == self.me.node {
                return Ok(Origin::Here);
            }
            let url = self.view().nodes.get(&node).map(|s| s.info.url.clone());
            return url.map(Origin::There).ok_or_else(|| unreachable_cluster(format!("node {node} unknown")));
        }
        Err(unreachable_cluster(format!("room {room}: its node changed three times while asked")))
    }

    /// Rooms whose node died go to the node `pick` names (each node computes the same; the
    /// compare-and-set keeps it to one if views differ). Only while this node has itself been
    /// connected long enough to have heard the others' heartbeats.
    async fn take_over(&self, app: &App) {
        let orphans: Vec<(String, u64)> = {
            let v = self.view();
            if v.connected_since.is_none_or(|t| t.elapsed() < DEAD_AFTER + HEARTBEAT) {
                return;
            }
            v.origins
                .iter()
                .filter(|(_, (n, _))| !Self::alive(&v, &self.me.node, n))
                .map(|(room, (_, rev))| (room.clone(), *rev))
                .collect()
        };
        if orphans.is_empty() || self.pick(&self.me.region).node != self.me.node {
            return;
        }
        for (room, rev) in orphans {
            match self.origins.update(&room, self.me.node.clone().into(), rev).await {
                Ok(revision) => {
                    tracing::warn!(room, "the room's node died: this node mixes it now");
                    self.view().origins.insert(room.clone(), (self.me.node.clone(), revision));
                    self.apply(app, &room).await;
                }
                Err(e) => tracing::debug!(room, "not taken over: {e}"),
            }
        }
    }

    /// Room definitions: those new in the bucket are made here, those changed are followed
    /// (channels added, renamed), those gone from it go.
    async fn read_rooms(&self, app: &App) {
        if !self.moved("tolk_rooms", 1).await {
            return;
        }
        let Ok(keys) = self.rooms.keys().await else { return };
        let keys: HashSet<String> = keys.filter_map(|k| async { k.ok() }).collect().await;
        let known: HashSet<String> = app.local_rooms().into_iter().collect();
        let mut revisions = HashMap::new();
        for id in &keys {
            let Ok(Some(e)) = self.rooms.entry(id.clone()).await else { continue };
            revisions.insert(id.clone(), e.revision);
            let followed = self.view().rooms.get(id) == Some(&e.revision);
            if known.contains(id) && followed {
                continue;
            }
            match serde_json::from_slice::<RoomSpec>(&e.value) {
                Ok(spec) if known.contains(id) => app.follow_room(spec).await,
                Ok(spec) => {
                    if let Err(e) = app.adopt_room(spec).await {
                        tracing::warn!(room = id, "room from the cluster not made here: {e}");
                    }
                }
                Err(e) => tracing::warn!(room = id, "bad room definition in the cluster: {e}"),
            }
        }
        let gone: Vec<String> = {
            let mut v = self.view();
            let gone = v.rooms.keys().filter(|k| !keys.contains(*k)).cloned().collect();
            v.rooms = revisions;
            gone
        };
        for id in gone.into_iter().filter(|id| known.contains(id)) {
            tracing::info!(room = id, "room deleted on another node");
            let _ = app.forget_room(id).await;
        }
    }

    /// Keeps a room's definition where every node reads it.
    pub async fn put_room(&self, spec: &RoomSpec) -> Result<(), Error> {
        let body = serde_json::to_vec(spec).expect("room specs serialise");
        let revision = self.rooms.put(&spec.id, body.into()).await.map_err(unreachable_cluster)?;
        self.view().rooms.insert(spec.id.clone(), revision);
        Ok(())
    }

    /// Tells every node an invitation was revoked (each keeps it and ends its sessions).
    pub async fn revoke(&self, jti: &str, room: &str, exp: u64) -> Result<(), Error> {
        let body = serde_json::to_vec(&RevokedMsg { room: room.to_string(), exp }).expect("serialises");
        self.revoked.put(jti, body.into()).await.map_err(unreachable_cluster)?;
        Ok(())
    }

    /// Invitations revoked on other nodes: kept here too, their sessions here ended.
    async fn read_revoked(&self, app: &App) {
        if !self.moved("tolk_revoked", 2).await {
            return;
        }
        let Ok(keys) = self.revoked.keys().await else { return };
        let keys: Vec<String> = keys.filter_map(|k| async { k.ok() }).collect().await;
        for jti in keys.into_iter().filter(|k| !app.is_revoked(k)) {
            let Ok(Some(body)) = self.revoked.get(jti.clone()).await else { continue };
            let Ok(r) = serde_json::from_slice::<RevokedMsg>(&body) else { continue };
            app.revoked_elsewhere(&jti, &r.room, r.exp).await;
        }
    }

    /// Deletes a room's definition and its claim.
    pub async fn delete_room(&self, id: &str) -> Result<(), Error> {
        self.rooms.delete(id).await.map_err(unreachable_cluster)?;
        let _ = self.origins.delete(id).await;
        let mut v = self.view();
        v.rooms.remove(id);
        v.origins.remove(id);
        Ok(())
    }

    /// Carries what the media threads hand out: media and state of rooms mixed here to the
    /// edges; what this node's listeners hear to the origins (and subscribes to it).
    async fn relay(&self, app: std::sync::Weak<super::Inner>, mut rx: mpsc::Receiver<Relay>) {
        let mut wants: HashMap<String, Vec<(Stream, u32)>> = HashMap::new();
        let mut states: HashMap<String, ServerMsg> = HashMap::new();
        let mut subs: HashMap<(String, String), JoinHandle<()>> = HashMap::new();
        let mut every = tokio::time::interval(WANT_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut media = bytes::BytesMut::new();
        loop {
            tokio::select! {
                r = rx.recv() => {
                    let Some(r) = r else { return };
                    match r {
                        Relay::Media { room, stream, ts, payload } => {
                            let Some(key) = stream.key() else { continue };
                            media.reserve(4 + payload.len());
                            media.extend_from_slice(&ts.to_be_bytes());
                            media.extend_from_slice(&payload);
                            let _ = self.client.publish(format!("tolk.media.{room}.{key}"), media.split().freeze()).await;
                        }
                        Relay::State { room, msg } => {
                            self.publish_state(&room, &msg).await;
                            states.insert(room, msg);
                        }
                        Relay::Caption(caption) => {
                            let body = serde_json::to_vec(&CaptionMsg { node: self.me.node.clone(), caption: caption.clone() }).expect("captions serialise");
                            let _ = self.client.publish(format!("tolk.caption.{}", caption.room), body.into()).await;
                        }
                        Relay::Want { room, streams } => {
                            self.publish_want(&room, &streams).await;
                            let Some(inner) = app.upgrade() else { return };
                            self.subscribe(&App { inner }, &room, &streams, &mut subs).await;
                            if streams.is_empty() {
                                wants.remove(&room);
                            } else {
                                wants.insert(room, streams);
                            }
                        }
                    }
                }
                _ = every.tick() => {
                    for (room, streams) in &wants {
                        self.publish_want(room, streams).await;
                    }
                    // The origin's state again, for edges that came since; only of rooms still mixed here.
                    let mine: HashSet<String> = self.view().origins.iter().filter(|(_, (n, _))| *n == self.me.node).map(|(r, _)| r.clone()).collect();
                    states.retain(|room, _| mine.contains(room));
                    for (room, msg) in &states {
                        self.publish_state(room, msg).await;
                    }
                }
            }
        }
    }

    async fn publish_state(&self, room: &str, msg: &ServerMsg) {
        let body = serde_json::to_vec(&StateMsg { node: self.me.node.clone(), msg: msg.clone() })
            .expect("state serialises");
        let _ = self.client.publish(format!("tolk.state.{room}"), body.into()).await;
    }

    async fn publish_want(&self, room: &str, streams: &[(Stream, u32)]) {
        let streams = streams.iter().filter_map(|(s, n)| Some((s.key()?, *n))).collect();
        let body =
            serde_json::to_vec(&WantMsg { node: self.me.node.clone(), streams }).expect("wants serialise");
        let _ = self.client.publish(format!("tolk.want.{room}"), body.into()).await;
    }

    /// Subscribes to the streams of `room` this node's listeners hear, and only those.
    async fn subscribe(
        &self,
        app: &App,
        room: &str,
        streams: &[(Stream, u32)],
        subs: &mut HashMap<(String, String), JoinHandle<()>>,
    ) {
        let keys: HashSet<String> = streams.iter().filter_map(|(s, _)| s.key()).collect();
        subs.retain(|(r, k), task| {
            let keep = r != room || keys.contains(k);
            if !keep {
                task.abort(); // dropping its subscriber unsubscribes
            }
            keep
        });
        for key in keys {
            if subs.contains_key(&(room.to_string(), key.clone())) {
                continue;
            }
            let Some(stream) = Stream::from_key(&key) else { continue };
            let mut sub = match self.client.subscribe(format!("tolk.media.{room}.{key}")).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(room, key, "cluster: cannot subscribe: {e}");
                    continue;
                }
            };
            let weak = Arc::downgrade(&app.inner);
            let r = room.to_string();
            let task = tokio::spawn(async move {
                while let Some(m) = sub.next().await {
                    let Some(inner) = weak.upgrade() else { return };
                    let app = App { inner };
                    let Some((ts, payload)) = m.payload.split_first_chunk::<4>() else { continue };
                    // An Opus frame, as an origin sends it; anything else on the subject is dropped.
                    if payload.is_empty() || payload.len() > crate::core::media::codec::MAX_PAYLOAD {
                        tracing::debug!(
                            room = r,
                            "cluster: a media message of {} bytes dropped",
                            m.payload.len()
                        );
                        continue;
                    }
                    let (room, stream, ts) = (r.clone(), stream.clone(), u32::from_be_bytes(*ts));
                    let payload = payload.into();
                    let _ = app.send(|_| Command::Relayed { room, stream, ts, payload }).await;
                }
            });
            subs.insert((room.to_string(), key), task);
        }
    }
}
