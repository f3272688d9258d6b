//! The signalling protocol: JSON messages over one WebSocket per participant (the wire contract).
//!
//! Every message is a JSON object with a `type` field. A session is:
//!
//! 1. client `{"type":"join","token":"<jwt>"}`; an interpreter may add
//!    `"publish":"es"` (defaults to its token's channel). Server answers
//!    `{"type":"joined",...}` with the room, the role and the channel list.
//!    A page that reconnects (after a restart, a dropped WebSocket or a dead
//!    media path) joins again with the same token and `"resume":"<its key>"`:
//!    its old session, if the server still holds it, is replaced (and told
//!    `ended`), so a returning interpreter finds the air free unless a partner
//!    took over meanwhile.
//! 2. client `{"type":"offer","sdp":"v=0..."}`; server `{"type":"answer","sdp":"..."}`.
//!    Floor speakers offer one send-only audio track; interpreters one
//!    send-receive track (they send their voice, they hear the floor); listeners
//!    and hosts one receive-only track. ICE is lite on the server, every
//!    candidate is in the answer: no trickle.
//! 3. client `{"type":"select","channel":"es"}` (or `null` for the Floor;
//!    `"only":true` for the interpretation without the original, or `"balance"`
//!    0-4 from the original only to the interpretation only, 2 as mixed): the
//!    listener's one track carries that stream from the next tick; server
//!    `{"type":"selected","channel":"es","only":false,"balance":2}`.
//! 4. server `{"type":"state",...}` whenever the room changes (channels, who
//!    is live, booth members, listener counts), at most every 250 ms.
//! 5. Booth controls, interpreters only: `input` (Floor or relay of a
//!    channel), `publish` (switch the output channel, for an interpreter
//!    assigned to several), `handover` (`ready`, `go`, `take`), `mute`
//!    (cough button), `slow_down`. Hosts: `assign` (put a booth member on
//!    air), `floor_return` (let a channel be heard on the floor). Every
//!    member of a booth gets `{"type":"booth",...}` whenever it changes: who
//!    is live, muted, ready, what the recipient hears, the audience, warnings.
//!    Hosts and floor speakers get `{"type":"notice","kind":"slow_down",...}`.
//!    Hosts: `captions` (`{"source":null,"on":true}` for the floor, or a
//!    channel). While captions are on, `state` says so for every participant,
//!    and `{"type":"caption",...}` goes to the listeners of that source
//!    (and, for the floor, to every interpreter).
//! 6. Booth chat, interpreters and hosts only: client `{"type":"chat","thread":"booth",
//!    "text":"..."}` reaches the writer's booth partners and nobody else; `"thread":"hosts"`
//!    reaches the booth and the room's hosts (a host names the booth in `channel`, or
//!    writes to every booth with `null`). Recipients get `{"type":"chat","messages":[...]}`;
//!    after a join, the last lines of the person's threads come as one `chat` with
//!    `"past":true`. Lines live in memory for the room's life: never on disk, never in
//!    transcripts. At most [`MAX_CHAT`] bytes (`too_large`), 5 at once then one a second
//!    (`rate_limited`).
//! 7. Recording: a host sends `{"type":"record","on":true}` (or the API); while it runs,
//!    `state` says `"recording":true` to everyone in the room. An interpreter answers
//!    `{"type":"consent","record":true}` (or `false`): a booth whose live interpreter has not
//!    agreed is recorded as the floor for that stretch; `booth` says `recorded` (this person's
//!    voice is being recorded now) and each member's `consent`. A recording the server had to
//!    stop (a full disk) is told to hosts as `{"type":"notice","kind":"recording_stopped",...}`.
//! 8. server `{"type":"error","code":"...","message":"..."}` for any request it
//!    refuses; the session stays open unless the error says otherwise.
//!
//! Limits: one message is at most [`MAX_MESSAGE`] bytes; a session that has not joined
//! 5 s after it opened is closed (with a `not_joined` error first); a session may send
//! 40 messages at once and 10 a second after that (beyond, `rate_limited`); an invitation
//! link holds 4 sessions (interpreter, floor), 8 (host) or `listeners_per_link` (listener).

use serde::{Deserialize, Serialize};

