//! Recordings on disk: each take's Ogg Opus files, written on a thread of their own from the payloads the engine already encoded; listing, deleting and retention.
//!
//! A take is a directory `<recordings>/<room>/<YYYYMMDD-HHMMSS>/` with `floor.opus`, one
//! `<channel>.opus` per channel and `take.json` (when it began, in wall-clock and in the room's
//! media time, so the files line up with the room's transcript). Every file of a take starts at
//! the same tick and has a packet for every tick (a tick without audio gets an empty Opus frame,
//! which players conceal), so the files line up with each other. A page is written each second
//! straight to the file: after kill -9 a file plays up to its last second.

use crate::core::engine::Record;
use crate::core::room::Payload;
use crate::store::Store;
use ogg::writing::{PacketWriteEndInfo, PacketWriter};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fs::File;
use std::io::{BufWriter, ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// Ticks a recorder may have queued (10 s of one room): beyond, a tick is dropped and counted
/// (its files get an empty frame there, so they keep their timeline) rather than grow memory or
/// ever hold the media thread.
const QUEUE: usize = 500;
/// Packets per Ogg page: one page, and so one write to the file, each second.
const PAGE_PACKETS: u64 = 50;
/// Samples of one tick at 48 kHz.
const TICK_SAMPLES: u64 = 960;
/// The encoder's lookahead (libopus at 48 kHz): decoders drop this much at the start.
const PRE_SKIP: u16 = 312;
/// An Opus packet with no frame data (CELT, full band, 20 ms, mono): the decoder conceals a
/// lost frame. Written for a tick without audio so that every file keeps the room's timeline.
const EMPTY_FRAME: [u8; 1] = [0xF8];
/// A recording is refused when its disk has less than this free.
pub const MIN_FREE: u64 = 1 << 20;

/// The takes being written now (their directories), shared by the writers and the API: a take
/// being written is neither deleted nor purged, and is listed as running.
pub type OpenTakes = Arc<Mutex<HashSet<PathBuf>>>;

fn is_open(open: &OpenTakes, dir: &Path) -> bool {
    open.lock().expect("no panics while holding the open takes").contains(dir)
}

/// A take as `take.json` keeps it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TakeInfo {
    /// Seconds since the Unix epoch.
    pub started_at: u64,
    /// The room's media time at the first packet (ms): a transcript cue at `t` is at
    /// `t - media_start_ms` in the files.
    pub media_start_ms: u64,
    #[serde(default)]
    pub stopped_at: Option<u64>,
    #[serde(default)]
    pub media_end_ms: Option<u64>,
}

/// One take as the API lists it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Take {
    pub take: String,
    #[serde(flatten)]
    pub info: TakeInfo,
    /// Being written now (a take cut off by a crash has no `stopped_at` but is not running).
    #[serde(default)]
    pub running: bool,
    pub files: Vec<FileInfo>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FileInfo {
    /// `floor.opus` or `<channel>.opus`.
    pub name: String,
    pub bytes: u64,
    /// A link that downloads the file for a while without the host's credentials (signed), for
    /// a player or a plain download.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `YYYYMMDD-HHMMSS` in UTC (a take's directory name).
fn stamp(secs: u64) -> String {
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}{m:02}{d:02}-{:02}{:02}{:02}", rest / 3600, rest / 60 % 60, rest % 60)
}

/// Why a recording stopped, as the host is told (a code the pages say in the person's language;
/// the details go to the log): `disk_full`, `not_allowed`, `write_failed`.
fn reason(e: &std::io::Error) -> String {
    match e.kind() {
        ErrorKind::StorageFull => "disk_full".into(),
        ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem => "not_allowed".into(),
        _ => "write_failed".into(),
    }
}

/// One file of a take.
struct Track {
    writer: PacketWriter<'static, BufWriter<File>>,
    serial: u32,
    packets: u64,
}

