//! The inbound SMTP listener: EHLO/HELO, STARTTLS, MAIL, RCPT, DATA, RSET, NOOP, QUIT, with SIZE,
//! 8BITMIME, PIPELINING and ENHANCEDSTATUSCODES (and XFORWARD for a trusted Postfix in front).
//! Commands are parsed by smtp-proto; the session logic and the decision at the end of DATA are here.
//!
//! Whether an alias exists is never revealed: every address on the relay domain is accepted at RCPT,
//! and an unknown alias, a burned alias and an unauthorised sender all get the same reply after DATA.
//! One recipient per transaction (others get 452 and are retried by the sending server), so each
//! message has exactly one decision.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::ServerConfig;
use smtp_proto::Request;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::alias::{self, Address};
use crate::audit::{self, Actor, Event};
use crate::mail::auth::{Client, Verdict};
use crate::mail::inspect;
use crate::mailbox::{Channel, Incoming, MailParts, MessageKind};
use crate::metrics::Metrics;
use crate::partner::{self, MailSender, Refusal};
use crate::session::network_of;
use crate::web::SharedState;

/// The one answer to a refused message.
pub const REFUSED: &str = "550 5.7.1 Message refused";
const ACCEPTED: &str = "250 2.0.0 Message accepted";
const TEMPORARY: &str = "451 4.3.0 Temporary failure, please try again later";

const MAX_COMMAND_LINE: usize = 4096;
const MAX_ERRORS: u32 = 10;
const MAX_SESSIONS: usize = 512;

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// Serves SMTP until `shutdown`; open sessions are told 421 at their next command.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    state: SharedState,
    mut shutdown: watch::Receiver<bool>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_SESSIONS));
    let per_address = Arc::new(SessionsPerAddress::new(
        state.config.smtp.max_sessions_per_address,
    ));
    let mut sessions = tokio::task::JoinSet::new();
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("never closed"),
            _ = shutdown.changed() => break,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(cause = %e, "smtp: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let _ = tcp.set_nodelay(true);
        let Some(admitted) = per_address.admit(peer.ip()) else {
            Metrics::inc(&state.metrics.smtp_sessions_refused_total);
            sessions.spawn(async move {
                let _slot = slot;
                let mut tcp = tcp;
                let _ = tokio::time::timeout(
                    Duration::from_secs(5),
                    tcp.write_all(b"421 4.7.0 Too many connections from your address\r\n"),
                )
                .await;
            });
            continue;
        };
        let session = Session::new(state.clone(), acceptor.clone(), peer, shutdown.clone());
        sessions.spawn(async move {
            let _slot = slot;
            let _admitted = admitted;
            session.run(Box::new(tcp)).await;
        });
        while sessions.try_join_next().is_some() {}
    }
    drop(listener);
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while sessions.join_next().await.is_some() {}
    })
    .await;
}

/// Reading from the client, with a buffer that can be discarded (at STARTTLS).
struct Wire {
    io: Box<dyn Stream>,
    input: Vec<u8>,
    output: Vec<u8>,
    command_timeout: Duration,
    data_timeout: Duration,
}

enum Line {
    Complete(Vec<u8>),
    TooLong,
    Closed,
    TimedOut,
}

enum Data {
    /// The message, and the share of the memory budget it holds until it is stored.
    Complete(Vec<u8>, Reservation),
    TooBig,
    /// The memory budget of all sessions together ran out while receiving.
    NoMemory,
    Closed,
    TimedOut,
}

impl Wire {
    async fn fill(&mut self, timeout: Duration) -> Option<bool> {
        let mut chunk = [0u8; 16 * 1024];
        match tokio::time::timeout(timeout, self.io.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => Some(false),
            Ok(Ok(n)) => {
                self.input.extend_from_slice(&chunk[..n]);
                Some(true)
            }
            Err(_) => None,
        }
    }

