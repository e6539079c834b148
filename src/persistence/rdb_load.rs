//! Loading the RDB objects of the aggregate types (Redis 7.0's
//! `rdbLoadObject`), shared by start-up, DEBUG RELOAD, the AOF's RDB
//! preamble and RESTORE.
//!
//! Every type Redis 7.0 loads is read here, the old ones included: lists as
//! plain elements (1), as one ziplist (10) or as a quicklist of ziplists
//! (14); hashes as a zipmap (9, Redis 2.4) or a ziplist (13); sorted sets as
//! a ziplist (12) or with scores as text (3). Ziplists and zipmaps are
//! converted to listpacks as Redis converts them on load, and the in-memory
//! encoding is chosen as Redis's loader chooses it (`EncodingLimits`): a
//! small hash or sorted set stays a listpack, a listpack or intset past the
//! entry limit converts, a sorted set saved as a skiplist that is small
//! enough becomes a listpack. Redis 7.2's set listpack (20) loads as an
//! intset or a hash set, ringkv's two set encodings.
//!
//! Blobs are always checked deeply, as Redis's `sanitize-dump-payload yes`
//! (Redis 7.0 only checks the frame by default): a listpack's every entry
//! and back-length, an intset's order, no duplicate field or member, an
//! even count of pair entries. It costs one pass over bytes the loader
//! copies anyway (measured in `tests/types_persistence.rs`'s load of 1M
//! elements: see perf/RESULTS.md), and it means nothing that was not
//! checked is ever read. Every failure is an error with an offset, never a
//! panic.

use super::rdb::{self, LoadError, LoadErrorClass, Reader};
use crate::config::EncodingLimits;
use crate::shard::key::Key;
use crate::shard::Value;
use crate::types::intset::Intset;
use crate::types::listpack::{self, string_to_int, Entry, Listpack};
use crate::types::quicklist::Node;
use crate::types::zset_tree::SortedSet;
use crate::types::{hash, set, Hash, Quicklist, Set, ZSet};

/// A listpack never grows past this (`LISTPACK_MAX_SAFETY_SIZE`, 1 GiB):
/// a bigger hash or sorted set stays in its big encoding.
const LISTPACK_SAFETY_BYTES: usize = listpack::SAFETY_BYTES_MAX;

/// The name of an RDB object type, for refusals (`TYPE`'s words, and what
/// the type is where ringkv has none).
pub fn type_name(rdb_type: u8) -> Option<&'static str> {
    Some(match rdb_type {
        rdb::TYPE_STRING => "string",
        rdb::TYPE_LIST | rdb::TYPE_LIST_ZIPLIST | rdb::TYPE_LIST_QUICKLIST | rdb::TYPE_LIST_QUICKLIST_2 => "list",
        rdb::TYPE_SET | rdb::TYPE_SET_INTSET | rdb::TYPE_SET_LISTPACK => "set",
        rdb::TYPE_ZSET | rdb::TYPE_ZSET_2 | rdb::TYPE_ZSET_ZIPLIST | rdb::TYPE_ZSET_LISTPACK => "zset",
        rdb::TYPE_HASH | rdb::TYPE_HASH_ZIPMAP | rdb::TYPE_HASH_ZIPLIST | rdb::TYPE_HASH_LISTPACK => "hash",
        rdb::TYPE_STREAM_LISTPACKS | rdb::TYPE_STREAM_LISTPACKS_2 | rdb::TYPE_STREAM_LISTPACKS_3 => "stream",
        rdb::TYPE_MODULE_PRE_GA | rdb::TYPE_MODULE_2 => "module",
        rdb::TYPE_HASH_METADATA_PRE_GA | rdb::TYPE_HASH_LISTPACK_EX_PRE_GA | rdb::TYPE_HASH_METADATA | rdb::TYPE_HASH_LISTPACK_EX => "hash with field expiry",
        _ => return None,
    })
}

/// Whether ringkv loads objects of this type.
pub fn is_loadable(rdb_type: u8) -> bool {
    matches!(rdb_type, 0..=5 | 9..=20 | rdb::TYPE_STREAM_LISTPACKS_3)
}

fn corrupt<T>(offset: usize, reason: impl Into<String>) -> Result<T, LoadError> {
    Err(LoadError { offset, reason: reason.into(), class: LoadErrorClass::Corrupt(0) })
}

/// A blob check failed: Redis's words, then ringkv's detail.
fn bad_blob<T>(offset: usize, what: &str, detail: String) -> Result<T, LoadError> {
    corrupt(offset, format!("{} ({})", what, detail))
}

