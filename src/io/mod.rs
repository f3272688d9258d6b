//! The thin IO layer: binds sockets, starts the media thread, serves HTTP; holds no media state.

pub mod driver;
pub mod http;
pub mod metrics;
pub mod signal;
pub mod whip;

use crate::asr::Asr;
use crate::config::{Config, ConfigError};
use crate::core::engine::{ChannelSpec, Engine, EngineConfig, RoomSpec, RoomView, Stats};
use crate::core::room::PeerId;
use crate::protocol::{Error, ErrorCode, Role};
use crate::store::Store;
use crate::token::{Claims, Keys};
use driver::Command;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot bind {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    #[error("server failed: {0}")]
    Serve(std::io::Error),
}

/// What HTTP handlers and signalling sessions share: the way into the media thread, and the keys.
#[derive(Clone)]
pub struct App {
    inner: Arc<Inner>,
}

struct Inner {
    commands: mpsc::Sender<Command>,
    store: Option<Arc<Store>>,
    asr_skipped: Arc<AtomicU64>,
    tick: prometheus_client::metrics::histogram::Histogram,
    next_peer: AtomicU64,
    resources: std::sync::Mutex<HashMap<String, PeerId>>,
    keys: Keys,
    api_key: String,
    public_url: String,
    token_ttl_secs: u64,
}

/// An invitation: a token and the page it opens.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Invite {
    pub role: Role,
    pub channel: Option<String>,
    pub name: String,
    pub token: String,
    pub url: String,
}

fn gone() -> Error {
    Error::new(ErrorCode::Busy, "the media engine is not running")
}

impl App {
    pub(crate) async fn send(&self, cmd: impl FnOnce(()) -> Command) -> Result<(), Error> {
        self.inner.commands.send(cmd(())).await.map_err(|_| gone())
    }

    async fn ask<T>(&self, cmd: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, Error> {
        let (tx, rx) = oneshot::channel();
        self.inner.commands.send(cmd(tx)).await.map_err(|_| gone())?;
        rx.await.map_err(|_| gone())
    }

    pub(crate) async fn request<T>(
        &self,
        cmd: impl FnOnce(oneshot::Sender<Result<T, Error>>) -> Command,
    ) -> Result<T, Error> {
        self.ask(cmd).await?
    }

    pub fn keys(&self) -> &Keys {
        &self.inner.keys
    }

    pub fn api_key(&self) -> &str {
        &self.inner.api_key
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
        };
        self.invite(claims, ttl_secs)
    }

    /// Signs `claims` (its expiry set from `ttl_secs` or the configured lifetime) as an invitation.
    pub fn invite(&self, mut claims: Claims, ttl_secs: Option<u64>) -> Invite {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("the clock is after 1970").as_secs();
        claims.exp = now + ttl_secs.unwrap_or(self.inner.token_ttl_secs);
        let token = self.inner.keys.sign(&claims);
        let page = match claims.role {
            Role::Host => "host",
            Role::Floor => "floor",
            Role::Interpreter => "interpret",
            Role::Listener => "listen",
        };
        let url = format!("{}/{page}.html#token={token}", self.inner.public_url);
        Invite { role: claims.role, channel: claims.channel, name: claims.name, token, url }
    }

    pub async fn create_room(&self, spec: RoomSpec) -> Result<RoomView, Error> {
        self.request(|reply| Command::CreateRoom { spec, reply }).await
    }

    pub async fn add_channel(&self, room: String, spec: ChannelSpec) -> Result<RoomView, Error> {
        self.request(|reply| Command::AddChannel { room, spec, reply }).await
    }

    pub async fn room(&self, id: String) -> Result<Option<RoomView>, Error> {
        self.ask(|reply| Command::Room { id, reply }).await
    }

    pub async fn rooms(&self) -> Result<Vec<String>, Error> {
        self.ask(|reply| Command::Rooms { reply }).await
    }

    pub async fn stats(&self) -> Result<Stats, Error> {
        self.ask(|reply| Command::Stats { reply }).await
    }

    /// Prometheus text for `/metrics`.
    pub async fn metrics(&self) -> Result<String, Error> {
        let snapshot = self.ask(|reply| Command::Snapshot { reply }).await?;
        Ok(metrics::render(&snapshot, &self.inner.tick, self.asr_skipped()))
    }

