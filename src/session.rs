//! Worker sessions, held in this process's memory only: the unlocked age identity never touches disk
//! and is wiped when the session ends (logout, idle timeout, absolute lifetime). Tokens are random
//! 256-bit values; the map is keyed by their SHA-256 so a memory dump of the map yields no token.
//! Also the login rate limiter (per handle, per client address), likewise in memory.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use crate::clock::Millis;
use crate::crypto::Keyring;
use crate::ids::WorkerId;

type TokenKey = [u8; 32];

fn key_of(token: &str) -> TokenKey {
    Sha256::digest(token.as_bytes()).into()
}

struct Session {
    worker_id: WorkerId,
    handle: String,
    /// The unlocked keyring. Dropping the last `Arc` drops the identities, whose secrets zeroize
    /// themselves.
    keyring: Option<Arc<Keyring>>,
    must_change_passphrase: bool,
    created_at: Millis,
    last_seen: Millis,
}

/// What a request learns about its session.
#[derive(Clone)]
pub struct SessionView {
    pub worker_id: WorkerId,
    pub handle: String,
    pub keyring: Option<Arc<Keyring>>,
    pub must_change_passphrase: bool,
}

pub struct Sessions {
    map: Mutex<HashMap<TokenKey, Session>>,
    idle_millis: Millis,
    absolute_millis: Millis,
}

impl Sessions {
    pub fn new(idle_seconds: u64, absolute_seconds: u64) -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
            idle_millis: seconds_to_millis(idle_seconds),
            absolute_millis: seconds_to_millis(absolute_seconds),
        }
    }

    /// Starts a session and returns its bearer token (shown to the client once).
    pub fn start(
        &self,
        worker_id: WorkerId,
        handle: String,
        keyring: Option<Keyring>,
        must_change_passphrase: bool,
        now: Millis,
    ) -> String {
        let token = crate::crypto::random_token(32);
        let session = Session {
            worker_id,
            handle,
            keyring: keyring.map(Arc::new),
            must_change_passphrase,
            created_at: now,
            last_seen: now,
        };
        self.lock().insert(key_of(&token), session);
        token
    }

    /// The live session for a token, refreshed; an expired one is removed (and its identity wiped).
    pub fn touch(&self, token: &str, now: Millis) -> Option<SessionView> {
        let key = key_of(token);
        let mut map = self.lock();
        let session = map.get_mut(&key)?;
        if self.expired(session, now) {
            map.remove(&key);
            return None;
        }
        session.last_seen = now;
        Some(SessionView {
            worker_id: session.worker_id.clone(),
            handle: session.handle.clone(),
            keyring: session.keyring.clone(),
            must_change_passphrase: session.must_change_passphrase,
        })
    }

    fn expired(&self, session: &Session, now: Millis) -> bool {
        now - session.last_seen >= self.idle_millis
            || now - session.created_at >= self.absolute_millis
    }

    /// Ends a session. Returns whether there was one.
    pub fn end(&self, token: &str) -> bool {
        self.lock().remove(&key_of(token)).is_some()
    }

    /// Ends every session of a worker except the one given (after a passphrase change).
    pub fn end_others(&self, worker_id: &WorkerId, keep_token: &str) {
        let keep = key_of(keep_token);
        self.lock()
            .retain(|key, s| s.worker_id != *worker_id || *key == keep);
    }

    /// After a passphrase change: no change is due any more, and a rotated keyring replaces the old.
    pub fn passphrase_changed(&self, token: &str, rotated: Option<Keyring>) {
        if let Some(session) = self.lock().get_mut(&key_of(token)) {
            session.must_change_passphrase = false;
            if let Some(keyring) = rotated {
                session.keyring = Some(Arc::new(keyring));
            }
        }
    }

    /// Removes expired sessions; returns how many remain.
    pub fn sweep(&self, now: Millis) -> usize {
        let mut map = self.lock();
        map.retain(|_, s| !self.expired(s, now));
        map.len()
    }

    /// How many sessions hold an unlocked identity right now.
    pub fn unlocked_identities(&self) -> usize {
        self.lock().values().filter(|s| s.keyring.is_some()).count()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TokenKey, Session>> {
        // A panic while holding the lock cannot leave the map half-updated (single operations only).
        self.map
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn seconds_to_millis(seconds: u64) -> Millis {
    i64::try_from(seconds.saturating_mul(1000)).unwrap_or(i64::MAX)
}

/// Login attempt counters in fixed windows, per handle and per client network (an IPv4 address, an
/// IPv6 /64). An attempt is counted *before* the passphrase is checked, in the same step as the limit
/// check, so concurrent attempts cannot slip past; a success refunds it.
pub struct LoginLimiter {
    windows: Mutex<HashMap<LimitKey, Window>>,
    max_per_handle: u32,
    max_per_address: u32,
    window_millis: Millis,
}

#[derive(Clone, PartialEq, Eq, Hash)]
enum LimitKey {
    Handle(String),
    Network(IpAddr),
}

#[derive(Clone, Copy)]
struct Window {
    start: Millis,
    count: u32,
    /// Counters of existing workers are never evicted (there are as many as workers); others are.
    protected: bool,
}

/// Entries kept before the oldest evictable ones are dropped: a flood of addresses or invented
/// handles cannot grow memory without bound, nor push out the counters that protect real accounts.
const LIMITER_CAPACITY: usize = 100_000;

/// The part of an address that identifies a client network: IPv6 hosts get a /64 each, IPv4-mapped
/// addresses count as their IPv4 address. Every per-client limit (logins, SMTP) keys on this.
pub fn network_of(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(std::net::Ipv6Addr::from(bits))
            }
        },
    }
}

