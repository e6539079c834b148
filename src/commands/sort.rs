//! SORT and SORT_RO (Redis's sort.c).
//!
//! **Routing.** BY and GET patterns name other keys, computed from the
//! elements, so nobody knows before running which shards they live on.
//! Redis Cluster 7.0 refuses such patterns ("BY option of SORT denied in
//! Cluster mode."); ringkv is standalone-compatible and must read them, so
//! a SORT whose BY or GET pattern contains a `*` runs held on every shard
//! (`sort_route`): atomic for other clients, and every pattern key is
//! reachable through `ctx`. Without patterns it runs on the key's shard,
//! plus the STORE destination's shard when that differs. The cost of the
//! all-shard hold is paid only by pattern SORTs, which are rare and slow
//! in Redis too.
//!
//! **Order.** Redis sorts with glibc's `qsort`, a stable merge sort for
//! vectors of this size, so ties of ALPHA BY keep the input order: the same
//! stable sort here. ALPHA without STORE compares with `strcoll`, which in
//! the C locale redis-server runs with is `strcmp` (bytes up to a NUL);
//! with STORE it compares the whole strings (binary), as Redis does.

use super::lookup::AnyKind;
use super::string::{cstr, string_bytes};
use super::{err, flags::*, CommandSpec, Ctx, Route};
use crate::messaging::notify;
use crate::protocol::Reply;
use crate::shard::hold::ShardMask;
use crate::shard::slot::key_shard;
use crate::shard::Value;
use crate::types::hash::Hash;
use crate::types::quicklist::Quicklist;
use crate::types::zset::ZSet;
use crate::types::zset_tree::SortedSet;
use crate::util::eq_ic;
use std::cmp::Ordering;

pub fn commands() -> Vec<CommandSpec> {
    vec![
        CommandSpec::new("sort", -2, WRITE | DENYOOM, sort)
            .keys(1, 1, 1)
            .find_keys(sort_keys)
            .route(Route::Custom(sort_route))
            .acl(&["write", "set", "sortedset", "list", "slow", "dangerous"])
            .doc("1.0.0", "Sort the elements in a list, set or sorted set"),
        CommandSpec::new("sort_ro", -2, READONLY, sort_ro)
            .keys(1, 1, 1)
            .route(Route::Custom(sort_ro_route))
            .acl(&["read", "set", "sortedset", "list", "slow", "dangerous"])
            .doc("7.0.0", "Sort the elements in a list, set or sorted set. Read-only variant of SORT."),
    ]
}

/// Redis's `sortGetKeys`: the sorted key, and the destination of the last
/// STORE. Options with arguments are skipped by their count; STORE's key is
/// not skipped (as in Redis).
fn sort_keys(args: &[&[u8]], out: &mut Vec<usize>) {
    out.push(1);
    let mut store = None;
    let mut i = 2;
    while i < args.len() {
        let word = cstr(args[i]);
        if eq_ic(word, "limit") {
            i += 2;
        } else if eq_ic(word, "get") || eq_ic(word, "by") {
            i += 1;
        } else if eq_ic(word, "store") && i + 1 < args.len() {
            store = Some(i + 1);
        }
        i += 1;
    }
    out.extend(store);
}

/// Whether a BY or GET pattern makes SORT read other keys (a `*` before any NUL).
fn reads_other_keys(pattern: &[u8]) -> bool {
    memchr::memchr(b'*', cstr(pattern)).is_some()
}

/// The shards a SORT runs on (see the module): every shard when a pattern
/// reads other keys, else the key's and the STORE destination's.
fn route(args: &[&[u8]], shards: usize, read_only: bool) -> ShardMask {
    let mut mask = ShardMask::single(key_shard(args[1], shards));
    let mut j = 2;
    while j < args.len() {
        let word = cstr(args[j]);
        let more = args.len() - j - 1;
        if eq_ic(word, "limit") && more >= 2 {
            j += 2;
        } else if (eq_ic(word, "by") || eq_ic(word, "get")) && more >= 1 {
            if reads_other_keys(args[j + 1]) {
                return ShardMask::all(shards);
            }
            j += 1;
        } else if !read_only && eq_ic(word, "store") && more >= 1 {
            mask.insert(key_shard(args[j + 1], shards));
            j += 1;
        }
        j += 1;
    }
    mask
}

