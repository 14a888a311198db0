//! A real `redis-server` for the tests of one binary: started on a free loopback port
//! on first use, with persistence off, and stopped when the test process ends (a
//! watchdog shell kills it once its parent is gone). With `MEMO_TEST_TOPOLOGY=cluster`,
//! the same tests run against a real Redis Cluster of six servers instead
//! ([`cluster`]); `./scripts/test` runs the Redis test binaries both ways.

#![allow(dead_code)]

pub mod cluster;
pub mod logs;

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::{LazyLock, Mutex};
use std::thread::sleep;
use std::time::{Duration, Instant};

use memo_alchemy::Config;

/// The server of this test binary.
pub struct Server {
    port: u16,
    pid: Mutex<u32>,
    /// The cluster, when the tests run on one.
    cluster: Option<cluster::Cluster>,
}

/// Whether this test binary runs against a Redis Cluster (`MEMO_TEST_TOPOLOGY=cluster`,
/// or [`use_cluster`]).
pub fn on_cluster() -> bool {
    CLUSTER_ALWAYS.load(std::sync::atomic::Ordering::SeqCst)
        || std::env::var("MEMO_TEST_TOPOLOGY").is_ok_and(|t| t == "cluster")
}

static CLUSTER_ALWAYS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Makes this test binary run against a Redis Cluster whatever the environment says:
/// call it before [`server`].
pub fn use_cluster() {
    CLUSTER_ALWAYS.store(true, std::sync::atomic::Ordering::SeqCst);
}

static SERVER: LazyLock<Server> = LazyLock::new(|| {
    // A child process uses its parent's server.
    let parents = std::env::var("MEMO_TEST_PORT").ok().and_then(|p| p.parse().ok());
    let cluster = on_cluster().then(|| match std::env::var("MEMO_TEST_CLUSTER_PORTS") {
        Ok(ports) => cluster::Cluster {
            ports: ports.split(',').map(|p| p.parse().unwrap()).collect(),
            pids: Vec::new(),
        },
        Err(_) => cluster::Cluster::start(),
    });
    let port = cluster.as_ref().map(|c| c.ports[0]);
    let server = Server { port: port.or(parents).unwrap_or_else(free_port), pid: Mutex::new(0), cluster };
    if parents.is_none() && server.cluster.is_none() {
        server.start();
    }
    let url = server.url();
    let urls = server.cluster.as_ref().map(cluster::Cluster::urls).unwrap_or_default();
    Config::builder()
        .redis_url(&url)
        .redis_cluster_urls(urls)
        .key_prefix(std::env::var("MEMO_TEST_KEY_PREFIX").unwrap_or_else(|_| "memo".to_owned()))
        .redis_timeout(Duration::from_millis(300))
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

impl Server {
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// The cluster, when the tests run on one.
    pub fn cluster(&self) -> Option<&cluster::Cluster> {
        self.cluster.as_ref()
    }

    /// Starts `redis-server` under a watchdog that kills it when this process exits.
    pub fn start(&self) {
        spawn_redis(self.port, "");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(pid) = self.try_pid() {
                *self.pid.lock().unwrap() = pid;
                return;
            }
            assert!(Instant::now() < deadline, "redis-server did not start on port {}", self.port);
            sleep(Duration::from_millis(20));
        }
    }

    fn try_pid(&self) -> redis::RedisResult<u32> {
        let client = redis::Client::open(self.url())?;
        let mut conn = client.get_connection_with_timeout(Duration::from_millis(200))?;
        let info: String = redis::cmd("INFO").arg("server").query(&mut conn)?;
        let pid = info
            .lines()
            .find_map(|l| l.strip_prefix("process_id:"))
            .and_then(|p| p.trim().parse().ok())
            .ok_or_else(|| redis::RedisError::from((redis::ErrorKind::Client, "no process_id")))?;
        Ok(pid)
    }

    fn signal(&self, sig: &str) {
        if let Some(cluster) = &self.cluster {
            // Every node at once: the whole cluster is out of reach.
            assert!(sig != "-KILL", "a test that kills the server runs on a single server only");
            for pid in &cluster.pids {
                let status = Command::new("kill").arg(sig).arg(pid.to_string()).status().expect("kill runs");
                assert!(status.success(), "kill {sig} {pid}");
            }
            return;
        }
        let pid = *self.pid.lock().unwrap();
        let status = Command::new("kill").arg(sig).arg(pid.to_string()).status().expect("kill runs");
        assert!(status.success(), "kill {sig} {pid}");
    }

    /// Kills the server (SIGKILL) and waits until the port refuses connections.
    pub fn kill(&self) {
        self.signal("-KILL");
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            assert!(Instant::now() < deadline, "redis-server did not die");
            sleep(Duration::from_millis(10));
        }
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing answers.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaws a paused server.
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    /// A direct connection, to read and write Redis without the library.
    pub fn raw(&self) -> Raw {
        match &self.cluster {
            Some(cluster) => Raw::Cluster(Box::new(cluster.connection())),
            None => Raw::Single(
                redis::Client::open(self.url())
                    .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(5)))
                    .expect("a direct connection to the test server"),
            ),
        }
    }

    /// The keys matching `pattern` (on every primary of a cluster).
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        if let Some(cluster) = &self.cluster {
            return cluster.keys(pattern);
        }
        let mut keys: Vec<String> =
            redis::cmd("KEYS").arg(pattern).query(&mut self.raw()).expect("KEYS answers");
        keys.sort();
        keys
    }

    /// The calls of each command since the last [`reset_stats`](Server::reset_stats), summed over
    /// the primaries of a cluster: `(command, calls)`.
    pub fn command_calls(&self) -> Vec<(String, u64)> {
        let ports = match &self.cluster {
            Some(cluster) => cluster.primaries().iter().map(|n| n.port).collect(),
            None => vec![self.port],
        };
        let mut calls: Vec<(String, u64)> = Vec::new();
        for port in ports {
            let mut conn = redis::Client::open(format!("redis://127.0.0.1:{port}/"))
                .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)))
                .expect("a connection to the server");
            let info: String = redis::cmd("INFO").arg("commandstats").query(&mut conn).expect("INFO answers");
            for line in info.lines() {
                let Some((name, stats)) = line.strip_prefix("cmdstat_").and_then(|l| l.split_once(':'))
                else {
                    continue;
                };
                let n: u64 = stats
                    .split(',')
                    .find_map(|f| f.strip_prefix("calls="))
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                match calls.iter_mut().find(|(c, _)| c == name) {
                    Some((_, total)) => *total += n,
                    None => calls.push((name.to_owned(), n)),
                }
            }
        }
        calls
    }

    /// Resets the command counts of [`command_calls`](Server::command_calls).
    pub fn reset_stats(&self) {
        let ports = match &self.cluster {
            Some(cluster) => cluster.primaries().iter().map(|n| n.port).collect(),
            None => vec![self.port],
        };
        for port in ports {
            let mut conn = redis::Client::open(format!("redis://127.0.0.1:{port}/"))
                .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)))
                .expect("a connection to the server");
            let () = redis::cmd("CONFIG").arg("RESETSTAT").query(&mut conn).expect("RESETSTAT answers");
        }
    }
}

