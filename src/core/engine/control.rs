//! Signalling requests after join: who may do what (select, relay, handover, mute, floor return), and who is told.
//!
//! Part of the engine (an `impl Engine` block): pure state changes, no IO. The booth's
//! own rules are in [`crate::core::room::booth`].

use super::{bad, Engine, Output};
use crate::core::media::codec::FRAME;
use crate::core::room::{BoothError, Input, PeerId, Stream};
use crate::protocol::{
    BoothWarning, ClientMsg, Error, ErrorCode, HandoverAction, NoticeKind, Role, ServerMsg, BALANCE_STANDARD,
    BALANCE_STEPS, BALANCE_STEP_DB,
};
use std::time::Instant;

/// A booth's refusal as the protocol says it.
fn refused(e: BoothError, lang: &str) -> Error {
    let code = match e {
        BoothError::NotMember | BoothError::NotLive => ErrorCode::Forbidden,
        BoothError::AlreadyLive | BoothError::NoPartner | BoothError::NoMicrophone => ErrorCode::Conflict,
    };
    match e {
        BoothError::NotMember => bad(code, format!("not a member of the {lang} booth")),
        _ => bad(code, e.to_string()),
    }
}

impl Engine {
    /// Any request after join. Returns the direct reply, if the request has one.
    pub fn handle_message(
        &mut self,
        now: Instant,
        peer: PeerId,
        msg: ClientMsg,
    ) -> Result<Option<ServerMsg>, Error> {
        let p = self
            .peers
            .get(&peer)
            .ok_or_else(|| bad(ErrorCode::NotJoined, "send a join message with a token first"))?;
        let role = p.role;
        let room = p.room.clone();
        let need = |want: Role, what: &str| {
            if role == want {
                Ok(())
            } else {
                Err(bad(ErrorCode::Forbidden, format!("only {}s can {what}", want.as_str())))
            }
        };
        match msg {
            ClientMsg::Join { .. } => Err(bad(ErrorCode::AlreadyJoined, "this session has already joined")),
            // The driver reads offers off the media thread and calls `handle_offer` itself.
            ClientMsg::Offer { sdp } => {
                let offer = super::Offer::parse(&sdp)?;
                self.handle_offer(now, peer, offer).map(|sdp| Some(ServerMsg::Answer { sdp }))
            }
            ClientMsg::Select { channel, only, balance } => {
                if role == Role::Interpreter {
                    return Err(bad(
                        ErrorCode::Forbidden,
                        "interpreters choose what they hear with an input message",
                    ));
                }
                let step = match (only, balance) {
                    (true, _) => BALANCE_STEPS - 1,
                    (false, Some(b)) if b < BALANCE_STEPS => b,
                    (false, Some(b)) => {
                        return Err(bad(
                            ErrorCode::BadMessage,
                            format!("balance {b}: from 0 (the original) to {}", BALANCE_STEPS - 1),
                        ))
                    }
                    (false, None) => BALANCE_STANDARD,
                };
                let stream = match channel.as_deref() {
                    None | Some("floor") => Stream::Floor,
                    Some(l) => {
                        self.channel_exists(&room, l)?;
                        let depth = self.rooms[&room].channel(l).expect("checked").duck.depth_db.min(0.0);
                        // Each step beside the standard moves the floor under the voice by
                        // BALANCE_STEP_DB; the ends are the original and the voice alone.
                        let floor_db = |steps: f32| (depth + steps * BALANCE_STEP_DB).clamp(-60.0, 0.0) as i8;
                        match step {
                            0 => Stream::Floor,
                            s if s == BALANCE_STEPS - 1 => Stream::Voice(l.to_string()),
                            BALANCE_STANDARD => Stream::Channel(l.to_string()),
                            s => Stream::Balance {
                                lang: l.to_string(),
                                floor_db: floor_db(f32::from(BALANCE_STANDARD) - f32::from(s)),
                            },
                        }
                    }
                };
                let channel = channel.filter(|c| c != "floor");
                let step = if channel.is_some() { step } else { BALANCE_STANDARD };
                let only = matches!(stream, Stream::Voice(_));
                self.peers.get_mut(&peer).expect("checked").listening = stream;
                self.restream(&room);
                Ok(Some(ServerMsg::Selected { channel, only, balance: step }))
            }
            ClientMsg::Input { channel } => {
                need(Role::Interpreter, "choose an input")?;
                let input = match channel.as_deref() {
                    None | Some("floor") => Input::Floor,
                    Some(l) => {
                        self.channel_exists(&room, l)?;
                        if self.peers[&peer].booth.as_deref() == Some(l) {
                            return Err(bad(
                                ErrorCode::Forbidden,
                                "an interpreter cannot relay its own channel",
                            ));
                        }
                        Input::Relay(l.to_string())
                    }
                };
                self.peers.get_mut(&peer).expect("checked").input = input;
                self.restream(&room);
                self.notify_peer_booth(peer, None);
                Ok(None)
            }
            ClientMsg::Publish { channel } => {
                need(Role::Interpreter, "switch their output channel")?;
                self.publish_into(peer, &room, channel)?;
                Ok(None)
            }
            ClientMsg::Handover { action, channel } => {
                need(Role::Interpreter, "use the booth controls")?;
                let lang =
                    channel.or_else(|| self.peers[&peer].booth.clone()).expect("interpreters sit in a booth");
                self.handover(peer, &room, &lang, action)?;
                Ok(None)
            }
            ClientMsg::Assign { channel, peer: member } => {
                need(Role::Host, "assign the live interpreter")?;
                self.channel_exists(&room, &channel)?;
                let c = self.rooms.get_mut(&room).and_then(|r| r.channel_mut(&channel)).expect("checked");
                match c.booth.take(member) {
                    Ok(()) => {}
                    Err(BoothError::NotMember) => {
                        return Err(bad(
                            ErrorCode::NotFound,
                            format!("no interpreter {member} in the {channel} booth"),
                        ))
                    }
                    Err(BoothError::NoMicrophone) => {
                        return Err(bad(ErrorCode::Conflict, "that interpreter has no microphone connected"))
                    }
                    Err(e) => return Err(refused(e, &channel)),
                }
                self.restream(&room);
                self.notify_booth(&room, &channel, None);
                Ok(None)
            }
            ClientMsg::Mute { muted } => {
                need(Role::Interpreter, "use the cough button")?;
                let lang = self.peers[&peer].booth.clone().expect("interpreters sit in a booth");
                let c = self.rooms.get_mut(&room).and_then(|r| r.channel_mut(&lang)).expect("booth exists");
                c.booth.member_mut(peer).expect("a member of its booth").muted = muted;
                self.notify_booth(&room, &lang, None);
                Ok(None)
            }
            ClientMsg::SlowDown => {
                need(Role::Interpreter, "ask the floor to slow down")?;
                let msg = ServerMsg::Notice {
                    kind: NoticeKind::SlowDown,
                    from: self.peers[&peer].name.clone(),
                    channel: self.peers[&peer].booth.clone(),
                };
                let to: Vec<PeerId> = self
                    .peers_of(&room)
                    .filter(|id| matches!(self.peers[id].role, Role::Host | Role::Floor))
                    .collect();
                for id in to {
                    self.out.push_back(Output::Event { peer: id, msg: msg.clone() });
                }
                Ok(None)
            }
            ClientMsg::Captions { source, on } => {
                need(Role::Host, "turn captions on or off")?;
                self.set_captions(&room, source, on)?;
                Ok(None)
            }
            ClientMsg::Record { on } => {
                need(Role::Host, "start or stop recording")?;
                self.set_recording(&room, on)?;
                Ok(None)
            }
            ClientMsg::Consent { record } => {
                self.consent(peer, record)?;
                Ok(None)
            }
            ClientMsg::Chat { thread, channel, text, big } => {
                self.chat(now, peer, thread, channel, &text, big)?;
                Ok(None)
            }
            ClientMsg::FloorReturn { channel } => {
                need(Role::Host, "return a channel to the floor")?;
                if let Some(l) = &channel {
                    self.channel_exists(&room, l)?;
                }
                self.rooms.get_mut(&room).expect("a peer's room outlives it").floor_return = channel;
                self.restream(&room);
                Ok(None)
            }
        }
    }

