//! The SMTP session as a synchronous state machine: a command line in, a reply and what to do next out.
//! No sockets and no waiting here, so every command sequence is tested directly; the connection driver
//! (`super`) does the reading, STARTTLS, and the end-of-DATA decision.
//!
//! Whether an alias exists is never revealed: every address on the relay domain is accepted at RCPT,
//! and an unknown alias, a burned alias and an unauthorised sender all get the same reply after DATA.
//! One recipient per transaction (others get 452 and are retried by the sending server), so each
//! message has exactly one decision.

use std::net::IpAddr;

use smtp_proto::Request;

use super::limits::SmtpLimits;
use crate::alias::Address;
use crate::clock::Millis;

/// Client errors allowed before the session is closed.
const MAX_ERRORS: u32 = 10;

/// What the driver does after sending the reply.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    Continue,
    /// Start TLS on the connection, then call `Session::tls_started`.
    StartTls,
    /// Read the message; the envelope it belongs to.
    ReadData(Envelope),
    Close,
}

/// The envelope of a transaction, complete at DATA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// The envelope sender, empty for the null sender.
    pub mail_from: String,
    pub rcpt: Address,
}

/// What the session's rules depend on.
pub struct Settings {
    pub hostname: String,
    pub relay_domain: String,
    pub max_message_bytes: usize,
    pub require_tls: bool,
    /// The peer is a proxy allowed to pass the original client with XFORWARD.
    pub trusted_proxy: bool,
}

/// What the session asks of the relay while deciding a command.
pub struct Context<'a> {
    pub limits: &'a SmtpLimits,
    pub now: Millis,
}

#[derive(Default)]
struct Transaction {
    mail_from: Option<String>,
    rcpt: Option<Address>,
}

pub struct Session {
    settings: Settings,
    peer: IpAddr,
    helo: Option<String>,
    tls: bool,
    /// The original client and its HELO, passed on by a trusted proxy with XFORWARD.
    forwarded_ip: Option<IpAddr>,
    forwarded_helo: Option<String>,
    transaction: Transaction,
    errors: u32,
}

type Answer = (String, Next);

fn answer(reply: &str) -> Answer {
    (reply.to_string(), Next::Continue)
}

impl Session {
    pub fn new(settings: Settings, peer: IpAddr) -> Self {
        Self {
            settings,
            peer,
            helo: None,
            tls: false,
            forwarded_ip: None,
            forwarded_helo: None,
            transaction: Transaction::default(),
            errors: 0,
        }
    }

    pub fn greeting(&self) -> String {
        format!("220 {} ESMTP", self.settings.hostname)
    }

    pub fn tls(&self) -> bool {
        self.tls
    }

    /// The client as SPF sees it: behind a trusted proxy the forwarded address (or none, when the
    /// proxy did not pass it on: SPF cannot be judged then), else the peer.
    pub fn client_ip(&self) -> Option<IpAddr> {
        if self.settings.trusted_proxy {
            self.forwarded_ip
        } else {
            Some(self.peer)
        }
    }

    /// The HELO name the client gave (the original client's, behind a proxy).
    pub fn helo(&self) -> String {
        self.forwarded_helo
            .clone()
            .or_else(|| self.helo.clone())
            .unwrap_or_default()
    }

    /// TLS is up: everything said before it is forgotten (RFC 3207).
    pub fn tls_started(&mut self) {
        self.tls = true;
        self.helo = None;
        self.transaction = Transaction::default();
    }

    /// Counts a client error; the session ends at the next command once there were too many.
    fn error(&mut self, reply: &str) -> Answer {
        self.errors += 1;
        answer(reply)
    }

    /// A line longer than the limit.
    pub fn on_line_too_long(&mut self) -> Answer {
        self.error("500 5.5.2 Line too long")
    }

    /// A command line ended by a bare LF or holding a bare CR: the client frames lines differently
    /// from us, so nothing it sends next can be trusted to mean what it seems. Closed.
    pub fn on_bare_newline(&mut self) -> Answer {
        (
            "521 5.5.2 Bare LF or CR received; only CRLF ends a line".to_string(),
            Next::Close,
        )
    }

