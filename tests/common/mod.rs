//! Test clients: a signalling client (tokio-tungstenite) and a str0m WebRTC media client that sends a tone and decodes what it receives.
#![allow(dead_code)]

use futures_util::{SinkExt, StreamExt};
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use str0m::change::SdpAnswer;
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio_tungstenite::tungstenite::Message;
use tolk::config::Config;
use tolk::core::spec::{ChannelSpec, RoomSpec};
use tolk::io::Running;
use tolk::protocol::{ClientMsg, Role, ServerMsg};

mod audio;
pub mod proxy;
#[allow(unused_imports)] // each test target uses its own part
pub use audio::{rms_db, tone_db};

pub const FRAME: usize = 960;
pub const RATE: f32 = 48_000.0;

/// A server on loopback with room `r` and channels en, es, fr.
pub async fn server() -> Running {
    server_with(|_| {}).await
}

/// As [`server`], with the configuration adjusted first.
pub async fn server_with(adjust: impl FnOnce(&mut Config)) -> Running {
    let mut config = Config {
        http: "127.0.0.1:0".parse().unwrap(),
        udp: "127.0.0.1:0".parse().unwrap(),
        secret: Some("a test secret of enough length".into()),
        api_key: Some("test-api-key".into()),
        demo: false,
        // Tests that need speech recognition turn it on (loading the models takes a while).
        captions: false,
        // Each server its own database, so that no test sees another's rooms.
        data_dir: fresh_dir("data"),
        ..Config::default()
    };
    adjust(&mut config);
    let running = tolk::io::start(config).await.expect("server starts");
    let channels = ["en", "es", "fr"]
        .iter()
        .map(|l| ChannelSpec { lang: l.to_string(), name: l.to_uppercase(), duck: Default::default() })
        .collect();
    running
        .app
        .create_room(RoomSpec { id: "r".into(), floor_lang: Some("en".into()), channels })
        .await
        .unwrap();
    running
}

