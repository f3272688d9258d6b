//! One peer (a signalling session, or a WHIP/WHEP resource): what it is in its room, and its connection life as one enum.
//!
//! The link goes `None` (joined, no media) -> `Rtc` (offered: str0m runs ICE, DTLS and the
//! media it sends; connected once the downstream sender has its keys) -> `Settled` (a
//! listener past setup: str0m's session dropped, consent checks answered here). When the
//! media dies it goes back to `None` in one assignment; nothing is reset field by field.

use crate::core::room::{Input, PeerId, Stream};
use crate::core::wire::consent::Consent;
use crate::core::wire::rtp::RED_INNER_PT;
use crate::core::wire::srtp::{KeySlot, Sender, Track};
use crate::protocol::Role;
use std::net::SocketAddr;
use std::time::Instant;
use str0m::format::Codec;
use str0m::media::Mid;
use str0m::Rtc;

pub(crate) struct Peer {
    pub(super) room: String,
    pub(super) role: Role,
    pub(super) name: String,
    /// Channels an interpreter may publish into; the first is its own.
    pub(super) channels: Vec<String>,
    /// The booth an interpreter sits in (its output channel).
    pub(super) booth: Option<String>,
    /// What an interpreter hears.
    pub(super) input: Input,
    /// What a listener or host chose to hear.
    pub(super) listening: Stream,
    /// What this peer's one downstream track carries now (derived from the above).
    pub(super) stream: Stream,
    /// When a datagram from this peer last arrived (or its media was set up).
    pub(super) heard: Instant,
    /// Queued for polling in the drain loop.
    pub(super) dirty: bool,
    /// The key a rejoining session of the same person brings ([`super::Admission::resume`]).
    pub(super) resume: Option<String>,
    /// The id of the invitation it joined with.
    pub(super) invitation: String,
    /// How many booth chat lines it may still send.
    pub(super) chat: super::chat::ChatAllowance,
    pub(super) link: Link,
}

/// Where a peer's connection stands.
pub(super) enum Link {
    /// Joined, no media (not offered yet, or its media died).
    None,
    /// Offered and answered: str0m's session, boxed (an `Rtc` is about 10 KiB).
    Rtc(Box<RtcLink>),
    /// A listener past setup: it costs its keys, its address and its consent answers.
    Settled(Settled),
}

pub(super) struct RtcLink {
    pub(super) rtc: Rtc,
    /// str0m's next deadline, as queued in the engine's timer heap.
    pub(super) timeout: Option<Instant>,
    /// The downstream track (what the peer receives).
    pub(super) down: Option<Mid>,
    /// The upstream track (what the peer sends).
    pub(super) up: Option<Mid>,
    /// Filled with the SRTP keying material when the DTLS handshake completes.
    pub(super) keys: Option<KeySlot>,
    /// Writes the downstream packets once the keys are known: the link is then connected.
    pub(super) sender: Option<Sender>,
    /// Where the peer's DTLS and RTCP come from: its selected candidate pair, where its media goes.
    pub(super) to: Option<SocketAddr>,
}

pub(super) struct Settled {
    pub(super) consent: Consent,
    pub(super) sender: Sender,
    pub(super) to: SocketAddr,
}

impl Peer {
    pub(super) fn new(room: String, role: Role, name: String, listening: Stream, now: Instant) -> Peer {
        Peer {
            room,
            role,
            name,
            channels: Vec::new(),
            booth: None,
            resume: None,
            invitation: String::new(),
            chat: super::chat::ChatAllowance::new(now),
            input: Input::Floor,
            stream: listening.clone(),
            listening,
            heard: now,
            dirty: false,
            link: Link::None,
        }
    }

    /// Whether the peer has a downstream track (listener counts, fan-out).
    pub(super) fn receives(&self) -> bool {
        match &self.link {
            Link::None => false,
            Link::Rtc(l) => l.down.is_some(),
            Link::Settled(_) => true,
        }
    }