    pub(super) fn channel_exists(&self, room: &str, lang: &str) -> Result<(), Error> {
        match self.rooms.get(room).and_then(|r| r.channel(lang)) {
            Some(_) => Ok(()),
            None => Err(bad(ErrorCode::NotFound, format!("no channel {lang} in room {room}"))),
        }
    }

    fn handover(
        &mut self,
        peer: PeerId,
        room: &str,
        lang: &str,
        action: HandoverAction,
    ) -> Result<(), Error> {
        self.channel_exists(room, lang)?;
        let c = self.rooms.get_mut(room).and_then(|r| r.channel_mut(lang)).expect("checked");
        let done = match action {
            HandoverAction::Ready => c.booth.ready(peer),
            HandoverAction::Go => c.booth.go(peer).map(|_| ()),
            HandoverAction::Take => c.booth.take(peer),
        };
        done.map_err(|e| refused(e, lang))?;
        self.restream(room);
        self.notify_booth(room, lang, None);
        Ok(())
    }

    /// Moves a bidirectional interpreter (with its source) to another booth.
    fn publish_into(&mut self, peer: PeerId, room: &str, to: String) -> Result<(), Error> {
        let p = &self.peers[&peer];
        if !p.channels.contains(&to) {
            return Err(bad(
                ErrorCode::Forbidden,
                format!("this token publishes only into channel {}, not {to}", p.channels.join(", ")),
            ));
        }
        let from = p.booth.clone().expect("interpreters sit in a booth");
        if from == to {
            return Ok(());
        }
        self.channel_exists(room, &to)?;
        let r = self.rooms.get_mut(room).expect("a peer's room outlives it");
        if r.channel(&to).is_some_and(|c| c.booth.members.len() >= super::MAX_BOOTH) {
            return Err(bad(
                ErrorCode::Busy,
                format!("booth {to} is full: at most {} interpreters", super::MAX_BOOTH),
            ));
        }
        let was_live = r.channel(&from).is_some_and(|c| c.booth.is_live(peer));
        let member = r.channel_mut(&from).and_then(|c| c.booth.remove(peer)).expect("a member of its booth");
        r.channel_mut(&to).expect("checked").booth.join(member);
        let p = self.peers.get_mut(&peer).expect("checked");
        p.booth = Some(to.clone());
        if p.input == Input::Relay(to.clone()) {
            p.input = Input::Floor;
        }
        self.restream(room);
        let warning = was_live.then_some(BoothWarning::LiveMoved);
        self.notify_booth(room, &from, warning);
        self.notify_booth(room, &to, None);
        self.chat_history(peer);
        Ok(())
    }