/// An empty directory of its own under the system's temporary directory.
pub fn fresh_dir(name: &str) -> std::path::PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let d = std::env::temp_dir().join(format!("tolk-{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn token(s: &Running, role: Role, channel: Option<&str>, name: &str) -> String {
    s.app.mint("r", role, channel.map(str::to_string), name, None).token
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub struct Signal {
    ws: Ws,
    /// Every message received, in order.
    pub seen: Vec<ServerMsg>,
}

impl Signal {
    pub async fn connect(s: &Running) -> Signal {
        Signal::connect_to(s.http).await
    }

    pub async fn connect_to(http: std::net::SocketAddr) -> Signal {
        let (ws, _) =
            tokio_tungstenite::connect_async(format!("ws://{http}/ws")).await.expect("websocket connects");
        Signal { ws, seen: Vec::new() }
    }

    pub async fn send(&mut self, msg: &ClientMsg) {
        self.send_raw(&serde_json::to_string(msg).unwrap()).await;
    }

    pub async fn send_raw(&mut self, text: &str) {
        self.ws.send(Message::Text(text.into())).await.expect("websocket send");
    }

    /// The next message that is not a periodic state update.
    pub async fn next(&mut self) -> ServerMsg {
        loop {
            let msg = self.next_any().await;
            if !matches!(msg, ServerMsg::State { .. }) {
                return msg;
            }
        }
    }

    /// The next direct reply (joined, answer, selected, error), skipping room and booth updates.
    pub async fn next_reply(&mut self) -> ServerMsg {
        loop {
            let msg = self.next_any().await;
            if !matches!(
                msg,
                ServerMsg::State { .. }
                    | ServerMsg::Booth { .. }
                    | ServerMsg::Notice { .. }
                    | ServerMsg::Chat { .. }
            ) {
                return msg;
            }
        }
    }

    /// Waits until the latest booth update (already received or coming) satisfies `pred`.
    pub async fn wait_booth(&mut self, what: &str, pred: impl Fn(&ServerMsg) -> bool) -> ServerMsg {
        loop {
            if let Some(b) = self.seen.iter().rev().find(|m| matches!(m, ServerMsg::Booth { .. })) {
                if pred(b) {
                    return b.clone();
                }
            }
            let next = tokio::time::timeout(Duration::from_secs(5), self.ws.next()).await;
            let Ok(Some(Ok(Message::Text(t)))) = next else {
                panic!("no booth update where {what}; seen: {:?}", self.seen);
            };
            let msg: ServerMsg = serde_json::from_str(t.as_str()).expect("server sends protocol JSON");
            self.seen.push(msg.clone());
            if let ServerMsg::Error { .. } = msg {
                panic!("error while waiting for {what}: {msg:?}");
            }
        }
    }

    /// Reads whatever arrives within `ms` (into `seen`).
    pub async fn drain(&mut self, ms: u64) {
        let until = tokio::time::Instant::now() + Duration::from_millis(ms);
        while let Ok(Some(Ok(Message::Text(t)))) = tokio::time::timeout_at(until, self.ws.next()).await {
            self.seen.push(serde_json::from_str(t.as_str()).expect("server sends protocol JSON"));
        }
    }

    /// Sends a request and returns its direct reply.
    pub async fn ask(&mut self, msg: ClientMsg) -> ServerMsg {
        self.send(&msg).await;
        self.next_reply().await
    }

    /// Sends a request that has no reply when it succeeds: returns the refusal, if one comes
    /// within 500 ms (events meanwhile go to `seen`).
    pub async fn ask_opt(&mut self, msg: ClientMsg) -> Option<ServerMsg> {
        self.send(&msg).await;
        let until = tokio::time::Instant::now() + Duration::from_millis(500);
        while let Ok(Some(Ok(Message::Text(t)))) = tokio::time::timeout_at(until, self.ws.next()).await {
            let msg: ServerMsg = serde_json::from_str(t.as_str()).expect("server sends protocol JSON");
            self.seen.push(msg.clone());
            if matches!(msg, ServerMsg::Error { .. }) {
                return Some(msg);
            }
        }
        None
    }

    /// Reads and drops whatever the server sends from now on, as a page does, until the
    /// session closes or the task is aborted (which closes it).
    pub fn read_on(mut self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move { while let Some(Ok(_)) = self.ws.next().await {} })
    }

    pub async fn next_any(&mut self) -> ServerMsg {
        self.next_within(Duration::from_secs(5)).await
    }

    /// The next message of any kind, waiting at most `wait`.
    pub async fn next_within(&mut self, wait: Duration) -> ServerMsg {
        let msg = tokio::time::timeout(wait, self.ws.next())
            .await
            .expect("a server message in time")
            .expect("websocket open")
            .expect("websocket message");
        match msg {
            Message::Text(t) => serde_json::from_str(t.as_str()).expect("server sends protocol JSON"),
            other => panic!("unexpected websocket message {other:?}"),
        }
    }

    pub async fn join(&mut self, token: &str, publish: Option<&str>) -> ServerMsg {
        self.join_again(token, publish, None).await
    }

    /// Joins with a resume key: the same person's earlier session with that key is replaced.
    pub async fn join_again(
        &mut self,
        token: &str,
        publish: Option<&str>,
        resume: Option<&str>,
    ) -> ServerMsg {
        let msg = ClientMsg::Join {
            token: token.into(),
            publish: publish.map(str::to_string),
            resume: resume.map(str::to_string),
        };
        self.send(&msg).await;
        self.next_reply().await
    }

    pub async fn select(&mut self, channel: Option<&str>) -> ServerMsg {
        self.ask(ClientMsg::Select { channel: channel.map(str::to_string), only: false, balance: None }).await
    }
}

/// One decoded received frame.
#[derive(Clone)]
pub struct Frame {
    pub rtp: u64,
    pub seq: u64,
    pub at: Instant,
    pub pcm: Vec<f32>,
    /// Made up by the decoder for a frame that never came.
    pub concealed: bool,
}

pub struct Media {
    /// The client's UDP address.
    pub local: std::net::SocketAddr,
    pub frames: Arc<Mutex<Vec<Frame>>>,
    /// When the first frame of the sound went out (later frames follow every 20 ms).
    pub first_sent: Arc<Mutex<Option<Instant>>>,
    /// Whether the tone is being sent (clear it to fall silent).
    pub sending: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Media {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Media {
    pub fn frames(&self) -> Vec<Frame> {
        self.frames.lock().unwrap().clone()
    }

    /// Waits until at least `n` frames have arrived (or panics after `secs`).
    pub async fn wait_frames(&self, n: usize, secs: u64) {
        let until = Instant::now() + Duration::from_secs(secs);
        while self.frames.lock().unwrap().len() < n {
            assert!(
                Instant::now() < until,
                "only {} frames received in {secs} s",
                self.frames.lock().unwrap().len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// What a test client sends: a tone, or recorded audio (48 kHz) followed by silence.
#[derive(Clone)]
pub enum Sound {
    Tone(f32),
    Pcm(Arc<Vec<f32>>),
}

impl Sound {
    fn frame(&self, n: u64) -> Vec<f32> {
        match self {
            Sound::Tone(hz) => (0..FRAME)
                .map(|i| {
                    0.3 * (2.0 * std::f32::consts::PI * hz * (n as usize * FRAME + i) as f32 / RATE).sin()
                })
                .collect(),
            Sound::Pcm(p) => {
                let start = (n as usize * FRAME).min(p.len());
                let mut f = p[start..(start + FRAME).min(p.len())].to_vec();
                f.resize(FRAME, 0.0);
                f
            }
        }
    }
}

/// Negotiates media over `sig` and runs the client's UDP loop on a thread.
pub async fn media(sig: &mut Signal, tone_hz: Option<f32>, receive: bool) -> Media {
    media_with(sig, tone_hz.map(Sound::Tone), receive).await
}

/// As [`media`], sending any [`Sound`].
pub async fn media_with(sig: &mut Signal, sound: Option<Sound>, receive: bool) -> Media {
    media_opts(sig, sound, receive, Receiver::default()).await
}

/// How a test client receives.
#[derive(Clone, Copy, Default)]
pub struct Receiver {
    /// Offer RED (RFC 2198) as browsers do; str0m recovers lost frames from it.
    pub red: bool,
    /// Conceal each frame that never came (Opus packet loss concealment), as a player does,
    /// so [`Media::frames`] has one frame per 20 ms of media time.
    pub conceal: bool,
}

/// As [`media_with`], receiving as `rx` says.
pub async fn media_opts(sig: &mut Signal, sound: Option<Sound>, receive: bool, rx: Receiver) -> Media {
    media_at(Door::Signal(sig), sound, receive, rx).await
}

/// Where a test client sends its offer: its signalling session, or the WHIP door with a token.
pub enum Door<'a> {
    Signal(&'a mut Signal),
    Whip { http: std::net::SocketAddr, token: &'a str },
    Whep { http: std::net::SocketAddr, token: &'a str },
}

/// A WHIP publisher sending `sound` (and receiving nothing).
pub async fn media_whip(s: &Running, token: &str, sound: Sound) -> Media {
    media_at(Door::Whip { http: s.http, token }, Some(sound), false, Receiver::default()).await
}

/// Negotiates media through `door` and runs the client's UDP loop on a thread.
pub async fn media_at(door: Door<'_>, sound: Option<Sound>, receive: bool, rx: Receiver) -> Media {
    let tone_hz = sound.clone();
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let local = socket.local_addr().unwrap();
    let now = Instant::now();
    let mut rtc = Rtc::builder().clear_codecs().enable_opus(true, rx.red).build(now);
    rtc.add_local_candidate(Candidate::host(local, "udp").unwrap());
    let dir = match (tone_hz.is_some(), receive) {
        (true, true) => Direction::SendRecv,
        (true, false) => Direction::SendOnly,
        _ => Direction::RecvOnly,
    };
    let mut api = rtc.sdp_api();
    let mid = api.add_media(MediaKind::Audio, dir, None, None, None);
    let (offer, pending) = api.apply().unwrap();
    let answer = match door {
        Door::Signal(sig) => {
            sig.send(&ClientMsg::Offer { sdp: offer.to_sdp_string() }).await;
            match sig.next_reply().await {
                ServerMsg::Answer { sdp } => sdp,
                other => panic!("expected an answer, got {other:?}"),
            }
        }
        Door::Whip { http, token } | Door::Whep { http, token } => {
            let path = if matches!(door, Door::Whip { .. }) { "/whip" } else { "/whep" };
            let (status, body) =
                http_at(http, "POST", path, Some(token), "application/sdp", &offer.to_sdp_string()).await;
            assert_eq!(status, 201, "{path} answers: {body}");
            body
        }
    };
    rtc.sdp_api().accept_answer(pending, SdpAnswer::from_sdp_string(&answer).unwrap()).unwrap();

    let frames = Arc::new(Mutex::new(Vec::new()));
    let sending = Arc::new(AtomicBool::new(tone_hz.is_some()));
    let stop = Arc::new(AtomicBool::new(false));
    let first_sent = Arc::new(Mutex::new(None));
    let (f, s, st, fs) = (frames.clone(), sending.clone(), stop.clone(), first_sent.clone());
    let thread = std::thread::spawn(move || {
        let mut enc = opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Audio).unwrap();
        // As tolk's pages publish: full band at 96 kbit/s.
        enc.set_bitrate(opus::Bitrate::Bits(96_000)).unwrap();
        let mut dec = opus::Decoder::new(48_000, opus::Channels::Mono).unwrap();
        let mut buf = vec![0u8; 2048];
        let mut next_send = Instant::now();
        let mut n: u64 = 0;
        while !st.load(Ordering::Relaxed) {
            let timeout = loop {
                match rtc.poll_output() {
                    Ok(Output::Transmit(t)) => {
                        let _ = socket.send_to(&t.contents, t.destination);
                    }
                    Ok(Output::Timeout(t)) => break t,
                    Ok(Output::Event(Event::MediaData(d))) => {
                        let rtp = d.time.numer();
                        if rx.conceal {
                            let mut frames = f.lock().unwrap();
                            let last = frames.last().map(|l: &Frame| l.rtp).unwrap_or(rtp);
                            // Up to a second of concealment; a longer gap is a new talk spurt.
                            for gap in (last + FRAME as u64..rtp).step_by(FRAME).take(50) {
                                let mut pcm = vec![0f32; FRAME];
                                let _ = dec.decode_float(&[], &mut pcm, false);
                                frames.push(Frame {
                                    rtp: gap,
                                    seq: 0,
                                    at: Instant::now(),
                                    pcm,
                                    concealed: true,
                                });
                            }
                        }
                        let mut pcm = vec![0f32; FRAME];
                        if dec.decode_float(&d.data, &mut pcm, false).ok() == Some(FRAME) {
                            f.lock().unwrap().push(Frame {
                                rtp,
                                seq: **d.seq_range.start(),
                                at: Instant::now(),
                                pcm,
                                concealed: false,
                            });
                        }
                    }
                    Ok(Output::Event(_)) => {}
                    Err(e) => panic!("client rtc failed: {e}"),
                }
            };
            let now = Instant::now();
            if let Some(sound) = &tone_hz {
                if now >= next_send {
                    next_send += Duration::from_millis(20);
                    if rtc.is_connected() {
                        if s.load(Ordering::Relaxed) {
                            let pcm = sound.frame(n);
                            if n == 0 {
                                *fs.lock().unwrap() = Some(now);
                            }
                            let mut out = [0u8; 1275];
                            let len = enc.encode_float(&pcm, &mut out).unwrap();
                            let w = rtc.writer(mid).unwrap();
                            let pt = w.payload_params().find(|p| p.spec().codec == Codec::Opus).unwrap().pt();
                            let time = MediaTime::new(n * FRAME as u64, Frequency::FORTY_EIGHT_KHZ);
                            w.write(pt, now, time, out[..len].to_vec()).unwrap();
                        }
                        n += 1;
                    }
                    continue;
                }
            }
            let mut wake = timeout;
            if tone_hz.is_some() {
                wake = wake.min(next_send);
            }
            let wait = wake.saturating_duration_since(now).max(Duration::from_millis(1));
            socket.set_read_timeout(Some(wait)).unwrap();
            if let Ok((len, source)) = socket.recv_from(&mut buf) {
                if let Ok(r) = Receive::new(Protocol::Udp, source, local, &buf[..len]) {
                    let _ = rtc.handle_input(Input::Receive(Instant::now(), r));
                }
            }
            let _ = rtc.handle_input(Input::Timeout(Instant::now()));
        }
    });
    Media { local, frames, first_sent, sending, stop, thread: Some(thread) }
}

/// The audio of frames (sorted by media time) whose media time lies in `[from, to)`.
pub fn window(frames: &[Frame], from: u64, to: u64) -> Vec<f32> {
    frames.iter().filter(|f| f.rtp >= from && f.rtp < to).flat_map(|f| f.pcm.iter().copied()).collect()
}

/// A plain HTTP/1.1 request against the server: (status, body).
pub async fn http(
    s: &Running,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    raw_http(s, method, path, auth, "application/json", body.unwrap_or("")).await
}

/// A plain HTTP/1.1 request with a chosen content type: (status, body).
pub async fn raw_http(
    s: &Running,
    method: &str,
    path: &str,
    auth: Option<&str>,
    ctype: &str,
    body: &str,
) -> (u16, String) {
    http_at(s.http, method, path, auth, ctype, body).await
}

/// A plain HTTP/1.1 request to any address: (status, body).
pub async fn http_at(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    auth: Option<&str>,
    ctype: &str,
    body: &str,
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let auth = auth.map(|a| format!("Authorization: Bearer {a}\r\n")).unwrap_or_default();
    let ctype = if ctype.is_empty() { String::new() } else { format!("Content-Type: {ctype}\r\n") };
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{auth}{ctype}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    stream.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    if !head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        return (status, body.to_string());
    }
    // Chunked: hex size line, data, CRLF, until a zero-size chunk.
    let mut rest = body;
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    (status, out)
}

/// 48 kHz mono 16-bit WAV of a sine tone.
pub fn write_tone_wav(path: &std::path::Path, hz: f32, secs: f32) {
    let n = (RATE * secs) as usize;
    let mut data = Vec::with_capacity(44 + n * 2);
    let header_len = 36 + n as u32 * 2;
    data.extend_from_slice(b"RIFF");
    data.extend_from_slice(&header_len.to_le_bytes());
    data.extend_from_slice(b"WAVEfmt ");
    data.extend_from_slice(&16u32.to_le_bytes());
    data.extend_from_slice(&1u16.to_le_bytes()); // PCM
    data.extend_from_slice(&1u16.to_le_bytes()); // mono
    data.extend_from_slice(&48_000u32.to_le_bytes());
    data.extend_from_slice(&96_000u32.to_le_bytes());
    data.extend_from_slice(&2u16.to_le_bytes());
    data.extend_from_slice(&16u16.to_le_bytes());
    data.extend_from_slice(b"data");
    data.extend_from_slice(&(n as u32 * 2).to_le_bytes());
    for i in 0..n {
        let s = 0.3 * (2.0 * std::f32::consts::PI * hz * i as f32 / RATE).sin();
        data.extend_from_slice(&((s * 32767.0) as i16).to_le_bytes());
    }
    std::fs::write(path, data).unwrap();
}

/// Speech from espeak-ng at `rate` Hz mono (sox resamples it), as f32 samples.
pub fn speech(text: &str, voice: &str, rate: u32) -> Vec<f32> {
    let dir = std::env::temp_dir();
    let id = format!("{}-{}", std::process::id(), text.len() ^ (voice.len() << 16) ^ (rate as usize) << 20);
    let raw = dir.join(format!("tolk-speech-{id}.wav"));
    let out = dir.join(format!("tolk-speech-{id}-{rate}.raw"));
    let ok = std::process::Command::new("espeak-ng")
        .args(["-v", voice, "-s", "150", "-w"])
        .arg(&raw)
        .arg(text)
        .status()
        .expect("espeak-ng runs (apt-get install espeak-ng; ./tolk.sh test does it)");
    assert!(ok.success());
    let ok = std::process::Command::new("sox")
        .arg(&raw)
        .args(["-r", &rate.to_string(), "-c", "1", "-b", "16", "-e", "signed-integer", "-t", "raw"])
        .arg(&out)
        .status()
        .expect("sox runs (apt-get install sox; ./tolk.sh test does it)");
    assert!(ok.success());
    let bytes = std::fs::read(&out).unwrap();
    let _ = std::fs::remove_file(&raw);
    let _ = std::fs::remove_file(&out);
    bytes.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]]) as f32 / 32768.0).collect()
}

#[allow(unused_imports)]
pub use tolk::asr::utterances::wer;

/// Runs the aiortc WHIP publisher and WHEP player (tests/aiortc/whip_whep.py) against `s`:
/// a tone of `hz` published with `whip`, the `channel` played with `whep`; `env` tunes the
/// script. Returns its JSON result line.
pub async fn aiortc_whip_whep(
    s: &Running,
    (whip, whep): (&str, &str),
    hz: &str,
    channel: &str,
    env: &[(&str, &str)],
    limit: Duration,
) -> serde_json::Value {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/aiortc/whip_whep.py");
    let run = tokio::process::Command::new("python3")
        .arg(&script)
        .args([&format!("http://{}", s.http), whip, whep, hz, channel])
        .envs(env.iter().copied())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(limit, run).await.expect("aiortc finishes").expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "aiortc failed (pip install aiortc numpy; ./tolk.sh test does it):\n{stderr}\n{stdout}"
    );
    serde_json::from_str(stdout.lines().last().unwrap_or("")).expect("a JSON result line")
}

/// Starts the tolk binary with `config` and returns it with its HTTP address; with `tmpfs`, in a
/// mount namespace of its own with a 4 MiB tmpfs mounted at that directory.
pub async fn spawn_tolk(
    config: &std::path::Path,
    tmpfs: Option<&std::path::Path>,
) -> (tokio::process::Child, std::net::SocketAddr) {
    use tokio::io::AsyncBufReadExt;
    let tolk = env!("CARGO_BIN_EXE_tolk");
    let mut cmd = match tmpfs {
        None => {
            let mut c = tokio::process::Command::new(tolk);
            c.args(["serve", "--config"]).arg(config);
            c
        }
        Some(dir) => {
            let mut c = tokio::process::Command::new("unshare");
            let script = "mount -t tmpfs -o size=4m tmpfs \"$1\" && exec \"$2\" serve --config \"$3\"";
            c.args(["-m", "sh", "-c", script, "sh"]).arg(dir).arg(tolk).arg(config);
            c
        }
    };
    let mut child = cmd.stdout(std::process::Stdio::piped()).kill_on_drop(true).spawn().unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next_line().await.unwrap().expect("tolk prints its address");
        if let Some(rest) = line.strip_prefix("tolk is serving http://") {
            break rest.split_whitespace().next().unwrap().parse::<std::net::SocketAddr>().unwrap();
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, addr)
}

/// An invitation to room `demo` of the server at `addr` (API key `k`), named after its role.
pub async fn mint_demo(addr: std::net::SocketAddr, role: &str) -> String {
    let body = format!(r#"{{"role":"{role}","name":"{role}"}}"#);
    let (st, b) = http_at(addr, "POST", "/api/rooms/demo/tokens", Some("k"), "application/json", &body).await;
    assert_eq!(st, 201, "{b}");
    serde_json::from_str::<serde_json::Value>(&b).unwrap()["token"].as_str().unwrap().to_string()
}