    pub(super) fn has_media(&self) -> bool {
        !matches!(self.link, Link::None)
    }

    pub(super) fn is_settled(&self) -> bool {
        matches!(self.link, Link::Settled(_))
    }

    pub(super) fn rtc_mut(&mut self) -> Option<&mut RtcLink> {
        match &mut self.link {
            Link::Rtc(l) => Some(l),
            _ => None,
        }
    }

    /// A peer that only listens settles once its packets flow and it has shown, with a
    /// receiver report (SRTCP, so it holds the keys and our last DTLS flight arrived), that
    /// it needs nothing more from the handshake.
    /// Returns the address it settled on, when it did.
    pub(super) fn settle_if_done(&mut self, datagram: &[u8]) -> Option<SocketAddr> {
        let rtcp = matches!(datagram, [128..=191, 192..=223, ..]);
        let ready = match &self.link {
            Link::Rtc(l) => rtcp && l.up.is_none() && l.sender.is_some() && l.to.is_some(),
            _ => false,
        };
        if !ready {
            return None;
        }
        let Link::Rtc(l) = std::mem::replace(&mut self.link, Link::None) else {
            unreachable!("matched above")
        };
        let RtcLink { mut rtc, sender, to, .. } = *l;
        let creds = rtc.direct_api().local_ice_credentials();
        let to = to.expect("checked above");
        self.link = Link::Settled(Settled {
            consent: Consent::new(&creds.ufrag, &creds.pass),
            sender: sender.expect("checked above"),
            to,
        });
        Some(to)
    }

    /// The sender and destination of this peer's downstream packets, starting the sender
    /// once DTLS has exported the keys.
    pub(super) fn downstream(&mut self, id: PeerId) -> Option<(&mut Sender, SocketAddr)> {
        match &mut self.link {
            Link::None => None,
            Link::Settled(s) => Some((&mut s.sender, s.to)),
            Link::Rtc(l) => {
                let to = l.to?;
                if l.sender.is_none() {
                    l.sender = l.start_sender(id);
                }
                Some((l.sender.as_mut()?, to))
            }
        }
    }
}

impl RtcLink {
    pub(super) fn new(rtc: Rtc, keys: Option<KeySlot>) -> RtcLink {
        RtcLink { rtc, timeout: None, down: None, up: None, keys, sender: None, to: None }
    }

    /// Our side of the downstream track, once DTLS has exported the keys: the SSRC str0m put
    /// in the answer, the peer's Opus payload type and MID extension id.
    fn start_sender(&mut self, id: PeerId) -> Option<Sender> {
        let material = self.keys.as_ref()?.get()?;
        let mid = self.down?;
        let rtc = &mut self.rtc;
        if !rtc.is_connected() {
            return None;
        }
        let opus = *rtc.writer(mid)?.payload_params().find(|pp| pp.spec().codec == Codec::Opus)?;
        let ext = rtc.media(mid)?.remote_extmap().id_of(str0m::rtp::Extension::RtpMid);
        let ssrc = *rtc.direct_api().stream_tx_by_mid(mid, None)?.ssrc();
        // RED when the peer asked for it and numbers Opus as the shared RED payloads do.
        let red = opus.red().filter(|_| *opus.pt() == RED_INNER_PT);
        let mut track = Track::with_mid(ssrc, *red.unwrap_or(opus.pt()), ext.map(|e| (e, &*mid)));
        track.red = red.is_some();
        // A sequence start that differs per peer (RFC 3550 wants it unpredictable; SRTP
        // makes that moot), low enough that the rollover count stays 0 for 20 minutes.
        let sender = Sender::new(material, track, (id.wrapping_mul(0x9E37_79B9) >> 17) as u16);
        if sender.is_some() {
            // The keys are in the sender now; the slot is no longer needed.
            self.keys = None;
        }
        sender
    }
}
