//! Generic key commands (Redis's db.c / expire.c).

use super::{flags::*, CommandSpec, Ctx};
use crate::protocol::Reply;

pub fn commands() -> Vec<CommandSpec> {
    vec![
        CommandSpec::new("del", -2, WRITE, del).keys(1, -1, 1).doc("1.0.0", "Delete a key"),
        CommandSpec::new("exists", -2, READONLY | FAST, exists).keys(1, -1, 1).doc("1.0.0", "Determine if a key exists"),
    ]
}

fn del(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let mut n = 0;
    for k in &args[1..] {
        if ctx.db(k).expire_if_needed(k, ctx.now_ms) {
            continue;
        }
        if ctx.db(k).remove(k).is_some() {
            ctx.dirty(k, 1);
            n += 1;
        }
    }
    r.int(n);
}

fn exists(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let mut n = 0;
    for k in &args[1..] {
        if ctx.db(k).contains(k, ctx.now_ms) {
            n += 1;
        }
    }
    r.int(n);
}
