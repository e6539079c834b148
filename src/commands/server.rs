//! Server commands (DBSIZE, FLUSHDB, FLUSHALL, INFO, CONFIG, DEBUG, ...).

use super::{flags::*, CommandSpec, Ctx, Route};
use crate::protocol::Reply;

pub fn commands() -> Vec<CommandSpec> {
    vec![
        CommandSpec::new("dbsize", 1, READONLY | FAST, dbsize)
            .route(Route::All)
            .group("server")
            .doc("1.0.0", "Return the number of keys in the selected database"),
        CommandSpec::new("flushall", -1, WRITE, flushall).route(Route::All).group("server").doc("1.0.0", "Remove all keys from all databases"),
    ]
}

fn dbsize(ctx: &mut Ctx, _args: &[&[u8]], r: &mut Reply) {
    let n: usize = (0..ctx.shard_count).map(|i| ctx.shard(i).dbs[ctx.db].len()).sum();
    r.int(n as i64);
}

fn flushall(ctx: &mut Ctx, _args: &[&[u8]], r: &mut Reply) {
    for i in 0..ctx.shard_count {
        let s = ctx.shard(i);
        for db in s.dbs.iter_mut() {
            let n = db.len() as u64;
            db.clear();
            s.dirty += n;
        }
    }
    r.ok();
}
