//! CLUSTER commands, emulating a single node that owns every slot, so that
//! cluster-aware clients and `memtier_benchmark --cluster-mode` work.
//!
//! The node is the whole server: its shards are an internal split of the
//! slots and are not shown as nodes (one node, one address). The address a
//! client is told is the one it connected to, so a server bound to several
//! addresses answers each client with an address that client can reach.

use super::client::reply_help;
use super::{err, flags::*, CommandSpec, Ctx, Route};
use crate::protocol::Reply;
use crate::shard::hold::ShardMask;
use crate::shard::slot::{key_slot, slot_shard, SLOT_COUNT};

const SLOW: &[&str] = &["@slow"];

pub fn commands() -> Vec<CommandSpec> {
    vec![
        CommandSpec::new("cluster", -2, 0, container).group("cluster").acl(SLOW).doc("3.0.0", "A container for cluster commands"),
        CommandSpec::new("cluster|info", 2, STALE, info).group("cluster").acl(SLOW).doc("3.0.0", "Provides info about Redis Cluster node state"),
        CommandSpec::new("cluster|myid", 2, STALE, myid).group("cluster").acl(SLOW).doc("3.0.0", "Return the node id"),
        CommandSpec::new("cluster|nodes", 2, STALE, nodes).group("cluster").acl(SLOW).doc("3.0.0", "Get Cluster config for the node"),
        CommandSpec::new("cluster|slots", 2, STALE, slots).group("cluster").acl(SLOW).doc("3.0.0", "Get array of Cluster slot to node mappings"),
        CommandSpec::new("cluster|shards", 2, STALE, shards).group("cluster").acl(SLOW).doc("7.0.0", "Get array of cluster slots to node mappings"),
        CommandSpec::new("cluster|keyslot", 3, STALE, keyslot).group("cluster").acl(SLOW).doc("3.0.0", "Returns the hash slot of the specified key"),
        CommandSpec::new("cluster|countkeysinslot", 3, STALE, countkeysinslot)
            .route(Route::Custom(slot_route))
            .group("cluster")
            .acl(SLOW)
            .doc("3.0.0", "Return the number of local keys in the specified hash slot"),
        CommandSpec::new("cluster|getkeysinslot", 4, STALE, getkeysinslot)
            .route(Route::Custom(slot_route))
            .group("cluster")
            .acl(SLOW)
            .doc("3.0.0", "Return local key names in the specified hash slot"),
        CommandSpec::new("cluster|reset", -2, ADMIN | STALE | NOSCRIPT, reset).group("cluster").acl(SLOW).doc("3.0.0", "Reset a Redis Cluster node"),
        CommandSpec::new("cluster|help", 2, LOADING | STALE, help).group("cluster").acl(SLOW).doc("5.0.0", "Show helpful text about the different subcommands"),
        CommandSpec::new("readonly", 1, LOADING | STALE | FAST, readonly)
            .group("cluster")
            .acl(&["@fast", "@connection"])
            .doc("3.0.0", "Enables read queries for a connection to a cluster replica node"),
        CommandSpec::new("readwrite", 1, LOADING | STALE | FAST, readwrite)
            .group("cluster")
            .acl(&["@fast", "@connection"])
            .doc("3.0.0", "Disables read queries for a connection to a cluster replica node"),
    ]
}

/// Never called: dispatch resolves the subcommand or rejects the call.
fn container(_ctx: &mut Ctx, _args: &[&[u8]], r: &mut Reply) {
    r.error(err::SYNTAX);
}