/// Largest signalling message accepted: an SDP offer from a browser is 3-6 KiB.
pub const MAX_MESSAGE: usize = 64 * 1024;

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMsg {
    Join {
        token: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        publish: Option<String>,
        /// A random key (at most 64 bytes) the page keeps while it is open: joining again with
        /// it replaces this person's earlier session, which gets `ended`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resume: Option<String>,
    },
    Offer {
        sdp: String,
    },
    /// Listener or host: hear the Floor (`null`) or a channel; `only` mutes the original.
    Select {
        channel: Option<String>,
        #[serde(default)]
        only: bool,
        /// The balance of a channel: 0 the original only .. [`BALANCE_STANDARD`] the channel as
        /// mixed .. [`BALANCE_STEPS`] - 1 the interpretation only (the same as `only`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        balance: Option<u8>,
    },
    /// Interpreter: hear the Floor (`null`) or relay another channel.
    Input {
        channel: Option<String>,
    },
    /// Interpreter assigned to several channels: send the voice into this one.
    Publish {
        channel: String,
    },
    /// Interpreter: booth handover (`channel` defaults to the interpreter's booth).
    Handover {
        action: HandoverAction,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        channel: Option<String>,
    },
    /// Host: put a booth member on air.
    Assign {
        channel: String,
        peer: u64,
    },
    /// Interpreter: cough button (held) or mute toggle.
    Mute {
        muted: bool,
    },
    /// Interpreter: ask the floor speaker to slow down.
    SlowDown,
    /// Host: let a channel be heard on the floor (`null` ends it).
    FloorReturn {
        channel: Option<String>,
    },
    /// Host: captions (and their transcript) on or off for the floor (`null`) or a channel.
    Captions {
        source: Option<String>,
        on: bool,
    },
    /// Interpreter or host: a booth chat message. `thread` `booth` goes to the interpreter's
    /// booth partners only; `hosts` to its booth and the room's hosts. A host writes to one
    /// booth's host line (`channel`), or to every booth at once (`channel` null). `big`: a
    /// number or a term, shown large.
    Chat {
        thread: ChatThread,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        channel: Option<String>,
        text: String,
        #[serde(default)]
        big: bool,
    },
    /// Hosts: start or stop recording the room.
    Record {
        on: bool,
    },
    /// Interpreters: whether their voice may be recorded.
    Consent {
        record: bool,
    },
}

/// Which booth chat thread a message is in.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ChatThread {
    /// The interpreters of one booth, nobody else.
    Booth,
    /// A booth and the room's hosts (the technician line).
    Hosts,
}

/// Longest booth chat message, in bytes.
pub const MAX_CHAT: usize = 500;

/// Balance steps a listener of a channel can choose: the original only, more original, the
/// channel as mixed, more interpretation, the interpretation only.
pub const BALANCE_STEPS: u8 = 5;
/// The channel as its ducking mixes it.
pub const BALANCE_STANDARD: u8 = 2;
/// How much a step beside the standard moves the floor under the interpreter (dB).
pub const BALANCE_STEP_DB: f32 = 9.0;

fn standard_balance() -> u8 {
    BALANCE_STANDARD
}

