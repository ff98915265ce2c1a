//! Prometheus text metrics: counters of what happened, never who or what about; a few counters split
//! by a fixed label (a channel, an outcome), and histograms of durations.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

macro_rules! metrics {
    (
        counters { $($field:ident => $help:literal),* $(,)? }
        families { $($family:ident: $kind:ty => $fhelp:literal),* $(,)? }
    ) => {
        #[derive(Default)]
        pub struct Metrics {
            $(pub $field: AtomicU64,)*
            $(pub $family: $kind,)*
        }

        impl Metrics {
            /// The Prometheus text exposition of every metric, plus the given gauges.
            pub fn render(&self, gauges: &[(&str, &str, u64)]) -> String {
                let mut out = String::new();
                $(
                    let name = concat!("schuilnaam_", stringify!($field));
                    let _ = writeln!(out, "# HELP {name} {}", $help);
                    let _ = writeln!(out, "# TYPE {name} counter");
                    let _ = writeln!(out, "{name} {}", self.$field.load(Ordering::Relaxed));
                )*
                $(
                    self.$family.render(concat!("schuilnaam_", stringify!($family)), $fhelp, &mut out);
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

metrics! {
    counters {
        messages_delivered_total => "Messages sealed and committed.",
        messages_refused_total => "Deliveries refused (unknown or burned alias, unauthorised sender).",
        logins_succeeded_total => "Successful worker logins.",
        logins_failed_total => "Failed worker logins.",
        logins_rate_limited_total => "Login attempts refused by the rate limiter.",
        http_requests_total => "HTTP requests answered on the worker and partner listeners.",
        http_server_errors_total => "HTTP requests answered with a 5xx status.",
        tls_handshakes_failed_total => "TLS handshakes that failed or timed out.",
        https_connections_refused_total => "HTTPS connections closed at once: too many open from one address.",
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
        oncall_alerts_total => "On-call alerts that started escalating (their first step fired here).",
    }
    families {
        oncall_notifications_total: LabeledCounter => "On-call notifications by channel and outcome (sent, retried, failed, cancelled).",
        oncall_first_notification_seconds: Histogram => "Time from an alert's trigger to its first notification handed to a channel.",
    }
}

impl Metrics {
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// A counter split by labels with a few fixed values each (`channel="sms",outcome="sent"`).
#[derive(Default)]
pub struct LabeledCounter {
    values: Mutex<BTreeMap<String, u64>>,
}

impl LabeledCounter {
    /// Label values are the relay's own words, never input from outside.
    pub fn inc(&self, labels: &[(&str, &str)]) {
        let key = labels
            .iter()
            .map(|(name, value)| format!("{name}=\"{value}\""))
            .collect::<Vec<_>>()
            .join(",");
        *self
            .values
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key)
            .or_default() += 1;
    }

    /// The value for exactly these labels.
    pub fn get(&self, labels: &[(&str, &str)]) -> u64 {
        let key = labels
            .iter()
            .map(|(name, value)| format!("{name}=\"{value}\""))
            .collect::<Vec<_>>()
            .join(",");
        self.values
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .copied()
            .unwrap_or(0)
    }

    fn render(&self, name: &str, help: &str, out: &mut String) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} counter");
        for (labels, value) in self.values.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
}

/// Upper bounds (seconds) of the duration histogram's buckets.
const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// A histogram of durations with fixed buckets from 5 ms to 30 s.
#[derive(Default)]
pub struct Histogram {
    /// Observations per bucket (not cumulative); the last is +Inf.
    counts: [AtomicU64; BUCKETS.len() + 1],
    sum_millis: AtomicU64,
}

impl Histogram {
    pub fn observe_millis(&self, millis: i64) {
        let millis = u64::try_from(millis).unwrap_or(0);
        let seconds = millis as f64 / 1000.0;
        let bucket = BUCKETS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(BUCKETS.len());
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_millis.fetch_add(millis, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    fn render(&self, name: &str, help: &str, out: &mut String) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut cumulative = 0;
        for (i, count) in self.counts.iter().enumerate() {
            cumulative += count.load(Ordering::Relaxed);
            let bound = BUCKETS
                .get(i)
                .map(|b| b.to_string())
                .unwrap_or_else(|| "+Inf".into());
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let sum = self.sum_millis.load(Ordering::Relaxed) as f64 / 1000.0;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {cumulative}");
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

    #[test]
    fn labeled_counters_and_histograms_render() {
        let metrics = Metrics::default();
        let sms_sent = [("channel", "sms"), ("outcome", "sent")];
        metrics.oncall_notifications_total.inc(&sms_sent);
        metrics.oncall_notifications_total.inc(&sms_sent);
        metrics
            .oncall_notifications_total
            .inc(&[("channel", "email"), ("outcome", "failed")]);
        assert_eq!(metrics.oncall_notifications_total.get(&sms_sent), 2);
        for millis in [3, 40, 40, 150, 60_000] {
            metrics
                .oncall_first_notification_seconds
                .observe_millis(millis);
        }
        let text = metrics.render(&[]);
        assert!(text.contains(
            "schuilnaam_oncall_notifications_total{channel=\"sms\",outcome=\"sent\"} 2\n"
        ));
        assert!(text.contains(
            "schuilnaam_oncall_notifications_total{channel=\"email\",outcome=\"failed\"} 1\n"
        ));
        let h = "schuilnaam_oncall_first_notification_seconds";
        assert!(text.contains(&format!("# TYPE {h} histogram\n")));
        assert!(text.contains(&format!("{h}_bucket{{le=\"0.005\"}} 1\n")));
        assert!(text.contains(&format!("{h}_bucket{{le=\"0.05\"}} 3\n")));
        assert!(text.contains(&format!("{h}_bucket{{le=\"0.2\"}} 4\n")));
        assert!(text.contains(&format!("{h}_bucket{{le=\"30\"}} 4\n")));
        assert!(text.contains(&format!("{h}_bucket{{le=\"+Inf\"}} 5\n")));
        assert!(text.contains(&format!("{h}_count 5\n")));
        assert!(text.contains(&format!("{h}_sum 60.233\n")));
    }
}
