//! Real peers for the mail tests: a DNS server (dnsmasq) on loopback serving the SPF, DKIM and DMARC
//! records of test partner domains; DKIM signing as a partner would; swaks as the SMTP client; and a
//! TLS smarthost on loopback that records what the relay sends.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mail_auth::common::crypto::Ed25519Key;
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::DkimSigner;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// A partner's DKIM key.
pub struct PartnerKey {
    pkcs8: Vec<u8>,
    pub public_b64: String,
}

impl PartnerKey {
    pub fn generate() -> Self {
        let pkcs8 = Ed25519Key::generate_pkcs8().unwrap();
        let key = Ed25519Key::from_pkcs8_der(&pkcs8).unwrap();
        Self {
            public_b64: data_encoding::BASE64.encode(&key.public_key()),
            pkcs8,
        }
    }

    /// The TXT record value for this key.
    pub fn record(&self) -> String {
        format!("v=DKIM1; k=ed25519; p={}", self.public_b64)
    }

    /// The message with a DKIM-Signature for `domain`/`selector` in front.
    pub fn sign(&self, message: &str, domain: &str, selector: &str) -> String {
        let key = Ed25519Key::from_pkcs8_der(&self.pkcs8).unwrap();
        let signature = DkimSigner::from_key(key)
            .domain(domain)
            .selector(selector)
            .headers(["From", "To", "Subject", "Date", "Message-ID"])
            .sign(message.as_bytes())
            .unwrap();
        format!("{}{message}", signature.to_header())
    }
}

/// dnsmasq on a loopback port, authoritative for `.test`, answering the given TXT records.
pub struct DnsServer {
    child: Child,
    pub address: SocketAddr,
}

impl DnsServer {
    pub fn start(txt_records: &[(&str, &str)]) -> Self {
        // The port must be free for UDP and TCP; another test may take it first, so try a few.
        for _ in 0..10 {
            let port = free_port();
            let mut command = Command::new("dnsmasq");
            command
                .arg("--keep-in-foreground")
                .arg("--no-resolv")
                .arg("--no-hosts")
                .arg("--no-poll")
                .arg("--bind-interfaces")
                .arg("--listen-address=127.0.0.1")
                .arg(format!("--port={port}"))
                .arg("--local=/test/")
                .arg("--local-ttl=300")
                .arg("--pid-file=")
                .arg("--user=root")
                .arg("--log-facility=-")
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            for (name, value) in txt_records {
                // Passed without a shell: quotes would become part of the record. Commas would
                // split it into several strings; none of these records has one.
                assert!(!value.contains(','), "{value}");
                command.arg(format!("--txt-record={name},{value}"));
            }
            let child = command
                .spawn()
                .expect("dnsmasq is installed (scripts/test.sh installs dnsmasq-base)");
            let mut server = Self {
                child,
                address: SocketAddr::from(([127, 0, 0, 1], port)),
            };
            if server.wait_ready() {
                return server;
            }
        }
        panic!("dnsmasq did not start");
    }

    /// Waits until the server answers a query; `false` when it exited (its port was taken).
    fn wait_ready(&mut self) -> bool {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        // A minimal DNS query for "a.test" TXT.
        let query: [u8; 24] = [
            0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, b'a', 4, b't', b'e', b's', b't', 0, 0, 16,
            0, 1,
        ];
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            socket.send_to(&query, self.address).unwrap();
            let mut buffer = [0u8; 512];
            if socket.recv_from(&mut buffer).is_ok() {
                return true;
            }
        }
        panic!("dnsmasq did not answer on {}", self.address);
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port that is free for TCP and UDP at this moment.
fn free_port() -> u16 {
    loop {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A message as a partner's mail system writes it.
pub fn partner_message(from: &str, to: &str, subject: &str, body: &str) -> String {
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: Mon, 23 Nov 2026 10:00:00 +0100\r\n\
         Message-ID: <{}@partner.test>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n",
        schuilnaam::crypto::random_id()
    )
}

/// Sends a message with swaks over STARTTLS; returns (exit success, full transcript).
pub fn swaks(
    smtp: SocketAddr,
    mail_from: &str,
    rcpt: &str,
    message: &str,
    extra: &[&str],
) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("message.eml");
    std::fs::write(&path, message).unwrap();
    let output = Command::new("swaks")
        .arg("--server")
        .arg(smtp.ip().to_string())
        .arg("--port")
        .arg(smtp.port().to_string())
        .arg("--from")
        .arg(mail_from)
        .arg("--to")
        .arg(rcpt)
        .arg("--helo")
        .arg("mail.partner.test")
        .arg("--data")
        .arg(&path)
        .arg("--timeout")
        .arg("30")
        .args(extra)
        .output()
        .expect("swaks is installed (scripts/test.sh installs it)");
    let transcript = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), transcript)
}

