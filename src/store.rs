//! The database: what hosts made (rooms, channels, caption settings) and transcripts (one SQLite row per final caption), each committed before it is reported; export as WebVTT or text.

use crate::core::spec::{ChannelSpec, RoomSpec};
use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;
use std::sync::Mutex;

/// One final caption as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub source: String,
    pub lang: Option<String>,
    pub start_ms: u64,
    pub end_ms: u64,
    pub text: String,
}

/// A room as stored: its definition, the sources captioned (`None`: the floor), and whether
/// it is being recorded (a restart goes on recording it, in new files).
#[derive(Debug, Clone)]
pub struct StoredRoom {
    pub spec: RoomSpec,
    pub captions: Vec<Option<String>>,
    pub recording: bool,
}

/// The database. A `std` mutex: nothing is awaited while it is held.
pub struct Store {
    db: Mutex<Connection>,
}

#[derive(Debug, thiserror::Error)]
#[error("database: {0}")]
pub struct StoreError(#[from] rusqlite::Error);

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("specs serialise")
}

fn from_json<T: for<'de> serde::Deserialize<'de>>(text: &str) -> rusqlite::Result<T> {
    serde_json::from_str(text).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

impl Store {
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let db = Connection::open(path)?;
        // WAL with a full sync per commit: a caption reported as stored survives kill -9 and power loss.
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "FULL")?;
        db.execute_batch(
            "CREATE TABLE IF NOT EXISTS captions (
                id INTEGER PRIMARY KEY,
                room TEXT NOT NULL,
                source TEXT NOT NULL,
                lang TEXT,
                start_ms INTEGER NOT NULL,
                end_ms INTEGER NOT NULL,
                text TEXT NOT NULL,
                created_at INTEGER NOT NULL
            );
            CREATE INDEX IF NOT EXISTS captions_room ON captions (room, source, id);
            CREATE TABLE IF NOT EXISTS revoked (
                jti TEXT PRIMARY KEY,
                room TEXT NOT NULL,
                exp INTEGER NOT NULL
            );
            CREATE TABLE IF NOT EXISTS rooms (
                id TEXT PRIMARY KEY,
                spec TEXT NOT NULL,
                captions TEXT NOT NULL DEFAULT '[]',
                created_at INTEGER NOT NULL
            );",
        )?;
        // Added after the first release: a database made before it gains the column.
        let has_recording: bool =
            db.prepare("SELECT 1 FROM pragma_table_info('rooms') WHERE name = 'recording'")?.exists([])?;
        if !has_recording {
            db.execute_batch("ALTER TABLE rooms ADD COLUMN recording INTEGER NOT NULL DEFAULT 0")?;
        }
        Ok(Store { db: Mutex::new(db) })
    }

    fn db(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.db.lock().expect("no panics while holding the database")
    }

    /// Records a new room (its channels included); `now` is seconds since the Unix epoch. A
    /// transcript left under the same id (a room of an earlier meeting) is deleted: a new room
    /// starts empty.
    pub fn insert_room(&self, spec: &RoomSpec, now: u64) -> Result<(), StoreError> {
        let mut db = self.db();
        let tx = db.transaction()?;
        tx.execute(
            "INSERT INTO rooms (id, spec, created_at) VALUES (?1, ?2, ?3)",
            params![spec.id, to_json(spec), now as i64],
        )?;
        tx.execute("DELETE FROM captions WHERE room = ?1", params![spec.id])?;
        tx.commit()?;
        Ok(())
    }

    /// Changes a stored room's definition in one transaction; returns false when there is no such room.
    fn change_spec(&self, room: &str, change: impl FnOnce(&mut RoomSpec)) -> Result<bool, StoreError> {
        let mut db = self.db();
        let tx = db.transaction()?;
        let spec: Option<String> =
            tx.query_row("SELECT spec FROM rooms WHERE id = ?1", params![room], |r| r.get(0)).optional()?;
        let Some(spec) = spec else { return Ok(false) };
        let mut spec: RoomSpec = from_json(&spec)?;
        change(&mut spec);
        tx.execute("UPDATE rooms SET spec = ?2 WHERE id = ?1", params![room, to_json(&spec)])?;
        tx.commit()?;
        Ok(true)
    }

    /// Adds a channel to a stored room; returns false when there is no such room.
    pub fn add_channel(&self, room: &str, channel: &ChannelSpec) -> Result<bool, StoreError> {
        self.change_spec(room, |spec| spec.channels.push(channel.clone()))
    }

    /// Renames a stored room's channel; returns false when there is no such room.
    pub fn rename_channel(&self, room: &str, lang: &str, name: &str) -> Result<bool, StoreError> {
        self.change_spec(room, |spec| {
            for c in spec.channels.iter_mut().filter(|c| c.lang == lang) {
                c.name = name.to_string();
            }
        })
    }

    /// Turns captions on or off for a stored room's floor (`None`) or channel.
    pub fn set_captions(&self, room: &str, source: Option<&str>, on: bool) -> Result<(), StoreError> {
        let mut db = self.db();
        let tx = db.transaction()?;
        let now: Option<String> = tx
            .query_row("SELECT captions FROM rooms WHERE id = ?1", params![room], |r| r.get(0))
            .optional()?;
        let Some(now) = now else { return Ok(()) };
        let mut sources: Vec<Option<String>> = from_json(&now)?;
        sources.retain(|s| s.as_deref() != source);
        if on {
            sources.push(source.map(str::to_string));
        }
        tx.execute("UPDATE rooms SET captions = ?2 WHERE id = ?1", params![room, to_json(&sources)])?;
        tx.commit()?;
        Ok(())
    }

    /// Keeps whether a stored room is being recorded.
    pub fn set_recording(&self, room: &str, on: bool) -> Result<(), StoreError> {
        self.db().execute("UPDATE rooms SET recording = ?2 WHERE id = ?1", params![room, on])?;
        Ok(())
    }

    /// Revokes an invitation (by its id) until it would have expired anyway.
    pub fn revoke(&self, jti: &str, room: &str, exp: u64) -> Result<(), StoreError> {
        self.db().execute(
            "INSERT OR IGNORE INTO revoked (jti, room, exp) VALUES (?1, ?2, ?3)",
            params![jti, room, exp as i64],
        )?;
        Ok(())
    }

    /// The invitations revoked and not yet expired (those expired are forgotten).
    pub fn revoked(&self, now: u64) -> Result<Vec<String>, StoreError> {
        let db = self.db();
        db.execute("DELETE FROM revoked WHERE exp < ?1", params![now as i64])?;
        let mut q = db.prepare("SELECT jti FROM revoked")?;
        let rows = q.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every stored room, oldest first.
    pub fn rooms(&self) -> Result<Vec<StoredRoom>, StoreError> {
        let db = self.db();
        let mut q = db.prepare("SELECT spec, captions, recording FROM rooms ORDER BY created_at, id")?;
        let rows = q.query_map([], |r| {
            Ok(StoredRoom {
                spec: from_json(&r.get::<_, String>(0)?)?,
                captions: from_json(&r.get::<_, String>(1)?)?,
                recording: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Deletes a room and its transcript; returns whether the room was stored.
    pub fn delete_room(&self, room: &str) -> Result<bool, StoreError> {
        let mut db = self.db();
        let tx = db.transaction()?;
        tx.execute("DELETE FROM captions WHERE room = ?1", params![room])?;
        let n = tx.execute("DELETE FROM rooms WHERE id = ?1", params![room])?;
        tx.commit()?;
        Ok(n > 0)
    }

    /// Appends a final caption; `now` is seconds since the Unix epoch (for retention).
    pub fn append(&self, room: &str, line: &Line, now: u64) -> Result<(), StoreError> {
        self.db().execute(
            "INSERT INTO captions (room, source, lang, start_ms, end_ms, text, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![room, line.source, line.lang, line.start_ms as i64, line.end_ms as i64, line.text, now as i64],
        )?;
        Ok(())
    }

    /// A room's lines, in order; `source` filters to one ("floor" or a channel).
    pub fn lines(&self, room: &str, source: Option<&str>) -> Result<Vec<Line>, StoreError> {
        self.lines_made(room, source, 0, u64::MAX / 2)
    }

    /// As [`Store::lines`], only those written between `from` and `to` (seconds since the Unix
    /// epoch): one run of the server (the room's media time starts again after a restart).
    pub fn lines_made(
        &self,
        room: &str,
        source: Option<&str>,
        from: u64,
        to: u64,
    ) -> Result<Vec<Line>, StoreError> {
        let db = self.db();
        let mut q = db.prepare(
            "SELECT source, lang, start_ms, end_ms, text FROM captions WHERE room = ?1 AND (?2 IS NULL OR source = ?2) \
             AND created_at BETWEEN ?3 AND ?4 ORDER BY id",
        )?;
        let rows = q.query_map(params![room, source, from as i64, to as i64], |r| {
            Ok(Line {
                source: r.get(0)?,
                lang: r.get(1)?,
                start_ms: r.get::<_, i64>(2)? as u64,
                end_ms: r.get::<_, i64>(3)? as u64,
                text: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Deletes a room's transcript; returns how many lines went.
    pub fn delete(&self, room: &str) -> Result<usize, StoreError> {
        Ok(self.db().execute("DELETE FROM captions WHERE room = ?1", params![room])?)
    }

    /// Deletes lines older than `days` days (retention); returns how many went.
    pub fn purge(&self, days: u64, now: u64) -> Result<usize, StoreError> {
        let cutoff = now.saturating_sub(days * 86_400) as i64;
        Ok(self.db().execute("DELETE FROM captions WHERE created_at < ?1", params![cutoff])?)
    }
}

fn stamp(ms: u64) -> String {
    format!("{:02}:{:02}:{:02}.{:03}", ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000)
}

/// WebVTT: one cue per final caption, times in the room's media time.
pub fn webvtt(lines: &[Line]) -> String {
    let mut out = String::from("WEBVTT\n\n");
    for (i, l) in lines.iter().enumerate() {
        let end = l.end_ms.max(l.start_ms + 1);
        out.push_str(&format!("{}\n{} --> {}\n{}\n\n", i + 1, stamp(l.start_ms), stamp(end), l.text));
    }
    out
}

/// Plain text: one caption per line, with its source when several are mixed.
pub fn text(lines: &[Line], with_source: bool) -> String {
    lines
        .iter()
        .map(|l| if with_source { format!("[{}] {}\n", l.source, l.text) } else { format!("{}\n", l.text) })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_exports_purges_and_deletes() {
        let dir = std::env::temp_dir().join(format!("tolk-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::open(&dir.join("t.db")).unwrap();
        let line = |t: &str, s: u64| Line {
            source: "floor".into(),
            lang: Some("en".into()),
            start_ms: s,
            end_ms: s + 900,
            text: t.into(),
        };
        store.append("r", &line("hello there", 1000), 100).unwrap();
        store.append("r", &line("general kenobi", 62_500), 200 * 86_400).unwrap();
        store.append("other", &line("elsewhere", 0), 200 * 86_400).unwrap();
        let lines = store.lines("r", Some("floor")).unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(
            webvtt(&lines),
            "WEBVTT\n\n1\n00:00:01.000 --> 00:00:01.900\nhello there\n\n2\n00:01:02.500 --> 00:01:03.400\ngeneral kenobi\n\n"
        );
        assert_eq!(text(&lines, false), "hello there\ngeneral kenobi\n");
        assert_eq!(store.purge(30, 200 * 86_400).unwrap(), 1, "the old line goes");
        assert_eq!(store.delete("r").unwrap(), 1);
        assert_eq!(store.lines("other", None).unwrap().len(), 1, "other rooms keep theirs");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn rooms_are_kept_with_their_channels_and_captions() {
        let dir = std::env::temp_dir().join(format!("tolk-rooms-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let channel =
            |l: &str| ChannelSpec { lang: l.into(), name: l.to_uppercase(), duck: Default::default() };
        {
            let store = Store::open(&dir.join("t.db")).unwrap();
            let spec =
                RoomSpec { id: "a".into(), floor_lang: Some("en".into()), channels: vec![channel("es")] };
            store.insert_room(&spec, 1).unwrap();
            assert!(store.insert_room(&spec, 2).is_err(), "one room per id");
            store.insert_room(&RoomSpec { id: "b".into(), floor_lang: None, channels: vec![] }, 3).unwrap();
            assert!(store.add_channel("a", &channel("fr")).unwrap());
            assert!(!store.add_channel("nope", &channel("fr")).unwrap());
            store.set_captions("a", None, true).unwrap();
            store.set_captions("a", Some("fr"), true).unwrap();
            store.set_captions("a", None, false).unwrap();
            let line = Line { source: "floor".into(), lang: None, start_ms: 0, end_ms: 1, text: "x".into() };
            store.append("b", &line, 3).unwrap();
            store.append("c", &line, 3).unwrap();
            store.insert_room(&RoomSpec { id: "c".into(), floor_lang: None, channels: vec![] }, 4).unwrap();
            assert!(store.lines("c", None).unwrap().is_empty(), "a new room with an old id starts empty");
            assert!(store.delete_room("c").unwrap());
        }
        let store = Store::open(&dir.join("t.db")).unwrap();
        let rooms = store.rooms().unwrap();
        assert_eq!(rooms.len(), 2);
        assert_eq!(rooms[0].spec.id, "a");
        let langs: Vec<_> = rooms[0].spec.channels.iter().map(|c| c.lang.as_str()).collect();
        assert_eq!(langs, ["es", "fr"]);
        assert_eq!(rooms[0].spec.channels[1].name, "FR");
        assert_eq!(rooms[0].captions, vec![Some("fr".to_string())]);
        assert!(store.delete_room("b").unwrap());
        assert!(!store.delete_room("b").unwrap());
        assert!(store.lines("b", None).unwrap().is_empty(), "its transcript goes with it");
        assert_eq!(store.rooms().unwrap().len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
