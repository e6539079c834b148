//! ringkv as a one-node Redis Cluster: CLUSTER SLOTS/SHARDS/NODES name the
//! address the client connected to, and a cluster-aware client (the `redis`
//! crate's cluster client) reads and writes through it.

mod common;

use redis::{Commands, Value};

/// ringkv started (on a port below the ephemeral range, answering PING)
/// and killed by the shared harness.
struct Server {
    inner: common::Server,
    port: u16,
}

impl Server {
    fn start(shards: usize) -> Server {
        let inner = common::Server::ringkv(&["--shards", &shards.to_string(), "--loglevel", "warning"]);
        Server { port: inner.port, inner }
    }

    fn url(&self) -> String {
        self.inner.url()
    }

    fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url()).unwrap().get_connection().unwrap()
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::VerbatimString { text, .. } => text.clone(),
        other => panic!("not a string: {other:?}"),
    }
}

#[test]
fn cluster_slots_name_this_node() {
    let server = Server::start(2);
    let mut con = server.connection();
    let slots: Value = redis::cmd("CLUSTER").arg("SLOTS").query(&mut con).unwrap();
    let Value::Array(ranges) = slots else { panic!("CLUSTER SLOTS: {slots:?}") };
    assert_eq!(ranges.len(), 1, "one node, one range");
    let Value::Array(range) = &ranges[0] else { panic!() };
    assert_eq!(range[0], Value::Int(0));
    assert_eq!(range[1], Value::Int(16383));
    let Value::Array(node) = &range[2] else { panic!() };
    assert_eq!(text(&node[0]), "127.0.0.1");
    assert_eq!(node[1], Value::Int(server.port as i64));
    let id = text(&node[2]);
    assert_eq!(id.len(), 40);
    let myid: String = redis::cmd("CLUSTER").arg("MYID").query(&mut con).unwrap();
    assert_eq!(myid, id);

    let nodes: Value = redis::cmd("CLUSTER").arg("NODES").query(&mut con).unwrap();
    let nodes = text(&nodes);
    assert_eq!(nodes, format!("{} 127.0.0.1:{}@{} myself,master - 0 0 1 connected 0-16383\n", id, server.port, server.port as u32 + 10000));

    let info: Value = redis::cmd("CLUSTER").arg("INFO").query(&mut con).unwrap();
    let info = text(&info);
    assert!(info.starts_with("cluster_state:ok\r\ncluster_slots_assigned:16384\r\n"), "{info}");

    let slot: i64 = redis::cmd("CLUSTER").arg("KEYSLOT").arg("foo").query(&mut con).unwrap();
    assert_eq!(slot, 12182);
    let slot: i64 = redis::cmd("CLUSTER").arg("KEYSLOT").arg("{user1000}.following").query(&mut con).unwrap();
    let same: i64 = redis::cmd("CLUSTER").arg("KEYSLOT").arg("{user1000}.followers").query(&mut con).unwrap();
    assert_eq!(slot, same);

    let shards: Value = redis::cmd("CLUSTER").arg("SHARDS").query(&mut con).unwrap();
    let Value::Array(shards) = shards else { panic!() };
    assert_eq!(shards.len(), 1, "the shards of the server are not separate nodes");
}

#[test]
fn cluster_client_reads_and_writes() {
    let server = Server::start(2);
    let client = redis::cluster::ClusterClient::new(vec![server.url()]).unwrap();
    let mut con = client.get_connection().unwrap();
    for i in 0..200 {
        let _: () = con.set(format!("key:{i}"), i).unwrap();
    }
    for i in 0..200 {
        let v: i64 = con.get(format!("key:{i}")).unwrap();
        assert_eq!(v, i);
    }
    // The keys were spread over both shards and all are visible to one client.
    let mut plain = server.connection();
    let n: i64 = redis::cmd("DBSIZE").query(&mut plain).unwrap();
    assert_eq!(n, 200);
    let slot = 12182; // "foo"
    let _: () = con.set("foo", "bar").unwrap();
    let count: i64 = redis::cmd("CLUSTER").arg("COUNTKEYSINSLOT").arg(slot).query(&mut plain).unwrap();
    assert_eq!(count, 1);
    let keys: Vec<String> = redis::cmd("CLUSTER").arg("GETKEYSINSLOT").arg(slot).arg(10).query(&mut plain).unwrap();
    assert_eq!(keys, vec!["foo".to_string()]);
}
