//! Streaming speech recognition for captions: a thread of its own, fed 16 kHz audio through a bounded queue.
//!
//! The media engine hands the driver 20 ms of 16 kHz audio per captioned
//! source and tick; the driver offers it to [`Asr::offer`], which never
//! blocks: when the recogniser falls behind, chunks are skipped and counted,
//! and audio that waited longer than [`MAX_BACKLOG`] is dropped (the sentence
//! in progress is finished with what it has) so that captions follow live
//! speech; hosts are told.
//! The thread segments each source on voice ([`utterances`]), runs Whisper
//! ([`whisper`]), writes every final caption to the transcript store before
//! it is announced, and returns captions through a second bounded queue.

pub mod utterances;
pub mod whisper;

use crate::core::engine::Caption;
use crate::store::{Line, Store};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use utterances::{Utterances, Work};
pub use whisper::{AsrError, Recognizer};

/// Chunks the queue holds: 4 s for 10 captioned sources. Beyond that the
/// recogniser is hopelessly behind, and skipping is better than growing.
const QUEUE: usize = 2_000;
/// Captions waiting for the media thread.
const CAPTIONS: usize = 256;
/// Oldest audio the recogniser still takes: when it falls behind (a loaded machine, too many
/// captioned sources), it drops the backlog and goes on from live speech, so that a caption is
/// never more than a few seconds behind its words.
pub const MAX_BACKLOG: Duration = Duration::from_secs(8);
/// Partial captions are worked out only while the recogniser is this close to live audio.
const PARTIALS_WITHIN: Duration = Duration::from_millis(1500);

/// 20 ms of a captioned source's audio at 16 kHz.
pub struct Chunk {
    /// The media engine the source's room lives on (set by [`Asr::offer`]).
    pub engine: usize,
    pub room: Arc<str>,
    /// `None` for the floor, else the channel.
    pub source: Option<String>,
    /// Language to transcribe in (`None`: detect).
    pub lang: Option<String>,
    /// The room's media time of the chunk, in ms.
    pub ms: u64,
    /// When the chunk was made: one that waited longer than [`MAX_BACKLOG`] is skipped.
    pub at: Instant,
    pub pcm: Box<[f32; utterances::CHUNK]>,
}

/// One media engine's way to the recogniser (one recogniser serves every engine).
pub struct Asr {
    engine: usize,
    chunks: SyncSender<Chunk>,
    captions: Receiver<Caption>,
    pub skipped: Arc<AtomicU64>,
}

impl Asr {
    /// Loads the models and starts the recogniser thread; returns one handle per media engine.
    pub fn start(
        models: PathBuf,
        store: Option<Arc<Store>>,
        threads: i32,
        engines: usize,
    ) -> Result<Vec<Asr>, AsrError> {
        let recognizer = Recognizer::load(&models, threads)?;
        let (chunks, rx) = mpsc::sync_channel(QUEUE);
        let skipped = Arc::new(AtomicU64::new(0));
        let mut outs = Vec::new();
        let mut handles = Vec::new();
        for engine in 0..engines {
            let (tx, captions) = mpsc::sync_channel(CAPTIONS);
            outs.push(tx);
            handles.push(Asr { engine, chunks: chunks.clone(), captions, skipped: skipped.clone() });
        }
        std::thread::Builder::new()
            .name("tolk-asr".into())
            .spawn({
                let skipped = skipped.clone();
                move || run(recognizer, rx, outs, store, &skipped)
            })
            .expect("spawning the recogniser thread");
        Ok(handles)
    }

    /// Offers a chunk; when the recogniser is behind, it is skipped (and counted), never waited for.
    pub fn offer(&self, mut chunk: Chunk) {
        chunk.engine = self.engine;
        if let Err(TrySendError::Full(_)) = self.chunks.try_send(chunk) {
            self.skipped.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn poll_caption(&self) -> Option<Caption> {
        self.captions.try_recv().ok()
    }
}

/// Threads Whisper runs on: half the cores (at most 4). whisper.cpp's threads wait for each
/// other spinning, so on a machine whose cores are busy (media, other work) more threads make
/// it slower, not faster: beside two busy loops on 2 cores, 2 threads put English captions
/// 12 s behind (p95) and dropped half the words, 1 thread kept them within 2.3 s.
pub fn threads() -> i32 {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).clamp(1, 4)) as i32
}

type Key = (Arc<str>, Option<String>);