fn sort_route(args: &[&[u8]], shards: usize) -> ShardMask {
    route(args, shards, false)
}

fn sort_ro_route(args: &[&[u8]], shards: usize) -> ShardMask {
    route(args, shards, true)
}

/// SORT's options, parsed before anything is looked up.
#[derive(Debug, Default, PartialEq)]
struct SortOptions<'a> {
    desc: bool,
    alpha: bool,
    limit_start: i64,
    limit_count: i64,
    store: Option<&'a [u8]>,
    by: Option<&'a [u8]>,
    /// BY without a `*`: nothing to sort by.
    dont_sort: bool,
    gets: Vec<&'a [u8]>,
}

/// Redis's option loop of `sortCommandGeneric`, with its errors.
/// `full_access`: the caller may read every key (BY and GET patterns read keys no key spec names).
fn parse_options<'a>(args: &[&'a [u8]], read_only: bool, cluster: bool, full_access: bool) -> Result<SortOptions<'a>, &'static str> {
    let mut o = SortOptions { limit_count: -1, ..Default::default() };
    let mut j = 2;
    while j < args.len() {
        let word = cstr(args[j]);
        let more = args.len() - j - 1;
        if eq_ic(word, "asc") {
            o.desc = false;
        } else if eq_ic(word, "desc") {
            o.desc = true;
        } else if eq_ic(word, "alpha") {
            o.alpha = true;
        } else if eq_ic(word, "limit") && more >= 2 {
            let (Some(start), Some(count)) = (super::parse_i64(args[j + 1]), super::parse_i64(args[j + 2])) else {
                return Err(err::NOT_INTEGER);
            };
            o.limit_start = start;
            o.limit_count = count;
            j += 2;
        } else if !read_only && eq_ic(word, "store") && more >= 1 {
            o.store = Some(args[j + 1]);
            j += 1;
        } else if eq_ic(word, "by") && more >= 1 {
            o.by = Some(args[j + 1]);
            if reads_other_keys(args[j + 1]) {
                if cluster {
                    return Err("ERR BY option of SORT denied in Cluster mode.");
                }
                if !full_access {
                    return Err("ERR BY option of SORT denied due to insufficient ACL permissions.");
                }
                o.dont_sort = false;
            } else {
                o.dont_sort = true;
            }
            j += 1;
        } else if eq_ic(word, "get") && more >= 1 {
            if cluster {
                return Err("ERR GET option of SORT denied in Cluster mode.");
            }
            if !full_access {
                return Err("ERR GET option of SORT denied due to insufficient ACL permissions.");
            }
            o.gets.push(args[j + 1]);
            j += 1;
        } else {
            return Err(err::SYNTAX);
        }
        j += 1;
    }
    Ok(o)
}

/// The first and last index of the output (Redis's LIMIT arithmetic over
/// `len` elements); empty when `end < start`.
fn limit_range(limit_start: i64, limit_count: i64, len: i64) -> (i64, i64) {
    let mut start = limit_start.max(0).min(len);
    let count = limit_count.max(-1).min(len);
    let mut end = if count < 0 { len - 1 } else { start + count - 1 };
    if start >= len {
        start = len - 1;
        end = len - 2;
    }
    if end >= len {
        end = len - 1;
    }
    (start, end)
}

