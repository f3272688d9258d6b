//! How much one invitation link and one session may ask: sessions per link, joins per link and messages per session (token buckets), with clear errors.

use crate::protocol::{Error, ErrorCode, Role};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Sessions one link may hold at once, by role: a person with a spare tab or device, except a
/// listener link, which may be shared with a whole audience (its limit is configured).
pub fn sessions_per_link(role: Role, listeners: usize) -> usize {
    match role {
        Role::Listener => listeners,
        Role::Host => 8,
        Role::Floor | Role::Interpreter => 4,
    }
}

/// Joins (WebSocket, WHIP or WHEP) one link may make: a burst, then this many a second.
/// A listener link shared with a hall gets an allowance in proportion to its sessions.
fn joins_per_link(role: Role, listeners: usize) -> (f64, f64) {
    match role {
        Role::Listener => ((listeners / 5).max(200) as f64, (listeners / 20).max(50) as f64),
        _ => (20.0, 2.0),
    }
}

/// Messages one signalling session may send after its join: a burst, then this many a second.
/// A page sends one or two per click; a held cough button two per press.
pub const SESSION_BURST: f64 = 40.0;
pub const SESSION_RATE: f64 = 10.0;

/// A token bucket: `burst` requests at once, refilled at `rate` a second.
#[derive(Debug, Clone)]
pub struct Bucket {
    tokens: f64,
    burst: f64,
    rate: f64,
    at: Instant,
}

impl Bucket {
    pub fn new(burst: f64, rate: f64, now: Instant) -> Bucket {
        Bucket { tokens: burst, burst, rate, at: now }
    }

    /// Takes one request's token, if there is one.
    pub fn take(&mut self, now: Instant) -> bool {
        let refill = now.saturating_duration_since(self.at).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + refill).min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn full(&self, now: Instant) -> bool {
        self.tokens + now.saturating_duration_since(self.at).as_secs_f64() * self.rate >= self.burst
    }
}

pub fn rate_limited(what: &str) -> Error {
    Error::new(ErrorCode::RateLimited, format!("too many {what}: slow down and try again in a second"))
}

struct Link {
    sessions: usize,
    joins: Bucket,
}

/// Every link in use (by the token's signature) and its sessions.
#[derive(Default, Clone)]
pub struct Links {
    links: Arc<Mutex<HashMap<String, Link>>>,
    /// Sessions one listener link may hold.
    listeners: usize,
}

/// A session's place in its link's count, given back when dropped.
pub struct Place {
    links: Links,
    key: String,
}

/// Links at most this many are kept; idle ones beyond it are forgotten.
const MAX_LINKS: usize = 100_000;

impl Links {
    pub fn new(listeners_per_link: usize) -> Links {
        Links { links: Default::default(), listeners: listeners_per_link }
    }

    fn key(token: &str) -> String {
        token.rsplit('.').next().unwrap_or(token).to_string()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Link>> {
        self.links.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A join with `token` (already verified, of `role`): counted against the link's join rate.
    pub fn join(&self, token: &str, role: Role, now: Instant) -> Result<(), Error> {
        let mut links = self.lock();
        if links.len() >= MAX_LINKS {
            links.retain(|_, l| l.sessions > 0 || !l.joins.full(now));
        }
        let (burst, rate) = joins_per_link(role, self.listeners);
        let link = links
            .entry(Self::key(token))
            .or_insert_with(|| Link { sessions: 0, joins: Bucket::new(burst, rate, now) });
        if !link.joins.take(now) {
            return Err(rate_limited("joins with this invitation link"));
        }
        Ok(())
    }

    /// A session with `token` that stays (a WebSocket): counted against the link's session limit
    /// until the returned place is dropped.
    pub fn hold(&self, token: &str, role: Role, now: Instant) -> Result<Place, Error> {
        self.join(token, role, now)?;
        let key = Self::key(token);
        let mut links = self.lock();
        let link = links.get_mut(&key).expect("join made it");
        let most = sessions_per_link(role, self.listeners);
        if link.sessions >= most {
            return Err(Error::new(
                ErrorCode::Busy,
                format!("this invitation link is already in use by {most} sessions: close one first"),
            ));
        }
        link.sessions += 1;
        Ok(Place { links: self.clone(), key })
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        if let Some(l) = self.links.lock().get_mut(&self.key) {
            l.sessions = l.sessions.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let t = Instant::now();
        let mut b = Bucket::new(3.0, 2.0, t);
        assert!((0..3).all(|_| b.take(t)));
        assert!(!b.take(t), "burst spent");
        assert!(b.take(t + Duration::from_millis(500)), "one more after half a second at 2/s");
        assert!(!b.take(t + Duration::from_millis(500)));
        assert!(b.full(t + Duration::from_secs(10)));
    }

    #[test]
    fn a_link_holds_its_sessions_and_gives_places_back() {
        let links = Links::new(2);
        let t = Instant::now();
        let a = links.hold("h.p.sig", Role::Listener, t).unwrap();
        let _b = links.hold("h.p.sig", Role::Listener, t).unwrap();
        let e = links.hold("h.p.sig", Role::Listener, t).err().unwrap();
        assert_eq!(e.code, ErrorCode::Busy);
        assert!(links.hold("h.p.other", Role::Listener, t).is_ok(), "another link is another count");
        drop(a);
        assert!(links.hold("h.p.sig", Role::Listener, t).is_ok(), "a place given back is free");
        let e = (0..30).map(|_| links.join("x.y.z", Role::Interpreter, t)).find_map(Result::err).unwrap();
        assert_eq!(e.code, ErrorCode::RateLimited);
    }
}