impl Track {
    fn create(path: &Path, serial: u32, room: &str, name: &str, info: &TakeInfo) -> std::io::Result<Track> {
        let file = File::options().write(true).create_new(true).open(path)?;
        let mut writer = PacketWriter::new(BufWriter::new(file));
        // RFC 7845: the identification header, then the comment header, each on its own page.
        let mut head = b"OpusHead".to_vec();
        head.push(1); // version
        head.push(1); // channels: mono (a stereo packet is mixed down by the decoder)
        head.extend_from_slice(&PRE_SKIP.to_le_bytes());
        head.extend_from_slice(&48_000u32.to_le_bytes());
        head.extend_from_slice(&0i16.to_le_bytes()); // output gain
        head.push(0); // channel mapping family 0
        writer.write_packet(head, serial, PacketWriteEndInfo::EndPage, 0)?;
        let vendor = concat!("tolk ", env!("CARGO_PKG_VERSION"));
        let comments = [
            format!("TITLE={room} {name}"),
            format!("TOLK_ROOM={room}"),
            format!("TOLK_TRACK={name}"),
            format!("TOLK_MEDIA_START_MS={}", info.media_start_ms),
        ];
        let mut tags = b"OpusTags".to_vec();
        tags.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
        tags.extend_from_slice(vendor.as_bytes());
        tags.extend_from_slice(&(comments.len() as u32).to_le_bytes());
        for c in &comments {
            tags.extend_from_slice(&(c.len() as u32).to_le_bytes());
            tags.extend_from_slice(c.as_bytes());
        }
        writer.write_packet(tags, serial, PacketWriteEndInfo::EndPage, 0)?;
        writer.inner_mut().flush()?;
        Ok(Track { writer, serial, packets: 0 })
    }

    /// Writes one tick's packet; a page ends every second, and with `last` the stream. A page,
    /// once written, is handed to the disk (`sync_data`): it survives kill -9 and a power cut.
    fn write(&mut self, data: &[u8], last: bool) -> std::io::Result<()> {
        self.packets += 1;
        let end = if last {
            PacketWriteEndInfo::EndStream
        } else if self.packets.is_multiple_of(PAGE_PACKETS) {
            PacketWriteEndInfo::EndPage
        } else {
            PacketWriteEndInfo::NormalPacket
        };
        self.writer.write_packet(data.to_vec(), self.serial, end, self.packets * TICK_SAMPLES)?;
        if end != PacketWriteEndInfo::NormalPacket {
            let file = self.writer.inner_mut();
            file.flush()?;
            file.get_ref().sync_data()?;
        }
        Ok(())
    }
}

/// A take being written.
struct Open {
    dir: PathBuf,
    room: String,
    info: TakeInfo,
    tracks: BTreeMap<String, Track>,
    /// The media time of the last tick written (for a take that ends without its stop).
    last_ms: u64,
    /// Where this take is listed as open, until it is dropped.
    open: OpenTakes,
}

impl Drop for Open {
    fn drop(&mut self) {
        self.open.lock().expect("no panics while holding the open takes").remove(&self.dir);
    }
}

impl Open {
    fn begin(root: &Path, room: &str, ms: u64, open: &OpenTakes) -> std::io::Result<Open> {
        let started_at = unix_now();
        let parent = root.join(room);
        std::fs::create_dir_all(&parent)?;
        // Two takes in one second (stop, start) get their own directories.
        let base = stamp(started_at);
        let mut dir = parent.join(&base);
        let mut n = 1;
        while dir.exists() {
            n += 1;
            dir = parent.join(format!("{base}-{n}"));
        }
        std::fs::create_dir(&dir)?;
        let info = TakeInfo { started_at, media_start_ms: ms, stopped_at: None, media_end_ms: None };
        open.lock().expect("no panics while holding the open takes").insert(dir.clone());
        let take = Open {
            dir,
            room: room.to_string(),
            info,
            tracks: BTreeMap::new(),
            last_ms: ms,
            open: open.clone(),
        };
        take.save()?;
        Ok(take)
    }