    pub fn on_command(&mut self, line: &[u8], context: &Context<'_>) -> Answer {
        if self.errors >= MAX_ERRORS {
            return (
                "421 4.7.0 Too many errors, closing connection".to_string(),
                Next::Close,
            );
        }
        if starts_with_ignore_case(line, b"XFORWARD ") {
            return self.xforward(&line[9..]);
        }
        let mut with_crlf = line.to_vec();
        with_crlf.extend_from_slice(b"\r\n");
        let request = match Request::parse(&mut with_crlf.iter()) {
            Ok(request) => request,
            Err(smtp_proto::Error::UnknownCommand) => {
                return self.error("500 5.5.2 Command not recognised")
            }
            Err(smtp_proto::Error::InvalidSenderAddress) => {
                return self.error("501 5.1.7 Bad sender address syntax")
            }
            Err(smtp_proto::Error::InvalidRecipientAddress) => {
                return self.error("501 5.1.3 Bad recipient address syntax")
            }
            Err(_) => return self.error("501 5.5.4 Syntax error in parameters"),
        };
        match request {
            Request::Ehlo { host } => self.ehlo(host),
            Request::Helo { host } | Request::Lhlo { host } => {
                self.helo = Some(host);
                self.transaction = Transaction::default();
                answer(&format!("250 {}", self.settings.hostname))
            }
            Request::StartTls if self.tls => self.error("503 5.5.1 TLS already active"),
            Request::StartTls => ("220 2.0.0 Ready to start TLS".to_string(), Next::StartTls),
            Request::Mail { from } => self.mail(from, context),
            Request::Rcpt { to } => self.rcpt(&to.address),
            Request::Data => self.data(),
            Request::Rset => {
                self.transaction = Transaction::default();
                answer("250 2.0.0 OK")
            }
            Request::Noop { .. } => answer("250 2.0.0 OK"),
            Request::Quit => ("221 2.0.0 Bye".to_string(), Next::Close),
            // Never confirms or denies an address.
            Request::Vrfy { .. } => answer("252 2.5.2 Cannot VRFY user, but will accept message"),
            _ => self.error("502 5.5.1 Command not implemented"),
        }
    }

    fn ehlo(&mut self, host: String) -> Answer {
        self.helo = Some(host);
        self.transaction = Transaction::default();
        let mut lines = vec![
            self.settings.hostname.clone(),
            "PIPELINING".to_string(),
            format!("SIZE {}", self.settings.max_message_bytes),
            "8BITMIME".to_string(),
            "ENHANCEDSTATUSCODES".to_string(),
        ];
        if !self.tls {
            lines.push("STARTTLS".to_string());
        }
        if self.settings.trusted_proxy {
            lines.push("XFORWARD NAME ADDR PROTO HELO".to_string());
        }
        let last = lines.len() - 1;
        let reply: Vec<String> = lines
            .iter()
            .enumerate()
            .map(|(i, text)| format!("250{}{text}", if i == last { ' ' } else { '-' }))
            .collect();
        answer(&reply.join("\n"))
    }