/// One booth chat message as members and hosts see it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ChatLine {
    /// Increasing within the room: orders lines, and tells a line seen twice.
    pub id: u64,
    pub thread: ChatThread,
    /// The booth; `null` for a host's message to every booth.
    pub channel: Option<String>,
    /// Display name and session id of the writer.
    pub from: String,
    pub from_id: u64,
    /// Whether a host wrote it.
    pub host: bool,
    pub text: String,
    #[serde(default)]
    pub big: bool,
    /// The room's media time when it was written, in ms.
    pub at_ms: u64,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum HandoverAction {
    /// The passive partner is ready to take over.
    Ready,
    /// The live interpreter hands over (to a ready partner, else the next one).
    Go,
    /// The passive partner takes over now.
    Take,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    Joined {
        room: String,
        /// This session's id, as booth member lists name it.
        id: u64,
        role: Role,
        name: String,
        /// The channel an interpreter publishes into.
        channel: Option<String>,
        /// Every channel this interpreter may publish into.
        #[serde(default)]
        publish: Vec<String>,
        floor_lang: Option<String>,
        channels: Vec<ChannelInfo>,
        /// Relays the page may use (`RTCPeerConnection`'s `iceServers`), with short-lived credentials.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        ice_servers: Vec<IceServer>,
    },
    Answer {
        sdp: String,
    },
    Selected {
        channel: Option<String>,
        #[serde(default)]
        only: bool,
        #[serde(default = "standard_balance")]
        balance: u8,
    },
    State {
        floor: FloorInfo,
        channels: Vec<ChannelInfo>,
        /// The room is being recorded.
        #[serde(default)]
        recording: bool,
    },
    /// To each member of a booth whenever it changes.
    Booth {
        channel: String,
        /// Whether the recipient is on air.
        live: bool,
        /// What the recipient hears: `null` for the Floor, else the relayed channel.
        input: Option<String>,
        muted: bool,
        members: Vec<MemberInfo>,
        /// Listeners on this channel now (the audience indicator).
        listeners: u32,
        warning: Option<String>,
        /// The room's media time (48 kHz, the RTP timestamp of the streams sent
        /// down) of the first frame mixed in this state.
        media_time: u64,
        /// The room is being recorded.
        #[serde(default)]
        recording: bool,
        /// This person's voice goes into the recording now (recording, live, consented).
        #[serde(default)]
        recorded: bool,
        /// This person relays a channel with nobody on air: what they hear is silence.
        #[serde(default)]
        relay_silent: bool,
        /// What `warning` says, as a code pages translate.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        warning_code: Option<BoothWarning>,
    },
    /// Speech recognised in what the recipient hears (listeners) or on the floor (interpreters).
    Caption {
        /// `null` for the floor, else the channel.
        source: Option<String>,
        lang: Option<String>,
        text: String,
        /// Final captions never change; a partial replaces the previous partial.
        #[serde(rename = "final")]
        is_final: bool,
        /// Media time (ms) of the words, and of the moment the caption went out.
        start_ms: u64,
        end_ms: u64,
        at_ms: u64,
    },
    /// A request for attention: "slow down" to the host and floor speakers.
    Notice {
        kind: NoticeKind,
        from: String,
        channel: Option<String>,
    },
    /// Booth chat lines: one new line (`past` false), or the last ones of this person's threads
    /// after a join (`past` true: they replace what the page shows).
    Chat {
        messages: Vec<ChatLine>,
        #[serde(default)]
        past: bool,
    },
    Error {
        code: ErrorCode,
        message: String,
    },
}

/// A STUN or TURN server as `RTCPeerConnection` takes it.
/// Why a booth is warned.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum BoothWarning {
    /// The live interpreter's connection dropped: the floor is on air until a partner takes over.
    LiveDisconnected,
    /// The live interpreter moved to another channel: the floor is on air.
    LiveMoved,
    /// More than one microphone in the booth is open.
    OpenMicrophones,
}