    fn notify_peer_booth(&mut self, peer: PeerId, warning: Option<BoothWarning>) {
        let Some(p) = self.peers.get(&peer) else { return };
        if let Some(lang) = p.booth.clone() {
            let room = p.room.clone();
            self.notify_booth(&room, &lang, warning);
        }
    }

    /// Tells every member of a booth how it stands, once the commands of this turn are done:
    /// many changes to a booth in one turn (a crowd leaving at once) make one message per member.
    pub(super) fn notify_booth(&mut self, room: &str, lang: &str, warning: Option<BoothWarning>) {
        let due = self.booths_due.entry((room.to_string(), lang.to_string())).or_default();
        if warning.is_some() {
            *due = warning;
        }
    }

    /// Sends the booth messages [`Engine::notify_booth`] held back.
    pub(super) fn send_booths(&mut self) {
        for ((room, lang), warning) in std::mem::take(&mut self.booths_due) {
            self.send_booth(&room, &lang, warning);
        }
    }

    /// A booth's audience (listeners of its channel at any balance) and the members who relay a
    /// channel with nobody on air, as its members are told.
    pub(super) fn booth_news(&self, room: &str, lang: &str) -> (u32, Vec<PeerId>) {
        let Some(r) = self.rooms.get(room) else { return (0, Vec::new()) };
        let listeners = self
            .peers_of(room)
            .map(|id| &self.peers[&id])
            .filter(|p| p.receives() && p.role != Role::Interpreter)
            .filter(|p| matches!(&p.stream, Stream::Channel(l) | Stream::Voice(l) | Stream::Balance { lang: l, .. } if l == lang))
            .count() as u32;
        let silent = r
            .channel(lang)
            .map(|c| {
                c.booth
                    .members
                    .iter()
                    .filter(|m| {
                        self.peers.get(&m.peer).is_some_and(|p| match &p.input {
                            Input::Relay(x) => r.channel(x).is_none_or(|c| c.booth.live.is_none()),
                            Input::Floor => false,
                        })
                    })
                    .map(|m| m.peer)
                    .collect()
            })
            .unwrap_or_default();
        (listeners, silent)
    }

    fn send_booth(&mut self, room: &str, lang: &str, warning: Option<BoothWarning>) {
        let news = self.booth_news(room, lang);
        let Some(r) = self.rooms.get(room) else { return };
        let Some(c) = r.channel(lang) else { return };
        let media_time = (r.ticks + 1) * FRAME as u64;
        let recording = r.recording.is_some();
        let list = c.booth.infos();
        let listeners = news.0;
        let warning = warning.or_else(|| (c.booth.unmuted() > 1).then_some(BoothWarning::OpenMicrophones));
        for m in &c.booth.members {
            let Some(p) = self.peers.get(&m.peer) else { continue };
            let input = match &p.input {
                Input::Floor => None,
                Input::Relay(l) => Some(l.clone()),
            };
            self.out.push_back(Output::Event {
                peer: m.peer,
                msg: ServerMsg::Booth {
                    channel: lang.to_string(),
                    live: c.booth.is_live(m.peer),
                    input,
                    muted: m.muted,
                    members: list.clone(),
                    listeners,
                    warning: warning.map(|w| w.text().to_string()),
                    warning_code: warning,
                    media_time,
                    recording,
                    recorded: recording && c.booth.is_live(m.peer) && m.consent,
                    relay_silent: news.1.contains(&m.peer),
                },
            });
        }
        if let Some(c) = self.rooms.get_mut(room).and_then(|r| r.channel_mut(lang)) {
            c.told = news;
        }
        self.stale.insert(room.to_string());
    }
}