impl Server {
    /// Writes `n - 1` more entries into the namespace of the function whose path ends
    /// in `::{function}` (it must have stored one already), as the write script would:
    /// value and index member, 20,000 per script call. Returns the index key.
    pub fn fill(&self, function: &str, n: u64) -> String {
        let entry =
            self.keys(&format!("memo:*::{function}:*:k:*")).pop().expect("the function stored an entry");
        let prefix = entry.rsplit_once(":k:").expect("an entry key has :k:").0.to_owned();
        // The index of the entry's sub-index (one of several on a cluster).
        let index = format!("{prefix}:i");
        let script = redis::Script::new(
            r"
            for i = tonumber(ARGV[1]), tonumber(ARGV[2]) do
              local key = ARGV[3] .. ':k:' .. i
              redis.call('SET', key, i)
              redis.call('ZADD', KEYS[1], i, key)
            end",
        );
        let mut raw = self.raw();
        // 20,000 per script: a cluster node busy for much longer could be taken for failed.
        for start in (1..n).step_by(20_000) {
            let end = (start + 19_999).min(n - 1);
            let () =
                script.key(&index).arg(start).arg(end).arg(&prefix).invoke(&mut raw).expect("the fill runs");
        }
        index
    }
}

/// Runs this test binary again as a child process, running only `test` (with
/// `MEMO_TEST_CHILD=1` and the server's port), and returns the child.
pub fn run_child(test: &str, extra_env: &[(&str, String)]) -> std::process::Child {
    child_command(test, extra_env).spawn().expect("the test binary re-runs itself")
}

/// The command [`run_child`] spawns, to adjust before spawning (to capture output).
pub fn child_command(test: &str, extra_env: &[(&str, String)]) -> Command {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut cmd = Command::new(exe);
    cmd.args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env("MEMO_TEST_CHILD", "1")
        .env("MEMO_TEST_PORT", server().port.to_string());
    if let Some(cluster) = server().cluster() {
        let ports: Vec<String> = cluster.ports.iter().map(u16::to_string).collect();
        cmd.env("MEMO_TEST_CLUSTER_PORTS", ports.join(",")).env("MEMO_TEST_TOPOLOGY", "cluster");
    }
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    cmd
}

/// Whether this process is a child started by [`run_child`].
pub fn is_child() -> bool {
    std::env::var_os("MEMO_TEST_CHILD").is_some()
}