const HELP: &[&str] = &[
    "CLUSTER <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "ADDSLOTS <slot> [<slot> ...]",
    "    Assign slots to current node.",
    "ADDSLOTSRANGE <start slot> <end slot> [<start slot> <end slot> ...]",
    "    Assign slots which are between <start-slot> and <end-slot> to current node.",
    "BUMPEPOCH",
    "    Advance the cluster config epoch.",
    "COUNT-FAILURE-REPORTS <node-id>",
    "    Return number of failure reports for <node-id>.",
    "COUNTKEYSINSLOT <slot>",
    "    Return the number of keys in <slot>.",
    "DELSLOTS <slot> [<slot> ...]",
    "    Delete slots information from current node.",
    "DELSLOTSRANGE <start slot> <end slot> [<start slot> <end slot> ...]",
    "    Delete slots information which are between <start-slot> and <end-slot> from current node.",
    "FAILOVER [FORCE|TAKEOVER]",
    "    Promote current replica node to being a master.",
    "FORGET <node-id>",
    "    Remove a node from the cluster.",
    "GETKEYSINSLOT <slot> <count>",
    "    Return key names stored by current node in a slot.",
    "FLUSHSLOTS",
    "    Delete current node own slots information.",
    "INFO",
    "    Return information about the cluster.",
    "KEYSLOT <key>",
    "    Return the hash slot for <key>.",
    "MEET <ip> <port> [<bus-port>]",
    "    Connect nodes into a working cluster.",
    "MYID",
    "    Return the node id.",
    "NODES",
    "    Return cluster configuration seen by node. Output format:",
    "    <id> <ip:port> <flags> <master> <pings> <pongs> <epoch> <link> <slot> ...",
    "REPLICATE <node-id>",
    "    Configure current node as replica to <node-id>.",
    "RESET [HARD|SOFT]",
    "    Reset current node (default: soft).",
    "SET-CONFIG-EPOCH <epoch>",
    "    Set config epoch of current node.",
    "SETSLOT <slot> (IMPORTING <node-id>|MIGRATING <node-id>|STABLE|NODE <node-id>)",
    "    Set slot state.",
    "REPLICAS <node-id>",
    "    Return <node-id> replicas.",
    "SAVECONFIG",
    "    Force saving cluster configuration on disk.",
    "SLOTS",
    "    Return information about slots range mappings. Each range is made of:",
    "    start, end, master and replicas IP addresses, ports and ids",
    "SHARDS",
    "    Return information about slot range mappings and the nodes associated with them.",
    "LINKS",
    "    Return information about all network links between this node and its peers.",
    "    Output format is an array where each array element is a map containing attributes of a link",
    "HELP",
    "    Prints this help.",
];

fn help(_ctx: &mut Ctx, _args: &[&[u8]], r: &mut Reply) {
    reply_help(r, HELP);
}

/// The node's configuration epoch (one node that configured itself once).
const EPOCH: u64 = 1;

/// The node id: 40 hex characters, stable for the life of the process,
/// derived from the run id so that it differs from it.
pub fn node_id(run_id: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in run_id.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
    }
    let mut out = String::with_capacity(40);
    let mut state = h | 1;
    while out.len() < 40 {
        let v = crate::shard::keyspace::xorshift(&mut state);
        out.push_str(&format!("{:016x}", v));
    }
    out.truncate(40);
    out
}

/// The IP the client connected to (`laddr` without its port).
fn local_ip(ctx: &Ctx) -> String {
    let laddr = ctx.client.as_ref().map_or("", |c| c.laddr.as_str());
    match laddr.rsplit_once(':') {
        Some((ip, _)) if !ip.is_empty() => ip.trim_start_matches('[').trim_end_matches(']').to_string(),
        _ => "127.0.0.1".to_string(),
    }
}

fn port(ctx: &Ctx) -> i64 {
    ctx.server.tcp_port.load(std::sync::atomic::Ordering::Relaxed) as i64
}

fn info(ctx: &mut Ctx, _args: &[&[u8]], r: &mut Reply) {
    let _ = ctx;
    let text = format!(
        "cluster_state:ok\r\ncluster_slots_assigned:{n}\r\ncluster_slots_ok:{n}\r\ncluster_slots_pfail:0\r\ncluster_slots_fail:0\r\ncluster_known_nodes:1\r\ncluster_size:1\r\ncluster_current_epoch:{e}\r\ncluster_my_epoch:{e}\r\ncluster_stats_messages_sent:0\r\ncluster_stats_messages_received:0\r\ntotal_cluster_links_buffer_limit_exceeded:0\r\n",
        n = SLOT_COUNT,
        e = EPOCH
    );
    r.verbatim(text.as_bytes());
}

/// CLUSTER RESET [HARD|SOFT]: refused, the emulated node cannot forget
/// its slots nor its peers (it has none). Registered so that it is known
/// with Redis's flags (a script calling it gets "not allowed from script").
fn reset(_ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let known = |a: &[u8]| a.eq_ignore_ascii_case(b"hard") || a.eq_ignore_ascii_case(b"soft");
    if args.len() > 3 || (args.len() == 3 && !known(args[2])) {
        return r.error(err::SYNTAX);
    }
    r.error("ERR CLUSTER RESET is not supported: this node emulates a one-node cluster that owns every slot");
}

fn myid(ctx: &mut Ctx, _args: &[&[u8]], r: &mut Reply) {
    r.bulk(node_id(&ctx.server.run_id).as_bytes());
}

