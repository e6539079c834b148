//! String commands (Redis's t_string.c).

use super::{err, flags::*, CommandSpec, Ctx};
use crate::protocol::Reply;
use crate::shard::Value;

pub fn commands() -> Vec<CommandSpec> {
    vec![
        CommandSpec::new("get", 2, READONLY | FAST, get).keys(1, 1, 1).group("string").doc("1.0.0", "Get the value of a key"),
        CommandSpec::new("set", -3, WRITE | DENYOOM, set).keys(1, 1, 1).group("string").doc("1.0.0", "Set the string value of a key"),
    ]
}

fn get(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let db = ctx.db(args[1]);
    match db.get(args[1], ctx.now_ms) {
        Some(e) => {
            let mut b = itoa::Buffer::new();
            r.bulk(e.value.as_bytes(&mut b));
            ctx.hit(args[1], true);
        }
        None => {
            r.null();
            ctx.hit(args[1], false);
        }
    }
}

fn set(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    if args.len() != 3 {
        r.error(err::SYNTAX);
        return;
    }
    let db = ctx.db(args[1]);
    db.set(args[1], Value::from_bytes(args[2]), ctx.now_ms, false);
    ctx.dirty(args[1], 1);
    r.ok();
}