/// Loads one object of `rdb_type` (a type `is_loadable` accepts) at the
/// reader's position. `Ok(None)` is an empty collection, which Redis skips
/// ("rdbLoadObject skipping empty key") and RESTORE refuses.
pub(crate) fn load_object(r: &mut Reader, rdb_type: u8, limits: &EncodingLimits) -> Result<Option<Value>, LoadError> {
    let start = r.pos;
    let value = match rdb_type {
        rdb::TYPE_STRING => return Ok(Some(Value::from_vec(r.string()?))),
        rdb::TYPE_LIST => load_list(r, limits)?.map(|q| Value::List(Box::new(q))),
        rdb::TYPE_SET => load_set(r, limits)?.map(Value::Set),
        rdb::TYPE_ZSET | rdb::TYPE_ZSET_2 => load_zset(r, rdb_type == rdb::TYPE_ZSET_2, limits)?.map(Value::ZSet),
        rdb::TYPE_HASH => load_hash(r, limits)?.map(Value::Hash),
        rdb::TYPE_LIST_QUICKLIST | rdb::TYPE_LIST_QUICKLIST_2 => {
            load_quicklist(r, rdb_type == rdb::TYPE_LIST_QUICKLIST_2, limits)?.map(|q| Value::List(Box::new(q)))
        }
        rdb::TYPE_STREAM_LISTPACKS | rdb::TYPE_STREAM_LISTPACKS_2 | rdb::TYPE_STREAM_LISTPACKS_3 => {
            return Ok(Some(Value::Stream(Box::new(crate::types::stream_persist::load_stream(r, rdb_type)?))))
        }
        _ => {
            let blob = r.string()?;
            load_blob(blob, rdb_type, start, limits)?
        }
    };
    Ok(value)
}

/// The objects that are one blob (`RDB_LOAD_PLAIN` string): zipmap,
/// ziplists, intset, listpacks.
fn load_blob(blob: Vec<u8>, rdb_type: u8, at: usize, limits: &EncodingLimits) -> Result<Option<Value>, LoadError> {
    let value = match rdb_type {
        rdb::TYPE_HASH_ZIPMAP => {
            let (lp, longest) = zipmap_to_listpack(&blob).or_else(|e| bad_blob(at, "Zipmap integrity check failed.", e))?;
            if lp.is_empty() {
                return Ok(None);
            }
            let convert = lp.len() / 2 > limits.hash_max_listpack_entries || longest > limits.hash_max_listpack_value;
            Value::Hash(hash_from_listpack(lp, convert))
        }
        rdb::TYPE_LIST_ZIPLIST => {
            let mut q = Quicklist::new(limits.list_max_listpack_size);
            ziplist_walk(&blob, |e| {
                q.push_tail(&e.to_vec());
                Ok(())
            })
            .or_else(|e| bad_blob(at, "List ziplist integrity check failed.", e))?;
            if q.is_empty() {
                return Ok(None);
            }
            Value::List(Box::new(q))
        }
        rdb::TYPE_SET_INTSET => {
            let is = Intset::from_bytes(blob).or_else(|e| bad_blob(at, "Intset integrity check failed.", e))?;
            let set = if is.len() > limits.set_max_intset_entries { Set::Table(set_table_from_intset(&is)) } else { Set::Intset(is) };
            Value::Set(set)
        }
        rdb::TYPE_SET_LISTPACK => {
            let lp = Listpack::from_bytes(blob).or_else(|e| bad_blob(at, "Set listpack integrity check failed.", e))?;
            unique_keys(&lp, false).or_else(|e| bad_blob(at, "Set listpack integrity check failed.", e))?;
            if lp.is_empty() {
                return Ok(None);
            }
            Value::Set(set_from_members(lp.len(), || lp.iter(), limits))
        }
        rdb::TYPE_ZSET_ZIPLIST | rdb::TYPE_HASH_ZIPLIST => {
            let zset = rdb_type == rdb::TYPE_ZSET_ZIPLIST;
            let what = if zset { "Zset ziplist integrity check failed." } else { "Hash ziplist integrity check failed." };
            let lp = ziplist_pairs_to_listpack(&blob).or_else(|e| bad_blob(at, what, e))?;
            if lp.is_empty() {
                return Ok(None);
            }
            pairs_value(lp, zset, limits)?
        }
        rdb::TYPE_ZSET_LISTPACK | rdb::TYPE_HASH_LISTPACK => {
            let zset = rdb_type == rdb::TYPE_ZSET_LISTPACK;
            let what = if zset { "Zset listpack integrity check failed." } else { "Hash listpack integrity check failed." };
            let lp = Listpack::from_bytes(blob).or_else(|e| bad_blob(at, what, e))?;
            unique_keys(&lp, true).or_else(|e| bad_blob(at, what, e))?;
            if lp.is_empty() {
                return Ok(None);
            }
            pairs_value(lp, zset, limits)?
        }
        other => return corrupt(at, format!("Unknown RDB encoding type {}", other)),
    };
    Ok(Some(value))
}