/// The server's reply to the end of DATA, from a swaks transcript.
pub fn data_reply(transcript: &str) -> String {
    let lines: Vec<&str> = transcript.lines().collect();
    let dot = lines
        .iter()
        .rposition(|l| l.trim_start().starts_with("~> .") || l.trim_start().starts_with(" -> ."))
        .unwrap_or_else(|| panic!("no end of DATA in transcript:\n{transcript}"));
    lines[dot + 1..]
        .iter()
        .find(|l| l.contains("<~") || l.contains("<-"))
        .map(|l| {
            l.split_once(['~', '-'])
                .map(|(_, rest)| {
                    rest.trim_start_matches('>')
                        .trim_start_matches(' ')
                        .to_string()
                })
                .unwrap_or_default()
        })
        .map(|l| {
            l.trim_start_matches(['<', '~', '-', ' ', '*'])
                .trim()
                .to_string()
        })
        .unwrap_or_default()
}

/// What the smarthost received.
#[derive(Clone, Debug, Default)]
pub struct Received {
    pub ehlo: String,
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    pub data: Vec<u8>,
}

/// A TLS smarthost on loopback (STARTTLS, like a submission server): records every message.
pub struct Smarthost {
    pub address: SocketAddr,
    pub received: Arc<Mutex<Vec<Received>>>,
    /// While set, every MAIL FROM is answered with a temporary failure (451).
    busy: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Smarthost {
    /// `cert_pem`/`key_pem` are the certificate it presents (for `localhost`/`127.0.0.1`).
    pub async fn start(cert_pem: &str, key_pem: &str) -> Self {
        schuilnaam::tls::install_default_provider();
        let chain: Vec<_> = rustls_pemfile::certs(&mut cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
        let key = rustls_pemfile::private_key(&mut key_pem.as_bytes())
            .unwrap()
            .unwrap();
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let busy = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (sink, busy_flag) = (received.clone(), busy.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                let sink = sink.clone();
                let busy = busy_flag.clone();
                tokio::spawn(async move {
                    let _ = smarthost_session(tcp, acceptor, sink, busy).await;
                });
            }
        });
        Self {
            address,
            received,
            busy,
            task,
        }
    }

