//! A channel's Booth: its interpreters, who is live, and the handover rules (ready, go, take, assign, moving a member).
//!
//! Pure rules over the members: no peers, no messages. The engine asks, the booth
//! answers with what changed or why it refuses, and the engine tells people.

use super::source::Source;
use super::PeerId;
use crate::protocol::MemberInfo;
use std::time::Instant;

/// An interpreter in a booth, with its own source so that a handover is instant.
pub struct Member {
    pub peer: PeerId,
    pub name: String,
    /// Present once the interpreter publishes.
    pub source: Option<Source>,
    /// Cough button or mute toggle: nothing of this member goes on air.
    pub muted: bool,
    /// Asked to take over ("ready").
    pub ready: bool,
    /// The key its page rejoins with ([`crate::core::engine::Admission::resume`]).
    pub resume: Option<String>,
    /// Its connection dropped: its place is kept until then, for it to come back to.
    pub away_until: Option<Instant>,
    /// Agreed that its voice may be recorded (asked by its console when a recording runs).
    pub consent: bool,
}

impl Member {
    pub fn new(peer: PeerId, name: String) -> Member {
        Member {
            peer,
            name,
            source: None,
            muted: false,
            ready: false,
            resume: None,
            away_until: None,
            consent: false,
        }
    }
}

/// Why the booth refuses a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BoothError {
    #[error("not a member of this booth")]
    NotMember,
    #[error("you are already live")]
    AlreadyLive,
    #[error("only the live interpreter can hand over")]
    NotLive,
    #[error("no booth partner with a microphone to hand over to")]
    NoPartner,
    #[error("connect the microphone before going on air")]
    NoMicrophone,
}

/// The interpreters of one channel; at most one is live.
#[derive(Default)]
pub struct Booth {
    /// In arrival order.
    pub members: Vec<Member>,
    /// The member on air; `None` falls back to the floor at full level.
    pub live: Option<PeerId>,
}

impl Booth {
    pub fn member(&self, peer: PeerId) -> Option<&Member> {
        self.members.iter().find(|m| m.peer == peer)
    }

    pub fn member_mut(&mut self, peer: PeerId) -> Option<&mut Member> {
        self.members.iter_mut().find(|m| m.peer == peer)
    }

    pub fn is_live(&self, peer: PeerId) -> bool {
        self.live == Some(peer)
    }

    /// Puts `peer` on air (a handover); everyone's "ready" flag clears.
    pub fn set_live(&mut self, peer: Option<PeerId>) {
        self.live = peer;
        for m in &mut self.members {
            m.ready = false;
        }
    }

    /// A member arrives (a new interpreter, or one moving in from another booth):
    /// one that publishes goes on air when nobody is.
    pub fn join(&mut self, member: Member) {
        let on_air = member.source.is_some() && self.live.is_none();
        let peer = member.peer;
        self.members.push(member);
        if on_air {
            self.set_live(Some(peer));
        }
    }

    /// A member's microphone connected; the first in an empty booth goes on air.
    pub fn publish(&mut self, peer: PeerId, source: Source) -> Result<(), BoothError> {
        self.member_mut(peer).ok_or(BoothError::NotMember)?.source = Some(source);
        if self.live.is_none() {
            self.set_live(Some(peer));
        }
        Ok(())
    }

    /// A member's microphone went away (its connection died); returns whether it was live.
    pub fn unpublish(&mut self, peer: PeerId) -> Option<bool> {
        let live = self.is_live(peer);
        self.member_mut(peer)?.source = None;
        if live {
            self.set_live(None);
        }
        Some(live)
    }

    /// A member's connection dropped: its microphone goes, its place is kept until `until` for
    /// it to come back to (a page that reconnects). Returns whether it was live (the floor is
    /// then on air until someone takes over, or it comes back first).
    pub fn away(&mut self, peer: PeerId, until: Instant) -> Option<bool> {
        let was_live = self.unpublish(peer)?;
        let m = self.member_mut(peer).expect("unpublished, so a member");
        m.away_until = Some(until);
        m.ready = false;
        Some(was_live)
    }

    /// The member kept under `resume` comes back as `peer`: same place, same mute. False when
    /// there is no such member (it never was here, or its place has gone).
    pub fn come_back(&mut self, resume: &str, peer: PeerId) -> bool {
        let Some(m) =
            self.members.iter_mut().find(|m| m.away_until.is_some() && m.resume.as_deref() == Some(resume))
        else {
            return false;
        };
        m.peer = peer;
        m.away_until = None;
        true
    }

    /// Members whose place was kept until before `now` go; returns whether any did.
    pub fn expire(&mut self, now: Instant) -> bool {
        let before = self.members.len();
        self.members.retain(|m| m.away_until.is_none_or(|t| t > now));
        self.members.len() != before
    }

    /// Takes a member out (it left, or moves to another booth).
    pub fn remove(&mut self, peer: PeerId) -> Option<Member> {
        let i = self.members.iter().position(|m| m.peer == peer)?;
        if self.is_live(peer) {
            self.set_live(None);
        }
        Some(self.members.remove(i))
    }

    /// "Ready": a passive member asks to take over.
    pub fn ready(&mut self, peer: PeerId) -> Result<(), BoothError> {
        if self.is_live(peer) {
            return Err(BoothError::AlreadyLive);
        }
        self.member_mut(peer).ok_or(BoothError::NotMember)?.ready = true;
        Ok(())
    }

    /// "Go": the live member hands over, to the partner who said ready, else the
    /// first partner with a microphone. Returns who is live now.
    pub fn go(&mut self, peer: PeerId) -> Result<PeerId, BoothError> {
        self.member(peer).ok_or(BoothError::NotMember)?;
        if !self.is_live(peer) {
            return Err(BoothError::NotLive);
        }
        let others = || self.members.iter().filter(|m| m.peer != peer && m.source.is_some());
        let to = others().find(|m| m.ready).or_else(|| others().next()).map(|m| m.peer);
        let to = to.ok_or(BoothError::NoPartner)?;
        self.set_live(Some(to));
        Ok(to)
    }

