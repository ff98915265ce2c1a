//! The real telephony programs for the self-hosted path, on free loopback ports in a temp directory,
//! each stopped by a Drop guard: Kannel (bearerbox, smsbox, and kannel-extras' fake SMSC) and Kamailio
//! with SIPp as caller and callee. scripts/test.sh installs them when missing.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const FAKESMSC: &str = "/usr/lib/kannel/test/fakesmsc";
pub const KAMAILIO_CONFIG: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/config/kamailio/schuilnaam.cfg"
);
pub const SIP_SCENARIOS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sip");

/// A program started by a test; killed when dropped.
pub struct Daemon {
    child: Child,
    pub log: PathBuf,
}

impl Daemon {
    pub fn start(program: &str, args: &[&str], dir: &Path, log_name: &str) -> Self {
        let log = dir.join(log_name);
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(program)
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("start {program} (scripts/test.sh installs it): {e}"));
        Self { child, log }
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for the program to exit by itself; its success.
    pub fn wait(mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.success();
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    /// SIGTERM first, so that a program with children (Kamailio) stops them too; SIGKILL after 5 s.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP port free on loopback right now (and its UDP twin, for SIP).
pub fn free_port() -> u16 {
    loop {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Waits until something accepts TCP connections on the port.
pub async fn wait_for_port(port: u16, what: &str) {
    for _ in 0..400 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} did not open port {port}");
}

pub struct KannelPorts {
    pub admin: u16,
    pub smsbox: u16,
    pub sendsms: u16,
    pub smsc: u16,
}

/// Kannel with a fake SMSC: bearerbox, smsbox and fakesmsc sending `mo` ("FROM TO text …") once. Texts
/// in go to `post_url`; `sendsms` takes `username`/`password`.
pub struct Kannel {
    pub fakesmsc: Daemon,
    _smsbox: Daemon,
    _bearerbox: Daemon,
}

impl KannelPorts {
    pub fn free() -> Self {
        Self {
            admin: free_port(),
            smsbox: free_port(),
            sendsms: free_port(),
            smsc: free_port(),
        }
    }
}

impl Kannel {
    pub async fn start(
        dir: &Path,
        ports: KannelPorts,
        post_url: &str,
        username: &str,
        password: &str,
        mo: &str,
    ) -> Self {
        let conf = format!(
            "group = core\nadmin-port = {admin}\nadmin-password = {admin_password}\nadmin-interface = 127.0.0.1\n\
             admin-allow-ip = 127.0.0.1\nsmsbox-port = {smsbox}\nsmsbox-interface = 127.0.0.1\nbox-allow-ip = 127.0.0.1\n\
             log-file = \"{dir}/bearerbox.log\"\nlog-level = 1\n\n\
             group = smsc\nsmsc = fake\nsmsc-id = FAKE\nhost = 127.0.0.1\nport = {smsc}\nconnect-allow-ip = 127.0.0.1\n\n\
             group = smsbox\nbearerbox-host = 127.0.0.1\nbearerbox-port = {smsbox}\nsendsms-port = {sendsms}\n\
             sendsms-interface = 127.0.0.1\nlog-file = \"{dir}/smsbox.log\"\nlog-level = 1\nmo-recode = true\n\n\
             group = sendsms-user\nusername = {username}\npassword = {password}\nmax-messages = 10\nconcatenation = true\n\n\
             group = sms-service\nkeyword = default\ncatch-all = true\npost-url = \"{post_url}\"\nsend-sender = true\n\
             max-messages = 0\naccept-x-kannel-headers = true\nconcatenation = true\n",
            admin = ports.admin,
            admin_password = schuilnaam::crypto::random_id(),
            smsbox = ports.smsbox,
            sendsms = ports.sendsms,
            smsc = ports.smsc,
            dir = dir.display(),
        );
        let path = dir.join("kannel.conf");
        std::fs::write(&path, conf).unwrap();
        let path = path.to_str().unwrap().to_string();
        let bearerbox = Daemon::start(
            "/usr/sbin/bearerbox",
            &["-v", "1", &path],
            dir,
            "bearerbox.out",
        );
        wait_for_port(ports.smsc, "bearerbox (fake SMSC port)").await;
        let smsc_port = ports.smsc.to_string();
        let fakesmsc = Daemon::start(
            FAKESMSC,
            &[
                "-H",
                "127.0.0.1",
                "-r",
                &smsc_port,
                "-i",
                "0.2",
                "-m",
                "1",
                mo,
            ],
            dir,
            "fakesmsc.out",
        );
        let smsbox = Daemon::start("/usr/sbin/smsbox", &["-v", "1", &path], dir, "smsbox.out");
        wait_for_port(ports.sendsms, "smsbox (sendsms)").await;
        Self {
            fakesmsc,
            _smsbox: smsbox,
            _bearerbox: bearerbox,
        }
    }
}

/// Kamailio from the project's configuration (config/kamailio/schuilnaam.cfg), on a free UDP port,
/// asking the relay at `relay` with `secret`. Without topos (that needs a database); certificate
/// checks off because the test relay's certificate comes from its own development CA.
pub struct Kamailio {
    pub port: u16,
    pub daemon: Daemon,
}

impl Kamailio {
    pub async fn start(dir: &Path, relay: &str, secret: &str) -> Self {
        let port = free_port();
        let config = std::fs::read_to_string(KAMAILIO_CONFIG)
            .unwrap()
            .replace("@LISTEN@", &format!("udp:127.0.0.1:{port}"))
            .replace("@ADVERTISE@", "127.0.0.1")
            .replace("@RELAY@", relay)
            .replace("@SECRET@", secret)
            .replace("@VERIFY_PEER@", "0")
            .replace("@VERIFY_HOST@", "0")
            .replace("children=4", "children=1");
        let path = dir.join("kamailio.cfg");
        std::fs::write(&path, config).unwrap();
        let run_dir = dir.join("kamailio-run");
        std::fs::create_dir_all(&run_dir).unwrap();
        let daemon = Daemon::start(
            "kamailio",
            &[
                "-f",
                path.to_str().unwrap(),
                "-DD",
                "-E",
                "-Y",
                run_dir.to_str().unwrap(),
                "-m",
                "64",
                "-M",
                "16",
            ],
            dir,
            "kamailio.out",
        );
        // Ready once it answers an OPTIONS (405 from this configuration) over UDP.
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let local = socket.local_addr().unwrap();
        let options = format!(
            "OPTIONS sip:ping@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{}\r\n\
             From: <sip:probe@{local}>;tag=1\r\nTo: <sip:ping@127.0.0.1:{port}>\r\nCall-ID: {}\r\nCSeq: 1 OPTIONS\r\n\
             Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            schuilnaam::crypto::random_id(),
            schuilnaam::crypto::random_id()
        );
        let mut buffer = [0u8; 2048];
        for _ in 0..100 {
            socket
                .send_to(options.as_bytes(), ("127.0.0.1", port))
                .await
                .unwrap();
            if let Ok(Ok(_)) =
                tokio::time::timeout(Duration::from_millis(200), socket.recv_from(&mut buffer))
                    .await
            {
                return Self { port, daemon };
            }
        }
        panic!("kamailio did not start:\n{}", daemon.output());
    }
}

/// SIPp running one scenario file from tests/fixtures/sip, tracing every message to `<name>.msgs`.
pub fn sipp(dir: &Path, name: &str, scenario: &str, extra: &[&str]) -> (Daemon, PathBuf) {
    let messages = dir.join(format!("{name}.msgs"));
    let scenario = format!("{SIP_SCENARIOS}/{scenario}");
    let mut args = vec![
        "-sf",
        scenario.as_str(),
        "-i",
        "127.0.0.1",
        "-m",
        "1",
        "-nostdin",
        "-trace_msg",
        "-message_file",
        messages.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    (
        Daemon::start("sipp", &args, dir, &format!("{name}.out")),
        messages,
    )
}