/// C's `strtod` as Redis's SORT uses it (glibc): the whole string (up to a
/// NUL) must be consumed; leading white space, a sign, decimal or hex
/// digits, `inf`/`infinity`; NaN and out-of-range results (overflow, and
/// underflow to a subnormal or zero) are refused. An empty string is 0 (no
/// conversion, but the end pointer is at the NUL).
pub fn strtod(bytes: &[u8]) -> Option<f64> {
    let s = cstr(bytes);
    if s.is_empty() {
        return Some(0.0);
    }
    let body = {
        let ws = s.iter().take_while(|c| matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')).count();
        &s[ws..]
    };
    let (negative, unsigned) = match body.first() {
        Some(b'-') => (true, &body[1..]),
        Some(b'+') => (false, &body[1..]),
        _ => (false, body),
    };
    let text = std::str::from_utf8(unsigned).ok()?;
    let lower = text.to_ascii_lowercase();
    let magnitude = if lower == "inf" || lower == "infinity" {
        f64::INFINITY
    } else if let Some(hex) = lower.strip_prefix("0x") {
        parse_hex_float(hex)?
    } else {
        if !valid_decimal(unsigned) {
            return None;
        }
        let v: f64 = text.parse().ok()?;
        let nonzero_digits = unsigned.iter().take_while(|c| !matches!(c, b'e' | b'E')).any(|c| matches!(c, b'1'..=b'9'));
        // glibc reports ERANGE for overflow and for results below the normal range.
        if v.is_infinite() || (nonzero_digits && (v == 0.0 || v.abs() < f64::MIN_POSITIVE)) {
            return None;
        }
        v
    };
    Some(if negative { -magnitude } else { magnitude })
}

/// `digits [. digits] [e [sign] digits]` with at least one mantissa digit.
fn valid_decimal(s: &[u8]) -> bool {
    let mut i = 0;
    let int_digits = s.iter().take_while(|c| c.is_ascii_digit()).count();
    i += int_digits;
    let mut frac_digits = 0;
    if s.get(i) == Some(&b'.') {
        i += 1;
        frac_digits = s[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        i += frac_digits;
    }
    if int_digits + frac_digits == 0 {
        return false;
    }
    if matches!(s.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(s.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let exp_digits = s[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        if exp_digits == 0 {
            return false;
        }
        i += exp_digits;
    }
    i == s.len()
}

/// The part of a hex float after `0x` (`h[.h][p[sign]d]`).
fn parse_hex_float(s: &str) -> Option<f64> {
    let (mantissa, exp) = match s.split_once('p') {
        Some((m, e)) => (m, e.parse::<i32>().ok()?),
        None => (s, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let mut v = 0f64;
    for c in int.chars() {
        v = v * 16.0 + c.to_digit(16)? as f64;
    }
    let mut scale = 1.0 / 16.0;
    for c in frac.chars() {
        v += c.to_digit(16)? as f64 * scale;
        scale /= 16.0;
    }
    let v = v * 2f64.powi(exp);
    (v.is_finite() && (v == 0.0 || v >= f64::MIN_POSITIVE)).then_some(v)
}

/// The bytes up to the first NUL, as `strcoll` in the C locale sees them.
fn c_string(s: &[u8]) -> &[u8] {
    cstr(s)
}

/// One element of the vector to sort.
struct Item {
    value: Vec<u8>,
    score: f64,
    /// ALPHA BY: the value to compare by (None: the BY key was missing).
    by: Option<Vec<u8>>,
}

/// How `sort_items` compares.
#[derive(Clone, Copy)]
struct Order {
    desc: bool,
    alpha: bool,
    by_pattern: bool,
    store: bool,
}

/// Redis's `sortCompare`, over a stable sort (glibc's `qsort`, a merge
/// sort) or, for BY with a LIMIT short of the whole vector, over
/// `pqsort` on positions `range` (which leaves ties in another order).
fn sort_items(items: &mut [Item], order: Order, range: (i64, i64)) {
    let text_cmp = |a: &[u8], b: &[u8]| if order.store { a.cmp(b) } else { c_string(a).cmp(c_string(b)) };
    let compare = |a: &Item, b: &Item| {
        let cmp = if !order.alpha {
            if a.score > b.score {
                Ordering::Greater
            } else if a.score < b.score {
                Ordering::Less
            } else {
                a.value.cmp(&b.value)
            }
        } else if order.by_pattern {
            match (&a.by, &b.by) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Less,
                (Some(_), None) => Ordering::Greater,
                (Some(x), Some(y)) => text_cmp(x, y),
            }
        } else {
            text_cmp(&a.value, &b.value)
        };
        if order.desc {
            cmp.reverse()
        } else {
            cmp
        }
    };
    let (start, end) = range;
    if order.by_pattern && (start != 0 || end != items.len() as i64 - 1) {
        super::pqsort::pqsort(items, &compare, start, end);
    } else {
        items.sort_by(compare);
    }
}

/// The field `field` of a hash, as text.
fn hash_field(h: &Hash, field: &[u8]) -> Option<Vec<u8>> {
    match h {
        Hash::Listpack(lp) => lp.find_field(field).map(|(_, v)| lp.get(v).to_vec()),
        Hash::Table(t) => t.get(field).map(|v| v.to_vec()),
    }
}

/// Redis's `lookupKeyByPattern`: `#` is the element itself; otherwise the
/// first `*` is replaced by the element and the key read (a string, or with
/// `->field` a hash's field). None when there is no `*` or nothing to read.
fn lookup_by_pattern(ctx: &mut Ctx, pattern: &[u8], element: &[u8]) -> Option<Vec<u8>> {
    // C-string views, as strchr/strstr read the pattern; lengths use all of it.
    let c = cstr(pattern);
    if c == b"#" {
        return Some(element.to_vec());
    }
    let star = memchr::memchr(b'*', c)?;
    let arrow = memchr::memmem::find(&c[star + 1..], b"->").map(|i| star + 1 + i).filter(|&f| f + 2 < c.len());
    let field_len = arrow.map_or(0, |f| pattern.len() - f - 2);
    let postfix_end = pattern.len() - if field_len > 0 { field_len + 2 } else { 0 };
    let mut key = Vec::with_capacity(pattern.len() + element.len());
    key.extend_from_slice(&pattern[..star]);
    key.extend_from_slice(element);
    key.extend_from_slice(&pattern[star + 1..postfix_end.max(star + 1)]);
    let e = ctx.lookup_read::<AnyKind>(&key).ok()??;
    match (&e.value, arrow) {
        (Value::Hash(h), Some(f)) => hash_field(h, &pattern[f + 2..]),
        (Value::Int(_) | Value::Str { .. }, None) => Some(string_bytes(&e.value, &mut itoa::Buffer::new()).to_vec()),
        _ => None,
    }
}

/// What a SORT reads from its key.
enum Source {
    Missing,
    List,
    Set,
    ZSet,
}

/// The elements of a list (head to tail), set (its encoding's order) or
/// sorted set (lowest score first) as text; None for another type. A
/// listpack sorted set is converted to its skiplist encoding on the way, as
/// Redis's SORT does (OBJECT ENCODING shows it afterwards).
fn elements_of(value: &mut Value) -> Option<(Source, Vec<Vec<u8>>)> {
    Some(match value {
        Value::List(l) => (Source::List, l.iter().map(|x| x.to_vec()).collect()),
        Value::Set(s) => (Source::Set, s.iter().map(|x| x.to_vec()).collect()),
        Value::ZSet(z) => {
            if let ZSet::Listpack(_) = *z {
                let mut tree = SortedSet::new();
                for (m, s) in z.iter() {
                    tree.insert(&m.to_vec(), s);
                }
                *z = ZSet::Tree(tree);
            }
            (Source::ZSet, z.iter().map(|(m, _)| m.to_vec()).collect())
        }
        _ => return None,
    })
}

fn sort(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    sort_generic(ctx, args, r, false);
}

fn sort_ro(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    sort_generic(ctx, args, r, true);
}

fn sort_generic(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply, read_only: bool) {
    let cluster = ctx.config().others.get("cluster-enabled").is_some_and(|v| v == "yes");
    // BY and GET patterns read keys no key spec names: refused to a user
    // without read access to every key (Redis's user_has_full_key_access).
    let full_access = ctx.client.as_deref().is_none_or(|c| c.acl.unrestricted || c.acl.user.as_ref().is_none_or(|u| u.full_read_access(args)));
    let mut o = match parse_options(args, read_only, cluster, full_access) {
        Ok(o) => o,
        Err(e) => return r.error(e),
    };
    let (kind, mut elements) = match ctx.lookup_read::<AnyKind>(args[1]) {
        Ok(None) | Err(_) => (Source::Missing, Vec::new()),
        Ok(Some(e)) => match elements_of(&mut e.value) {
            Some(found) => found,
            None => return r.error(err::WRONGTYPE),
        },
    };
    // A set has no order of its own: with STORE, or for a script, sort it
    // (ALPHA) so that a replica or the AOF gets the same list.
    if o.dont_sort && matches!(kind, Source::Set) && (o.store.is_some() || crate::scripting::in_script(ctx)) {
        o.dont_sort = false;
        o.alpha = true;
        o.by = None;
    }
    let len = elements.len() as i64;
    let (mut start, mut end) = limit_range(o.limit_start, o.limit_count, len);
    if o.dont_sort && matches!(kind, Source::List | Source::ZSet) {
        // The container's own order, DESC walking it from the end.
        if o.desc {
            elements.reverse();
        }
    }
    let mut items: Vec<Item> = elements.into_iter().map(|value| Item { value, score: 0.0, by: None }).collect();
    let mut conversion_error = false;
    if !o.dont_sort {
        for item in items.iter_mut() {
            let by_value = match o.by {
                Some(pattern) => match lookup_by_pattern(ctx, pattern, &item.value) {
                    Some(v) => v,
                    None => continue,
                },
                None => item.value.clone(),
            };
            if o.alpha {
                if o.by.is_some() {
                    item.by = Some(by_value);
                }
            } else {
                match strtod(&by_value) {
                    Some(v) => item.score = v,
                    None => conversion_error = true,
                }
            }
        }
        sort_items(&mut items, Order { desc: o.desc, alpha: o.alpha, by_pattern: o.by.is_some(), store: o.store.is_some() }, (start, end));
    }
    if conversion_error {
        return r.error("ERR One or more scores can't be converted into double");
    }
    if end < start {
        (start, end) = (0, -1);
    }
    let selected = &items[start as usize..(end + 1) as usize];
    let output_len = if o.gets.is_empty() { selected.len() } else { o.gets.len() * selected.len() };
    let Some(dest) = o.store else {
        r.array(output_len);
        for item in selected {
            if o.gets.is_empty() {
                r.bulk(&item.value);
            }
            for pattern in &o.gets {
                match lookup_by_pattern(ctx, pattern, &item.value) {
                    Some(v) => r.bulk(&v),
                    None => r.null(),
                }
            }
        }
        return;
    };
    let mut list = Quicklist::new(ctx.config().encodings.list_max_listpack_size);
    for item in selected {
        if o.gets.is_empty() {
            list.push_tail(&item.value);
        }
        for pattern in &o.gets {
            list.push_tail(&lookup_by_pattern(ctx, pattern, &item.value).unwrap_or_default());
        }
    }
    let now = ctx.now_ms;
    if output_len > 0 {
        ctx.expire_if_needed(dest);
        let stored = ctx.db(dest).set(dest, Value::List(Box::new(list)), now, false);
        ctx.modified(ctx.db, dest);
        // Redis counts one write per stored element.
        ctx.shards.of(dest).dirty += output_len as u64 - 1;
        ctx.stored(dest, stored);
        ctx.notify(notify::LIST, "sortstore", dest);
    } else if ctx.db(dest).delete(dest) {
        ctx.modified(ctx.db, dest);
        ctx.notify(notify::GENERIC, "del", dest);
    }
    r.int(output_len as i64);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::listpack::Entry;

    fn items(values: &[&str]) -> Vec<Item> {
        values.iter().map(|v| Item { value: v.as_bytes().to_vec(), score: strtod(v.as_bytes()).unwrap_or(0.0), by: None }).collect()
    }

    fn values(items: &[Item]) -> Vec<String> {
        items.iter().map(|i| String::from_utf8_lossy(&i.value).into_owned()).collect()
    }

    const NUMERIC: Order = Order { desc: false, alpha: false, by_pattern: false, store: false };

    #[test]
    fn numeric_sort_ties_by_text() {
        let mut v = items(&["10", "2", "1.0", "1", "-5", "0x10"]);
        let n = v.len() as i64 - 1;
        sort_items(&mut v, NUMERIC, (0, n));
        assert_eq!(values(&v), ["-5", "1", "1.0", "2", "10", "0x10"]);
        let n = v.len() as i64 - 1;
        sort_items(&mut v, Order { desc: true, ..NUMERIC }, (0, n));
        assert_eq!(values(&v), ["0x10", "10", "2", "1.0", "1", "-5"]);
    }

    #[test]
    fn alpha_sort_and_by_ties_stable() {
        let mut v = items(&["b", "a", "c", "B"]);
        let n = v.len() as i64 - 1;
        sort_items(&mut v, Order { alpha: true, ..NUMERIC }, (0, n));
        assert_eq!(values(&v), ["B", "a", "b", "c"]);
        let mut v = items(&["x", "y", "z", "w"]);
        for (item, by) in v.iter_mut().zip([Some("2"), None, Some("1"), Some("2")]) {
            item.by = by.map(|b| b.as_bytes().to_vec());
        }
        let n = v.len() as i64 - 1;
        sort_items(&mut v, Order { alpha: true, by_pattern: true, ..NUMERIC }, (0, n));
        assert_eq!(values(&v), ["y", "z", "x", "w"]);
    }

    #[test]
    fn alpha_without_store_stops_at_nul() {
        let mut v = vec![Item { value: b"a\x00z".to_vec(), score: 0.0, by: None }, Item { value: b"a\x00b".to_vec(), score: 0.0, by: None }];
        let n = v.len() as i64 - 1;
        sort_items(&mut v, Order { alpha: true, ..NUMERIC }, (0, n));
        assert_eq!(v[0].value, b"a\x00z");
        let n = v.len() as i64 - 1;
        sort_items(&mut v, Order { alpha: true, store: true, ..NUMERIC }, (0, n));
        assert_eq!(v[0].value, b"a\x00b");
    }

    #[test]
    fn strtod_as_glibc() {
        assert_eq!(strtod(b""), Some(0.0));
        assert_eq!(strtod(b" "), None);
        assert_eq!(strtod(b" 5"), Some(5.0));
        assert_eq!(strtod(b"5 "), None);
        assert_eq!(strtod(b"0x10"), Some(16.0));
        assert_eq!(strtod(b"0x1p3"), Some(8.0));
        assert_eq!(strtod(b"1e-310"), None);
        assert_eq!(strtod(b"1e-400"), None);
        assert_eq!(strtod(b"1e400"), None);
        assert_eq!(strtod(b"0e-400"), Some(0.0));
        assert_eq!(strtod(b"inf"), Some(f64::INFINITY));
        assert_eq!(strtod(b"-Infinity"), Some(f64::NEG_INFINITY));
        assert_eq!(strtod(b"nan"), None);
        assert_eq!(strtod(b"1e"), None);
        assert_eq!(strtod(b".5"), Some(0.5));
        assert_eq!(strtod(b"5."), Some(5.0));
        assert_eq!(strtod(b"+3"), Some(3.0));
        assert_eq!(strtod(b"1_0"), None);
        assert_eq!(strtod(b"  -2.5e1"), Some(-25.0));
        assert_eq!(strtod(b"7\x00junk"), Some(7.0));
    }

    #[test]
    fn elements_of_each_type() {
        let mut list = Quicklist::new(-2);
        for v in [&b"3"[..], b"b", b"-1"] {
            list.push_tail(v);
        }
        let (_, got) = elements_of(&mut Value::List(Box::new(list))).unwrap();
        assert_eq!(got, [&b"3"[..], b"b", b"-1"]);
        let mut set = crate::types::intset::Intset::new();
        for v in [5, -2, 9] {
            set.add(v);
        }
        let (_, got) = elements_of(&mut Value::Set(crate::types::Set::Intset(set))).unwrap();
        assert_eq!(got, [&b"-2"[..], b"5", b"9"]);
        let mut tree = SortedSet::new();
        tree.insert(b"x", 2.0);
        tree.insert(b"y", 1.0);
        let mut z = Value::ZSet(ZSet::Tree(tree));
        let (_, got) = elements_of(&mut z).unwrap();
        assert_eq!(got, [&b"y"[..], b"x"]);
        assert!(elements_of(&mut Value::Int(1)).is_none());
        // A listpack sorted set leaves as a skiplist, as in Redis.
        let mut lp = crate::types::listpack::Listpack::new();
        for e in [Entry::Str(b"m"), Entry::Int(3), Entry::Str(b"n"), Entry::Int(4)] {
            lp.append(e);
        }
        let mut z = ZSet::Listpack(lp);
        let (_, got) = elements_of(&mut Value::ZSet(z.clone())).unwrap();
        assert_eq!(got, [&b"m"[..], b"n"]);
        let mut v = Value::ZSet(std::mem::take(&mut z));
        elements_of(&mut v).unwrap();
        assert!(matches!(&v, Value::ZSet(z) if z.encoding() == "skiplist"));
    }

    #[test]
    fn limits_as_redis() {
        assert_eq!(limit_range(0, -1, 5), (0, 4));
        assert_eq!(limit_range(1, 2, 5), (1, 2));
        assert_eq!(limit_range(-3, 2, 5), (0, 1));
        assert_eq!(limit_range(10, 2, 5), (4, 3));
        assert_eq!(limit_range(3, 100, 5), (3, 4));
        assert_eq!(limit_range(0, 0, 5), (0, -1));
        assert_eq!(limit_range(0, -1, 0), (-1, -2));
    }

    #[test]
    fn options_and_keys() {
        let args: Vec<&[u8]> = ["sort", "k", "by", "w_*", "get", "#", "limit", "0", "1", "store", "d", "desc", "alpha"].iter().map(|s| s.as_bytes()).collect();
        let o = parse_options(&args, false, false, true).unwrap();
        assert!(o.desc && o.alpha && !o.dont_sort);
        assert_eq!(o.store, Some(&b"d"[..]));
        assert_eq!(parse_options(&args, true, false, true), Err(err::SYNTAX));
        assert_eq!(parse_options(&args, false, true, true), Err("ERR BY option of SORT denied in Cluster mode."));
        let mut keys = vec![];
        sort_keys(&args, &mut keys);
        assert_eq!(keys, [1, 10]);
        assert_eq!(route(&args, 3, false).0, ShardMask::all(3).0);
        let plain: Vec<&[u8]> = ["sort", "k", "by", "nosort", "get", "#"].iter().map(|s| s.as_bytes()).collect();
        assert_eq!(route(&plain, 3, false).0, ShardMask::single(key_shard(b"k", 3)).0);
        assert!(parse_options(&plain, false, false, true).unwrap().dont_sort);
        let bad: Vec<&[u8]> = ["sort", "k", "limit", "a", "1"].iter().map(|s| s.as_bytes()).collect();
        assert_eq!(parse_options(&bad, false, false, true), Err(err::NOT_INTEGER));
    }
}