    /// One command line (without its line end). Longer lines are consumed and reported.
    async fn read_line(&mut self) -> Line {
        let mut discarding = false;
        loop {
            if let Some(end) = self.input.iter().position(|b| *b == b'\n') {
                let mut line: Vec<u8> = self.input.drain(..=end).collect();
                if discarding {
                    return Line::TooLong;
                }
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Line::Complete(line);
            }
            if self.input.len() > MAX_COMMAND_LINE {
                self.input.clear();
                discarding = true;
            }
            self.flush().await;
            match self.fill(self.command_timeout).await {
                Some(true) => {}
                Some(false) => return Line::Closed,
                None => return Line::TimedOut,
            }
        }
    }

    /// The message after DATA, dot-unstuffed, up to `max` bytes and as far as the shared memory
    /// budget allows; the rest is read and dropped.
    async fn read_data(&mut self, max: usize, budget: &DataBudget) -> Data {
        let started = Instant::now();
        let mut message = Vec::with_capacity(8 * 1024);
        let mut reservation = Reservation::default();
        let mut refused: Option<Data> = None;
        loop {
            while let Some(end) = self.input.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.input.drain(..=end).collect();
                let content = line.strip_suffix(b"\n").unwrap_or(&line);
                let content = content.strip_suffix(b"\r").unwrap_or(content);
                if content == b"." {
                    return refused.unwrap_or(Data::Complete(message, reservation));
                }
                if refused.is_some() {
                    continue;
                }
                let unstuffed = line.strip_prefix(b".").unwrap_or(&line);
                let needed = message.len() + unstuffed.len();
                if needed > max {
                    refused = Some(Data::TooBig);
                } else if !budget.grow(&mut reservation, needed) {
                    refused = Some(Data::NoMemory);
                } else {
                    message.extend_from_slice(unstuffed);
                    continue;
                }
                // Refused: what was held goes back at once.
                message = Vec::new();
                reservation = Reservation::default();
            }
            // A line that never ends counts against the limit too.
            if self.input.len() > max {
                refused.get_or_insert(Data::TooBig);
                message = Vec::new();
                reservation = Reservation::default();
                let keep = self.input.split_off(self.input.len() - 1);
                self.input = keep;
            }
            let left = self.data_timeout.saturating_sub(started.elapsed());
            if left.is_zero() {
                return Data::TimedOut;
            }
            match self.fill(left).await {
                Some(true) => {}
                Some(false) => return Data::Closed,
                None => return Data::TimedOut,
            }
        }
    }

    fn reply(&mut self, text: &str) {
        self.output.extend_from_slice(text.as_bytes());
        self.output.extend_from_slice(b"\r\n");
    }

    /// Writes pending replies. With PIPELINING, replies are held while more commands are buffered.
    async fn flush(&mut self) -> bool {
        if self.output.is_empty() {
            return true;
        }
        let ok = self.io.write_all(&self.output).await.is_ok() && self.io.flush().await.is_ok();
        self.output.clear();
        ok
    }
}

/// The envelope of the transaction in progress.
#[derive(Default)]
struct Transaction {
    mail_from: Option<String>,
    rcpt: Option<Address>,
}

struct Session {
    state: SharedState,
    acceptor: TlsAcceptor,
    peer: SocketAddr,
    shutdown: watch::Receiver<bool>,
    helo: Option<String>,
    tls: bool,
    /// The original client, passed on by a trusted proxy with XFORWARD.
    forwarded_ip: Option<IpAddr>,
    forwarded_helo: Option<String>,
    transaction: Transaction,
    errors: u32,
}

enum Next {
    Continue,
    StartTls,
    Close,
}

impl Session {
    fn new(
        state: SharedState,
        acceptor: TlsAcceptor,
        peer: SocketAddr,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        Self {
            state,
            acceptor,
            peer,
            shutdown,
            helo: None,
            tls: false,
            forwarded_ip: None,
            forwarded_helo: None,
            transaction: Transaction::default(),
            errors: 0,
        }
    }

    fn hostname(&self) -> &str {
        &self.state.config.smtp.hostname
    }

    fn trusted_proxy(&self) -> bool {
        self.state
            .config
            .smtp
            .xforward_from
            .contains(&self.peer.ip())
    }

