//! SMTP limits: messages per minute per client network and per sender domain, and the memory all
//! sessions together may hold in message bytes while receiving DATA.

use std::net::IpAddr;
use std::sync::Arc;

use crate::session::network_of;

/// Messages per minute per client network and per sender domain, in fixed windows.
pub struct SmtpLimits {
    windows: std::sync::Mutex<std::collections::HashMap<String, (i64, u32)>>,
    per_address: u32,
    per_domain: u32,
}

impl SmtpLimits {
    pub fn new(per_address: u32, per_domain: u32) -> Self {
        Self {
            windows: Default::default(),
            per_address,
            per_domain,
        }
    }

    /// Counts one message for the client and the domain; `false` when either is over its limit.
    pub fn admit(&self, client: IpAddr, domain: &str, now: i64) -> bool {
        let minute = now.div_euclid(60_000);
        let mut windows = self
            .windows
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if windows.len() > 100_000 {
            windows.retain(|_, (window, _)| *window == minute);
        }
        let keys = [
            (format!("ip:{}", network_of(client)), self.per_address),
            (format!("domain:{domain}"), self.per_domain),
        ];
        let over = keys.iter().any(|(key, max)| {
            windows
                .get(key)
                .is_some_and(|(window, count)| *window == minute && count >= max)
        });
        if over {
            return false;
        }
        for (key, _) in keys {
            let entry = windows.entry(key).or_insert((minute, 0));
            if entry.0 != minute {
                *entry = (minute, 0);
            }
            entry.1 += 1;
        }
        true
    }
}

/// The memory all sessions together may hold in message bytes while receiving DATA, counted in
/// chunks: a flood of large messages is deferred (452) instead of exhausting the host.
#[derive(Clone)]
pub struct DataBudget {
    chunks: Arc<tokio::sync::Semaphore>,
    total: usize,
}

/// A session's share of the `DataBudget`; given back when dropped.
#[derive(Default)]
pub struct Reservation {
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

const BUDGET_CHUNK: usize = 64 * 1024;

impl DataBudget {
    pub fn new(bytes: usize) -> Self {
        let total = (bytes / BUDGET_CHUNK).clamp(1, tokio::sync::Semaphore::MAX_PERMITS);
        Self {
            chunks: Arc::new(tokio::sync::Semaphore::new(total)),
            total,
        }
    }

    /// Bytes reserved by messages being received or stored right now.
    pub fn held_bytes(&self) -> usize {
        (self.total - self.chunks.available_permits()) * BUDGET_CHUNK
    }

    /// Makes `reservation` cover `bytes`; `false` when the budget cannot.
    pub fn grow(&self, reservation: &mut Reservation, bytes: usize) -> bool {
        let held = reservation.permit.as_ref().map_or(0, |p| p.num_permits());
        let wanted = bytes.div_ceil(BUDGET_CHUNK);
        if wanted <= held {
            return true;
        }
        let Ok(more) = u32::try_from(wanted - held) else {
            return false;
        };
        match self.chunks.clone().try_acquire_many_owned(more) {
            Ok(more) => {
                match &mut reservation.permit {
                    Some(permit) => permit.merge(more),
                    None => reservation.permit = Some(more),
                }
                true
            }
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_count_per_network_and_domain() {
        let limits = SmtpLimits::new(3, 5);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            assert!(limits.admit(a, "x.example", 0));
        }
        assert!(!limits.admit(a, "y.example", 0));
        assert!(limits.admit(b, "x.example", 0));
        assert!(limits.admit(b, "x.example", 0));
        // The domain has had 5.
        assert!(!limits.admit(b, "x.example", 0));
        // A new minute.
        assert!(limits.admit(a, "x.example", 60_000));
        let v6a: IpAddr = "2001:db8::1".parse().unwrap();
        let v6b: IpAddr = "2001:db8::ffff".parse().unwrap();
        assert_eq!(network_of(v6a), network_of(v6b));
        // One per network: an IPv4-mapped client is its IPv4 address, an IPv6 client its /64.
        let one = SmtpLimits::new(1, 100);
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        assert!(one.admit(ip("192.0.2.9"), "x.example", 0));
        assert!(!one.admit(ip("::ffff:192.0.2.9"), "x.example", 0));
        assert!(one.admit(ip("2001:db8:0:1::1"), "x.example", 0));
        assert!(!one.admit(ip("2001:db8:0:1::2"), "x.example", 0));
        assert!(one.admit(ip("2001:db8:0:2::1"), "x.example", 0));
    }

    #[test]
    fn the_data_budget_is_shared_and_given_back() {
        let budget = DataBudget::new(4 * BUDGET_CHUNK);
        let mut a = Reservation::default();
        let mut b = Reservation::default();
        assert!(budget.grow(&mut a, 1));
        assert!(budget.grow(&mut a, 3 * BUDGET_CHUNK));
        assert!(!budget.grow(&mut b, BUDGET_CHUNK + 1));
        assert!(budget.grow(&mut b, BUDGET_CHUNK));
        assert!(!budget.grow(&mut a, 3 * BUDGET_CHUNK + 1));
        drop(a);
        assert!(budget.grow(&mut b, 4 * BUDGET_CHUNK));
    }
}