impl BoothWarning {
    /// The warning in English (the `warning` field, for clients without catalogues).
    pub fn text(self) -> &'static str {
        match self {
            BoothWarning::LiveDisconnected => {
                "the live interpreter disconnected: the floor is on air until a partner takes over"
            }
            BoothWarning::LiveMoved => "the live interpreter moved to another channel: the floor is on air",
            BoothWarning::OpenMicrophones => {
                "more than one microphone in this booth is open: mute the one not on air"
            }
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    /// An interpreter asks the floor to slow down (to hosts and floor speakers).
    SlowDown,
    /// The recogniser fell behind and skipped audio to stay live (to hosts; `from` says how much).
    CaptionsBehind,
    /// The plain RTP tap feeding the floor took a new sender (to hosts; `from` is its address).
    TapSender,
    /// The server stopped a recording (to hosts; `from` says why: `disk_full`, `not_allowed` (no
    /// permission to write), `write_failed`).
    RecordingStopped,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct ChannelInfo {
    pub lang: String,
    pub name: String,
    /// Display name of the live interpreter, if any.
    pub live: Option<String>,
    pub listeners: u32,
    #[serde(default)]
    pub members: Vec<MemberInfo>,
    /// Whether this channel is being captioned (and transcribed).
    #[serde(default)]
    pub captions: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct MemberInfo {
    pub id: u64,
    pub name: String,
    pub live: bool,
    pub muted: bool,
    pub ready: bool,
    /// Whether the member's microphone is connected.
    pub publishing: bool,
    /// Its connection dropped; its place is kept for a while for it to come back to.
    #[serde(default)]
    pub away: bool,
    /// Agreed to be recorded.
    #[serde(default)]
    pub consent: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct FloorInfo {
    pub sources: u32,
    pub listeners: u32,
    /// The channel the host returned to the floor, if any.
    #[serde(default)]
    pub returned: Option<String>,
    /// Whether the floor is being captioned (and transcribed).
    #[serde(default)]
    pub captions: bool,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Host,
    Floor,
    Interpreter,
    Listener,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Host => "host",
            Role::Floor => "floor",
            Role::Interpreter => "interpreter",
            Role::Listener => "listener",
        }
    }
}

/// Why a request was refused: stable codes for programs, with a message for people.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not a message of this protocol, or a field out of range.
    BadMessage,
    /// Over [`MAX_MESSAGE`].
    TooLarge,
    /// The invitation token is not valid (or names no channel where one is needed).
    BadToken,
    TokenExpired,
    /// The invitation was revoked by its room's host.
    Revoked,
    /// The role does not allow it.
    Forbidden,
    /// No such room, channel, member or session.
    NotFound,
    /// Join first (or join again: the media connection was lost).
    NotJoined,
    /// This session has already joined.
    AlreadyJoined,
    /// A room or channel of that name already exists.
    Exists,
    /// Not possible in the present state (no microphone yet, already live, nobody to hand over to).
    Conflict,
    /// The SDP offer is unreadable or asks for what tolk does not do.
    BadSdp,
    /// The server is full for now (or the invitation link has all the sessions it may): try again later.
    Busy,
    /// Too many requests from this session or invitation link: slow down.
    RateLimited,
    /// The server does not offer this (captions without a speech model; an engine not running).
    Unavailable,
    /// This session is over and must not rejoin by itself: its room was deleted, or the same
    /// person joined again from another connection. The server closes the WebSocket after it.
    Ended,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    pub code: ErrorCode,
    pub message: String,
}

impl Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Error { code, message: message.into() }
    }

    pub fn to_msg(&self) -> ServerMsg {
        ServerMsg::Error { code: self.code, message: self.message.clone() }
    }
}

/// Parses one client message, with an error that says what was wrong.
pub fn parse(text: &str) -> Result<ClientMsg, Error> {
    if text.len() > MAX_MESSAGE {
        return Err(Error::new(
            ErrorCode::TooLarge,
            format!("message of {} bytes exceeds the limit of {MAX_MESSAGE}", text.len()),
        ));
    }
    serde_json::from_str(text).map_err(|e| Error::new(ErrorCode::BadMessage, format!("bad message: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_explains_errors() {
        assert_eq!(
            parse(r#"{"type":"select","channel":"es"}"#).unwrap(),
            ClientMsg::Select { channel: Some("es".into()), only: false, balance: None }
        );
        assert_eq!(parse(r#"{"type":"slow_down"}"#).unwrap(), ClientMsg::SlowDown);
        assert_eq!(
            parse(r#"{"type":"handover","action":"take"}"#).unwrap(),
            ClientMsg::Handover { action: HandoverAction::Take, channel: None }
        );
        let e = parse(r#"{"type":"dance"}"#).unwrap_err();
        assert_eq!(e.code, ErrorCode::BadMessage);
        assert!(e.message.contains("unknown variant `dance`"), "{}", e.message);
        assert_eq!(parse("{nope").unwrap_err().code, ErrorCode::BadMessage);
        assert_eq!(parse(r#"{"type":"slow_down"}"#).unwrap(), ClientMsg::SlowDown);
        assert_eq!(
            parse(r#"{"type":"handover","action":"take"}"#).unwrap(),
            ClientMsg::Handover { action: HandoverAction::Take, channel: None }
        );
        assert_eq!(parse(&"x".repeat(MAX_MESSAGE + 1)).unwrap_err().code, ErrorCode::TooLarge);
    }
}
