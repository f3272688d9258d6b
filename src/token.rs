//! Signed invitation tokens (HS256 JWT): which room, which role, which channel, whose name, until when.

use crate::core::engine::Admission;
use crate::protocol::{Error, ErrorCode, Role};
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Claims {
    pub room: String,
    pub role: Role,
    /// The channel an interpreter works in (a listener's first channel).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// Further channels an interpreter may publish into (bidirectional work).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<String>,
    pub name: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// A random id per minted link (JWT ID): sessions and joins are counted per link.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub jti: String,
}

impl Claims {
    /// Who the engine admits with this (verified) invitation.
    pub fn admission(&self) -> Admission {
        Admission {
            room: self.room.clone(),
            role: self.role,
            name: self.name.clone(),
            channel: self.channel.clone(),
            also: self.also.clone(),
            resume: None,
            invitation: self.jti.clone(),
        }
    }
}

pub struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl Keys {
    pub fn new(secret: &[u8]) -> Self {
        Keys { encoding: EncodingKey::from_secret(secret), decoding: DecodingKey::from_secret(secret) }
    }

    pub fn sign(&self, claims: &Claims) -> String {
        encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .expect("HS256 signing of plain claims cannot fail")
    }

    pub fn verify(&self, token: &str) -> Result<Claims, Error> {
        let mut v = Validation::new(Algorithm::HS256);
        v.leeway = 0;
        decode::<Claims>(token, &self.decoding, &v).map(|d| d.claims).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            match e.kind() {
                ErrorKind::ExpiredSignature => Error::new(ErrorCode::TokenExpired, "token has expired"),
                ErrorKind::InvalidSignature => Error::new(
                    ErrorCode::BadToken,
                    "this invitation was not made by this server (or its secret changed): ask for a new link",
                ),
                _ => Error::new(ErrorCode::BadToken, "this is not a valid invitation: ask for a new link"),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: u64) -> Claims {
        Claims {
            room: "r".into(),
            role: Role::Listener,
            channel: None,
            also: vec![],
            name: "Ana".into(),
            exp,
            jti: String::new(),
        }
    }

    #[test]
    fn signs_verifies_and_rejects() {
        let keys = Keys::new(b"secret");
        let far = 4_000_000_000;
        assert_eq!(keys.verify(&keys.sign(&claims(far))).unwrap(), claims(far));
        assert_eq!(keys.verify(&keys.sign(&claims(1))).unwrap_err().code, ErrorCode::TokenExpired);
        assert_eq!(
            Keys::new(b"other").verify(&keys.sign(&claims(far))).unwrap_err().code,
            ErrorCode::BadToken
        );
        assert_eq!(keys.verify("garbage").unwrap_err().code, ErrorCode::BadToken);
    }
}
