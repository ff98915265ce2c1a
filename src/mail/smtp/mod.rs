//! The inbound SMTP listener: EHLO/HELO, STARTTLS, MAIL, RCPT, DATA, RSET, NOOP, QUIT, with SIZE,
//! 8BITMIME, PIPELINING and ENHANCEDSTATUSCODES (and XFORWARD for a trusted Postfix in front).
//!
//! - `wire`: strict framing of command lines and DATA (only CRLF ends a line);
//! - `session`: the command state machine, synchronous;
//! - `limits`: messages per minute, the shared memory budget for DATA;
//! - here: the connection driver (on the shared accept loop) and the decision at the end of DATA:
//!   a bounce, or inspect → authenticate the sender → the one intake.

pub mod limits;
pub mod session;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use self::limits::{DataBudget, Reservation, SmtpLimits};
use self::session::{Context, Envelope, Next, Session, Settings};
use self::wire::{CommandLine, DataEnd, DataParser, DataRefusal, Read, Wire};
use crate::core::Core;
use crate::intake::{self, Claim, Rejected, Submission};
use crate::mail::auth::{Authenticator, Client, Verdict};
use crate::mail::bounce;
use crate::mail::inspect;
use crate::mailbox::{Channel, MailParts, MessageKind};
use crate::metrics::Metrics;
use crate::net::{accept_loop, Accepted, Limits};
use crate::partner::{self, Contact};

/// The one answer to a refused message.
pub const REFUSED: &str = "550 5.7.1 Message refused";
const ACCEPTED: &str = "250 2.0.0 Message accepted";
const TEMPORARY: &str = "451 4.3.0 Temporary failure, please try again later";

const MAX_SESSIONS: usize = 512;
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// Messages up to this size are inspected on the async thread that received them; larger ones in the
/// CPU pool.
const INLINE_INSPECT_BYTES: usize = 64 * 1024;

/// The SMTP adapter's state: the core, plus what only SMTP needs.
pub struct SmtpServer {
    core: Arc<Core>,
    authenticator: Authenticator,
    limits: SmtpLimits,
    budget: DataBudget,
    acceptor: TlsAcceptor,
}

impl SmtpServer {
    pub fn new(core: Arc<Core>, authenticator: Authenticator, tls: Arc<ServerConfig>) -> Self {
        let smtp = &core.config.smtp;
        Self {
            limits: SmtpLimits::new(
                smtp.max_messages_per_minute_per_address,
                smtp.max_messages_per_minute_per_domain,
            ),
            budget: DataBudget::new(smtp.max_data_memory_bytes),
            authenticator,
            acceptor: TlsAcceptor::from(tls),
            core,
        }
    }

    /// The shared DATA memory budget (for the `/metrics` gauge).
    pub fn budget(&self) -> DataBudget {
        self.budget.clone()
    }
}

/// Serves SMTP until `shutdown`; open sessions are told 421 at their next command.
pub async fn serve(
    listener: TcpListener,
    server: Arc<SmtpServer>,
    shutdown: watch::Receiver<bool>,
) {
    let limits = Limits {
        max_connections: MAX_SESSIONS,
        per_network: Some(server.core.config.smtp.max_sessions_per_address),
        drain: DRAIN_TIMEOUT,
    };
    let session_shutdown = shutdown.clone();
    accept_loop(listener, limits, shutdown, move |accepted| {
        let server = server.clone();
        let shutdown = session_shutdown.clone();
        async move { server.run_session(accepted, shutdown).await }
    })
    .await;
}

