//! Prometheus text metrics: counters of what happened, never who or what about.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($field:ident => $help:literal),* $(,)?) => {
        #[derive(Default)]
        pub struct Metrics {
            $(pub $field: AtomicU64,)*
        }

        impl Metrics {
            /// The Prometheus text exposition of every counter, plus the given gauges.
            pub fn render(&self, gauges: &[(&str, &str, u64)]) -> String {
                let mut out = String::new();
                $(
                    let name = concat!("schuilnaam_", stringify!($field));
                    let _ = writeln!(out, "# HELP {name} {}", $help);
                    let _ = writeln!(out, "# TYPE {name} counter");
                    let _ = writeln!(out, "{name} {}", self.$field.load(Ordering::Relaxed));
                )*
                for (name, help, value) in gauges {
                    let _ = writeln!(out, "# HELP schuilnaam_{name} {help}");
                    let _ = writeln!(out, "# TYPE schuilnaam_{name} gauge");
                    let _ = writeln!(out, "schuilnaam_{name} {value}");
                }
                out
            }
        }
    };
}

counters! {
    messages_delivered_total => "Messages sealed and committed.",
    messages_refused_total => "Deliveries refused (unknown or burned alias, unauthorised sender).",
    logins_succeeded_total => "Successful worker logins.",
    logins_failed_total => "Failed worker logins.",
    logins_rate_limited_total => "Login attempts refused by the rate limiter.",
    http_requests_total => "HTTP requests answered on the worker and partner listeners.",
    http_server_errors_total => "HTTP requests answered with a 5xx status.",
    tls_handshakes_failed_total => "TLS handshakes that failed or timed out.",
    retention_deleted_total => "Messages deleted by the retention task.",
    smtp_sessions_total => "SMTP connections.",
    smtp_messages_accepted_total => "Mail messages accepted (250 after DATA).",
    smtp_messages_refused_total => "Mail messages refused after DATA (including malformed ones).",
    smtp_sessions_refused_total => "SMTP connections refused: too many open from one address.",
    smtp_data_deferred_total => "Mail messages deferred (452): the shared DATA memory budget ran out.",
    bounces_total => "Verified delivery failure reports that marked a sent message not delivered.",
    bounces_unverified_total => "Failure reports to a return path from a host no SPF record vouches for (changed nothing).",
    phone_calls_routed_total => "Calls to alias numbers let through (ringing or voicemail).",
    phone_calls_refused_total => "Calls to alias numbers refused (unknown or withheld caller, burned or unserved number).",
    phone_webhooks_forbidden_total => "Phone webhooks refused: missing or wrong signature, or not from an allowed address with the secret.",
    phone_recordings_deleted_total => "Voicemail recordings deleted at the provider.",
}

impl Metrics {
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let metrics = Metrics::default();
        Metrics::inc(&metrics.messages_delivered_total);
        let text = metrics.render(&[("sessions", "Live sessions.", 3)]);
        assert!(text.contains("# TYPE schuilnaam_messages_delivered_total counter\nschuilnaam_messages_delivered_total 1\n"));
        assert!(text.contains("schuilnaam_sessions 3\n"));
    }
}