fn run(
    mut rec: Recognizer,
    chunks: Receiver<Chunk>,
    outs: Vec<SyncSender<Caption>>,
    store: Option<Arc<Store>>,
    skipped: &AtomicU64,
) {
    let mut streams: HashMap<Key, (Utterances, Option<String>, Work)> = HashMap::new();
    // Per source, audio dropped as too old since its last fresh chunk (ms).
    let mut shed: HashMap<Key, u64> = HashMap::new();
    // Captions go back to the engine the room lives on.
    let mut engine_of: HashMap<Arc<str>, usize> = HashMap::new();
    loop {
        // Take everything queued, then do the most urgent work once per source.
        let first = match chunks.recv_timeout(Duration::from_millis(100)) {
            Ok(c) => Some(c),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let mut newest = None;
        for c in first.into_iter().chain(chunks.try_iter()) {
            newest = Some(c.at);
            engine_of.insert(c.room.clone(), c.engine);
            let out = &outs[c.engine];
            let key = (c.room.clone(), c.source.clone());
            if c.at.elapsed() > MAX_BACKLOG {
                // Behind: this audio is dropped. The sentence in progress is finished with what
                // it has (its words would otherwise be spliced to later ones), and the source
                // goes on from live audio.
                skipped.fetch_add(1, Ordering::Relaxed);
                let dropped = shed.entry(key.clone()).or_default();
                if *dropped == 0 {
                    if let Some(entry) = streams.get_mut(&key) {
                        if !entry.0.window().is_empty() {
                            entry.2 = Work::Finish;
                        }
                    }
                }
                *dropped += 20;
                continue;
            }
            if let Some(ms) = shed.remove(&key) {
                tracing::warn!(room = %c.room, source = ?c.source, "captions fell behind: {ms} ms of audio skipped");
                let _ = out.try_send(Caption {
                    room: c.room.to_string(),
                    source: c.source.clone(),
                    lang: c.lang.clone(),
                    text: String::new(),
                    is_final: false,
                    start_ms: c.ms.saturating_sub(ms),
                    end_ms: c.ms,
                    skipped_ms: ms,
                });
            }
            let entry =
                streams.entry(key).or_insert_with(|| (Utterances::default(), c.lang.clone(), Work::Nothing));
            entry.1 = c.lang;
            let work = entry.0.push(c.ms, &c.pcm[..]);
            entry.2 = match (entry.2, work) {
                (Work::Finish, _) | (_, Work::Finish) => Work::Finish,
                (Work::Run, _) | (_, Work::Run) => Work::Run,
                _ => Work::Nothing,
            };
            if entry.2 == Work::Finish {
                transcribe(&mut rec, &c.room, &c.source, entry, out, store.as_deref());
            }
        }
        // Behind: partial captions wait, so that the time goes to the final ones.
        let behind = newest.is_some_and(|t| t.elapsed() > PARTIALS_WITHIN);
        for ((room, source), entry) in streams.iter_mut() {
            if entry.2 == Work::Finish || (entry.2 == Work::Run && !behind) {
                let out = &outs[engine_of.get(room).copied().unwrap_or(0)];
                transcribe(&mut rec, room, source, entry, out, store.as_deref());
            }
        }
    }
}

fn transcribe(
    rec: &mut Recognizer,
    room: &Arc<str>,
    source: &Option<String>,
    entry: &mut (Utterances, Option<String>, Work),
    out: &SyncSender<Caption>,
    store: Option<&Store>,
) {
    let (stream, lang, work) = entry;
    let finish = *work == Work::Finish;
    *work = Work::Nothing;
    let words = match rec.words(stream.window(), lang.as_deref()) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(%room, ?source, "captions: {e}");
            if finish {
                stream.hypothesis(Vec::new(), true);
            }
            return;
        }
    };
    for seg in stream.hypothesis(words, finish) {
        if seg.is_final {
            if let Some(store) = store {
                let line = Line {
                    source: source.clone().unwrap_or_else(|| "floor".into()),
                    lang: lang.clone(),
                    start_ms: seg.start_ms,
                    end_ms: seg.end_ms,
                    text: seg.text.clone(),
                };
                let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
                if let Err(e) = store.append(room, &line, now) {
                    tracing::error!(%room, "caption not stored: {e}");
                }
            }
        }
        // The media thread drains this once per tick; if it ever cannot keep up, partials may go.
        let _ = out.try_send(Caption {
            room: room.to_string(),
            source: source.clone(),
            lang: lang.clone(),
            text: seg.text,
            is_final: seg.is_final,
            start_ms: seg.start_ms,
            end_ms: seg.end_ms,
            skipped_ms: 0,
        });
    }
}