    fn save(&self) -> std::io::Result<()> {
        let tmp = self.dir.join("take.json.new");
        std::fs::write(&tmp, serde_json::to_vec_pretty(&self.info).expect("take info serialises"))?;
        std::fs::rename(tmp, self.dir.join("take.json"))
    }

    /// One tick: every track gets its packet (a track new to the take, a channel added
    /// meanwhile, first gets empty frames back to the take's start).
    fn frame(&mut self, ms: u64, tracks: Vec<(String, Option<Payload>)>) -> std::io::Result<()> {
        self.last_ms = ms;
        let index = (ms.saturating_sub(self.info.media_start_ms) / 20).saturating_sub(1);
        for (name, payload) in tracks {
            let track = match self.tracks.get_mut(&name) {
                Some(t) => t,
                None => {
                    let serial = self.tracks.len() as u32 + 1;
                    let t = Track::create(
                        &self.dir.join(format!("{name}.opus")),
                        serial,
                        &self.room,
                        &name,
                        &self.info,
                    )?;
                    self.tracks.entry(name).or_insert(t)
                }
            };
            while track.packets < index {
                track.write(&EMPTY_FRAME, false)?;
            }
            track.write(payload.as_deref().unwrap_or(&EMPTY_FRAME), false)?;
        }
        Ok(())
    }

    fn finish(mut self, ms: Option<u64>) -> std::io::Result<()> {
        for t in self.tracks.values_mut() {
            t.write(&EMPTY_FRAME, true)?;
            t.writer.inner_mut().flush()?;
        }
        self.info.stopped_at = Some(unix_now());
        // The stream's last packet (empty, ending it) is one more tick.
        self.info.media_end_ms = Some(ms.unwrap_or(self.last_ms) + 20);
        self.save()
    }
}

/// An engine's recorder: takes its [`Record`]s off the media thread (never blocking it) and
/// writes them on a thread of its own.
pub struct Recorder {
    tx: SyncSender<Record>,
    failed: Receiver<(String, String)>,
    /// Starts and stops that found the queue full, sent before anything else next time.
    pending: VecDeque<Record>,
    /// Ticks dropped because the writer fell behind (their files get empty frames there).
    pub dropped: u64,
}

impl Recorder {
    pub fn spawn(root: PathBuf, store: Arc<Store>, index: usize, open: OpenTakes) -> Recorder {
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let (failed_tx, failed) = mpsc::channel();
        std::thread::Builder::new()
            .name(format!("tolk-record-{index}"))
            .spawn(move || write(&root, &store, rx, failed_tx, &open))
            .expect("the recorder thread starts");
        Recorder { tx, failed, pending: VecDeque::new(), dropped: 0 }
    }

    /// Hands a record to the writer without waiting: a tick that finds the queue full is
    /// dropped (counted, logged once every 500); a start or stop waits for the next call.
    pub fn offer(&mut self, record: Record) {
        while let Some(r) = self.pending.pop_front() {
            if let Err(TrySendError::Full(r)) = self.tx.try_send(r) {
                self.pending.push_front(r);
                break;
            }
        }
        let record = match record {
            r @ (Record::Start { .. } | Record::Stop { .. }) if !self.pending.is_empty() => {
                self.pending.push_back(r);
                return;
            }
            r => r,
        };
        match self.tx.try_send(record) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(Record::Frame { room, .. })) => {
                if self.dropped.is_multiple_of(QUEUE as u64) {
                    tracing::warn!(
                        room,
                        dropped = self.dropped + 1,
                        "the recorder is behind: ticks dropped (empty frames in the files)"
                    );
                }
                self.dropped += 1;
            }
            Err(TrySendError::Full(r)) => self.pending.push_back(r),
        }
    }

    /// A room whose recording could not go on, and why (for its hosts).
    pub fn poll_failed(&mut self) -> Option<(String, String)> {
        self.failed.try_recv().ok()
    }
}

