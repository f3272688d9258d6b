//! TURN credentials for pages: coturn's `use-auth-secret` scheme (the TURN REST API draft), minted per join.

use crate::config::TurnConfig;
use crate::protocol::IceServer;
use base64::Engine as _;

/// Credentials valid until `now + ttl_secs`: the user name is `<expiry>:tolk`, the password the
/// base64 HMAC-SHA1 of that name under the shared secret, as coturn checks them.
pub fn credentials(turn: &TurnConfig, now: u64) -> IceServer {
    let username = format!("{}:tolk", now + turn.ttl_secs);
    let key =
        aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, turn.secret.as_bytes());
    let tag = aws_lc_rs::hmac::sign(&key, username.as_bytes());
    IceServer {
        urls: turn.urls.clone(),
        username: Some(username),
        credential: Some(base64::engine::general_purpose::STANDARD.encode(tag.as_ref())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_what_coturn_expects() {
        let turn = TurnConfig {
            urls: vec!["turn:127.0.0.1:3478".into()],
            secret: "coturn shared secret".into(),
            ttl_secs: 100,
        };
        let c = credentials(&turn, 1_699_999_900);
        assert_eq!(c.username.as_deref(), Some("1700000000:tolk"));
        // base64(HMAC-SHA1(secret, "1700000000:tolk")), computed with Python's hmac module.
        assert_eq!(c.credential.as_deref(), Some("VWmzwybdxLY/QDcBCSSTnalA24I="));
        assert_eq!(c.urls, turn.urls);
    }
}