    /// Makes the smarthost answer every message with a temporary failure, or stop doing so.
    pub fn set_busy(&self, busy: bool) {
        self.busy.store(busy, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn messages(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until `count` messages have arrived (bounded).
    pub async fn wait_for(&self, count: usize) -> Vec<Received> {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let messages = self.messages();
            if messages.len() >= count {
                return messages;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the smarthost received {} of {count} messages",
                messages.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Smarthost {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn smarthost_session(
    tcp: tokio::net::TcpStream,
    acceptor: tokio_rustls::TlsAcceptor,
    sink: Arc<Mutex<Vec<Received>>>,
    busy: Arc<std::sync::atomic::AtomicBool>,
) -> std::io::Result<()> {
    let mut plain = BufReader::new(tcp);
    plain
        .get_mut()
        .write_all(b"220 smarthost.test ESMTP\r\n")
        .await?;
    let mut line = String::new();
    let mut ehlo = String::new();
    // Until STARTTLS, in the clear.
    loop {
        line.clear();
        if plain.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_ascii_uppercase();
        if command.starts_with("EHLO") || command.starts_with("HELO") {
            ehlo = line.trim_end()[4..].trim().to_string();
            plain
                .get_mut()
                .write_all(b"250-smarthost.test\r\n250-STARTTLS\r\n250 8BITMIME\r\n")
                .await?;
        } else if command == "STARTTLS" {
            plain.get_mut().write_all(b"220 go ahead\r\n").await?;
            break;
        } else if command == "QUIT" {
            plain.get_mut().write_all(b"221 bye\r\n").await?;
            return Ok(());
        } else {
            plain.get_mut().write_all(b"530 STARTTLS first\r\n").await?;
        }
    }
    let tls = acceptor.accept(plain.into_inner()).await?;
    let mut reader = BufReader::new(tls);
    let mut current = Received {
        ehlo: ehlo.clone(),
        ..Received::default()
    };
    loop {
        line.clear();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let text = line.trim_end().to_string();
        let upper = text.to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            // The name must be the same before and after STARTTLS; keep the one seen in the clear
            // when they differ, so that a test notices.
            let after = text[4..].trim().to_string();
            ehlo = if after == ehlo {
                after
            } else {
                format!("{ehlo} / {after}")
            };
            current.ehlo = ehlo.clone();
            b"250-smarthost.test\r\n250 8BITMIME\r\n"
        } else if upper.starts_with("MAIL FROM:") {
            if busy.load(std::sync::atomic::Ordering::SeqCst) {
                b"451 4.3.0 try again later\r\n"
            } else {
                current.mail_from = text[10..].trim().to_string();
                b"250 ok\r\n"
            }
        } else if upper.starts_with("RCPT TO:") {
            current.rcpt_to.push(text[8..].trim().to_string());
            b"250 ok\r\n"
        } else if upper == "DATA" {
            reader.get_mut().write_all(b"354 go\r\n").await?;
            let mut data = Vec::new();
            loop {
                let mut data_line = Vec::new();
                let mut byte = [0u8; 1];
                loop {
                    if reader.read(&mut byte).await? == 0 {
                        return Ok(());
                    }
                    data_line.push(byte[0]);
                    if byte[0] == b'\n' {
                        break;
                    }
                }
                if data_line == b".\r\n" {
                    break;
                }
                let unstuffed = data_line.strip_prefix(b".").unwrap_or(&data_line);
                data.extend_from_slice(unstuffed);
            }
            current.data = data;
            let next = Received {
                ehlo: ehlo.clone(),
                ..Received::default()
            };
            sink.lock()
                .unwrap()
                .push(std::mem::replace(&mut current, next));
            b"250 queued\r\n"
        } else if upper == "RSET" {
            current = Received {
                ehlo: ehlo.clone(),
                ..Received::default()
            };
            b"250 ok\r\n"
        } else if upper == "QUIT" {
            reader.get_mut().write_all(b"221 bye\r\n").await?;
            return Ok(());
        } else {
            b"250 ok\r\n"
        };
        reader.get_mut().write_all(reply).await?;
    }
}

/// A plain SMTP client for the cases swaks cannot make (pipelined floods, trickling DATA).
pub struct RawSmtp {
    reader: BufReader<tokio::net::TcpStream>,
}

impl RawSmtp {
    pub async fn connect(address: SocketAddr) -> Self {
        let tcp = tokio::net::TcpStream::connect(address).await.unwrap();
        let mut client = Self {
            reader: BufReader::new(tcp),
        };
        let greeting = client.reply().await;
        assert!(greeting.starts_with("220"), "{greeting}");
        client
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        // A server that went away shows as an empty reply on the next read.
        let _ = self.reader.get_mut().write_all(bytes).await;
    }

    /// The last line of the next (possibly multi-line) reply; empty when the server closed.
    pub async fn reply(&mut self) -> String {
        let mut line = String::new();
        loop {
            line.clear();
            let read =
                tokio::time::timeout(Duration::from_secs(30), self.reader.read_line(&mut line))
                    .await
                    .expect("the server answers within 30 s")
                    .unwrap_or(0);
            if read == 0 {
                return String::new();
            }
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                return line.trim_end().to_string();
            }
        }
    }

    pub async fn command(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes()).await;
        self.reply().await
    }

    /// Keeps sending `chunk` every `every` until the server answers (at most `rounds` times); returns
    /// the reply and how many chunks went out. A client that never stops sending is never idle.
    pub async fn trickle_until_reply(
        &mut self,
        chunk: &[u8],
        every: Duration,
        rounds: usize,
    ) -> (String, usize) {
        use tokio::io::AsyncBufRead as _;
        for sent in 1..=rounds {
            self.send(chunk).await;
            let answered = tokio::time::timeout(every, async {
                std::future::poll_fn(|cx| {
                    std::pin::Pin::new(&mut self.reader)
                        .poll_fill_buf(cx)
                        .map(|filled| filled.map(|bytes| !bytes.is_empty()))
                })
                .await
            })
            .await;
            if answered.is_ok() {
                return (self.reply().await, sent);
            }
        }
        panic!("no reply while trickling {rounds} chunks");
    }

    /// DATA, the message (dot-stuffed here), the terminator; returns the final reply.
    pub async fn data(&mut self, message: &[u8]) -> String {
        let go = self.command("DATA").await;
        assert!(go.starts_with("354"), "{go}");
        self.send_data(message).await
    }

    /// Like `data`, but an empty reply (the server went away) instead of a panic.
    pub async fn data_or_closed(&mut self, message: &[u8]) -> String {
        if !self.command("DATA").await.starts_with("354") {
            return String::new();
        }
        self.send_data(message).await
    }

    async fn send_data(&mut self, message: &[u8]) -> String {
        let mut stuffed = Vec::with_capacity(message.len() + 16);
        for line in message.split_inclusive(|b| *b == b'\n') {
            if line.starts_with(b".") {
                stuffed.push(b'.');
            }
            stuffed.extend_from_slice(line);
        }
        if !stuffed.ends_with(b"\r\n") {
            stuffed.extend_from_slice(b"\r\n");
        }
        stuffed.extend_from_slice(b".\r\n");
        self.send(&stuffed).await;
        self.reply().await
    }
}