fn write(
    root: &Path,
    store: &Store,
    rx: Receiver<Record>,
    failed: mpsc::Sender<(String, String)>,
    takes: &OpenTakes,
) {
    let mut open: HashMap<String, Open> = HashMap::new();
    let fail = |room: &str, e: std::io::Error, open: &mut HashMap<String, Open>| {
        tracing::error!(room, "recording stopped: {e}");
        open.remove(room);
        if let Err(e) = store.set_recording(room, false) {
            tracing::error!(room, "{e}");
        }
        let _ = failed.send((room.to_string(), reason(&e)));
    };
    for record in rx {
        match record {
            Record::Start { room, ms } => {
                if let Some(old) = open.remove(&room) {
                    let _ = old.finish(None);
                }
                match Open::begin(root, &room, ms, takes) {
                    Ok(o) => {
                        tracing::info!(room, take = %o.dir.display(), "recording");
                        open.insert(room, o);
                    }
                    Err(e) => fail(&room, e, &mut open),
                }
            }
            Record::Frame { room, ms, tracks } => {
                let Some(o) = open.get_mut(&room) else { continue };
                if let Err(e) = o.frame(ms, tracks) {
                    fail(&room, e, &mut open);
                }
            }
            Record::Stop { room, ms } => {
                if let Some(o) = open.remove(&room) {
                    let dir = o.dir.clone();
                    match o.finish(Some(ms)) {
                        Ok(()) => tracing::info!(room, take = %dir.display(), "recording stopped"),
                        Err(e) => tracing::error!(room, "recording not closed cleanly: {e}"),
                    }
                }
            }
        }
    }
}

/// A name from a request that may be a take or a file of one: no paths, no dots in front.
fn plain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 80
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// Where a take's file is, if the names are plain.
pub fn file_path(root: &Path, room: &str, take: &str, file: &str) -> Option<PathBuf> {
    (plain(room) && plain(take) && plain(file) && file.ends_with(".opus"))
        .then(|| root.join(room).join(take).join(file))
}