    /// The transcript store, when captions are available.
    pub fn store(&self) -> Option<&Store> {
        self.inner.store.as_deref()
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

/// A started server: its addresses and its app. Dropping it stops the server.
pub struct Running {
    pub http: SocketAddr,
    pub udp: SocketAddr,
    /// The RTP floor tap's address, when configured.
    pub tap: Option<SocketAddr>,
    pub app: App,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<Result<(), std::io::Error>>>,
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
    }
}

pub(crate) fn random_hex(bytes: usize) -> String {
    use std::io::Read;
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .expect("/dev/urandom is readable");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// Opens the transcript store and starts the recogniser; without a model, captions are off (and said so).
fn captions(config: &Config) -> Result<(Option<Arc<Store>>, Option<Asr>), StartError> {
    if !config.captions {
        return Ok((None, None));
    }
    std::fs::create_dir_all(&config.data_dir).map_err(StartError::Serve)?;
    let store = Store::open(&config.data_dir.join("transcripts.db"))
        .map_err(|e| StartError::Serve(std::io::Error::other(e)))?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("the clock is after 1970").as_secs();
    match store.purge(config.transcript_days, now) {
        Ok(0) => {}
        Ok(n) => tracing::info!("deleted {n} transcript lines older than {} days", config.transcript_days),
        Err(e) => tracing::warn!("{e}"),
    }
    let store = Arc::new(store);
    // Whisper gets both cores' worth of threads; the media thread needs a few percent of one.
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get().min(4)) as i32;
    match Asr::start(config.models_dir.clone(), Some(store.clone()), threads) {
        Ok(asr) => Ok((Some(store), Some(asr))),
        Err(e) => {
            tracing::warn!("captions unavailable: {e}");
            Ok((Some(store), None))
        }
    }
}

/// Binds the sockets, starts the media thread and the HTTP server.
pub async fn start(config: Config) -> Result<Running, StartError> {
    config.validate()?;
    let udp = std::net::UdpSocket::bind(config.udp).map_err(|e| StartError::Bind(config.udp, e))?;
    let udp_addr = udp.local_addr().map_err(StartError::Serve)?;
    let candidates = config.candidates_for(udp_addr)?;
    let destination = if udp_addr.ip().is_unspecified() { candidates[0] } else { udp_addr };
    let listener =
        tokio::net::TcpListener::bind(config.http).await.map_err(|e| StartError::Bind(config.http, e))?;
    let http_addr = listener.local_addr().map_err(StartError::Serve)?;

    let (commands, rx) = mpsc::channel(driver::COMMAND_QUEUE);
    let (store, asr) = captions(&config)?;
    let tick = metrics::tick_histogram();
    let asr_skipped = asr.as_ref().map(|a| a.skipped.clone()).unwrap_or_default();
    let mut engine =
        Engine::new(EngineConfig { candidates: candidates.clone(), captions: asr.is_some() }, Instant::now());
    let mut tap_addr = None;
    let tap = match &config.rtp_tap {
        Some(t) => {
            let socket = std::net::UdpSocket::bind(t.bind).map_err(|e| StartError::Bind(t.bind, e))?;
            socket.set_nonblocking(true).map_err(StartError::Serve)?;
            tap_addr = Some(socket.local_addr().map_err(StartError::Serve)?);
            Some((engine.add_tap(t.spec()), socket))
        }
        None => None,
    };
    for o in &config.rtp_out {
        engine.add_rtp_out(o.clone());
    }
    std::thread::Builder::new()
        .name("tolk-media".into())
        .spawn({
            let tick = tick.clone();
            move || driver::run(engine, udp, destination, tap, asr, tick, rx)
        })
        .map_err(StartError::Serve)?;

    let secret = config.secret.clone().unwrap_or_else(|| random_hex(32));
    let api_key = config.api_key.clone().unwrap_or_else(|| random_hex(16));
    let public_url = config.public_url.clone().unwrap_or_else(|| format!("http://{http_addr}"));
    let app = App {
        inner: Arc::new(Inner {
            commands,
            next_peer: AtomicU64::new(1),
            resources: Default::default(),
            store,
            asr_skipped,
            tick,
            keys: Keys::new(secret.as_bytes()),
            api_key,
            public_url: public_url.trim_end_matches('/').to_string(),
            token_ttl_secs: config.token_ttl_secs,
        }),
    };
    let (shutdown, stop) = oneshot::channel::<()>();
    let router = http::router(app.clone());
    let server = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = stop.await;
            })
            .await
    });
    tracing::info!(%http_addr, %udp_addr, ?candidates, "tolk is up");
    Ok(Running {
        http: http_addr,
        udp: udp_addr,
        tap: tap_addr,
        app,
        shutdown: Some(shutdown),
        server: Some(server),
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
    app.create_room(spec).await?;
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
    println!("tolk is serving http://{} (media on UDP {})", running.http, running.udp);
    if !api_key_set {
        println!("host API key (random for this run): {}", running.app.api_key());
    }
    if let Some(channels) = demo_channels {
        match demo(&running.app, &channels).await {
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
