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
//!   said at once when they change and again every second (by the engine).
//! - `tolk.state.<room>`, `tolk.caption.<room>`: the origin's room state (on change and every
//!   second) and captions.
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
/// How long one read of the buckets may take: a NATS that answers this slowly is as good as
/// gone for now, and the next read starts afresh.
const READ_WITHIN: Duration = Duration::from_secs(3);

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
    /// What each local room was last told, for the log: mixed here or not.
    applied: HashMap<String, bool>,
    /// Rooms read from `tolk_rooms` (so a room deleted there goes here too), with the revision
    /// of their definition last followed.
    rooms: HashMap<String, u64>,
    /// Each bucket's last sequence when it was last read through (`origins`, `rooms`, `revoked`).
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
        self.read_all(app).await;
        // Every second: the heartbeat, then the reads on a task of their own (one at a time), so
        // that reads held up by a slow NATS never make this node look dead to the others.
        let weak = Arc::downgrade(&app.inner);
        let me = self.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(HEARTBEAT);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut reading: Option<JoinHandle<()>> = None;
            loop {
                every.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                let app = App { inner };
                me.beat(&app).await;
                if reading.as_ref().is_none_or(|r| r.is_finished()) {
                    let me = me.clone();
                    reading = Some(tokio::spawn(async move { me.read_all(&app).await }));
                }
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

    /// Reads the nodes and the buckets, and takes over the rooms of dead nodes: given up after
    /// [`READ_WITHIN`] (and started again a second later).
    async fn read_all(&self, app: &App) {
        let read = async {
            self.read_nodes().await;
            self.read_origins(app).await;
            self.take_over(app).await;
            self.read_rooms(app).await;
            self.read_revoked(app).await;
        };
        if tokio::time::timeout(READ_WITHIN, read).await.is_err() {
            tracing::warn!("cluster: NATS answers slowly; the buckets are read again in a second");
        }
    }

    /// Says this node is alive, with its load.
    async fn beat(&self, app: &App) {
        let info = NodeInfo { load: app.load() as u64, ..self.me.clone() };
        let body = serde_json::to_vec(&info).expect("node info serialises");
        let put = tokio::time::timeout(HEARTBEAT, self.nodes.put(&self.me.node, body.into())).await;
        let ok = matches!(put, Ok(Ok(_)));
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
        let Some(keys) = self.keys("tolk_nodes").await else { return };
        // Nodes whose entry aged out of the bucket (a minute after their last beat) are forgotten.
        self.view().nodes.retain(|k, _| keys.contains(k));
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

    /// Whether this node has been connected long enough to have heard every live node beat, and
    /// so may count a silent one dead (after NATS comes back, every other node looks silent).
    fn judging(v: &View) -> bool {
        v.connected_since.is_some_and(|t| t.elapsed() >= DEAD_AFTER + HEARTBEAT)
    }

    /// Whether `node`'s claim on a room stands: it is alive, or this node cannot judge yet and
    /// knows where it is.
    fn holds(v: &View, me: &str, node: &str) -> bool {
        Self::alive(v, me, node) || (!Self::judging(v) && v.nodes.contains_key(node))
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

    /// The last sequence of bucket `which` (0: origins, 1: rooms, 2: revoked) when it changed
    /// since it was last read through ([`Cluster::read_through`]); none when it did not, or
    /// NATS cannot say.
    async fn moved(&self, bucket: &str, which: usize) -> Option<u64> {
        // The client's `status` is its cached view: the stream's own information is asked for.
        let stream = self.js.get_stream(format!("KV_{bucket}")).await.ok()?;
        let seq = stream.cached_info().state.last_sequence;
        (self.view().seqs[which] != seq).then_some(seq)
    }

    /// Bucket `which` was read through up to `seq`: not read again until it changes. A read
    /// that failed part way does not say so, and the next one reads it all again.
    fn read_through(&self, which: usize, seq: u64) {
        self.view().seqs[which] = seq;
    }

    /// The keys of a bucket (deleted ones too: their entries say so); none when NATS cannot
    /// list them all. Read from the stream's subjects in one request: the client's `keys`
    /// makes a consumer, whose listing can wait for more while another node writes.
    async fn keys(&self, bucket: &str) -> Option<Vec<String>> {
        let stream = self.js.get_stream(format!("KV_{bucket}")).await.ok()?;
        let prefix = format!("$KV.{bucket}.");
        let subjects = stream.info_with_subjects(format!("{prefix}>")).await.ok()?;
        let subjects: Vec<Result<(String, usize), _>> = subjects.collect().await;
        let mut keys = Vec::with_capacity(subjects.len());
        for s in subjects {
            let (subject, _) = s.ok()?;
            keys.extend(subject.strip_prefix(&prefix).map(str::to_string));
        }
        Some(keys)
    }

    async fn read_origins(&self, app: &App) {
        if let Some(seq) = self.moved("tolk_origins", 0).await {
            if let Some(found) = self.read_claims().await {
                self.view().origins = found;
                self.read_through(0, seq);
            }
        }
        // Told every time (a room remade, or an engine restarted, starts as a mirror).
        for room in app.local_rooms() {
            self.apply(app, &room).await;
        }
    }

    /// Every room's claim; none when one of them could not be read.
    async fn read_claims(&self) -> Option<HashMap<String, (String, u64)>> {
        let mut found = HashMap::new();
        for key in self.keys("tolk_origins").await? {
            let e = self.origins.entry(key.clone()).await.ok()?;
            if let Some(e) = e.filter(|e| e.operation == kv::Operation::Put) {
                found.insert(key, (String::from_utf8_lossy(&e.value).into_owned(), e.revision));
            }
        }
        Some(found)
    }

    /// Tells the local room whether it is mixed here (the engine ignores what it already knows).
    async fn apply(&self, app: &App, room: &str) {
        let here = self.view().origins.get(room).is_some_and(|(n, _)| *n == self.me.node);
        let room = room.to_string();
        if app.send(|_| Command::Origin { room: room.clone(), here }).await.is_err() {
            return; // not on an engine yet (being placed): told at the next read
        }
        let was = self.view().applied.insert(room.clone(), here);
        if here && was != Some(true) {
            tracing::info!(room, "this node mixes the room");
        }
    }

    /// The base URL of the live node that mixes `room`, when that is another node (as last
    /// read: at most a second old). Places nothing.
    pub fn mixed_elsewhere(&self, room: &str) -> Option<String> {
        let v = self.view();
        let (node, _) = v.origins.get(room)?;
        if *node == self.me.node || !Self::holds(&v, &self.me.node, node) {
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
            let entry = match self.origins.entry(room).await {
                Ok(e) => e,
                // NATS away: the claim as last read, so that rooms play on for those who join.
                Err(e) => return self.last_origin(room).ok_or_else(|| unreachable_cluster(e)),
            };
            let current = entry
                .filter(|e| e.operation == kv::Operation::Put)
                .map(|e| (String::from_utf8_lossy(&e.value).into_owned(), e.revision));
            let (live, judging) = {
                let v = self.view();
                let live = current.as_ref().filter(|(n, _)| Self::holds(&v, &self.me.node, n)).cloned();
                (live, Self::judging(&v))
            };
            let (node, revision) = match live {
                Some(c) => c,
                None if current.is_some() && !judging => {
                    // Held by a node this one has not heard of yet: not taken before it can judge.
                    return Err(unreachable_cluster(format!("room {room}: its node is not known here yet")));
                }
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

    /// Where `room` was mixed when last read, if that node still holds it.
    fn last_origin(&self, room: &str) -> Option<Origin> {
        let v = self.view();
        let (node, _) = v.origins.get(room)?;
        if *node == self.me.node {
            return Some(Origin::Here);
        }
        let seen = v.nodes.get(node).filter(|_| Self::alive(&v, &self.me.node, node))?;
        Some(Origin::There(seen.info.url.clone()))
    }

    /// Rooms whose node died go to the node `pick` names (each node computes the same; the
    /// compare-and-set keeps it to one if views differ). Only while this node has itself been
    /// connected long enough to have heard the others' heartbeats.
    async fn take_over(&self, app: &App) {
        let orphans: Vec<(String, u64)> = {
            let v = self.view();
            if !Self::judging(&v) {
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
        let Some(seq) = self.moved("tolk_rooms", 1).await else { return };
        let Some(listed) = self.keys("tolk_rooms").await else { return };
        let known: HashSet<String> = app.local_rooms().into_iter().collect();
        let mut keys = HashSet::new();
        let mut revisions = HashMap::new();
        let mut through = true;
        for id in &listed {
            let e = match self.rooms.entry(id.clone()).await {
                Ok(Some(e)) if e.operation == kv::Operation::Put => e,
                Ok(_) => continue, // deleted
                Err(_) => {
                    // Not read: neither followed nor taken for gone.
                    revisions.extend(self.view().rooms.get(id).map(|r| (id.clone(), *r)));
                    keys.insert(id.clone());
                    through = false;
                    continue;
                }
            };
            keys.insert(id.clone());
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
            // A room not read this time is followed at the next read.
            v.rooms = revisions;
            gone
        };
        if through {
            self.read_through(1, seq);
        }
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

    /// Invitations revoked on other nodes: kept here too, their sessions here ended. Those past
    /// their expiry (no node lets them in anyway) leave the bucket.
    async fn read_revoked(&self, app: &App) {
        let Some(seq) = self.moved("tolk_revoked", 2).await else { return };
        let Some(keys) = self.keys("tolk_revoked").await else { return };
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let mut through = true;
        for jti in keys {
            let body = match self.revoked.get(jti.clone()).await {
                Ok(Some(body)) => body,
                Ok(None) => continue,
                Err(_) => {
                    through = false;
                    continue;
                }
            };
            let Ok(r) = serde_json::from_slice::<RevokedMsg>(&body) else { continue };
            if r.exp < now {
                let _ = self.revoked.delete(&jti).await;
            } else if !app.is_revoked(&jti) {
                app.revoked_elsewhere(&jti, &r.room, r.exp).await;
            }
        }
        if through {
            self.read_through(2, seq);
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

    /// Carries what the media threads hand out: media, state and captions of rooms mixed here
    /// to the edges; what this node's listeners hear to the origins (and subscribes to it).
    /// The engine says wants and state again every second, so nothing is kept here.
    async fn relay(&self, app: std::sync::Weak<super::Inner>, mut rx: mpsc::Receiver<Relay>) {
        let mut subs: HashMap<(String, String), JoinHandle<()>> = HashMap::new();
        let mut media = bytes::BytesMut::new();
        while let Some(r) = rx.recv().await {
            let (subject, body) = match r {
                Relay::Media { room, stream, ts, payload } => {
                    let Some(key) = stream.key() else { continue };
                    media.reserve(4 + payload.len());
                    media.extend_from_slice(&ts.to_be_bytes());
                    media.extend_from_slice(&payload);
                    (format!("tolk.media.{room}.{key}"), media.split().freeze())
                }
                Relay::State { room, msg } => {
                    let body = serde_json::to_vec(&StateMsg { node: self.me.node.clone(), msg })
                        .expect("state serialises");
                    (format!("tolk.state.{room}"), body.into())
                }
                Relay::Caption(caption) => {
                    let subject = format!("tolk.caption.{}", caption.room);
                    let body = serde_json::to_vec(&CaptionMsg { node: self.me.node.clone(), caption })
                        .expect("captions serialise");
                    (subject, body.into())
                }
                Relay::Want { room, streams } => {
                    // A mirror that hears nothing says so once, not every second.
                    if streams.is_empty() && !subs.keys().any(|(r, _)| *r == room) {
                        continue;
                    }
                    let Some(inner) = app.upgrade() else { return };
                    self.subscribe(&App { inner }, &room, &streams, &mut subs).await;
                    let streams = streams.iter().filter_map(|(s, n)| Some((s.key()?, *n))).collect();
                    let body = serde_json::to_vec(&WantMsg { node: self.me.node.clone(), streams })
                        .expect("wants serialise");
                    (format!("tolk.want.{room}"), body.into())
                }
            };
            let _ = self.client.publish(subject, body).await;
        }
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
