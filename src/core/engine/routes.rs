//! Which peer a datagram belongs to: by source address, or for a new address by the ICE username it names; with a reverse index so a peer's routes go in one step.

use crate::core::room::PeerId;
use std::collections::HashMap;
use std::net::SocketAddr;
use str0m::ice::StunMessage;

#[derive(Default)]
pub(super) struct Routes {
    by_addr: HashMap<SocketAddr, PeerId>,
    /// Peers by our ICE username fragment: how a datagram from a new address finds its peer.
    by_ufrag: HashMap<String, PeerId>,
    /// Every address and username that routes to a peer, to remove them without a scan.
    of_peer: HashMap<PeerId, (Vec<SocketAddr>, Option<String>)>,
}

impl Routes {
    /// The peer a datagram from `source` was last routed to.
    pub(super) fn by_addr(&self, source: &SocketAddr) -> Option<PeerId> {
        self.by_addr.get(source).copied()
    }

    /// The peer whose ICE username a STUN check from a new address names ("<ours>:<theirs>"):
    /// one lookup, however many peers (and however many forged checks).
    pub(super) fn by_check(&self, data: &[u8]) -> Option<PeerId> {
        if !matches!(data, [0..=3, ..]) {
            return None;
        }
        let msg = StunMessage::parse(data).ok()?;
        let ours = msg.username()?.split(':').next()?;
        self.by_ufrag.get(ours).copied()
    }

    pub(super) fn add_ufrag(&mut self, peer: PeerId, ufrag: String) {
        self.by_ufrag.insert(ufrag.clone(), peer);
        self.of_peer.entry(peer).or_default().1 = Some(ufrag);
    }

    /// How many addresses route to `peer`.
    pub(super) fn addrs(&self, peer: PeerId) -> usize {
        self.of_peer.get(&peer).map_or(0, |(a, _)| a.len())
    }

    /// Forgets every address of `peer` but `keep` (the pair ICE chose, once the peer settled).
    pub(super) fn keep_only(&mut self, peer: PeerId, keep: SocketAddr) {
        let Some((addrs, _)) = self.of_peer.get_mut(&peer) else { return };
        for a in addrs.iter().filter(|a| **a != keep) {
            if self.by_addr.get(a) == Some(&peer) {
                self.by_addr.remove(a);
            }
        }
        addrs.retain(|a| *a == keep);
    }

    pub(super) fn add_addr(&mut self, peer: PeerId, addr: SocketAddr) {
        if let Some(old) = self.by_addr.insert(addr, peer) {
            if old != peer {
                if let Some((addrs, _)) = self.of_peer.get_mut(&old) {
                    addrs.retain(|a| *a != addr);
                }
            }
        }
        let addrs = &mut self.of_peer.entry(peer).or_default().0;
        if !addrs.contains(&addr) {
            addrs.push(addr);
        }
    }

    /// Forgets every route to `peer` (its media died, or it left).
    pub(super) fn remove(&mut self, peer: PeerId) {
        let Some((addrs, ufrag)) = self.of_peer.remove(&peer) else { return };
        for a in addrs {
            if self.by_addr.get(&a) == Some(&peer) {
                self.by_addr.remove(&a);
            }
        }
        if let Some(u) = ufrag {
            if self.by_ufrag.get(&u) == Some(&peer) {
                self.by_ufrag.remove(&u);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removing_a_peer_removes_all_its_routes_and_only_those() {
        let mut r = Routes::default();
        let (a, b, c): (SocketAddr, SocketAddr, SocketAddr) =
            ("10.0.0.1:1".parse().unwrap(), "10.0.0.2:2".parse().unwrap(), "10.0.0.3:3".parse().unwrap());
        r.add_ufrag(1, "one".into());
        r.add_addr(1, a);
        r.add_addr(1, b);
        r.add_addr(2, c);
        // An address moving to another peer belongs to that peer only.
        r.add_addr(2, b);
        r.remove(1);
        assert_eq!(r.by_addr(&a), None);
        assert_eq!(r.by_addr(&b), Some(2));
        assert_eq!(r.by_addr(&c), Some(2));
        assert!(r.by_ufrag.is_empty());
        r.remove(2);
        assert!(r.by_addr.is_empty() && r.of_peer.is_empty());
    }

    #[test]
    fn a_settled_peer_keeps_only_its_chosen_address() {
        let mut r = Routes::default();
        let (a, b): (SocketAddr, SocketAddr) = ("10.0.0.1:1".parse().unwrap(), "10.0.0.1:2".parse().unwrap());
        r.add_addr(1, a);
        r.add_addr(1, b);
        assert_eq!(r.addrs(1), 2);
        r.keep_only(1, b);
        assert_eq!((r.by_addr(&a), r.by_addr(&b), r.addrs(1)), (None, Some(1), 1));
    }
}