    async fn run(mut self, io: Box<dyn Stream>) {
        Metrics::inc(&self.state.metrics.smtp_sessions_total);
        let smtp = &self.state.config.smtp;
        let mut wire = Wire {
            io,
            input: Vec::new(),
            output: Vec::new(),
            command_timeout: Duration::from_secs(smtp.command_timeout_seconds.max(1)),
            data_timeout: Duration::from_secs(smtp.data_timeout_seconds.max(1)),
        };
        wire.reply(&format!("220 {} ESMTP", self.hostname()));
        loop {
            let line = tokio::select! {
                line = wire.read_line() => line,
                _ = self.shutdown.changed() => {
                    wire.reply("421 4.3.2 Service shutting down");
                    wire.flush().await;
                    return;
                }
            };
            let next = match line {
                Line::Complete(line) => self.command(&mut wire, &line).await,
                Line::TooLong => {
                    wire.reply("500 5.5.2 Line too long");
                    self.error(&mut wire)
                }
                Line::Closed => return,
                Line::TimedOut => {
                    wire.reply("421 4.4.2 Timeout, closing connection");
                    Next::Close
                }
            };
            match next {
                Next::Continue => {
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
                    match tokio::time::timeout(
                        Duration::from_secs(30),
                        self.acceptor.accept(wire.io),
                    )
                    .await
                    {
                        Ok(Ok(stream)) => {
                            wire.io = Box::new(stream);
                            self.tls = true;
                            self.helo = None;
                            self.transaction = Transaction::default();
                        }
                        _ => {
                            Metrics::inc(&self.state.metrics.tls_handshakes_failed_total);
                            return;
                        }
                    }
                }
            }
        }
    }

    /// Counts a client error; the session ends at the next command once there were too many.
    fn error(&mut self, _wire: &mut Wire) -> Next {
        self.errors += 1;
        Next::Continue
    }

    async fn command(&mut self, wire: &mut Wire, line: &[u8]) -> Next {
        if self.errors >= MAX_ERRORS {
            wire.reply("421 4.7.0 Too many errors, closing connection");
            return Next::Close;
        }
        if starts_with_ignore_case(line, b"XFORWARD ") {
            return self.xforward(wire, &line[9..]);
        }
        let mut with_crlf = line.to_vec();
        with_crlf.extend_from_slice(b"\r\n");
        let request = match Request::parse(&mut with_crlf.iter()) {
            Ok(request) => request,
            Err(smtp_proto::Error::UnknownCommand) => {
                wire.reply("500 5.5.2 Command not recognised");
                return self.error(wire);
            }
            Err(smtp_proto::Error::InvalidSenderAddress) => {
                wire.reply("501 5.1.7 Bad sender address syntax");
                return self.error(wire);
            }
            Err(smtp_proto::Error::InvalidRecipientAddress) => {
                wire.reply("501 5.1.3 Bad recipient address syntax");
                return self.error(wire);
            }
            Err(_) => {
                wire.reply("501 5.5.4 Syntax error in parameters");
                return self.error(wire);
            }
        };
        match request {
            Request::Ehlo { host } => {
                self.helo = Some(host);
                self.transaction = Transaction::default();
                let mut lines = vec![
                    self.hostname().to_string(),
                    "PIPELINING".to_string(),
                    format!("SIZE {}", self.state.config.smtp.max_message_bytes),
                    "8BITMIME".to_string(),
                    "ENHANCEDSTATUSCODES".to_string(),
                ];
                if !self.tls {
                    lines.push("STARTTLS".to_string());
                }
                if self.trusted_proxy() {
                    lines.push("XFORWARD NAME ADDR PROTO HELO".to_string());
                }
                let last = lines.len() - 1;
                for (i, text) in lines.iter().enumerate() {
                    wire.reply(&format!("250{}{text}", if i == last { ' ' } else { '-' }));
                }
                Next::Continue
            }
            Request::Helo { host } | Request::Lhlo { host } => {
                self.helo = Some(host);
                self.transaction = Transaction::default();
                wire.reply(&format!("250 {}", self.hostname()));
                Next::Continue
            }
            Request::StartTls => {
                if self.tls {
                    wire.reply("503 5.5.1 TLS already active");
                    return self.error(wire);
                }
                wire.reply("220 2.0.0 Ready to start TLS");
                Next::StartTls
            }
            Request::Mail { from } => self.mail(wire, from).await,
            Request::Rcpt { to } => self.rcpt(wire, &to.address),
            Request::Data => self.data(wire).await,
            Request::Rset => {
                self.transaction = Transaction::default();
                wire.reply("250 2.0.0 OK");
                Next::Continue
            }
            Request::Noop { .. } => {
                wire.reply("250 2.0.0 OK");
                Next::Continue
            }
            Request::Quit => {
                wire.reply("221 2.0.0 Bye");
                Next::Close
            }
            Request::Vrfy { .. } => {
                // Never confirms or denies an address.
                wire.reply("252 2.5.2 Cannot VRFY user, but will accept message");
                Next::Continue
            }
            _ => {
                wire.reply("502 5.5.1 Command not implemented");
                self.error(wire)
            }
        }
    }