/// A room's takes, oldest first.
pub fn list(root: &Path, room: &str, open: &OpenTakes) -> std::io::Result<Vec<Take>> {
    if !plain(room) {
        return Ok(Vec::new());
    }
    let dir = match std::fs::read_dir(root.join(room)) {
        Ok(d) => d,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut takes = Vec::new();
    for entry in dir {
        let entry = entry?;
        let take = entry.file_name().to_string_lossy().into_owned();
        let Ok(text) = std::fs::read(entry.path().join("take.json")) else { continue };
        let Ok(info) = serde_json::from_slice::<TakeInfo>(&text) else { continue };
        let mut files = Vec::new();
        for f in std::fs::read_dir(entry.path())? {
            let f = f?;
            let name = f.file_name().to_string_lossy().into_owned();
            if name.ends_with(".opus") {
                files.push(FileInfo { name, bytes: f.metadata()?.len(), url: None });
            }
        }
        files.sort_by(|a, b| (a.name != "floor.opus", &a.name).cmp(&(b.name != "floor.opus", &b.name)));
        let running = is_open(open, &entry.path());
        takes.push(Take { take, info, running, files });
    }
    takes.sort_by(|a, b| a.take.cmp(&b.take));
    Ok(takes)
}

/// Whether a take is being written now.
pub fn running(root: &Path, room: &str, take: &str, open: &OpenTakes) -> bool {
    plain(room) && plain(take) && is_open(open, &root.join(room).join(take))
}

/// Deletes one file of a take, or the whole take (`file` unset); false when there was none.
/// A take being written is not deleted (the caller refuses: stop the recording first).
pub fn delete(root: &Path, room: &str, take: &str, file: Option<&str>) -> std::io::Result<bool> {
    if !(plain(room) && plain(take)) {
        return Ok(false);
    }
    let dir = root.join(room).join(take);
    let result = match file {
        Some(f) if plain(f) && f.ends_with(".opus") => std::fs::remove_file(dir.join(f)),
        Some(_) => return Ok(false),
        None => std::fs::remove_dir_all(&dir),
    };
    match result {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Deletes every recording of a room (the room is deleted, or a new one takes its id).
pub fn delete_room(root: &Path, room: &str) -> std::io::Result<()> {
    if !plain(room) {
        return Ok(());
    }
    match std::fs::remove_dir_all(root.join(room)) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Deletes takes that began more than `days` days before `now` (retention), but none being
/// written; returns how many. A room whose directory cannot be read is skipped, not the rest.
pub fn purge(root: &Path, days: u64, now: u64, open: &OpenTakes) -> std::io::Result<usize> {
    let cutoff = now.saturating_sub(days * 86_400);
    let rooms = match std::fs::read_dir(root) {
        Ok(d) => d,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut n = 0;
    for room in rooms {
        let room = room?.file_name().to_string_lossy().into_owned();
        let takes = match list(root, &room, open) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(room, "recordings not purged: {e}");
                continue;
            }
        };
        for t in takes.into_iter().filter(|t| t.info.started_at < cutoff && !t.running) {
            delete(root, &room, &t.take, None)?;
            n += 1;
        }
    }
    Ok(n)
}

/// Bytes the recordings take on disk.
pub fn usage(root: &Path) -> u64 {
    fn walk(p: &Path) -> u64 {
        let Ok(dir) = std::fs::read_dir(p) else { return 0 };
        dir.flatten()
            .map(|e| match e.file_type() {
                Ok(t) if t.is_dir() => walk(&e.path()),
                Ok(_) => e.metadata().map_or(0, |m| m.len()),
                Err(_) => 0,
            })
            .sum()
    }
    walk(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_are_named_by_their_utc_start() {
        assert_eq!(stamp(0), "19700101-000000");
        assert_eq!(stamp(1_764_559_500), "20251201-032500");
        assert_eq!(stamp(951_782_400), "20000229-000000");
    }

    #[test]
    fn takes_past_their_days_are_purged_and_the_others_kept() {
        let root = std::env::temp_dir().join(format!("tolk-purge-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let day = 86_400;
        for (take, started_at) in [("old", 10 * day), ("new", 39 * day)] {
            let dir = root.join("r").join(take);
            std::fs::create_dir_all(&dir).unwrap();
            let info = TakeInfo { started_at, media_start_ms: 0, stopped_at: None, media_end_ms: None };
            std::fs::write(dir.join("take.json"), serde_json::to_vec(&info).unwrap()).unwrap();
            std::fs::write(dir.join("floor.opus"), b"OggS").unwrap();
        }
        let json = |t: &str| std::fs::metadata(root.join(format!("r/{t}/take.json"))).unwrap().len();
        assert_eq!(usage(&root), 2 * 4 + json("old") + json("new"));
        let open = OpenTakes::default();
        open.lock().unwrap().insert(root.join("r/old"));
        assert_eq!(purge(&root, 30, 41 * day, &open).unwrap(), 0, "a take being written stays");
        open.lock().unwrap().clear();
        assert_eq!(purge(&root, 30, 41 * day, &open).unwrap(), 1);
        let left: Vec<String> = list(&root, "r", &open).unwrap().into_iter().map(|t| t.take).collect();
        assert_eq!(left, ["new"]);
        assert!(delete(&root, "r", "new", Some("floor.opus")).unwrap());
        assert!(!delete(&root, "r", "new", Some("floor.opus")).unwrap(), "already gone");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn names_from_requests_cannot_leave_the_recordings() {
        let root = Path::new("/r");
        assert!(file_path(root, "room", "20251201-032500", "es.opus").is_some());
        for (room, take, file) in [
            ("..", "t", "es.opus"),
            ("room", "../x", "es.opus"),
            ("room", "t", "../../etc/passwd"),
            ("room", "t", "take.json"),
            ("room", ".", "es.opus"),
            ("room", "t", "a/b.opus"),
        ] {
            assert!(file_path(root, room, take, file).is_none(), "{room} {take} {file}");
        }
    }
}