impl LoginLimiter {
    pub fn new(max_per_handle: u32, max_per_address: u32, window_seconds: u64) -> Self {
        Self {
            windows: Mutex::new(HashMap::new()),
            max_per_handle,
            max_per_address,
            window_millis: seconds_to_millis(window_seconds),
        }
    }

    /// Admits and counts one attempt, or says how many seconds to wait. `handle` is `None` when the
    /// typed handle is not even well-formed; `handle_exists` marks counters worth protecting.
    pub fn admit(
        &self,
        handle: Option<&str>,
        handle_exists: bool,
        address: IpAddr,
        now: Millis,
    ) -> Result<(), u64> {
        let mut windows = self.lock();
        let keys: Vec<(LimitKey, u32, bool)> = handle
            .map(|h| {
                (
                    LimitKey::Handle(h.to_string()),
                    self.max_per_handle,
                    handle_exists,
                )
            })
            .into_iter()
            .chain([(
                LimitKey::Network(network_of(address)),
                self.max_per_address,
                false,
            )])
            .collect();
        let wait = keys
            .iter()
            .filter_map(|(key, max, _)| {
                let window = windows.get(key)?;
                let left = window.start + self.window_millis - now;
                (left > 0 && window.count >= *max).then_some(left)
            })
            .max();
        if let Some(millis) = wait {
            return Err(u64::try_from(millis).unwrap_or(0).div_ceil(1000));
        }
        if windows.len() + keys.len() > LIMITER_CAPACITY {
            self.evict(&mut windows, now);
        }
        for (key, _, protected) in keys {
            let window = windows.entry(key).or_insert(Window {
                start: now,
                count: 0,
                protected,
            });
            if now - window.start >= self.window_millis {
                *window = Window {
                    start: now,
                    count: 0,
                    protected,
                };
            }
            window.count += 1;
        }
        Ok(())
    }

    /// A successful login clears the handle's counter and refunds the network's attempt.
    pub fn succeeded(&self, handle: &str, address: IpAddr) {
        let mut windows = self.lock();
        windows.remove(&LimitKey::Handle(handle.to_string()));
        if let Some(window) = windows.get_mut(&LimitKey::Network(network_of(address))) {
            window.count = window.count.saturating_sub(1);
        }
    }