    fn xforward(&mut self, wire: &mut Wire, attributes: &[u8]) -> Next {
        if !self.trusted_proxy() {
            wire.reply("550 5.7.0 XFORWARD not allowed");
            return self.error(wire);
        }
        for attribute in String::from_utf8_lossy(attributes).split_whitespace() {
            match attribute.split_once('=') {
                Some((name, value)) if name.eq_ignore_ascii_case("ADDR") => {
                    let value = value.trim_start_matches("IPV6:");
                    self.forwarded_ip = value.parse().ok();
                }
                Some((name, value)) if name.eq_ignore_ascii_case("HELO") => {
                    self.forwarded_helo = Some(value.to_string());
                }
                _ => {}
            }
        }
        wire.reply("250 2.0.0 OK");
        Next::Continue
    }

    async fn mail(&mut self, wire: &mut Wire, from: smtp_proto::MailFrom<String>) -> Next {
        if self.helo.is_none() {
            wire.reply("503 5.5.1 Send EHLO first");
            return self.error(wire);
        }
        if self.state.config.smtp.require_tls && !self.tls {
            wire.reply("530 5.7.0 Must issue a STARTTLS command first");
            return self.error(wire);
        }
        if self.transaction.mail_from.is_some() {
            wire.reply("503 5.5.1 Nested MAIL command");
            return self.error(wire);
        }
        if from.size > self.state.config.smtp.max_message_bytes {
            wire.reply("552 5.3.4 Message size exceeds fixed maximum message size");
            return Next::Continue;
        }
        let domain = from
            .address
            .rsplit_once('@')
            .map(|(_, d)| d.to_ascii_lowercase())
            .unwrap_or_default();
        let now = self.state.now();
        if !self
            .state
            .smtp_limits
            .admit(self.client_ip().unwrap_or(self.peer.ip()), &domain, now)
        {
            wire.reply("451 4.7.1 Too many messages, please try again later");
            return Next::Continue;
        }
        self.transaction.mail_from = Some(from.address);
        wire.reply("250 2.1.0 OK");
        Next::Continue
    }

    fn rcpt(&mut self, wire: &mut Wire, to: &str) -> Next {
        if self.transaction.mail_from.is_none() {
            wire.reply("503 5.5.1 Send MAIL first");
            return self.error(wire);
        }
        let Ok(address) = Address::parse(to) else {
            wire.reply("501 5.1.3 Bad recipient address syntax");
            return self.error(wire);
        };
        if address.domain() != self.state.domain.as_str() {
            wire.reply("550 5.7.1 Relaying denied");
            return self.error(wire);
        }
        if self.transaction.rcpt.is_some() {
            wire.reply("452 4.5.3 One recipient per message, please send the others separately");
            return Next::Continue;
        }
        self.transaction.rcpt = Some(address);
        wire.reply("250 2.1.5 OK");
        Next::Continue
    }