impl SmtpServer {
    async fn run_session(&self, accepted: Accepted, mut shutdown: watch::Receiver<bool>) {
        let metrics = &self.core.metrics;
        if accepted.over_network_limit {
            Metrics::inc(&metrics.smtp_sessions_refused_total);
            let mut tcp = accepted.tcp;
            let _ = tokio::time::timeout(
                Duration::from_secs(5),
                tcp.write_all(b"421 4.7.0 Too many connections from your address\r\n"),
            )
            .await;
            return;
        }
        Metrics::inc(&metrics.smtp_sessions_total);
        let smtp = &self.core.config.smtp;
        let mut session = Session::new(
            Settings {
                hostname: smtp.hostname.clone(),
                relay_domain: self.core.domain.as_str().to_string(),
                max_message_bytes: smtp.max_message_bytes,
                require_tls: smtp.require_tls,
                trusted_proxy: smtp.xforward_from.contains(&accepted.peer.ip()),
            },
            accepted.peer.ip(),
        );
        let mut wire = Wire::new(
            Box::new(accepted.tcp),
            Duration::from_secs(smtp.command_timeout_seconds.max(1)),
            Duration::from_secs(smtp.data_timeout_seconds.max(1)),
        );
        wire.reply(&session.greeting());
        loop {
            // Shutdown first: a session that was busy when the relay began to stop is told so at its
            // next command, even when that command is already waiting.
            let read = tokio::select! {
                biased;
                _ = shutdown.changed() => {
                    wire.reply("421 4.3.2 Service shutting down");
                    wire.flush().await;
                    return;
                }
                read = wire.read_command() => read,
            };
            let context = Context {
                limits: &self.limits,
                now: self.core.now(),
            };
            let (reply, next) = match read {
                Read::Got(CommandLine::Line(line)) => session.on_command(&line, &context),
                Read::Got(CommandLine::TooLong) => session.on_line_too_long(),
                Read::Got(CommandLine::BareNewline) => session.on_bare_newline(),
                Read::Closed => return,
                Read::TimedOut => (
                    "421 4.4.2 Timeout, closing connection".to_string(),
                    Next::Close,
                ),
            };
            wire.reply(&reply);
            let next = match next {
                Next::ReadData(envelope) => {
                    if !wire.flush().await {
                        return;
                    }
                    let (reply, next) = self.receive(&mut wire, &session, envelope).await;
                    if let Some(reply) = reply {
                        wire.reply(&reply);
                    }
                    next
                }
                other => other,
            };
            match next {
                Next::Continue | Next::ReadData(_) => {
                    if wire.input.is_empty() && !wire.flush().await {
                        return;
                    }
                }
                Next::Close => {
                    wire.flush().await;
                    return;
                }
                Next::StartTls => {
                    if !wire.flush().await {
                        return;
                    }
                    // Anything the client pipelined after STARTTLS arrived in the clear: drop it.
                    wire.input.clear();
                    let io = std::mem::replace(&mut wire.io, Box::new(tokio::io::empty()));
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, self.acceptor.accept(io)).await {
                        Ok(Ok(stream)) => {
                            wire.io = Box::new(stream);
                            session.tls_started();
                        }
                        _ => {
                            Metrics::inc(&metrics.tls_handshakes_failed_total);
                            return;
                        }
                    }
                }
            }
        }
    }

    /// Reads the message and decides; the reply (none when the client left) and whether the session
    /// goes on.
    async fn receive(
        &self,
        wire: &mut Wire,
        session: &Session,
        envelope: Envelope,
    ) -> (Option<String>, Next) {
        let metrics = &self.core.metrics;
        let mut parser = DataParser::new(self.core.config.smtp.max_message_bytes);
        // The memory the message holds is reserved from the shared budget until it is stored.
        let mut reservation = Reservation::default();
        let read = wire
            .read_data(&mut parser, |held| self.budget.grow(&mut reservation, held))
            .await;
        let raw = match read {
            Read::Got(DataEnd::Complete(raw)) => raw,
            Read::Got(DataEnd::Refused(DataRefusal::TooBig)) => {
                return (Some("552 5.3.4 Message too big".into()), Next::Continue)
            }
            Read::Got(DataEnd::Refused(DataRefusal::NoMemory)) => {
                Metrics::inc(&metrics.smtp_data_deferred_total);
                let reply = "452 4.3.1 Insufficient system storage, please try again later";
                return (Some(reply.into()), Next::Continue);
            }
            Read::Got(DataEnd::Refused(DataRefusal::BareNewline)) => {
                Metrics::inc(&metrics.smtp_messages_refused_total);
                let reply =
                    "554 5.6.11 Message refused: bare LF or CR in the message; only CRLF ends a line";
                return (Some(reply.into()), Next::Close);
            }
            Read::Closed => return (None, Next::Close),
            Read::TimedOut => {
                let reply = "421 4.4.2 Timeout while receiving data, closing connection";
                return (Some(reply.into()), Next::Close);
            }
        };
        let client = Client {
            ip: session.client_ip(),
            helo: session.helo(),
            mail_from: envelope.mail_from,
        };
        let reply = self.decide(client, envelope.rcpt, raw).await;
        drop(reservation);
        (Some(reply), Next::Continue)
    }

    /// The decision at the end of DATA: a bounce, or a message for the intake.
    async fn decide(&self, client: Client, rcpt: crate::alias::Address, raw: Vec<u8>) -> String {
        let core = &self.core;
        let local = rcpt.as_str().split('@').next().unwrap_or_default();
        if local.starts_with("bounce+") {
            return match bounce::receive(core, &self.authenticator, local, &client, &raw).await {
                bounce::Outcome::Accepted => ACCEPTED,
                bounce::Outcome::Refused => REFUSED,
                bounce::Outcome::TryLater => TEMPORARY,
            }
            .to_string();
        }
        let (raw, inspected) = if raw.len() <= INLINE_INSPECT_BYTES {
            let inspected = inspect::inspect(&raw);
            (raw, inspected)
        } else {
            match core
                .cpu
                .run(move || {
                    let inspected = inspect::inspect(&raw);
                    (raw, inspected)
                })
                .await
            {
                Ok(done) => done,
                Err(e) => {
                    tracing::error!(cause = %e, "smtp: inspecting a message failed");
                    return TEMPORARY.to_string();
                }
            }
        };
        let inspected = match inspected {
            Ok(inspected) => inspected,
            Err(malformed) => {
                Metrics::inc(&core.metrics.smtp_messages_refused_total);
                return format!("554 5.6.0 Message refused: {malformed}");
            }
        };
        let verdict = self
            .authenticator
            .verify(&raw, &inspected.from_domain(), &client)
            .await;
        if verdict == Verdict::TempError {
            return "451 4.7.5 Sender authentication temporarily unavailable, please try again later"
                .to_string();
        }
        let claim = match self.claim(verdict, &inspected.from).await {
            Ok(claim) => claim,
            Err(e) => {
                tracing::error!(cause = %e, "smtp: looking up the sender failed");
                return TEMPORARY.to_string();
            }
        };
        let kind = if local == "aanmelding" {
            MessageKind::Aanmelding
        } else {
            MessageKind::Bericht
        };
        let submission = Submission {
            to: rcpt,
            claim,
            channel: Channel::Mail,
            kind,
            urgent: inspected.urgent,
            sender_label: inspected.from.as_str().to_string(),
            subject: inspected.subject,
            body: inspected.text,
            mail: Some(MailParts {
                reply_to: inspected.from.as_str().to_string(),
                message_id: inspected.message_id,
                references: inspected.references,
                attachments: inspected.attachments,
                raw,
            }),
        };
        match intake::submit(core, submission).await {
            Ok(_) => {
                Metrics::inc(&core.metrics.smtp_messages_accepted_total);
                ACCEPTED.to_string()
            }
            Err(Rejected::Refused(_)) => {
                Metrics::inc(&core.metrics.smtp_messages_refused_total);
                REFUSED.to_string()
            }
            Err(Rejected::Failed(e)) => {
                tracing::error!(cause = %e, "smtp: storing a message failed");
                TEMPORARY.to_string()
            }
        }
    }

    /// Who the mail is from, as far as authentication establishes it: nobody when DMARC fails; else the
    /// organisation that registered the From domain, or the From address to look up among the alias's
    /// allowed contacts.
    async fn claim(
        &self,
        verdict: Verdict,
        from: &crate::mail::EmailAddress,
    ) -> crate::Result<Claim> {
        if verdict != Verdict::Pass {
            return Ok(Claim::default());
        }
        let organisation = partner::by_mail_domain(&self.core.store, from.domain()).await?;
        let contact = organisation.is_none().then(|| Contact::Email(from.clone()));
        Ok(Claim {
            organisation,
            contact,
            pinned_certificate: None,
        })
    }
}