/// No two keys of a checked listpack (every entry, or with `pairs` every
/// even one) are equal as strings, and pairs come whole: what
/// `lpValidateIntegrityAndDups` adds to the deep check. Sorting borrowed
/// keys allocates for integer entries only (a hash set of owned keys took
/// as long as the rest of the load on 200k small hashes).
fn unique_keys(lp: &Listpack, pairs: bool) -> Result<(), String> {
    use std::borrow::Cow;
    let n = lp.len();
    if pairs && !n.is_multiple_of(2) {
        return Err("odd number of entries in a listpack of pairs".into());
    }
    let step = if pairs { 2 } else { 1 };
    let mut keys: Vec<Cow<'_, [u8]>> = lp
        .iter()
        .step_by(step)
        .map(|e| match e {
            Entry::Str(s) => Cow::Borrowed(s),
            Entry::Int(v) => Cow::Owned(itoa::Buffer::new().format(v).as_bytes().to_vec()),
        })
        .collect();
    keys.sort_unstable();
    if keys.windows(2).any(|w| w[0] == w[1]) {
        return Err("duplicate key in listpack".into());
    }
    Ok(())
}

/// A hash or sorted set from its listpack of pairs, converted past the
/// entry limit as Redis's loader does (it checks the count only: an O(1)
/// test; long elements convert at the next write).
fn pairs_value(lp: Listpack, zset: bool, limits: &EncodingLimits) -> Result<Value, LoadError> {
    Ok(if zset {
        let convert = lp.len() / 2 > limits.zset_max_listpack_entries;
        Value::ZSet(zset_from_listpack(lp, convert))
    } else {
        let convert = lp.len() / 2 > limits.hash_max_listpack_entries;
        Value::Hash(hash_from_listpack(lp, convert))
    })
}

/// Capacity to reserve for `n` elements claimed by the file: never more
/// than the bytes left could hold (one byte each at least).
fn reserve_for(n: u64, r: &Reader) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX).min(r.remaining())
}

/// RDB_TYPE_LIST: a count, then each element as a string.
fn load_list(r: &mut Reader, limits: &EncodingLimits) -> Result<Option<Quicklist>, LoadError> {
    let n = r.plain_len()?;
    let mut q = Quicklist::new(limits.list_max_listpack_size);
    for _ in 0..n {
        q.push_tail(&r.string()?);
    }
    Ok(if q.is_empty() { None } else { Some(q) })
}

/// RDB_TYPE_SET: an intset while the count allows one and every member is
/// an integer, a hash set from the first one that is not.
fn load_set(r: &mut Reader, limits: &EncodingLimits) -> Result<Option<Set>, LoadError> {
    let n = r.plain_len()?;
    if n == 0 {
        return Ok(None);
    }
    let mut set = if n <= limits.set_max_intset_entries as u64 {
        Set::Intset(Intset::new())
    } else {
        Set::Table(set::Table::with_capacity_and_hasher(reserve_for(n, r), set::Hasher::default()))
    };
    for _ in 0..n {
        let at = r.pos;
        let member = r.string()?;
        if let Set::Intset(is) = &mut set {
            match string_to_int(&member) {
                Some(v) => {
                    if !is.add(v) {
                        return corrupt(at, "Duplicate set members detected");
                    }
                    continue;
                }
                None => set = Set::Table(set_table_from_intset(is)),
            }
        }
        if let Set::Table(t) = &mut set {
            if !t.insert(Key::new(&member)) {
                return corrupt(at, "Duplicate set members detected");
            }
        }
    }
    Ok(Some(set))
}

/// RDB_TYPE_ZSET (scores as text) and RDB_TYPE_ZSET_2 (binary doubles):
/// built as a tree, made a listpack after loading when small enough (the
/// pairs are not stored in order).
fn load_zset(r: &mut Reader, binary_scores: bool, limits: &EncodingLimits) -> Result<Option<ZSet>, LoadError> {
    let n = r.plain_len()?;
    if n == 0 {
        return Ok(None);
    }
    let mut tree = SortedSet::new();
    let (mut longest, mut total) = (0usize, 0usize);
    for _ in 0..n {
        let at = r.pos;
        let member = r.string()?;
        let score = if binary_scores { f64::from_le_bytes(r.bytes(8)?.try_into().expect("8 bytes")) } else { load_text_double(r)? };
        if score.is_nan() {
            return corrupt(at, "Zset with NAN score detected");
        }
        longest = longest.max(member.len());
        total = total.saturating_add(member.len());
        if tree.insert(&member, score).is_some() {
            return corrupt(at, "Duplicate zset fields detected");
        }
    }
    if tree.len() <= limits.zset_max_listpack_entries && longest <= limits.zset_max_listpack_value && total <= LISTPACK_SAFETY_BYTES {
        return Ok(Some(ZSet::Listpack(zset_listpack_from_tree(&tree))));
    }
    Ok(Some(ZSet::Tree(tree)))
}