    async fn data(&mut self, wire: &mut Wire) -> Next {
        let (Some(mail_from), Some(rcpt)) = (
            self.transaction.mail_from.clone(),
            self.transaction.rcpt.clone(),
        ) else {
            wire.reply("503 5.5.1 Send MAIL and RCPT first");
            return self.error(wire);
        };
        wire.reply("354 Start mail input; end with <CRLF>.<CRLF>");
        if !wire.flush().await {
            return Next::Close;
        }
        let data = wire
            .read_data(
                self.state.config.smtp.max_message_bytes,
                &self.state.smtp_budget,
            )
            .await;
        self.transaction = Transaction::default();
        match data {
            Data::Complete(raw, _held_until_stored) => {
                let reply = self.decide(mail_from, rcpt, raw).await;
                wire.reply(&reply);
                Next::Continue
            }
            Data::TooBig => {
                wire.reply("552 5.3.4 Message too big");
                Next::Continue
            }
            Data::NoMemory => {
                Metrics::inc(&self.state.metrics.smtp_data_deferred_total);
                wire.reply("452 4.3.1 Insufficient system storage, please try again later");
                Next::Continue
            }
            Data::Closed => Next::Close,
            Data::TimedOut => {
                wire.reply("421 4.4.2 Timeout while receiving data, closing connection");
                Next::Close
            }
        }
    }

    fn client_ip(&self) -> Option<IpAddr> {
        if self.trusted_proxy() {
            // Behind a proxy that did not pass the client on, SPF cannot be judged.
            self.forwarded_ip
        } else {
            Some(self.peer.ip())
        }
    }

    /// The decision at the end of DATA: bounce, malformed, authenticate, who may write, store.
    async fn decide(&self, mail_from: String, rcpt: Address, raw: Vec<u8>) -> String {
        let local = rcpt.as_str().split('@').next().unwrap_or_default();
        if local.starts_with("bounce+") {
            return crate::mail::bounce::receive(&self.state, local, &mail_from, &raw).await;
        }
        let inspected = match inspect::inspect(&raw) {
            Ok(inspected) => inspected,
            Err(malformed) => {
                Metrics::inc(&self.state.metrics.smtp_messages_refused_total);
                return format!("554 5.6.0 Message refused: {malformed}");
            }
        };
        let from_domain = inspected.from_domain();
        let client = Client {
            ip: self.client_ip(),
            helo: self
                .forwarded_helo
                .clone()
                .or_else(|| self.helo.clone())
                .unwrap_or_default(),
            mail_from,
        };
        let verdict = self
            .state
            .authenticator
            .verify(&raw, &from_domain, &client)
            .await;
        if verdict == Verdict::TempError {
            return "451 4.7.5 Sender authentication temporarily unavailable, please try again later"
                .to_string();
        }
        let outcome = self.route(&rcpt, &inspected, verdict).await;
        let (mailbox_id, organisation) = match outcome {
            Ok(Ok(route)) => route,
            Ok(Err(refusal)) => return self.refuse(&rcpt, &from_domain, refusal).await,
            Err(e) => {
                tracing::error!(cause = %e, "smtp: routing failed");
                return TEMPORARY.to_string();
            }
        };
        let actor = match &organisation {
            Some((_, name)) => Actor::Partner(name.clone()),
            None => Actor::Anonymous,
        };
        let kind = if local == "aanmelding" {
            MessageKind::Aanmelding
        } else {
            MessageKind::Bericht
        };
        let incoming = Incoming {
            mailbox_id,
            alias: rcpt.clone(),
            organisation,
            sender_label: inspected.from.as_str().to_string(),
            channel: Channel::Mail,
            kind,
            urgent: inspected.urgent,
            subject: inspected.subject,
            body: inspected.text,
            mail: Some(MailParts {
                reply_to: inspected.from.as_str().to_string(),
                message_id: inspected.message_id,
                references: inspected.references,
                attachments: inspected.attachments,
                raw,
            }),
            require_live_alias: true,
        };
        match self
            .state
            .deliverer
            .deliver(self.state.now(), &actor, incoming)
            .await
        {
            Ok(_) => {
                Metrics::inc(&self.state.metrics.messages_delivered_total);
                Metrics::inc(&self.state.metrics.smtp_messages_accepted_total);
                ACCEPTED.to_string()
            }
            Err(crate::Error::EmptyMailbox) => {
                tracing::warn!("smtp: delivery refused: the mailbox has no members");
                self.refuse(&rcpt, &from_domain, Refusal::EmptyMailbox)
                    .await
            }
            Err(crate::Error::AliasGone) => {
                self.refuse(&rcpt, &from_domain, Refusal::BurnedAlias).await
            }
            Err(e) => {
                tracing::error!(cause = %e, "smtp: storing a message failed");
                TEMPORARY.to_string()
            }
        }
    }

