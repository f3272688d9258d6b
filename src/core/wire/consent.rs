//! A listener once its connection is set up: str0m's session is dropped, and what the peer still sends (ICE consent checks, receiver reports) is answered or counted here.
//!
//! A listener sends nothing we need after the DTLS handshake: its packets come from the
//! engine's fan-out ([`super::srtp`]), and what arrives from it only proves it is alive.
//! Keeping its full WebRTC session (about 50 KiB of state and timers) would make a listener
//! cost far more than its packets. The browser goes on checking consent (RFC 7675) with
//! STUN binding requests signed with our ICE password; they are answered here as str0m's
//! ICE-lite agent would (RFC 8445 §7.3, RFC 5389 §10.1.2).

use std::net::SocketAddr;
use str0m::ice::StunMessage;
use thiserror::Error;

#[derive(Debug, Error, PartialEq)]
pub enum ConsentError {
    #[error("unreadable STUN message")]
    Unparsed,
    #[error("STUN message is not a binding request")]
    NotBinding,
    #[error("STUN binding request for another ICE username")]
    WrongUser,
    #[error("STUN binding request fails its integrity check")]
    Integrity,
    #[error("the STUN reply does not fit its buffer")]
    Reply,
}

/// Our ICE credentials for one settled listener.
#[derive(Debug)]
pub struct Consent {
    ufrag: Box<str>,
    pass: Box<str>,
}

/// Room for the STUN reply we write: today header, XOR-MAPPED-ADDRESS (IPv6), integrity and
/// fingerprint take 76 bytes; the margin leaves room for attributes a newer STUN writer adds.
const REPLY_MAX: usize = 256;

impl Consent {
    pub fn new(ufrag: &str, pass: &str) -> Consent {
        Consent { ufrag: ufrag.into(), pass: pass.into() }
    }

    /// Answers a consent check from `from`: the binding success response to send back to it.
    pub fn answer(&self, data: &[u8], from: SocketAddr) -> Result<Vec<u8>, ConsentError> {
        let hmac = |k: &[u8], p: &[&[u8]]| super::srtp::hmac_sha1(k, p);
        let msg = StunMessage::parse(data).map_err(|_| ConsentError::Unparsed)?;
        if !msg.is_binding_request() {
            return Err(ConsentError::NotBinding);
        }
        // USERNAME is "<our ufrag>:<their ufrag>" in requests sent to us.
        if msg.split_username().map(|(ours, _)| ours) != Some(&*self.ufrag) {
            return Err(ConsentError::WrongUser);
        }
        if !msg.verify(self.pass.as_bytes(), hmac) {
            return Err(ConsentError::Integrity);
        }
        let mut buf = [0u8; REPLY_MAX];
        let n = StunMessage::binding_reply(msg.trans_id(), from)
            .to_bytes(Some(self.pass.as_bytes()), &mut buf, hmac)
            .map_err(|_| ConsentError::Reply)?;
        Ok(buf[..n].to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use str0m::ice::TransId;

    fn request(username: &str, pass: &str) -> Vec<u8> {
        let mut buf = [0u8; 256];
        let hmac = |k: &[u8], p: &[&[u8]]| super::super::srtp::hmac_sha1(k, p);
        let n = StunMessage::binding_request(username, TransId::new(), true, 7, 100, false)
            .to_bytes(Some(pass.as_bytes()), &mut buf, hmac)
            .unwrap();
        buf[..n].to_vec()
    }

    #[test]
    fn consent_checks_get_a_signed_reply_with_the_mapped_address() {
        let s = Consent::new("ours", "our password, 22 chars+");
        let from: SocketAddr = "192.0.2.7:40000".parse().unwrap();
        let req = request("ours:theirs", "our password, 22 chars+");
        let reply = s.answer(&req, from).unwrap();
        let msg = StunMessage::parse(&reply).unwrap();
        assert!(msg.is_successful_binding_response());
        assert_eq!(msg.trans_id(), StunMessage::parse(&req).unwrap().trans_id());
        assert_eq!(msg.mapped_address(), Some(from));
        let hmac = |k: &[u8], p: &[&[u8]]| super::super::srtp::hmac_sha1(k, p);
        assert!(msg.verify(b"our password, 22 chars+", hmac), "the reply is signed with our password");
        assert!(!msg.verify(b"someone else's password", hmac));
    }

    #[test]
    fn forged_or_foreign_checks_are_refused() {
        let s = Consent::new("ours", "our password, 22 chars+");
        let from: SocketAddr = "192.0.2.7:40000".parse().unwrap();
        assert_eq!(
            s.answer(&request("ours:theirs", "a guessed password"), from),
            Err(ConsentError::Integrity)
        );
        assert_eq!(
            s.answer(&request("other:theirs", "our password, 22 chars+"), from),
            Err(ConsentError::WrongUser)
        );
        assert_eq!(s.answer(b"\x00\x01 not stun at all", from), Err(ConsentError::Unparsed));
        let reply = s.answer(&request("ours:theirs", "our password, 22 chars+"), from).unwrap();
        assert_eq!(s.answer(&reply, from), Err(ConsentError::NotBinding));
    }
}
