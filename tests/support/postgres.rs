//! A real PostgreSQL for the tests of one binary: `initdb` into a temporary directory
//! (as the `postgres` user when the tests run as root, since initdb refuses root),
//! started with `pg_ctl` on a free loopback port on first use, and stopped
//! (`pg_ctl stop -m immediate`) and removed when the test process ends: a watchdog
//! shell does it once its parent is gone, so no server outlives the tests.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::LazyLock;
use std::thread::sleep;
use std::time::{Duration, Instant};

use memo_alchemy::Config;

/// The server of this test binary.
pub struct Server {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
}

static SERVER: LazyLock<Server> = LazyLock::new(|| {
    // A child process uses its parent's server.
    let parents: Option<u16> = std::env::var("MEMO_TEST_PG_PORT").ok().and_then(|p| p.parse().ok());
    let dir = std::env::var("MEMO_TEST_PG_DIR").map(PathBuf::from).unwrap_or_else(|_| {
        std::env::temp_dir().join(format!("memo-pg-{}-{}", std::process::id(), free_port()))
    });
    let server = Server { port: parents.unwrap_or_else(free_port), dir, bin: bin_dir() };
    if parents.is_none() {
        server.init();
        server.start();
        server.watch();
    }
    Config::builder()
        .postgres_url(server.url())
        .postgres_schema("memo_test")
        .key_prefix(std::env::var("MEMO_TEST_KEY_PREFIX").unwrap_or_else(|_| "memo".to_owned()))
        .postgres_timeout(Duration::from_millis(400))
        .breaker_failures(3)
        .breaker_cooldown(Duration::from_millis(500))
        .build()
        .and_then(Config::install)
        .expect("the test configuration installs before any cached call");
    server
});

/// Starts the server (once per binary) and installs a configuration pointing at it.
pub fn server() -> &'static Server {
    &SERVER
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
    listener.local_addr().expect("a bound address").port()
}