/// `rdbLoadDoubleValue`: a length byte (253 NaN, 254 +inf, 255 -inf), then
/// that many bytes of text read by `sscanf("%lg")`: its number prefix.
fn load_text_double(r: &mut Reader) -> Result<f64, LoadError> {
    let at = r.pos;
    let len = r.u8()?;
    match len {
        253 => Ok(f64::NAN),
        254 => Ok(f64::INFINITY),
        255 => Ok(f64::NEG_INFINITY),
        n => match crate::commands::zset::score::c_prefix(r.bytes(n as usize)?) {
            Some(v) => Ok(v),
            None => corrupt(at, "Invalid double value in a sorted set"),
        },
    }
}

/// RDB_TYPE_HASH: a count, then field, value strings. A listpack while
/// the count and every length allow (the first long one converts the rest
/// into a table), a table from the start past the entry limit.
fn load_hash(r: &mut Reader, limits: &EncodingLimits) -> Result<Option<Hash>, LoadError> {
    let n = r.plain_len()?;
    if n == 0 {
        return Ok(None);
    }
    let mut hash = if n > limits.hash_max_listpack_entries as u64 {
        Hash::Table(hash::Table::with_capacity_and_hasher(reserve_for(n, r), hash::Hasher::default()))
    } else {
        Hash::Listpack(Listpack::new())
    };
    // Fields seen while it is a listpack (Redis's dupSearchDict).
    let mut seen: std::collections::HashSet<Vec<u8>, hash::Hasher> = Default::default();
    for _ in 0..n {
        let at = r.pos;
        let field = r.string()?;
        let value = r.string()?;
        if let Hash::Listpack(lp) = &mut hash {
            if !seen.insert(field.clone()) {
                return corrupt(at, "Hash with dup elements");
            }
            let fits =
                field.len() <= limits.hash_max_listpack_value && value.len() <= limits.hash_max_listpack_value && lp.safe_to_add(field.len() + value.len());
            if fits {
                lp.append(Entry::Str(&field));
                lp.append(Entry::Str(&value));
                continue;
            }
            hash = Hash::Table(hash_table_from_listpack(lp));
            seen = Default::default();
        }
        if let Hash::Table(t) = &mut hash {
            if !t.insert(&field, &value) {
                return corrupt(at, "Duplicate hash fields detected");
            }
        }
    }
    Ok(Some(hash))
}

/// RDB_TYPE_LIST_QUICKLIST (ziplist nodes) and _2 (a container kind, then
/// a listpack or one plain element per node). Nodes keep their layout, as
/// Redis's `quicklistAppendListpack`; empty ones are dropped.
fn load_quicklist(r: &mut Reader, v2: bool, limits: &EncodingLimits) -> Result<Option<Quicklist>, LoadError> {
    let n = r.plain_len()?;
    let mut nodes = Vec::with_capacity(reserve_for(n, r));
    for _ in 0..n {
        let mut container = 2;
        if v2 {
            let at = r.pos;
            container = r.plain_len()?;
            if container != 1 && container != 2 {
                return corrupt(at, "Quicklist integrity check failed.");
            }
        }
        let at = r.pos;
        let data = r.string()?;
        if data.is_empty() {
            return corrupt(at, "Quicklist node of 0 bytes");
        }
        if container == 1 {
            nodes.push(Node::Plain(data));
        } else if v2 {
            nodes.push(Node::Packed(Listpack::from_bytes(data).or_else(|e| bad_blob(at, "Listpack integrity check failed.", e))?));
        } else {
            let mut lp = Listpack::new();
            ziplist_walk(&data, |e| {
                lp.append(e);
                Ok(())
            })
            .or_else(|e| bad_blob(at, "Ziplist integrity check failed.", e))?;
            nodes.push(Node::Packed(lp));
        }
    }
    let q = Quicklist::from_nodes(limits.list_max_listpack_size, nodes);
    Ok(if q.is_empty() { None } else { Some(q) })
}

// --- conversions between encodings ------------------------------------