    /// Drops expired windows, then the oldest tenth of the unprotected ones.
    fn evict(&self, windows: &mut HashMap<LimitKey, Window>, now: Millis) {
        windows.retain(|_, w| w.protected || now - w.start < self.window_millis);
        if windows.len() < LIMITER_CAPACITY {
            return;
        }
        let mut starts: Vec<Millis> = windows
            .values()
            .filter(|w| !w.protected)
            .map(|w| w.start)
            .collect();
        starts.sort_unstable();
        if let Some(&cutoff) = starts.get(starts.len() / 10) {
            windows.retain(|_, w| w.protected || w.start > cutoff);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<LimitKey, Window>> {
        self.windows
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Millis = 60_000;

    /// A fixed id per name, so tests can tell workers apart.
    fn worker(name: &str) -> WorkerId {
        let hex: String = name.bytes().map(|b| format!("{b:02x}")).collect();
        WorkerId::parse(&format!("{hex:0>32}")).unwrap()
    }

    #[test]
    fn sessions_expire_when_idle_and_at_their_absolute_lifetime() {
        let sessions = Sessions::new(15 * 60, 60 * 60);
        let t0 = 1_000_000;
        let token = sessions.start(
            worker("w"),
            "h".into(),
            Some(Keyring::single(age::x25519::Identity::generate())),
            false,
            t0,
        );
        assert!(sessions.touch(&token, t0 + 14 * MINUTE).is_some());
        assert!(sessions.touch(&token, t0 + 28 * MINUTE).is_some());
        assert!(sessions.touch(&token, t0 + 42 * MINUTE).is_some());
        assert!(sessions.touch(&token, t0 + 56 * MINUTE).is_some());
        // Active all along, but past the absolute lifetime.
        assert!(sessions.touch(&token, t0 + 61 * MINUTE).is_none());
        assert_eq!(sessions.unlocked_identities(), 0);

        let idle = sessions.start(worker("w"), "h".into(), None, false, t0);
        assert!(sessions.touch(&idle, t0 + 15 * MINUTE).is_none());
    }

    #[test]
    fn logout_removes_the_identity() {
        let sessions = Sessions::new(900, 3600);
        let token = sessions.start(
            worker("w"),
            "h".into(),
            Some(Keyring::single(age::x25519::Identity::generate())),
            false,
            0,
        );
        assert_eq!(sessions.unlocked_identities(), 1);
        assert!(sessions.end(&token));
        assert_eq!(sessions.unlocked_identities(), 0);
        assert!(sessions.touch(&token, 1).is_none());
        assert!(!sessions.end(&token));
    }

    #[test]
    fn unknown_tokens_find_nothing() {
        let sessions = Sessions::new(900, 3600);
        sessions.start(worker("w"), "h".into(), None, false, 0);
        assert!(sessions.touch("not-a-token", 1).is_none());
    }

    #[test]
    fn end_others_keeps_the_current_session() {
        let sessions = Sessions::new(900, 3600);
        let a = sessions.start(worker("w1"), "h".into(), None, false, 0);
        let b = sessions.start(worker("w1"), "h".into(), None, false, 0);
        let c = sessions.start(worker("w2"), "g".into(), None, false, 0);
        sessions.end_others(&worker("w1"), &a);
        assert!(sessions.touch(&a, 1).is_some());
        assert!(sessions.touch(&b, 1).is_none());
        assert!(sessions.touch(&c, 1).is_some());
    }

    #[test]
    fn limiter_blocks_per_handle_and_per_address() {
        let limiter = LoginLimiter::new(3, 5, 900);
        let here: IpAddr = "127.0.0.1".parse().unwrap();
        let there: IpAddr = "127.0.0.2".parse().unwrap();
        for _ in 0..3 {
            assert!(limiter.admit(Some("w17"), true, here, 0).is_ok());
        }
        assert_eq!(limiter.admit(Some("w17"), true, there, 0), Err(900));
        assert!(limiter.admit(Some("w18"), true, here, 0).is_ok());
        assert!(limiter.admit(Some("w19"), false, here, 0).is_ok());
        // Five attempts from one address block every handle from it, and malformed handles too.
        assert!(limiter.admit(Some("w20"), true, here, 0).is_err());
        assert!(limiter.admit(None, false, here, 0).is_err());
        assert!(limiter.admit(Some("w20"), true, there, 0).is_ok());
        // The window passes.
        assert!(limiter.admit(Some("w17"), true, there, 900_000).is_ok());
    }

    #[test]
    fn success_clears_the_handle_and_refunds_the_address() {
        let limiter = LoginLimiter::new(2, 2, 900);
        let here: IpAddr = "127.0.0.1".parse().unwrap();
        limiter.admit(Some("w17"), true, here, 0).unwrap();
        limiter.succeeded("w17", here);
        limiter.admit(Some("w17"), true, here, 0).unwrap();
        limiter.succeeded("w17", here);
        // Two successful logins used nothing up.
        limiter.admit(Some("w17"), true, here, 0).unwrap();
        limiter.admit(Some("w17"), true, here, 0).unwrap();
        assert!(limiter.admit(Some("w17"), true, here, 0).is_err());
    }

    #[test]
    fn ipv6_hosts_of_one_network_share_a_counter() {
        let limiter = LoginLimiter::new(100, 2, 900);
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        limiter.admit(None, false, a, 0).unwrap();
        limiter.admit(None, false, b, 0).unwrap();
        assert!(limiter.admit(None, false, a, 0).is_err());
        assert!(limiter.admit(None, false, other, 0).is_ok());
    }

    #[test]
    fn a_flood_of_addresses_does_not_reset_a_workers_counter() {
        let limiter = LoginLimiter::new(2, 1_000, 900);
        let here: IpAddr = "10.0.0.1".parse().unwrap();
        limiter.admit(Some("w17"), true, here, 0).unwrap();
        limiter.admit(Some("w17"), true, here, 0).unwrap();
        for i in 0..(LIMITER_CAPACITY as u32 + 10) {
            let address = IpAddr::V4(std::net::Ipv4Addr::from(0x0b00_0000 + i));
            let _ = limiter.admit(Some(&format!("x{i}")), false, address, 1);
        }
        assert!(limiter.lock().len() <= LIMITER_CAPACITY + 2);
        assert!(limiter.admit(Some("w17"), true, here, 2).is_err());
    }
}