    fn xforward(&mut self, attributes: &[u8]) -> Answer {
        if !self.settings.trusted_proxy {
            return self.error("550 5.7.0 XFORWARD not allowed");
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
        answer("250 2.0.0 OK")
    }

    fn mail(&mut self, from: smtp_proto::MailFrom<String>, context: &Context<'_>) -> Answer {
        if self.helo.is_none() {
            return self.error("503 5.5.1 Send EHLO first");
        }
        if self.settings.require_tls && !self.tls {
            return self.error("530 5.7.0 Must issue a STARTTLS command first");
        }
        if self.transaction.mail_from.is_some() {
            return self.error("503 5.5.1 Nested MAIL command");
        }
        if from.size > self.settings.max_message_bytes {
            return answer("552 5.3.4 Message size exceeds fixed maximum message size");
        }
        let domain = from
            .address
            .rsplit_once('@')
            .map(|(_, d)| d.to_ascii_lowercase())
            .unwrap_or_default();
        let client = self.client_ip().unwrap_or(self.peer);
        if !context.limits.admit(client, &domain, context.now) {
            return answer("451 4.7.1 Too many messages, please try again later");
        }
        self.transaction.mail_from = Some(from.address);
        answer("250 2.1.0 OK")
    }

    fn rcpt(&mut self, to: &str) -> Answer {
        if self.transaction.mail_from.is_none() {
            return self.error("503 5.5.1 Send MAIL first");
        }
        let Ok(address) = Address::parse(to) else {
            return self.error("501 5.1.3 Bad recipient address syntax");
        };
        if address.domain() != self.settings.relay_domain {
            return self.error("550 5.7.1 Relaying denied");
        }
        if self.transaction.rcpt.is_some() {
            return answer(
                "452 4.5.3 One recipient per message, please send the others separately",
            );
        }
        self.transaction.rcpt = Some(address);
        answer("250 2.1.5 OK")
    }

    fn data(&mut self) -> Answer {
        let transaction = std::mem::take(&mut self.transaction);
        match (transaction.mail_from, transaction.rcpt) {
            (Some(mail_from), Some(rcpt)) => (
                "354 Start mail input; end with <CRLF>.<CRLF>".to_string(),
                Next::ReadData(Envelope { mail_from, rcpt }),
            ),
            (mail_from, rcpt) => {
                self.transaction = Transaction { mail_from, rcpt };
                self.error("503 5.5.1 Send MAIL and RCPT first")
            }
        }
    }
}

fn starts_with_ignore_case(line: &[u8], prefix: &[u8]) -> bool {
    line.len() >= prefix.len() && line[..prefix.len()].eq_ignore_ascii_case(prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(require_tls: bool, trusted_proxy: bool) -> Session {
        Session::new(
            Settings {
                hostname: "relay.example".into(),
                relay_domain: "relay.example".into(),
                max_message_bytes: 1000,
                require_tls,
                trusted_proxy,
            },
            "192.0.2.7".parse().unwrap(),
        )
    }

    /// Runs commands; the reply codes and the last `Next`.
    fn run(session: &mut Session, commands: &[&str]) -> (Vec<String>, Next) {
        let limits = SmtpLimits::new(100, 100);
        let context = Context {
            limits: &limits,
            now: 0,
        };
        let mut codes = Vec::new();
        let mut next = Next::Continue;
        for command in commands {
            let (reply, n) = session.on_command(command.as_bytes(), &context);
            codes.push(reply.lines().last().unwrap()[..3].to_string());
            next = n;
        }
        (codes, next)
    }

    #[test]
    fn a_transaction_reaches_data_with_its_envelope() {
        let mut s = session(false, false);
        let (codes, next) = run(
            &mut s,
            &[
                "EHLO mail.gi.example",
                "MAIL FROM:<team@gi.example> SIZE=100",
                "RCPT TO:<abc@relay.example>",
                "DATA",
            ],
        );
        assert_eq!(codes, ["250", "250", "250", "354"]);
        assert_eq!(
            next,
            Next::ReadData(Envelope {
                mail_from: "team@gi.example".into(),
                rcpt: Address::parse("abc@relay.example").unwrap(),
            })
        );
        // The transaction is spent: DATA again needs a new envelope.
        assert_eq!(run(&mut s, &["DATA"]).0, ["503"]);
    }

    #[test]
    fn order_tls_and_recipients_are_enforced() {
        let mut s = session(true, false);
        assert_eq!(
            run(
                &mut s,
                &[
                    "MAIL FROM:<a@b.example>",
                    "EHLO x",
                    "MAIL FROM:<a@b.example>"
                ]
            )
            .0,
            ["503", "250", "530"]
        );
        let (_, next) = run(&mut s, &["STARTTLS"]);
        assert_eq!(next, Next::StartTls);
        s.tls_started();
        assert_eq!(
            run(&mut s, &["MAIL FROM:<a@b.example>"]).0,
            ["503"],
            "EHLO again after TLS"
        );
        assert_eq!(
            run(
                &mut s,
                &[
                    "EHLO x",
                    "MAIL FROM:<a@b.example>",
                    "RCPT TO:<a@elsewhere.example>",
                    "RCPT TO:<a@relay.example>",
                    "RCPT TO:<b@relay.example>",
                    "STARTTLS",
                ]
            )
            .0,
            ["250", "250", "550", "250", "452", "503"]
        );
    }

    #[test]
    fn xforward_only_from_a_trusted_proxy() {
        let mut s = session(false, false);
        assert_eq!(run(&mut s, &["XFORWARD ADDR=10.1.2.3"]).0, ["550"]);
        assert_eq!(s.client_ip(), Some("192.0.2.7".parse().unwrap()));
        let mut s = session(false, true);
        assert_eq!(
            s.client_ip(),
            None,
            "behind a proxy, no client until it says"
        );
        run(
            &mut s,
            &["XFORWARD ADDR=IPV6:2001:db8::1 HELO=mx.gi.example"],
        );
        assert_eq!(s.client_ip(), Some("2001:db8::1".parse().unwrap()));
        assert_eq!(s.helo(), "mx.gi.example");
    }

    #[test]
    fn too_many_errors_close_the_session() {
        let mut s = session(false, false);
        let bad = vec!["BOGUS"; MAX_ERRORS as usize];
        let (codes, next) = run(&mut s, &bad);
        assert!(codes.iter().all(|c| c == "500"));
        assert_eq!(next, Next::Continue);
        let (codes, next) = run(&mut s, &["NOOP"]);
        assert_eq!((codes[0].as_str(), next), ("421", Next::Close));
        assert_eq!(s.on_bare_newline().1, Next::Close);
    }

    #[test]
    fn the_rate_limit_is_asked_at_mail() {
        let mut s = session(false, false);
        let limits = SmtpLimits::new(1, 100);
        let context = Context {
            limits: &limits,
            now: 0,
        };
        s.on_command(b"EHLO x", &context);
        assert!(s
            .on_command(b"MAIL FROM:<a@b.example>", &context)
            .0
            .starts_with("250"));
        s.on_command(b"RSET", &context);
        assert!(s
            .on_command(b"MAIL FROM:<a@b.example>", &context)
            .0
            .starts_with("451"));
    }
}