fn nodes(ctx: &mut Ctx, _args: &[&[u8]], r: &mut Reply) {
    let port = port(ctx);
    let ip = local_ip(ctx);
    let host = if ip.contains(':') { format!("[{}]", ip) } else { ip };
    let line = format!("{} {}:{}@{} myself,master - 0 0 {} connected 0-{}\n", node_id(&ctx.server.run_id), host, port, port + 10000, EPOCH, SLOT_COUNT - 1);
    r.verbatim(line.as_bytes());
}

/// One range, 0-16383, served by this node (no replicas).
fn slots(ctx: &mut Ctx, _args: &[&[u8]], r: &mut Reply) {
    r.array(1);
    r.array(3);
    r.int(0);
    r.int(SLOT_COUNT as i64 - 1);
    r.array(4);
    r.bulk(local_ip(ctx).as_bytes());
    r.int(port(ctx));
    r.bulk(node_id(&ctx.server.run_id).as_bytes());
    // Redis 7.0's map of extra networking metadata (hostname), empty here.
    r.map(0);
}

fn shards(ctx: &mut Ctx, _args: &[&[u8]], r: &mut Reply) {
    let ip = local_ip(ctx);
    r.array(1);
    r.map(2);
    r.bulk(b"slots");
    r.array(2);
    r.int(0);
    r.int(SLOT_COUNT as i64 - 1);
    r.bulk(b"nodes");
    r.array(1);
    r.map(7);
    r.bulk(b"id");
    r.bulk(node_id(&ctx.server.run_id).as_bytes());
    r.bulk(b"port");
    r.int(port(ctx));
    r.bulk(b"ip");
    r.bulk(ip.as_bytes());
    r.bulk(b"endpoint");
    r.bulk(ip.as_bytes());
    r.bulk(b"role");
    r.bulk(b"master");
    r.bulk(b"replication-offset");
    r.int(0);
    r.bulk(b"health");
    r.bulk(b"online");
}

fn keyslot(_ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    r.int(key_slot(args[2]) as i64);
}

/// COUNTKEYSINSLOT / GETKEYSINSLOT run on the shard owning the slot.
fn slot_route(args: &[&[u8]], shards: usize) -> ShardMask {
    let slot = args.get(2).and_then(|a| super::parse_i64(a)).filter(|s| (0..SLOT_COUNT as i64).contains(s)).unwrap_or(0);
    ShardMask::single(slot_shard(slot as u16, shards))
}

/// Keys of `slot` in the client's database on the owning shard.
fn keys_in_slot<'c>(ctx: &'c Ctx, slot: u16) -> impl Iterator<Item = &'c [u8]> + 'c {
    let now = ctx.now_ms;
    let state = ctx.shard(slot_shard(slot, ctx.shard_count));
    state.dbs[ctx.db].map.iter().filter(move |(k, e)| (e.expire_at_ms < 0 || e.expire_at_ms > now) && key_slot(k) == slot).map(|(k, _)| k)
}

fn countkeysinslot(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    match super::parse_i64(args[2]) {
        None => r.error(err::NOT_INTEGER),
        Some(s) if !(0..SLOT_COUNT as i64).contains(&s) => r.error("ERR Invalid slot"),
        Some(s) => r.int(keys_in_slot(ctx, s as u16).count() as i64),
    }
}

fn getkeysinslot(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let (Some(slot), Some(count)) = (super::parse_i64(args[2]), super::parse_i64(args[3])) else {
        return r.error(err::NOT_INTEGER);
    };
    if count < 0 || !(0..SLOT_COUNT as i64).contains(&slot) {
        return r.error("ERR Invalid slot or number of keys");
    }
    let keys: Vec<&[u8]> = keys_in_slot(ctx, slot as u16).take(count as usize).collect();
    r.array(keys.len());
    for k in keys {
        r.bulk(k);
    }
}

fn readonly(ctx: &mut Ctx, _args: &[&[u8]], r: &mut Reply) {
    if let Some(c) = ctx.client.as_mut() {
        c.readonly = true;
        c.info_dirty = true;
    }
    r.ok();
}

fn readwrite(ctx: &mut Ctx, _args: &[&[u8]], r: &mut Reply) {
    if let Some(c) = ctx.client.as_mut() {
        c.readonly = false;
        c.info_dirty = true;
    }
    r.ok();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_id_is_stable_hex() {
        let a = node_id("0123456789abcdef0123456789abcdef01234567");
        assert_eq!(a.len(), 40);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(a, node_id("0123456789abcdef0123456789abcdef01234567"));
        assert_ne!(a, node_id("1123456789abcdef0123456789abcdef01234567"));
    }
}
