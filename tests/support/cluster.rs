//! A real Redis Cluster for the tests of one binary: six `redis-server`s on free
//! loopback ports (three primaries, one replica each), made a cluster by
//! `redis-cli --cluster create`, each stopped when the test process ends.

use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

/// The nodes of the cluster.
pub struct Cluster {
    pub ports: Vec<u16>,
    /// The servers' process ids (known to the process that started them).
    pub pids: Vec<u32>,
}

/// One node as `CLUSTER NODES` lists it.
#[derive(Debug, Clone)]
pub struct Node {
    pub id: String,
    pub port: u16,
    pub primary: bool,
    /// The slot ranges a primary serves.
    pub slots: Vec<(u16, u16)>,
}

impl Cluster {
    /// Starts six servers and makes them a cluster; returns once every slot is served
    /// and every replica is in sync.
    pub fn start() -> Cluster {
        // Data ports and cluster-bus ports, all free (the bus port is set explicitly:
        // the default, data port + 10000, may be past 65535).
        let listeners: Vec<_> = (0..12)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("a free loopback port"))
            .collect();
        let all: Vec<u16> = listeners.iter().map(|l| l.local_addr().unwrap().port()).collect();
        drop(listeners);
        let (ports, buses) = all.split_at(6);
        let dir = std::env::temp_dir().join(format!("memo-cluster-{}-{}", std::process::id(), ports[0]));
        std::fs::create_dir_all(&dir).expect("a temporary directory for the cluster");
        for (port, bus) in ports.iter().zip(buses) {
            super::spawn_redis(
                *port,
                &format!(
                    "--cluster-enabled yes --cluster-port {bus} --cluster-config-file nodes-{port}.conf \
                     --cluster-node-timeout 5000 --dir {}",
                    dir.display()
                ),
            );
        }
        let pids = ports
            .iter()
            .map(|port| {
                let info: String = redis::cmd("INFO")
                    .arg("server")
                    .query(
                        &mut redis::Client::open(format!("redis://127.0.0.1:{port}/"))
                            .unwrap()
                            .get_connection()
                            .unwrap(),
                    )
                    .unwrap();
                info.lines().find_map(|l| l.strip_prefix("process_id:")).unwrap().trim().parse().unwrap()
            })
            .collect();
        let cluster = Cluster { ports: ports.to_vec(), pids };
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for port in &cluster.ports {
            create.arg(format!("127.0.0.1:{port}"));
        }
        let out = create
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .expect("redis-cli is installed with redis-server");
        assert!(out.status.success(), "cluster create failed: {}", String::from_utf8_lossy(&out.stdout));
        cluster.wait_healthy();
        cluster
    }

    /// The seed URLs of the cluster.
    pub fn urls(&self) -> Vec<String> {
        self.ports.iter().map(|p| format!("redis://127.0.0.1:{p}")).collect()
    }

    /// A cluster client's connection, to read and write any key.
    pub fn connection(&self) -> redis::cluster::ClusterConnection {
        redis::cluster::ClusterClient::builder(self.urls())
            .connection_timeout(Duration::from_secs(2))
            .response_timeout(Duration::from_secs(5))
            .build()
            .and_then(|c| c.get_connection())
            .expect("a connection to the test cluster")
    }

    /// A plain connection to the node on `port`.
    pub fn node(&self, port: u16) -> redis::Connection {
        redis::Client::open(format!("redis://127.0.0.1:{port}/"))
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)))
            .expect("a connection to a cluster node")
    }

    /// The nodes as the first answering node sees them.
    pub fn nodes(&self) -> Vec<Node> {
        let text: String = self
            .ports
            .iter()
            .find_map(|p| {
                let conn = redis::Client::open(format!("redis://127.0.0.1:{p}/"))
                    .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(300)));
                conn.and_then(|mut c| redis::cmd("CLUSTER").arg("NODES").query(&mut c)).ok()
            })
            .expect("a node answers");
        text.lines()
            .filter(|l| !l.contains("fail"))
            .map(|line| {
                let f: Vec<&str> = line.split_whitespace().collect();
                let port = f[1].split('@').next().unwrap().rsplit_once(':').unwrap().1.parse().unwrap();
                let slots = f[8..]
                    .iter()
                    .filter(|s| !s.starts_with('['))
                    .map(|s| match s.split_once('-') {
                        Some((a, b)) => (a.parse().unwrap(), b.parse().unwrap()),
                        None => (s.parse().unwrap(), s.parse().unwrap()),
                    })
                    .collect();
                Node { id: f[0].to_owned(), port, primary: f[2].contains("master"), slots }
            })
            .collect()
    }

    /// The primaries that serve slots.
    pub fn primaries(&self) -> Vec<Node> {
        self.nodes().into_iter().filter(|n| n.primary && !n.slots.is_empty()).collect()
    }

    /// The primary serving `slot`.
    pub fn owner(&self, slot: u16) -> Node {
        self.primaries()
            .into_iter()
            .find(|n| n.slots.iter().any(|(a, b)| (*a..=*b).contains(&slot)))
            .expect("every slot is served")
    }

    /// Waits until every live node says the cluster is ok and every replica's link to its
    /// primary is up.
    pub fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ok = self.ports.iter().all(|p| {
                let Ok(mut c) = redis::Client::open(format!("redis://127.0.0.1:{p}/"))
                    .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(300)))
                else {
                    return true; // a node a test killed
                };
                let info: String = redis::cmd("CLUSTER").arg("INFO").query(&mut c).unwrap_or_default();
                let replication: String =
                    redis::cmd("INFO").arg("replication").query(&mut c).unwrap_or_default();
                info.contains("cluster_state:ok")
                    && (replication.contains("role:master") || replication.contains("master_link_status:up"))
            });
            if ok && self.primaries().len() == 3 {
                return;
            }
            assert!(Instant::now() < deadline, "the cluster did not become healthy");
            sleep(Duration::from_millis(100));
        }
    }

    /// The keys matching `pattern` on every primary.
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        let mut keys = Vec::new();
        for node in self.primaries() {
            let found: Vec<String> =
                redis::cmd("KEYS").arg(pattern).query(&mut self.node(node.port)).expect("KEYS answers");
            keys.extend(found);
        }
        keys.sort();
        keys
    }

    /// Moves `slot` with its keys from its primary to another, as a resharding does:
    /// importing and migrating states, `MIGRATE` one key at a time, then the new
    /// owner. `between` runs after the first batch moved; returns the new owner's port
    /// and whether the slot's keys were then split between the two primaries.
    pub fn migrate_slot(&self, slot: u16, between: impl FnOnce()) -> (u16, bool) {
        let from = self.owner(slot);
        let to = self.primaries().into_iter().find(|n| n.id != from.id).unwrap();
        let (mut src, mut dst) = (self.node(from.port), self.node(to.port));
        let set = |c: &mut redis::Connection, state: &str, id: &str| {
            let () = redis::cmd("CLUSTER").arg("SETSLOT").arg(slot).arg(state).arg(id).query(c).unwrap();
        };
        set(&mut dst, "IMPORTING", &from.id);
        set(&mut src, "MIGRATING", &to.id);
        let mut between = Some(between);
        let mut split = false;
        loop {
            let keys: Vec<String> =
                redis::cmd("CLUSTER").arg("GETKEYSINSLOT").arg(slot).arg(1).query(&mut src).unwrap();
            if keys.is_empty() {
                break;
            }
            let () = redis::cmd("MIGRATE")
                .arg("127.0.0.1")
                .arg(to.port)
                .arg("")
                .arg(0)
                .arg(5000)
                .arg("KEYS")
                .arg(&keys)
                .query(&mut src)
                .unwrap();
            if let Some(f) = between.take() {
                let left: u64 =
                    redis::cmd("CLUSTER").arg("COUNTKEYSINSLOT").arg(slot).query(&mut src).unwrap();
                split = left > 0;
                f();
            }
        }
        if let Some(f) = between.take() {
            f();
        }
        set(&mut dst, "NODE", &to.id);
        set(&mut src, "NODE", &to.id);
        for node in self.primaries() {
            let _: redis::RedisResult<()> = redis::cmd("CLUSTER")
                .arg("SETSLOT")
                .arg(slot)
                .arg("NODE")
                .arg(&to.id)
                .query(&mut self.node(node.port));
        }
        (to.port, split)
    }

    /// Fails over the primary of `slot` to its replica (`CLUSTER FAILOVER` on the
    /// replica) and waits until the replica serves the slot; returns the new primary's port.
    pub fn failover(&self, slot: u16) -> u16 {
        let primary = self.owner(slot);
        let replica = self
            .nodes()
            .into_iter()
            .find(|n| !n.primary && self.replica_of(n.port) == primary.id)
            .expect("each primary has a replica");
        let () = redis::cmd("CLUSTER").arg("FAILOVER").query(&mut self.node(replica.port)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.owner(slot).port != replica.port {
            assert!(Instant::now() < deadline, "the failover did not finish");
            sleep(Duration::from_millis(50));
        }
        replica.port
    }

    fn replica_of(&self, port: u16) -> String {
        let info: String = redis::cmd("CLUSTER").arg("NODES").query(&mut self.node(port)).unwrap();
        let me = info.lines().find(|l| l.contains("myself")).unwrap();
        me.split_whitespace().nth(3).unwrap().to_owned()
    }
}