    /// "Take" (a member) or "assign" (a host): `peer` goes on air now, if its microphone is connected.
    pub fn take(&mut self, peer: PeerId) -> Result<(), BoothError> {
        let m = self.member(peer).ok_or(BoothError::NotMember)?;
        if m.source.is_none() {
            return Err(BoothError::NoMicrophone);
        }
        self.set_live(Some(peer));
        Ok(())
    }

    /// Members that publish and are not muted: more than one is a mistake worth a warning.
    pub fn unmuted(&self) -> usize {
        self.members.iter().filter(|m| m.source.is_some() && !m.muted).count()
    }

    /// The booth as its members and hosts see it.
    pub fn infos(&self) -> Vec<MemberInfo> {
        self.members
            .iter()
            .map(|m| MemberInfo {
                id: m.peer,
                name: m.name.clone(),
                live: self.is_live(m.peer),
                muted: m.muted,
                ready: m.ready,
                publishing: m.source.is_some(),
                away: m.away_until.is_some(),
                consent: m.consent,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A booth with members 1..=n, those in `publishing` with a microphone.
    fn booth(n: u64, publishing: &[u64]) -> Booth {
        let mut b = Booth::default();
        for p in 1..=n {
            b.join(Member::new(p, format!("m{p}")));
            if publishing.contains(&p) {
                b.publish(p, Source::new(p)).unwrap();
            }
        }
        b
    }

    #[test]
    fn the_first_microphone_in_an_empty_booth_goes_on_air() {
        let b = booth(3, &[2, 3]);
        assert_eq!(b.live, Some(2));
    }

    #[test]
    fn go_hands_over_to_the_partner_who_said_ready() {
        let mut b = booth(3, &[1, 2, 3]);
        assert_eq!(b.live, Some(1));
        b.ready(3).unwrap();
        assert_eq!(b.go(1), Ok(3));
        assert_eq!(b.live, Some(3));
        assert!(b.members.iter().all(|m| !m.ready), "a handover clears every ready flag");
        assert_eq!(b.go(3), Ok(1), "without a ready partner, the first partner with a microphone");
    }

    #[test]
    fn refusals_say_why() {
        let mut b = booth(3, &[1, 2]);
        assert_eq!(b.ready(1), Err(BoothError::AlreadyLive));
        assert_eq!(b.go(2), Err(BoothError::NotLive));
        assert_eq!(b.take(3), Err(BoothError::NoMicrophone));
        assert_eq!(b.take(9), Err(BoothError::NotMember));
        let mut alone = booth(2, &[1]);
        assert_eq!(alone.go(1), Err(BoothError::NoPartner));
        assert_eq!(alone.live, Some(1), "a refused handover changes nothing");
    }

    #[test]
    fn take_puts_a_member_on_air_at_once() {
        let mut b = booth(2, &[1, 2]);
        b.take(2).unwrap();
        assert_eq!(b.live, Some(2));
    }

    #[test]
    fn losing_the_live_member_leaves_the_floor_on_air() {
        let mut b = booth(2, &[1, 2]);
        assert_eq!(b.unpublish(1), Some(true));
        assert_eq!(b.live, None, "nobody is put on air without asking");
        assert_eq!(b.unpublish(2), Some(false));
        assert!(b.remove(2).is_some());
        assert_eq!(b.members.len(), 1);
    }

    #[test]
    fn a_member_moving_in_goes_on_air_only_into_an_empty_booth() {
        let mut b = booth(1, &[1]);
        let mut mover = Member::new(7, "m7".into());
        mover.source = Some(Source::new(7));
        b.join(mover);
        assert_eq!(b.live, Some(1), "the live member stays live");
        let mut empty = Booth::default();
        let mut mover = Member::new(8, "m8".into());
        mover.source = Some(Source::new(8));
        empty.join(mover);
        assert_eq!(empty.live, Some(8));
    }

    #[test]
    fn a_member_that_drops_keeps_its_place_until_it_comes_back_or_the_grace_ends() {
        let t0 = Instant::now();
        let mut b = booth(3, &[1, 2, 3]);
        b.members[0].resume = Some("k1".into());
        b.member_mut(1).unwrap().muted = true;
        assert_eq!(b.away(1, t0 + std::time::Duration::from_secs(30)), Some(true));
        assert_eq!(b.live, None, "the floor is on air meanwhile");
        assert!(b.infos()[0].away && !b.infos()[0].publishing);
        assert!(!b.come_back("other", 9), "only with its key");
        assert!(b.come_back("k1", 9));
        assert_eq!(b.members[0].peer, 9, "the same place, as the new session");
        assert!(b.members[0].muted, "still muted");
        b.publish(9, Source::new(9)).unwrap();
        assert_eq!(b.live, Some(9), "back on air, nobody took over meanwhile");
        b.away(9, t0 + std::time::Duration::from_secs(30));
        b.take(2).unwrap();
        assert!(!b.expire(t0 + std::time::Duration::from_secs(29)));
        assert!(b.expire(t0 + std::time::Duration::from_secs(31)), "the place goes after the grace");
        assert_eq!(b.members.len(), 2);
        assert_eq!(b.live, Some(2));
    }

    #[test]
    fn two_open_microphones_are_counted() {
        let mut b = booth(2, &[1, 2]);
        assert_eq!(b.unmuted(), 2);
        b.member_mut(2).unwrap().muted = true;
        assert_eq!(b.unmuted(), 1);
    }
}