/// Where `initdb` and `pg_ctl` are: on the PATH, else Debian's
/// `/usr/lib/postgresql/<version>/bin` (the newest).
fn bin_dir() -> PathBuf {
    if let Ok(out) = Command::new("sh").arg("-c").arg("command -v initdb").output() {
        let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if out.status.success() && !path.is_empty() {
            let real = std::fs::canonicalize(&path).unwrap_or_else(|_| PathBuf::from(path));
            return real.parent().expect("initdb is in a directory").to_path_buf();
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is installed: ./scripts/test installs it, or `apt-get install postgresql`")
        .filter_map(|e| Some(e.ok()?.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    versions
        .sort_by_key(|p| p.parent().and_then(|v| v.file_name()?.to_str()?.parse::<u32>().ok()).unwrap_or(0));
    versions.pop().expect("initdb in /usr/lib/postgresql/<version>/bin")
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false)
}

/// `program args...`, as the `postgres` user when this process is root.
fn as_owner(program: &Path) -> Command {
    if is_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

impl Server {
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn init(&self) {
        std::fs::create_dir_all(&self.dir).expect("a temporary directory");
        if is_root() {
            let status = Command::new("chown").arg("postgres:").arg(&self.dir).status().expect("chown runs");
            assert!(status.success(), "chown postgres {}", self.dir.display());
        }
        let out = as_owner(&self.bin.join("initdb"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale", "C"])
            .stdin(Stdio::null())
            .output()
            .expect("initdb runs");
        assert!(out.status.success(), "initdb failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Starts the server and waits until it accepts connections.
    pub fn start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off \
             -c max_connections=100",
            self.port,
            self.dir.display()
        );
        let out = as_owner(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-o", &options, "-l"])
            .arg(self.dir.join("log"))
            .args(["-w", "-t", "30", "start"])
            .stdin(Stdio::null())
            .output()
            .expect("pg_ctl runs");
        assert!(out.status.success(), "pg_ctl start failed: {}", String::from_utf8_lossy(&out.stderr));
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "PostgreSQL did not start on port {}", self.port);
            sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server at once (`pg_ctl stop -m immediate`) and waits until the
    /// port refuses connections.
    pub fn stop(&self) {
        let out = as_owner(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "-w", "-t", "20", "stop"])
            .stdin(Stdio::null())
            .output()
            .expect("pg_ctl runs");
        assert!(out.status.success(), "pg_ctl stop failed: {}", String::from_utf8_lossy(&out.stderr));
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            assert!(Instant::now() < deadline, "PostgreSQL did not stop");
            sleep(Duration::from_millis(10));
        }
    }

    /// The server's processes: the postmaster, then its children.
    fn pids(&self) -> Vec<String> {
        let pidfile = std::fs::read_to_string(self.dir.join("data/postmaster.pid")).expect("postmaster.pid");
        let postmaster = pidfile.lines().next().expect("a pid").trim().to_owned();
        // Its children, from /proc (no `ps` needed): the fourth field of `stat`, after
        // the command in parentheses, is the parent's pid.
        let children: Vec<String> = std::fs::read_dir("/proc")
            .expect("/proc")
            .filter_map(|e| {
                let pid = e.ok()?.file_name().into_string().ok()?;
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
                let parent = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.to_owned();
                (parent == postmaster).then_some(pid)
            })
            .collect();
        std::iter::once(postmaster).chain(children).collect()
    }

    fn signal(&self, sig: &str, pids: &[String]) {
        let status = Command::new("kill").arg(sig).args(pids).status().expect("kill runs");
        assert!(status.success(), "kill {sig} {pids:?}");
    }

    /// Freezes the server (SIGSTOP to the postmaster and every backend): connections
    /// stay open, nothing answers. Returns the frozen processes, for [`resume`](Server::resume).
    pub fn pause(&self) -> Vec<String> {
        let pids = self.pids();
        self.signal("-STOP", &pids);
        pids
    }

    /// Thaws what [`pause`](Server::pause) froze.
    pub fn resume(&self, pids: &[String]) {
        self.signal("-CONT", pids);
    }

    /// Stops the server and removes its directory once this process is gone.
    fn watch(&self) {
        let pg_ctl = self.bin.join("pg_ctl");
        let stop = if is_root() {
            format!(
                "runuser -u postgres -- {} -D {}/data -m immediate stop",
                pg_ctl.display(),
                self.dir.display()
            )
        } else {
            format!("{} -D {}/data -m immediate stop", pg_ctl.display(), self.dir.display())
        };
        let script = format!(
            "while kill -0 {parent} 2>/dev/null; do sleep 0.2; done; {stop} >/dev/null 2>&1; rm -rf {dir}",
            parent = std::process::id(),
            dir = self.dir.display(),
        );
        let mut watchdog = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sh runs");
        std::thread::spawn(move || watchdog.wait());
    }

    /// Runs `sql` with its own connection, outside the library, and returns the rows'
    /// columns as text (NULL as `None`).
    pub fn query(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        let psql = self.bin.join("psql");
        let out = Command::new(psql)
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-F",
                "\u{1f}",
                "-P",
                "null=\u{1e}",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
            ])
            .arg("127.0.0.1")
            .args(["-p", &self.port.to_string(), "-U", "postgres", "-d", "postgres", "-c", sql])
            .stdin(Stdio::null())
            .output()
            .expect("psql runs");
        assert!(out.status.success(), "psql failed on {sql}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|line| line.split('\u{1f}').map(|c| (c != "\u{1e}").then(|| c.to_owned())).collect())
            .collect()
    }

    /// The one value `sql` selects.
    pub fn scalar(&self, sql: &str) -> String {
        self.query(sql).first().and_then(|r| r.first().cloned().flatten()).unwrap_or_default()
    }
}

/// Runs this test binary again as a child process, running only `test` (with
/// `MEMO_TEST_CHILD=1` and the server's port).
pub fn child_command(test: &str, extra_env: &[(&str, String)]) -> Command {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut cmd = Command::new(exe);
    cmd.args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env("MEMO_TEST_CHILD", "1")
        .env("MEMO_TEST_PG_PORT", server().port.to_string())
        .env("MEMO_TEST_PG_DIR", server().dir.display().to_string());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    cmd
}

/// Whether this process is a child started by [`child_command`].
pub fn is_child() -> bool {
    std::env::var_os("MEMO_TEST_CHILD").is_some()
}
