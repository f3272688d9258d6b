//! Recording: a room's recorded streams, the interpreters' consent, and each tick's payloads handed out for writing.
//!
//! Part of the engine (an `impl Engine` block). Nothing is encoded for a recording: the floor
//! and every channel are encoded once a tick for whoever hears them, and a recorded room
//! simply counts as hearing them all. The files are written by the driver's recorder.

use super::{bad, Engine, Output};
use crate::core::room::{Payload, PeerId, Stream};
use crate::protocol::{Error, ErrorCode, NoticeKind, Role, ServerMsg};

/// What a recording asks its writer to do.
#[derive(Debug)]
pub enum Record {
    /// A take begins at the room's media time `ms` (a restart or a new start: new files).
    Start { room: String, ms: u64 },
    /// One tick (20 ms at media time `ms`) of every track: the floor, then each channel.
    Frame { room: String, ms: u64, tracks: Vec<(String, Option<Payload>)> },
    /// The take ends.
    Stop { room: String, ms: u64 },
}

impl Engine {
    /// Starts or stops recording a room. Starting a room already recorded changes nothing.
    pub fn set_recording(&mut self, room: &str, on: bool) -> Result<(), Error> {
        if on && !self.config.recording {
            return Err(bad(ErrorCode::Unavailable, "recording is turned off on this server"));
        }
        let r =
            self.rooms.get_mut(room).ok_or_else(|| bad(ErrorCode::NotFound, format!("no room {room}")))?;
        if r.recording.is_some() == on {
            return Ok(());
        }
        let ms = r.ticks * 20;
        r.recording = on.then_some(r.ticks);
        let lanes: Vec<String> = r.channels.iter().map(|c| c.lang.clone()).collect();
        let room = room.to_string();
        self.out.push_back(Output::Record(if on {
            Record::Start { room: room.clone(), ms }
        } else {
            Record::Stop { room: room.clone(), ms }
        }));
        self.restream(&room);
        for lang in lanes {
            self.notify_booth(&room, &lang, None);
        }
        Ok(())
    }

    /// The writer could not go on (a full disk): the recording stops and the hosts are told why.
    pub fn recording_failed(&mut self, room: &str, why: &str) {
        let Some(r) = self.rooms.get_mut(room) else { return };
        if r.recording.take().is_none() {
            return;
        }
        let ms = r.ticks * 20;
        let lanes: Vec<String> = r.channels.iter().map(|c| c.lang.clone()).collect();
        // The writer closes the take if it still has it open (it had fallen behind).
        self.out.push_back(Output::Record(Record::Stop { room: room.to_string(), ms }));
        self.restream(room);
        for lang in lanes {
            self.notify_booth(room, &lang, None);
        }
        let msg =
            ServerMsg::Notice { kind: NoticeKind::RecordingStopped, from: why.to_string(), channel: None };
        let hosts: Vec<PeerId> = self.peers_of(room).filter(|id| self.peers[id].role == Role::Host).collect();
        for peer in hosts {
            self.out.push_back(Output::Event { peer, msg: msg.clone() });
        }
    }

    /// An interpreter says whether its voice may be recorded; its booth and the hosts see it.
    pub(super) fn consent(&mut self, peer: PeerId, record: bool) -> Result<(), Error> {
        let p = &self.peers[&peer];
        if p.role != Role::Interpreter {
            return Err(bad(
                ErrorCode::Forbidden,
                "only interpreters give or withhold consent to be recorded",
            ));
        }
        let (room, lang) = (p.room.clone(), p.booth.clone().expect("interpreters sit in a booth"));
        let c =
            self.rooms.get_mut(&room).and_then(|r| r.channel_mut(&lang)).expect("a member's booth exists");
        c.booth.member_mut(peer).expect("a member of its booth").consent = record;
        self.notify_booth(&room, &lang, None);
        Ok(())
    }

    /// The streams a recorded room encodes whether or not anyone hears them.
    pub(super) fn recorded_streams(&self, room: &str) -> Vec<Stream> {
        let Some(r) = self.rooms.get(room).filter(|r| r.recording.is_some()) else { return Vec::new() };
        std::iter::once(Stream::Floor)
            .chain(r.channels.iter().map(|c| Stream::Channel(c.lang.clone())))
            .collect()
    }
}