/// Calls `f` until it is served from the cache, which a distributed_memory function
/// does only once its invalidation subscription is up; returns the cached value.
pub fn warm<T>(f: impl Fn() -> T, hits: impl Fn() -> u64) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let before = hits();
        let value = f();
        if hits() > before {
            return value;
        }
        assert!(Instant::now() < deadline, "never served from the cache");
        sleep(Duration::from_millis(5));
    }
}

/// Sets the key `name` on the test server: one process tells another it got somewhere.
pub fn signal(name: &str) {
    let _: () = redis::cmd("SET").arg(name).arg(1).query(&mut server().raw()).expect("SET answers");
}

/// Waits until the key `name` is set, reconnecting across server restarts.
pub fn wait_for(name: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let set = match server().cluster() {
            Some(_) => redis::cmd("EXISTS").arg(name).query::<bool>(&mut server().raw()),
            None => redis::Client::open(server().url())
                .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(200)))
                .and_then(|mut c| redis::cmd("EXISTS").arg(name).query::<bool>(&mut c)),
        };
        if set.unwrap_or(false) {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {name}");
        sleep(Duration::from_millis(2));
    }
}

/// A point where a body (in a background refresh, say) stops until the test lets it
/// go, with timeouts on both sides, so that a body that never arrives fails the test
/// rather than hanging it.
#[derive(Default)]
pub struct Gate {
    state: Mutex<(bool, bool)>,
    changed: std::sync::Condvar,
}

impl Gate {
    /// The body's side: says it arrived, then waits (at most 20 s) to be released.
    pub fn pass(&self) {
        let mut state = self.state.lock().unwrap();
        state.0 = true;
        self.changed.notify_all();
        let _unused = self.changed.wait_timeout_while(state, Duration::from_secs(20), |s| !s.1).unwrap();
    }

    /// The test's side: waits for the body to arrive; panics after 10 s.
    pub fn arrived(&self) {
        let state = self.state.lock().unwrap();
        let (_state, timeout) =
            self.changed.wait_timeout_while(state, Duration::from_secs(10), |s| !s.0).unwrap();
        assert!(!timeout.timed_out(), "the body never reached the gate");
    }

    /// Lets the body go on.
    pub fn release(&self) {
        self.state.lock().unwrap().1 = true;
        self.changed.notify_all();
    }
}

/// Starts `redis-server` on `port` (with `extra` arguments) under a watchdog shell that
/// kills it when this process exits.
pub fn spawn_redis(port: u16, extra: &str) {
    let script = format!(
        "redis-server --port {port} --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
         --loglevel warning {extra} >/dev/null 2>&1 & srv=$!; \
         while kill -0 {parent} 2>/dev/null && kill -0 $srv 2>/dev/null; do sleep 0.2; done; \
         kill -9 $srv 2>/dev/null",
        parent = std::process::id(),
    );
    let mut watchdog =
        Command::new("sh").arg("-c").arg(script).stdin(Stdio::null()).spawn().expect(
            "redis-server is installed: ./scripts/test installs it, or `apt-get install redis-server`",
        );
    // Reaps the watchdog when the server goes (killed by a test, or at exit).
    std::thread::spawn(move || watchdog.wait());
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "redis-server did not start on port {port}");
        sleep(Duration::from_millis(10));
    }
}

/// A direct connection to the test server or cluster.
pub enum Raw {
    Single(redis::Connection),
    Cluster(Box<redis::cluster::ClusterConnection>),
}

impl Raw {
    fn inner(&mut self) -> &mut dyn redis::ConnectionLike {
        match self {
            Raw::Single(c) => c,
            Raw::Cluster(c) => c.as_mut(),
        }
    }
}

impl redis::ConnectionLike for Raw {
    fn req_packed_command(&mut self, cmd: &[u8]) -> redis::RedisResult<redis::Value> {
        self.inner().req_packed_command(cmd)
    }
    fn req_packed_commands(
        &mut self,
        cmd: &[u8],
        offset: usize,
        count: usize,
    ) -> redis::RedisResult<Vec<redis::Value>> {
        self.inner().req_packed_commands(cmd, offset, count)
    }
    fn req_command(&mut self, cmd: &redis::Cmd) -> redis::RedisResult<redis::Value> {
        self.inner().req_command(cmd)
    }
    fn get_db(&self) -> i64 {
        match self {
            Raw::Single(c) => c.get_db(),
            Raw::Cluster(c) => c.get_db(),
        }
    }
    fn supports_pipelining(&self) -> bool {
        match self {
            Raw::Single(c) => c.supports_pipelining(),
            Raw::Cluster(c) => c.supports_pipelining(),
        }
    }
    fn check_connection(&mut self) -> bool {
        self.inner().check_connection()
    }
    fn is_open(&self) -> bool {
        match self {
            Raw::Single(c) => c.is_open(),
            Raw::Cluster(c) => c.is_open(),
        }
    }
}