    /// Who may write: (mailbox, organisation) or why not.
    async fn route(
        &self,
        rcpt: &Address,
        inspected: &inspect::Inspected,
        verdict: Verdict,
    ) -> crate::Result<Result<(String, Option<(String, String)>), Refusal>> {
        let state = &self.state;
        let authenticated = verdict == Verdict::Pass;
        // Each lookup only when it can change the decision: an unauthenticated sender is refused
        // whoever it claims to be, and an organisation needs no contact entry.
        let organisation = if authenticated {
            partner::by_mail_domain(&state.store, &inspected.from_domain()).await?
        } else {
            None
        };
        let allowed_contact = authenticated
            && organisation.is_none()
            && partner::contact_allowed(&state.store, &state.server_key, rcpt, &inspected.from)
                .await?;
        let resolution = alias::resolve(&state.store, rcpt).await?;
        let sender = MailSender {
            authenticated,
            organisation: organisation.clone(),
            allowed_contact,
        };
        Ok(partner::decide_mail(&sender, resolution)
            .map(|mailbox_id| (mailbox_id, organisation.map(|o| (o.id, o.name)))))
    }

    async fn refuse(&self, rcpt: &Address, from_domain: &str, refusal: Refusal) -> String {
        Metrics::inc(&self.state.metrics.messages_refused_total);
        Metrics::inc(&self.state.metrics.smtp_messages_refused_total);
        let subject = match alias::resolve(&self.state.store, rcpt).await {
            Ok(alias::Resolution::Unknown) | Err(_) => "unknown-alias",
            Ok(_) => rcpt.as_str(),
        };
        let detail = format!(
            "channel=mail reason={} sender_domain={from_domain}",
            refusal.as_str()
        );
        if let Err(e) = audit::record(
            &self.state.store,
            self.state.now(),
            Event::new(&Actor::Anonymous, "message.refused", subject).detail(&detail),
        )
        .await
        {
            tracing::error!(cause = %e, "smtp: auditing a refusal failed");
            return TEMPORARY.to_string();
        }
        REFUSED.to_string()
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
struct Reservation {
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
    fn grow(&self, reservation: &mut Reservation, bytes: usize) -> bool {
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

/// Open sessions per client network; an admission is counted until it is dropped.
struct SessionsPerAddress {
    open: std::sync::Mutex<std::collections::HashMap<IpAddr, usize>>,
    max: usize,
}

struct Admission {
    owner: Arc<SessionsPerAddress>,
    network: IpAddr,
}

impl SessionsPerAddress {
    fn new(max: usize) -> Self {
        Self {
            open: Default::default(),
            max,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<IpAddr, usize>> {
        self.open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Admission> {
        let network = network_of(ip);
        let mut open = self.lock();
        let count = open.entry(network).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(Admission {
            owner: self.clone(),
            network,
        })
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut open = self.owner.lock();
        if let Some(count) = open.get_mut(&self.network) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.network);
            }
        }
    }
}

fn starts_with_ignore_case(line: &[u8], prefix: &[u8]) -> bool {
    line.len() >= prefix.len() && line[..prefix.len()].eq_ignore_ascii_case(prefix)
}

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
    fn sessions_per_address_are_counted_until_dropped() {
        let open = Arc::new(SessionsPerAddress::new(2));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let first = open.admit(a).unwrap();
        let second = open.admit(a).unwrap();
        assert!(open.admit(a).is_none());
        assert!(open.admit("192.0.2.2".parse().unwrap()).is_some());
        drop(first);
        let third = open.admit(a).unwrap();
        drop((second, third));
        assert!(open.lock().is_empty());
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
