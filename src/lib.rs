//! ringkv: a Redis-compatible, thread-per-core, io_uring key-value server.
//!
//! Where things live:
//! - `protocol/`  RESP parsing and reply encoding
//! - `network/`   the per-shard io_uring loop, connections, dispatch
//! - `shard/`     keyspace, hash slots, cross-shard mailboxes, holding shards
//! - `commands/`  the command table and handlers, one file per family
//! - `config/`    redis.conf parsing and the CONFIG table
//! - `metrics/`   statistics, slowlog, latency monitor
//! - `server.rs`  state shared by all shard threads; `log.rs` Redis-style log lines

pub mod commands;
pub mod config;
pub mod log;
pub mod metrics;
pub mod network;
pub mod persistence;
pub mod protocol;
pub mod server;
pub mod shard;
pub mod util;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use config::Config;
use server::Server;
use shard::ShardState;

/// Starts the shard threads and blocks until the server shuts down.
pub fn run(config: Config) -> Result<(), String> {
    let shards = if config.shards == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    } else {
        config.shards
    };
    if shards > 128 {
        return Err("shards must be at most 128".into());
    }
    let server = Arc::new(Server::new(shards, config.maxclients, config.port));
    // One listener per shard and bind address, all with SO_REUSEPORT.
    let mut addrs = vec![];
    for b in &config.bind {
        let b = b.trim_start_matches('-');
        let ip: IpAddr = if b == "*" {
            "0.0.0.0".parse().unwrap()
        } else if b == "::*" {
            "::".parse().unwrap()
        } else {
            b.parse()
                .map_err(|_| format!("Invalid bind address '{}'", b))?
        };
        addrs.push(SocketAddr::new(ip, config.port));
    }
    let mut listeners: Vec<Vec<i32>> = vec![];
    for _ in 0..shards {
        let mut v = vec![];
        for a in &addrs {
            let fd = network::listener::listen(a, 511).map_err(|e| {
                format!(
                    "Warning: Could not create server TCP listening socket {}: {}",
                    a, e
                )
            })?;
            v.push(fd);
        }
        listeners.push(v);
    }
    // Shard states are built here so the dump can be loaded into them before
    // any thread serves; each thread then owns its state.
    let mut states: Vec<Box<ShardState>> = (0..shards)
        .map(|id| Box::new(ShardState::new(id, shards, config.clone())))
        .collect();
    persistence::snapshot::load_at_startup(&mut states, &config, &server.persistence)?;
    let mut states: Vec<Option<Box<ShardState>>> = states.into_iter().map(Some).collect();
    let mesh = shard::mailbox::mesh(shards, network::event_loop::MAILBOX_CAPACITY);
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mut handles = vec![];
    for (id, ((outboxes, inboxes), fds)) in mesh.into_iter().zip(listeners).enumerate() {
        let server = server.clone();
        let pin = config.cpu_affinity;
        let state_addr = Box::into_raw(states[id].take().unwrap()) as usize;
        let h = std::thread::Builder::new()
            .name(format!("ringkv-shard-{}", id))
            .spawn(move || {
                if pin {
                    pin_to_core(id % cores);
                }
                let state = state_addr as *mut ShardState;
                server.hold.register(id, state);
                // Extra bind addresses are served by the same loop through more accepts later;
                // the first listener is the ring's accept source.
                let listener = fds.first().copied().unwrap_or(-1);
                let mut lp = network::event_loop::EventLoop::new(
                    id, server, state, listener, outboxes, inboxes,
                )
                .expect("io_uring setup failed");
                lp.run();
            })
            .map_err(|e| e.to_string())?;
        handles.push(h);
    }
    notice!("Server initialized");
    notice!(
        "ringkv {} with {} shard thread(s){}, listening on {} port {}",
        env!("CARGO_PKG_VERSION"),
        shards,
        if config.cpu_affinity {
            " pinned to cores 0..".to_string() + &(shards - 1).to_string()
        } else {
            String::new()
        },
        config.bind.join(" "),
        config.port
    );
    notice!("Ready to accept connections tcp");
    for h in handles {
        let _ = h.join();
    }
    Ok(())
}

fn pin_to_core(core: usize) {
    // SAFETY: cpu_set_t is plain data; sched_setaffinity(0) affects this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}
