//! Booth chat: who may write to which thread, who receives a line, the history a member gets when it joins, and a rate per session.
//!
//! Part of the engine (an `impl Engine` block). Lines live in each channel's
//! [`crate::core::room::chat::Chat`] for the room's life; they are never written to disk,
//! transcribed or mixed.

use super::{bad, Engine, Output};
use crate::core::room::PeerId;
use crate::protocol::{ChatLine, ChatThread, Error, ErrorCode, Role, ServerMsg, MAX_CHAT};
use std::time::Instant;

/// Chat lines a session may send at once, and then one per this many seconds.
const CHAT_BURST: f64 = 5.0;
const CHAT_EVERY_SECS: f64 = 1.0;

/// A session's allowance of chat lines (a token bucket on the engine's clock).
#[derive(Debug, Clone, Copy)]
pub(super) struct ChatAllowance {
    tokens: f64,
    at: Instant,
}

impl ChatAllowance {
    pub(super) fn new(now: Instant) -> Self {
        ChatAllowance { tokens: CHAT_BURST, at: now }
    }

    fn take(&mut self, now: Instant) -> bool {
        let refill = now.saturating_duration_since(self.at).as_secs_f64() / CHAT_EVERY_SECS;
        self.tokens = (self.tokens + refill).min(CHAT_BURST);
        self.at = now;
        let ok = self.tokens >= 1.0;
        if ok {
            self.tokens -= 1.0;
        }
        ok
    }
}

/// The text as it is kept: control characters other than line breaks and tabs removed, trimmed.
fn clean(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .collect::<String>()
        .trim()
        .to_string()
}

impl Engine {
    /// A booth chat line from `peer`.
    pub(super) fn chat(
        &mut self,
        now: Instant,
        peer: PeerId,
        thread: ChatThread,
        channel: Option<String>,
        text: &str,
        big: bool,
    ) -> Result<(), Error> {
        if text.len() > MAX_CHAT {
            return Err(bad(ErrorCode::TooLarge, format!("a chat message is at most {MAX_CHAT} bytes")));
        }
        let text = clean(text);
        if text.is_empty() {
            return Err(bad(ErrorCode::BadMessage, "the chat message is empty"));
        }
        let p = &self.peers[&peer];
        let (room, role, from) = (p.room.clone(), p.role, p.name.clone());
        // Which booth the line belongs to (`None`: a host's line to every booth).
        let booth = match (role, thread) {
            (Role::Interpreter, _) => {
                let own = p.booth.clone().expect("interpreters sit in a booth");
                if channel.as_ref().is_some_and(|c| *c != own) {
                    return Err(bad(
                        ErrorCode::Forbidden,
                        format!("you can write only to your own booth ({own})"),
                    ));
                }
                Some(own)
            }
            (Role::Host, ChatThread::Hosts) => {
                if let Some(l) = &channel {
                    self.channel_exists(&room, l)?;
                }
                channel
            }
            (Role::Host, ChatThread::Booth) => {
                return Err(bad(
                    ErrorCode::Forbidden,
                    "a booth's own thread is for its interpreters: write to its host line (thread hosts)",
                ))
            }
            _ => return Err(bad(ErrorCode::Forbidden, "booth chat is for interpreters and hosts")),
        };
        if !self.peers.get_mut(&peer).expect("checked").chat.take(now) {
            return Err(bad(
                ErrorCode::RateLimited,
                format!("at most {CHAT_BURST} chat messages at once, then one a second: wait a moment"),
            ));
        }
        let r = self.rooms.get_mut(&room).expect("a peer's room outlives it");
        r.chat_lines += 1;
        let line = ChatLine {
            id: r.chat_lines,
            thread,
            channel: booth.clone(),
            from,
            from_id: peer,
            host: role == Role::Host,
            text,
            big,
            at_ms: r.ticks * 20,
        };
        match &booth {
            Some(l) => r.channel_mut(l).expect("checked").chat.keep(line.clone()),
            None => {
                for c in &mut r.channels {
                    c.chat.keep(line.clone());
                }
            }
        }
        let to: Vec<PeerId> = self
            .peers_of(&room)
            .filter(|id| {
                let p = &self.peers[id];
                let member = p.role == Role::Interpreter && (booth.is_none() || p.booth == booth);
                member || (thread == ChatThread::Hosts && p.role == Role::Host)
            })
            .collect();
        let msg = ServerMsg::Chat { messages: vec![line], past: false };
        for id in to {
            self.out.push_back(Output::Event { peer: id, msg: msg.clone() });
        }
        Ok(())
    }

    /// The last lines of `peer`'s threads (its booth's, or every booth's host line for a host),
    /// sent after it joins or moves booth; nothing when there are none.
    pub(super) fn chat_history(&mut self, peer: PeerId) {
        let Some(p) = self.peers.get(&peer) else { return };
        let Some(r) = self.rooms.get(&p.room) else { return };
        let mut lines: Vec<ChatLine> = match (p.role, &p.booth) {
            (Role::Interpreter, Some(l)) => r
                .channel(l)
                .map(|c| c.chat.booth().chain(c.chat.hosts()).cloned().collect())
                .unwrap_or_default(),
            (Role::Host, _) => r.channels.iter().flat_map(|c| c.chat.hosts()).cloned().collect(),
            _ => return,
        };
        lines.sort_by_key(|l| l.id);
        // A line to every booth is kept in each of them.
        lines.dedup_by_key(|l| l.id);
        if !lines.is_empty() {
            self.out.push_back(Output::Event { peer, msg: ServerMsg::Chat { messages: lines, past: true } });
        }
    }
}
