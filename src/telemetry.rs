//! Logging set-up. What is logged is chosen at each call site: routes, statuses, counts and causes of
//! internal errors, never message content, real identities, tokens or client addresses.
//!
//! Dependencies choose their own log lines, and some of them name what they handle (the DNS resolver
//! logs every name it looks up: a sender's domain, which can be a family's own). So whatever `RUST_LOG`
//! says, only the relay's own lines go below warnings; the crates that handle names, addresses or
//! message bytes are silenced entirely (their failures reach the relay as errors, which it logs
//! itself without the data).

use std::io::IsTerminal;

use tracing::{Level, Metadata};
use tracing_subscriber::filter::{EnvFilter, FilterFn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Crates that are never logged from: they see domains, addresses, mail or TLS details.
const SILENCED: [&str; 7] = [
    "hickory_proto",
    "hickory_resolver",
    "mail_auth",
    "mail_parser",
    "lettre",
    "rustls",
    "tokio_rustls",
];

/// Whether a log line may be written at all, whatever `RUST_LOG` asks for.
pub fn allowed(metadata: &Metadata<'_>) -> bool {
    let target = metadata.target();
    let crate_name = target.split("::").next().unwrap_or(target);
    if crate_name == "schuilnaam" {
        return true;
    }
    !SILENCED.contains(&crate_name) && *metadata.level() <= Level::WARN
}

/// Logs to stderr; `RUST_LOG` chooses the level (default `info`), within `allowed`.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let output = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal());
    // Both filters apply to everything: a line is written only when both let it through.
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(FilterFn::new(allowed))
        .with(output)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::callsite::Identifier;
    use tracing::field::FieldSet;
    use tracing::metadata::Kind;

    struct Site;
    impl tracing::callsite::Callsite for Site {
        fn set_interest(&self, _: tracing::subscriber::Interest) {}
        fn metadata(&self) -> &Metadata<'_> {
            unreachable!()
        }
    }
    static SITE: Site = Site;

    fn metadata(target: &'static str, level: Level) -> Metadata<'static> {
        Metadata::new(
            "event",
            target,
            level,
            None,
            None,
            None,
            FieldSet::new(&[], Identifier(&SITE)),
            Kind::EVENT,
        )
    }

    #[test]
    fn dependencies_are_capped_and_name_handlers_silenced() {
        assert!(allowed(&metadata("schuilnaam::mail::smtp", Level::TRACE)));
        assert!(allowed(&metadata("schuilnaam", Level::DEBUG)));
        assert!(allowed(&metadata("hyper::proto", Level::WARN)));
        assert!(!allowed(&metadata("hyper::proto", Level::DEBUG)));
        assert!(!allowed(&metadata("sqlx::query", Level::INFO)));
        for silenced in SILENCED {
            assert!(!allowed(&metadata(silenced, Level::ERROR)), "{silenced}");
        }
        assert!(!allowed(&metadata(
            "hickory_proto::xfer::dns_exchange",
            Level::ERROR
        )));
    }
}
