//! SMS through Kannel: texts in arrive from an `sms-service` whose `post-url` points at
//! `POST /phone/kannel/sms` (the text as the body, `X-Kannel-From`/`-To` headers, `send-sender = true`);
//! delivery reports at `GET /phone/kannel/dlr`. Both are accepted only from `[phone] allow_from` and
//! with the shared secret; out goes through `provider::KannelSms` (smsbox's `sendsms`).

use std::net::IpAddr;

use crate::config::PhoneConfig;
use crate::crypto::constant_time_eq;

/// Longest text accepted from Kannel (a concatenated SMS of 10 parts is well under this).
pub const MAX_TEXT_BYTES: usize = 8 * 1024;

/// Whether a request from `peer` carrying `secret` may use the Kannel and Kamailio paths.
pub fn admitted(config: &PhoneConfig, expected: &str, peer: IpAddr, secret: Option<&str>) -> bool {
    let from_allowed = config
        .allow_from
        .iter()
        .any(|allowed| *allowed == peer || canonical(*allowed) == canonical(peer));
    let secret_ok = !expected.is_empty()
        && secret.is_some_and(|given| constant_time_eq(given.as_bytes(), expected.as_bytes()));
    from_allowed & secret_ok
}

/// IPv4-mapped IPv6 addresses compare as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// What a delivery report's `status` (Kannel's `%d`) means.
pub fn delivery_status(code: &str) -> &'static str {
    match code {
        "1" => "delivered",
        "2" => "failed",
        "4" => "buffered",
        "8" => "at-smsc",
        "16" => "rejected-by-smsc",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_allowed_addresses_with_the_secret_get_in() {
        let mut config = crate::config::Config::embedded_default().unwrap().phone;
        config.allow_from = vec!["127.0.0.1".parse().unwrap()];
        let secret = "0123456789abcdef";
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(admitted(&config, secret, local, Some(secret)));
        assert!(admitted(
            &config,
            secret,
            "::ffff:127.0.0.1".parse().unwrap(),
            Some(secret)
        ));
        assert!(!admitted(&config, secret, local, Some("0123456789abcdeX")));
        assert!(!admitted(&config, secret, local, None));
        assert!(!admitted(
            &config,
            secret,
            "192.0.2.1".parse().unwrap(),
            Some(secret)
        ));
        assert!(!admitted(&config, "", local, Some("")));
        assert_eq!(delivery_status("1"), "delivered");
        assert_eq!(delivery_status("x"), "unknown");
    }
}