/// A hash from a checked listpack of pairs: the listpack itself, or a table
/// of its pairs (`hashTypeConvert`).
fn hash_from_listpack(lp: Listpack, to_table: bool) -> Hash {
    if to_table {
        Hash::Table(hash_table_from_listpack(&lp))
    } else {
        Hash::Listpack(lp)
    }
}

fn hash_table_from_listpack(lp: &Listpack) -> hash::Table {
    let mut t = hash::Table::with_capacity_and_hasher(lp.len() / 2, hash::Hasher::default());
    for (f, v) in lp.pairs() {
        t.insert(&f.to_vec(), &v.to_vec());
    }
    t
}

fn set_table_from_intset(is: &Intset) -> set::Table {
    let mut t = set::Table::with_capacity_and_hasher(is.len(), set::Hasher::default());
    let mut itoa = itoa::Buffer::new();
    for v in is.iter() {
        t.insert(itoa.format(v).as_bytes().into());
    }
    t
}

/// A set of distinct members: an intset when all are integers and few
/// enough, else a hash set.
fn set_from_members<'a, I: Iterator<Item = Entry<'a>>>(count: usize, members: impl Fn() -> I, limits: &EncodingLimits) -> Set {
    if count <= limits.set_max_intset_entries {
        let mut is = Intset::new();
        let mut all_ints = true;
        for m in members() {
            let v = match m {
                Entry::Int(v) => Some(v),
                Entry::Str(s) => string_to_int(s),
            };
            match v {
                Some(v) => {
                    is.add(v);
                }
                None => {
                    all_ints = false;
                    break;
                }
            }
        }
        if all_ints {
            return Set::Intset(is);
        }
    }
    let mut t = set::Table::with_capacity_and_hasher(count, set::Hasher::default());
    for m in members() {
        t.insert(Key::new(&m.to_vec()));
    }
    Set::Table(t)
}

fn zset_from_listpack(lp: Listpack, to_tree: bool) -> ZSet {
    if !to_tree {
        return ZSet::Listpack(lp);
    }
    let mut tree = SortedSet::new();
    for (m, s) in lp.pairs() {
        tree.insert(&m.to_vec(), crate::types::zset::entry_score(s));
    }
    ZSet::Tree(tree)
}

/// The listpack of a small sorted set (`zsetConvert` to listpack): member
/// then score, lowest first, each score as Redis's `d2string` prints it
/// (so an integral score is stored as an integer entry).
fn zset_listpack_from_tree(tree: &SortedSet) -> Listpack {
    let mut lp = Listpack::new();
    for (m, score) in tree.iter() {
        lp.append(Entry::Str(m));
        // As Redis's `d2string` (-0 too becomes "0": a small zset loaded
        // from RDB_TYPE_ZSET_2 or RESTOREd loses a -0 score, as in 7.0).
        lp.append(Entry::Str(&crate::types::zset::score_text(score)));
    }
    lp
}

// --- the old encodings: ziplist (Redis 2.6 to 6.2) and zipmap (to 2.4) --

const ZIPLIST_HEADER_BYTES: usize = 10;
const ZIPLIST_END: u8 = 0xFF;
const ZIPLIST_BIG_PREVLEN: u8 = 254;

