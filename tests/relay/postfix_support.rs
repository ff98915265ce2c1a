//! A real Postfix on loopback for the deployment tests: its own configuration, queue and data
//! directories in a temp dir, free loopback ports, a log file, and `postfix stop` when dropped (also
//! when the test fails). Postfix's master must be started as root.
//!
//! What the test passes in is the documented part of the configuration (the README's main.cf and
//! master.cf text); what this module adds only makes an isolated instance on loopback: paths, the
//! listening address, nothing delivered locally, and every message Postfix sends itself (a bounce, a
//! notice to the postmaster) handed to `relayhost`, a listener of the test's. A second, plain smtpd
//! service (`inject`) lets the test put a message into Postfix's queue.

use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The queue directories that hold messages (`flush`, `pid`, `private`, `public` hold none).
const QUEUES: [&str; 10] = [
    "maildrop", "incoming", "active", "deferred", "hold", "bounce", "defer", "trace", "corrupt",
    "saved",
];

/// The services of Debian's master.cf that an instance needs, none chrooted (a chroot would need
/// copies of /etc files in the temp queue directory). The port-25 `smtp inet` service is not here:
/// it comes from the caller.
const BASE_SERVICES: &str = "\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
";

pub struct Postfix {
    dir: TempDir,
    /// The port-25 service of the caller's master.cf, moved to a free loopback port.
    pub smtp: SocketAddr,
    /// A plain smtpd (no proxy filter) from which `127.0.0.1` may relay anywhere: the way into the
    /// queue for the test's own messages.
    pub inject: SocketAddr,
}

/// Fails at once, saying how to run, where Postfix cannot be started: not root, or not installed.
/// Tests call it first, before they start anything else.
pub fn preflight() {
    let uid = std::fs::metadata("/proc/self").expect("/proc/self").uid();
    assert!(
        uid == 0,
        "this test starts a real Postfix, whose master daemon runs only as root: run the suite as \
         root (as CI does), e.g. `sudo -E env PATH=\"$PATH\" scripts/test.sh postfix`"
    );
    assert!(
        Path::new(POSTFIX).exists(),
        "{POSTFIX} is missing: scripts/test.sh installs the postfix package"
    );
}

impl Postfix {
    /// Starts Postfix with `main_cf` appended to the instance's main.cf and `master_cf` (which must
    /// contain the `smtp inet` service) appended to its master.cf; everything Postfix sends goes to
    /// `relayhost`.
    pub fn start(main_cf: &str, master_cf: &str, relayhost: SocketAddr) -> Self {
        preflight();
        assert!(
            master_cf
                .lines()
                .any(|l| l.split_whitespace().take(2).eq(["smtp", "inet"])),
            "master.cf text without the `smtp inet` service:\n{master_cf}"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        // Postfix's own account must reach its directories under here.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        for sub in ["etc", "queue", "data"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        let chown = Command::new("chown")
            .arg("postfix")
            .arg(dir.path().join("data"))
            .status()
            .expect("chown");
        assert!(chown.success(), "chown postfix of the data directory");
        // The ports are free when chosen; another process may take one first, so try a few times.
        let mut last_error = String::new();
        for _ in 0..5 {
            let smtp = SocketAddr::from(([127, 0, 0, 1], free_port()));
            let inject = SocketAddr::from(([127, 0, 0, 1], free_port()));
            write_config(dir.path(), smtp, inject, main_cf, master_cf, relayhost);
            let started = Command::new(POSTFIX)
                .arg("-c")
                .arg(dir.path().join("etc"))
                .arg("start")
                .output()
                .expect("run postfix start");
            if started.status.success() {
                return Self { dir, smtp, inject };
            }
            last_error = format!(
                "{}{}\nmaillog:\n{}",
                String::from_utf8_lossy(&started.stdout),
                String::from_utf8_lossy(&started.stderr),
                maillog(dir.path())
            );
            if !last_error.contains("Address already in use") {
                break;
            }
        }
        panic!("postfix did not start:\n{last_error}");
    }

    fn config_dir(&self) -> PathBuf {
        self.dir.path().join("etc")
    }

    fn queue_dir(&self) -> PathBuf {
        self.dir.path().join("queue")
    }

    /// Postfix's log so far (written by its postlogd, so the newest lines may still be on the way).
    pub fn maillog(&self) -> String {
        maillog(self.dir.path())
    }

    /// Every message file in Postfix's queue (what `postqueue -p` lists, plus the maildrop and the
    /// bounce logs), as paths relative to the queue directory.
    pub fn queued_files(&self) -> Vec<String> {
        let mut found = Vec::new();
        for queue in QUEUES {
            collect_files(&self.queue_dir().join(queue), &mut found);
        }
        found
            .iter()
            .map(|p| {
                p.strip_prefix(self.queue_dir())
                    .unwrap()
                    .display()
                    .to_string()
            })
            .collect()
    }

    /// Waits until Postfix's queue is empty (bounded; Postfix removes a queue file just after the
    /// next hop's `250`).
    pub async fn wait_until_queue_is_empty(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let files = self.queued_files();
            if files.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "Postfix's queue still holds {files:?}; maillog:\n{}",
                self.maillog()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        // This instance's master (its pid file is in our queue directory): SIGTERM, which it passes
        // on to its children, then wait until it is gone. `postfix stop` would do the same but polls
        // once a second.
        if let Some(pid) = self.master_pid() {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while is_running(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if !is_running(pid) {
                return;
            }
        }
        // Then SIGKILL to its process group, after five more seconds.
        let _ = Command::new(POSTFIX)
            .arg("-c")
            .arg(self.config_dir())
            .arg("stop")
            .output();
    }
}

impl Postfix {
    fn master_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.queue_dir().join("pid/master.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

/// Whether a process exists and has not exited (an exited child nobody reaped is a zombie).
fn is_running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(") ")
                .and_then(|(_, rest)| rest.chars().next())
        })
        .is_some_and(|state| state != 'Z')
}

const POSTFIX: &str = "/usr/sbin/postfix";

fn maillog(root: &Path) -> String {
    std::fs::read_to_string(root.join("maillog")).unwrap_or_default()
}

/// main.cf: the instance's own settings, then the documented text (later lines win in Postfix, so
/// the documented values hold). master.cf: the base services, the injection service, then the
/// documented services with the port-25 `smtp inet` service moved to `smtp`'s port.
fn write_config(
    root: &Path,
    smtp: SocketAddr,
    inject: SocketAddr,
    main_cf: &str,
    master_cf: &str,
    relayhost: SocketAddr,
) {
    let main = format!(
        "# An isolated instance on loopback (the test's part).\n\
         compatibility_level = 3.6\n\
         queue_directory = {root}/queue\n\
         data_directory = {root}/data\n\
         mail_owner = postfix\n\
         setgid_group = postdrop\n\
         inet_interfaces = 127.0.0.1\n\
         inet_protocols = ipv4\n\
         myhostname = postfix.host.test\n\
         mydestination =\n\
         alias_maps =\n\
         alias_database =\n\
         local_recipient_maps =\n\
         mynetworks = 127.0.0.1/32\n\
         relayhost = [{relay_ip}]:{relay_port}\n\
         smtp_tls_security_level = may\n\
         maillog_file = {root}/maillog\n\
         maillog_file_prefixes = {root}\n\
         # The documented part.\n\
         {main_cf}",
        root = root.display(),
        relay_ip = relayhost.ip(),
        relay_port = relayhost.port(),
    );
    let documented: String = master_cf
        .lines()
        .map(|line| {
            if line.split_whitespace().take(2).eq(["smtp", "inet"]) {
                format!("{}{}\n", smtp.port(), &line["smtp".len()..])
            } else {
                format!("{line}\n")
            }
        })
        .collect();
    let master = format!(
        "{BASE_SERVICES}\
         {inject} inet n       -       n       -       -       smtpd\n\
         {documented}",
        inject = inject.port(),
    );
    for (name, text) in [("main.cf", main), ("master.cf", master)] {
        let path = root.join("etc").join(name);
        std::fs::write(&path, text).unwrap();
        // Postfix reads a file changed within the last second again and again, 300 ms apart, until
        // it is older (it might still be being written): date it back, which saves seconds.
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(std::time::SystemTime::now() - Duration::from_secs(60))
            .unwrap();
    }
}

fn collect_files(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_files(&path, found);
        } else {
            found.push(path);
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