/// Walks a ziplist, checking it as Redis's `ziplistValidateIntegrity` with
/// `deep`: the header's size and tail offset, every entry's prev-length
/// (equal to the previous entry's size) and encoding, every entry inside
/// the blob, the count when the header knows it. Each entry goes to `f`.
fn ziplist_walk(zl: &[u8], mut f: impl FnMut(Entry<'_>) -> Result<(), String>) -> Result<(), String> {
    let size = zl.len();
    if size < ZIPLIST_HEADER_BYTES + 1 {
        return Err(format!("ziplist of {} bytes is shorter than its header", size));
    }
    let u32_at = |p: usize| u32::from_le_bytes([zl[p], zl[p + 1], zl[p + 2], zl[p + 3]]) as usize;
    if u32_at(0) != size {
        return Err(format!("ziplist header says {} bytes, blob has {}", u32_at(0), size));
    }
    let tail = u32_at(4);
    if tail > size - 1 {
        return Err(format!("ziplist tail offset {} outside the blob", tail));
    }
    if zl[size - 1] != ZIPLIST_END {
        return Err("ziplist does not end with its terminator".into());
    }
    let header_count = u16::from_le_bytes([zl[8], zl[9]]);
    let end = size - 1;
    let (mut p, mut prev_size, mut count, mut last) = (ZIPLIST_HEADER_BYTES, 0usize, 0u64, None);
    while p < end && zl[p] != ZIPLIST_END {
        let entry_at = p;
        let need = |p: usize, n: usize| if n > end - p { Err(format!("ziplist entry at {} runs past the end", entry_at)) } else { Ok(()) };
        // The previous entry's size.
        let prev_len = if zl[p] < ZIPLIST_BIG_PREVLEN {
            p += 1;
            zl[p - 1] as usize
        } else {
            need(p, 5)?;
            p += 5;
            u32_at(p - 4)
        };
        if prev_len != prev_size {
            return Err(format!("ziplist entry at {} says the previous one has {} bytes, it has {}", entry_at, prev_len, prev_size));
        }
        need(p, 1)?;
        let enc = zl[p];
        let entry = if enc < 0xC0 {
            let (len, header): (usize, usize) = match enc >> 6 {
                0 => ((enc & 0x3F) as usize, 1),
                1 => {
                    need(p, 2)?;
                    ((((enc & 0x3F) as usize) << 8) | zl[p + 1] as usize, 2)
                }
                _ => {
                    need(p, 5)?;
                    (u32::from_be_bytes([zl[p + 1], zl[p + 2], zl[p + 3], zl[p + 4]]) as usize, 5)
                }
            };
            need(p, header.saturating_add(len))?;
            p += header;
            let s = &zl[p..p + len];
            p += len;
            Entry::Str(s)
        } else {
            let width = match enc {
                0xC0 => 2,
                0xD0 => 4,
                0xE0 => 8,
                0xF0 => 3,
                0xFE => 1,
                0xF1..=0xFD => 0,
                _ => return Err(format!("invalid ziplist encoding 0x{:02x} at {}", enc, p)),
            };
            need(p, 1 + width)?;
            let raw = &zl[p + 1..p + 1 + width];
            let v = match enc {
                0xF1..=0xFD => (enc & 0x0F) as i64 - 1,
                _ => {
                    // Little-endian, sign-extended from `width` bytes.
                    let mut le = [0u8; 8];
                    le[..width].copy_from_slice(raw);
                    let shift = 64 - 8 * width as u32;
                    (i64::from_le_bytes(le) << shift) >> shift
                }
            };
            p += 1 + width;
            Entry::Int(v)
        };
        f(entry)?;
        prev_size = p - entry_at;
        count += 1;
        last = Some(entry_at);
    }
    if p != end {
        return Err("ziplist entries do not end at its terminator".into());
    }
    if let Some(last) = last {
        if last != tail {
            return Err(format!("ziplist tail offset {} is not its last entry ({})", tail, last));
        }
    }
    if header_count != u16::MAX && u64::from(header_count) != count {
        return Err(format!("ziplist header counts {} entries, found {}", header_count, count));
    }
    Ok(())
}

/// A ziplist of pairs (hash or sorted set) as a listpack, as Redis's
/// `ziplistPairsConvertAndValidateIntegrity`: no key twice, an even count.
fn ziplist_pairs_to_listpack(zl: &[u8]) -> Result<Listpack, String> {
    let mut lp = Listpack::new();
    let mut seen = std::collections::HashSet::new();
    let mut index = 0u64;
    ziplist_walk(zl, |e| {
        if index.is_multiple_of(2) && !seen.insert(e.to_vec()) {
            return Err("duplicate key in ziplist".into());
        }
        index += 1;
        lp.append(e);
        Ok(())
    })?;
    if !index.is_multiple_of(2) {
        return Err("odd number of entries in a ziplist of pairs".into());
    }
    Ok(lp)
}

const ZIPMAP_BIGLEN: u8 = 254;
const ZIPMAP_END: u8 = 255;

/// A zipmap (Redis 2.4's small hash) as a listpack of pairs, checked as
/// `zipmapValidateIntegrity` deep, with the loader's duplicate and size
/// checks; also returns the longest field or value.
fn zipmap_to_listpack(zm: &[u8]) -> Result<(Listpack, usize), String> {
    let size = zm.len();
    if size < 2 || zm[size - 1] != ZIPMAP_END {
        return Err("zipmap does not end with its terminator".into());
    }
    let end = size - 1;
    // A length: one byte below 254, else 254 and a 4-byte (little-endian) one.
    let read_len = |p: &mut usize| -> Result<usize, String> {
        if *p >= end {
            return Err(format!("zipmap length at {} runs past the end", p));
        }
        if zm[*p] < ZIPMAP_BIGLEN {
            *p += 1;
            return Ok(zm[*p - 1] as usize);
        }
        if end - *p < 5 {
            return Err(format!("zipmap length at {} runs past the end", p));
        }
        let v = u32::from_le_bytes([zm[*p + 1], zm[*p + 2], zm[*p + 3], zm[*p + 4]]) as usize;
        *p += 5;
        Ok(v)
    };
    let take = |p: &mut usize, n: usize| -> Result<std::ops::Range<usize>, String> {
        if n > end - *p {
            return Err(format!("zipmap entry at {} runs past the end", p));
        }
        *p += n;
        Ok(*p - n..*p)
    };
    let mut lp = Listpack::new();
    let mut seen = std::collections::HashSet::new();
    let (mut p, mut count, mut longest) = (1usize, 0usize, 0usize);
    while p < end && zm[p] != ZIPMAP_END {
        let flen = read_len(&mut p)?;
        let field = take(&mut p, flen)?;
        let vlen = read_len(&mut p)?;
        let free = zm[take(&mut p, 1)?.start] as usize;
        let value = take(&mut p, vlen)?;
        take(&mut p, free)?;
        let (f, v) = (&zm[field], &zm[value]);
        if !seen.insert(f) || !lp.safe_to_add(f.len() + v.len()) {
            return Err(format!("Hash zipmap with dup elements, or big length ({})", f.len()));
        }
        longest = longest.max(f.len()).max(v.len());
        lp.append(Entry::Str(f));
        lp.append(Entry::Str(v));
        count += 1;
    }
    if p != end {
        return Err("zipmap entries do not end at its terminator".into());
    }
    if zm[0] != ZIPMAP_BIGLEN && zm[0] as usize != count {
        return Err(format!("zipmap header counts {} entries, found {}", zm[0], count));
    }
    Ok((lp, longest))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ziplist of these entries as Redis writes one (strings, and
    /// integers in the narrowest encoding).
    fn ziplist(items: &[&[u8]]) -> Vec<u8> {
        let mut body = vec![];
        let mut prev = 0usize;
        let mut tail = ZIPLIST_HEADER_BYTES;
        for it in items {
            let start = body.len();
            tail = ZIPLIST_HEADER_BYTES + start;
            if prev < 254 {
                body.push(prev as u8);
            } else {
                body.push(254);
                body.extend_from_slice(&(prev as u32).to_le_bytes());
            }
            match string_to_int(it) {
                Some(v @ 0..=12) => body.push(0xF1 + v as u8),
                Some(v) if i8::try_from(v).is_ok() => body.extend_from_slice(&[0xFE, v as u8]),
                Some(v) if i16::try_from(v).is_ok() => {
                    body.push(0xC0);
                    body.extend_from_slice(&(v as i16).to_le_bytes());
                }
                Some(v) if (-(1 << 23)..(1 << 23)).contains(&v) => {
                    body.push(0xF0);
                    body.extend_from_slice(&(v as i32).to_le_bytes()[..3]);
                }
                Some(v) if i32::try_from(v).is_ok() => {
                    body.push(0xD0);
                    body.extend_from_slice(&(v as i32).to_le_bytes());
                }
                Some(v) => {
                    body.push(0xE0);
                    body.extend_from_slice(&v.to_le_bytes());
                }
                None if it.len() < 64 => {
                    body.push(it.len() as u8);
                    body.extend_from_slice(it);
                }
                None if it.len() < 16384 => {
                    body.push(0x40 | (it.len() >> 8) as u8);
                    body.push(it.len() as u8);
                    body.extend_from_slice(it);
                }
                None => {
                    body.push(0x80);
                    body.extend_from_slice(&(it.len() as u32).to_be_bytes());
                    body.extend_from_slice(it);
                }
            }
            prev = body.len() - start;
        }
        let mut zl = vec![];
        zl.extend_from_slice(&((ZIPLIST_HEADER_BYTES + body.len() + 1) as u32).to_le_bytes());
        zl.extend_from_slice(&(tail as u32).to_le_bytes());
        zl.extend_from_slice(&(items.len() as u16).to_le_bytes());
        zl.extend_from_slice(&body);
        zl.push(ZIPLIST_END);
        zl
    }

    fn walked(zl: &[u8]) -> Result<Vec<Vec<u8>>, String> {
        let mut out = vec![];
        ziplist_walk(zl, |e| {
            out.push(e.to_vec());
            Ok(())
        })?;
        Ok(out)
    }

    #[test]
    fn ziplist_entries_of_every_encoding() {
        let long = vec![b'x'; 300];
        let huge = vec![b'y'; 20000];
        let items: Vec<&[u8]> = vec![
            b"a",
            b"0",
            b"12",
            b"13",
            b"-1",
            b"-128",
            b"1000",
            b"-32768",
            b"8388607",
            b"-8388608",
            b"2147483647",
            b"-2147483649",
            b"9223372036854775807",
            &long,
            &huge,
            b"",
        ];
        let zl = ziplist(&items);
        assert_eq!(walked(&zl).unwrap(), items.iter().map(|i| i.to_vec()).collect::<Vec<_>>());
        assert_eq!(walked(&ziplist(&[])).unwrap(), Vec::<Vec<u8>>::new());
    }

    #[test]
    fn corrupt_ziplists_are_refused_not_read() {
        let good = ziplist(&[b"abc", b"7", &[b'z'; 300], b"100000"]);
        walked(&good).unwrap();
        let bad = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut b = good.clone();
            f(&mut b);
            assert!(walked(&b).is_err(), "{:?}", b);
        };
        bad(&|b| b.truncate(12));
        bad(&|b| b[0] += 1);
        bad(&|b| *b.last_mut().unwrap() = 0);
        bad(&|b| b[8] = 9); // count
        bad(&|b| b[4] = 11); // tail offset
        bad(&|b| b[11] = 60); // string length past the end
        bad(&|b| b[15] = 9); // the second entry's prev-length
        bad(&|b| b[16] = 0xC5); // no such encoding
        for cut in 0..good.len() {
            let mut b = good[..cut].to_vec();
            b.push(ZIPLIST_END);
            let n = b.len() as u32;
            if b.len() >= 4 {
                b[..4].copy_from_slice(&n.to_le_bytes());
            }
            let _ = walked(&b);
        }
    }

    #[test]
    fn ziplist_pairs_refuse_duplicates_and_odd_counts() {
        assert!(ziplist_pairs_to_listpack(&ziplist(&[b"f", b"1", b"g", b"1"])).is_ok());
        assert!(ziplist_pairs_to_listpack(&ziplist(&[b"f", b"1", b"g"])).is_err());
        assert!(ziplist_pairs_to_listpack(&ziplist(&[b"1", b"x", b"1", b"y"])).is_err());
    }

    fn zipmap(pairs: &[(&[u8], &[u8], u8)]) -> Vec<u8> {
        let mut zm = vec![pairs.len() as u8];
        let len = |zm: &mut Vec<u8>, n: usize| {
            if n < 254 {
                zm.push(n as u8);
            } else {
                zm.push(254);
                zm.extend_from_slice(&(n as u32).to_le_bytes());
            }
        };
        for (f, v, free) in pairs {
            len(&mut zm, f.len());
            zm.extend_from_slice(f);
            len(&mut zm, v.len());
            zm.push(*free);
            zm.extend_from_slice(v);
            zm.extend(std::iter::repeat_n(0, *free as usize));
        }
        zm.push(ZIPMAP_END);
        zm
    }

    #[test]
    fn zipmaps_convert_and_refuse_corruption() {
        let long = vec![b'v'; 300];
        let zm = zipmap(&[(b"f", b"1", 0), (b"name", &long, 3), (b"", b"", 0)]);
        let (lp, longest) = zipmap_to_listpack(&zm).unwrap();
        assert_eq!(longest, 300);
        let pairs: Vec<_> = lp.pairs().map(|(f, v)| (f.to_vec(), v.to_vec())).collect();
        assert_eq!(pairs, vec![(b"f".to_vec(), b"1".to_vec()), (b"name".to_vec(), long.clone()), (vec![], vec![])]);
        assert!(zipmap_to_listpack(&zipmap(&[(b"f", b"1", 0), (b"f", b"2", 0)])).is_err());
        let mut bad = zm.clone();
        bad[0] = 2;
        assert!(zipmap_to_listpack(&bad).is_err());
        for cut in 1..zm.len() {
            let mut b = zm[..cut].to_vec();
            b.push(ZIPMAP_END);
            let _ = zipmap_to_listpack(&b);
        }
    }

    #[test]
    fn scores_print_as_d2string() {
        assert_eq!(crate::types::zset::score_text(1.0), b"1");
        assert_eq!(crate::types::zset::score_text(-3.0), b"-3");
        assert_eq!(crate::types::zset::score_text(1.5), b"1.5");
        assert_eq!(crate::types::zset::score_text(0.1), b"0.10000000000000001");
        assert_eq!(crate::types::zset::score_text(0.0), b"0");
        assert_eq!(crate::types::zset::score_text(-0.0), b"0");
        assert_eq!(crate::types::zset::score_text(f64::INFINITY), b"inf");
        assert_eq!(crate::types::zset::score_text(f64::NEG_INFINITY), b"-inf");
        assert_eq!(crate::types::zset::score_text(4503599627370496.0), b"4503599627370496");
        assert_eq!(crate::types::zset::score_text(1e20), b"1e+20");
    }
}
