//! DEBUG DIGEST and DEBUG DIGEST-VALUE: a SHA-1 based signature of the
//! dataset (or of single values), computed exactly as Redis 7.0's debug.c
//! does, so that equal data gives byte-identical digests on ringkv and on
//! redis-server. Tests use that as their oracle: after the same workload on
//! both servers, `DEBUG DIGEST` must agree.
//!
//! Two ways of folding bytes into a 20-byte digest `d` (both hash the
//! input first, so no input length can collide with another split):
//!
//! - `xor_hash(x)`:  `d ^= SHA1(x)`. Commutative, so it "adds" unordered
//!   things: the keys of a database, the members of a set, the fields of a
//!   hash, the members of a sorted set.
//! - `mix_hash(x)`:  `d = SHA1(d ^ SHA1(x))`. Order-dependent, so it chains
//!   ordered things: key then type then value, the elements of a list.
//!
//! The dataset digest, from an all-zero start (an empty dataset therefore
//! prints as forty zeros):
//!
//! ```text
//! for each database j that holds at least one entry (expired or not):
//!     final.mix_hash(j as big-endian u32)
//!     for each key k of database j (any order):
//!         d = 0; d.mix_hash(k); mix_entry(d, value, expiry)
//!         final.xor_hash(d)
//! ```
//!
//! `mix_entry` (Redis's `xorObjectDigest`, also what DIGEST-VALUE replies
//! for one key, from d = 0 and without the key) is
//! `d.mix_hash(type code as big-endian u32)`, then the value by type (see
//! `mix_value`), then `d.xor_hash("!!expire!!")` when the key has a TTL
//! (its time is not digested, only its presence).
//!
//! Shards: the keys of one database are spread over every shard, and they
//! enter `final` only through `xor_hash`, which commutes. So each shard's
//! share of database j is the plain xor of `SHA1(d)` over its keys
//! (`DbPartial`), and the partials of all shards are xored into `final`
//! right after database j's mix. The database mix itself is not
//! commutative with what came before, which is why partials are per
//! database and combined in database order (`combine`).

use super::keyspace::{Db, Entry, Value};
use crate::types::listpack::Entry as ListpackEntry;

/// Bytes of a SHA-1 digest.
pub const DIGEST_BYTES: usize = 20;

/// Redis's object type codes (`OBJ_STRING`, ...), digested as big-endian
/// u32 before each value so that, say, a set and a list of the same
/// elements differ.
pub const TYPE_CODE_STRING: u32 = 0;
pub const TYPE_CODE_LIST: u32 = 1;
pub const TYPE_CODE_SET: u32 = 2;
pub const TYPE_CODE_ZSET: u32 = 3;
pub const TYPE_CODE_HASH: u32 = 4;
pub const TYPE_CODE_STREAM: u32 = 6;

/// Marks a key with a TTL in the key's digest.
const EXPIRE_MARK: &[u8] = b"!!expire!!";

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Digest(pub [u8; DIGEST_BYTES]);

impl Digest {
    pub const ZERO: Digest = Digest([0; DIGEST_BYTES]);

    /// Redis's `xorDigest`: `self ^= SHA1(data)`; order-independent.
    pub fn xor_hash(&mut self, data: &[u8]) {
        self.xor(&Digest(sha1_smol::Sha1::from(data).digest().bytes()));
    }

    /// Redis's `mixDigest`: `self = SHA1(self ^ SHA1(data))`; order-dependent.
    pub fn mix_hash(&mut self, data: &[u8]) {
        self.xor_hash(data);
        self.0 = sha1_smol::Sha1::from(self.0).digest().bytes();
    }

    /// Plain byte-wise xor, to combine partial sums of `xor_hash` (what
    /// `xor_hash` would have produced had all inputs been fed to one digest).
    pub fn xor(&mut self, other: &Digest) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a ^= b;
        }
    }

    /// Forty lowercase hex digits, as DEBUG DIGEST replies.
    pub fn to_hex(&self) -> String {
        use std::fmt::Write;
        let mut s = String::with_capacity(2 * DIGEST_BYTES);
        for b in self.0 {
            let _ = write!(s, "{:02x}", b);
        }
        s
    }
}

/// Folds one value into `d`, by type. This is the extension point for the
/// aggregate types: add an arm per type, in Redis 7.0's way (each element
/// in its string form, integers as decimal text):
///
/// - list (`TYPE_CODE_LIST`): head to tail, `d.mix_hash(element)`.
/// - set (`TYPE_CODE_SET`): for each member, `d.xor_hash(member)`.
/// - hash (`TYPE_CODE_HASH`): for each field, `e = 0; e.mix_hash(field);
///   e.mix_hash(value); d.xor_hash(e)`.
/// - sorted set (`TYPE_CODE_ZSET`): for each member, `e = 0;
///   e.mix_hash(member); e.mix_hash(score as "%.17g"); d.xor_hash(e)`.
///   Redis 7.0 prints the score with `%.17g` in both encodings (listpack
///   and skiplist), so 1.5 is "1.5" and 0.1 is "0.10000000000000001"
///   (check that against redis-server when the type lands).
///
/// Each new type also needs its arm in `type_code`.
fn mix_value(d: &mut Digest, value: &Value) {
    let mut itoa = itoa::Buffer::new();
    match value {
        Value::Int(n) => d.mix_hash(itoa.format(*n).as_bytes()),
        Value::Str { bytes, .. } => d.mix_hash(bytes),
        Value::List(l) => {
            for e in l.iter() {
                d.mix_hash(element_bytes(e, &mut itoa));
            }
        }
        Value::Set(s) => {
            for e in s.iter() {
                d.xor_hash(element_bytes(e, &mut itoa));
            }
        }
        Value::Hash(h) => {
            for (f, v) in h.iter() {
                let mut e = Digest::ZERO;
                e.mix_hash(element_bytes(f, &mut itoa));
                e.mix_hash(element_bytes(v, &mut itoa));
                d.xor_hash(&e.0);
            }
        }
        Value::ZSet(z) => {
            for (m, score) in z.iter() {
                let mut e = Digest::ZERO;
                e.mix_hash(element_bytes(m, &mut itoa));
                e.mix_hash(crate::protocol::reply::format_g17(score).as_bytes());
                d.xor_hash(&e.0);
            }
        }
        Value::Stream(st) => crate::types::stream_persist::mix_digest(d, st),
    }
}

/// An element in its string form (integers as decimal text).
fn element_bytes<'a>(e: ListpackEntry<'a>, itoa: &'a mut itoa::Buffer) -> &'a [u8] {
    match e {
        ListpackEntry::Str(s) => s,
        ListpackEntry::Int(n) => itoa.format(n).as_bytes(),
    }
}

/// Redis's type code of a value (see `mix_value`).
fn type_code(value: &Value) -> u32 {
    match value {
        Value::Int(_) | Value::Str { .. } => TYPE_CODE_STRING,
        Value::List(_) => TYPE_CODE_LIST,
        Value::Set(_) => TYPE_CODE_SET,
        Value::ZSet(_) => TYPE_CODE_ZSET,
        Value::Hash(_) => TYPE_CODE_HASH,
        Value::Stream(_) => TYPE_CODE_STREAM,
    }
}

/// Folds a stored entry (type, value, TTL flag) into `d`: Redis's
/// `xorObjectDigest`.
pub fn mix_entry(d: &mut Digest, entry: &Entry) {
    d.mix_hash(&type_code(&entry.value).to_be_bytes());
    mix_value(d, &entry.value);
    if entry.expire_at_ms >= 0 {
        d.xor_hash(EXPIRE_MARK);
    }
}

/// DEBUG DIGEST-VALUE of one key: the entry alone (no key name), zero for
/// a missing key.
pub fn value_digest(entry: Option<&Entry>) -> Digest {
    let mut d = Digest::ZERO;
    if let Some(e) = entry {
        mix_entry(&mut d, e);
    }
    d
}

/// One shard's share of one database: the xor of `SHA1(key digest)` over
/// its entries, and whether it had any (an empty database is not mixed
/// into the dataset digest at all).
#[derive(Clone, Copy, Debug, Default)]
pub struct DbPartial {
    pub sum: Digest,
    pub has_entries: bool,
}

/// The partial of one database of one shard. Like Redis, entries whose TTL
/// has passed but that are not reclaimed yet are counted: the digest sees
/// the table, not the logical view.
pub fn db_partial(db: &Db) -> DbPartial {
    let mut part = DbPartial { sum: Digest::ZERO, has_entries: !db.is_empty() };
    for (key, entry) in db.map.iter() {
        let mut d = Digest::ZERO;
        d.mix_hash(key);
        mix_entry(&mut d, entry);
        part.sum.xor_hash(&d.0);
    }
    part
}

/// The dataset digest from every shard's databases (`shards[s][j]`:
/// database j of shard s; every shard has the same number of databases).
pub fn dataset_digest(shards: &[&[Db]]) -> Digest {
    let databases = shards.first().map_or(0, |dbs| dbs.len());
    let per_db = (0..databases).map(|j| {
        shards.iter().fold(DbPartial::default(), |acc, dbs| {
            let p = db_partial(&dbs[j]);
            let mut sum = acc.sum;
            sum.xor(&p.sum);
            DbPartial { sum, has_entries: acc.has_entries || p.has_entries }
        })
    });
    combine(per_db)
}

/// Folds the per-database partials (already summed over shards), in
/// database order, into the dataset digest.
pub fn combine(per_db: impl IntoIterator<Item = DbPartial>) -> Digest {
    let mut fin = Digest::ZERO;
    for (j, part) in per_db.into_iter().enumerate() {
        if !part.has_entries {
            continue;
        }
        fin.mix_hash(&(j as u32).to_be_bytes());
        fin.xor(&part.sum);
    }
    fin
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db_with(pairs: &[(&[u8], &[u8], i64)]) -> Db {
        let mut db = Db::new();
        for &(k, v, ttl) in pairs {
            db.set(k, Value::from_bytes(v), 0, false);
            if ttl >= 0 {
                db.set_expire(k, ttl);
            }
        }
        db
    }

    #[test]
    fn empty_dataset_is_zero() {
        let dbs = vec![Db::new(), Db::new()];
        assert_eq!(dataset_digest(&[&dbs, &dbs]).to_hex(), "0".repeat(40));
        assert_eq!(value_digest(None), Digest::ZERO);
    }

    /// Keys split over shards digest like the same keys on one shard.
    #[test]
    fn shards_combine_like_one_table() {
        let all = [db_with(&[(b"a", b"1", -1), (b"b", b"xyz", 5000), (b"c", b"", -1)]), Db::new(), db_with(&[(b"d", b"v", -1)])];
        let s0 = [db_with(&[(b"b", b"xyz", 5000)]), Db::new(), Db::new()];
        let s1 = [db_with(&[(b"a", b"1", -1), (b"c", b"", -1)]), Db::new(), db_with(&[(b"d", b"v", -1)])];
        let empty = [Db::new(), Db::new(), Db::new()];
        assert_eq!(dataset_digest(&[&all]), dataset_digest(&[&s0, &empty, &s1]));
        assert_ne!(dataset_digest(&[&all]), Digest::ZERO);
    }

    /// The database number, the TTL flag and the integer/string form matter
    /// as they do in Redis: moved data or an added TTL changes the digest,
    /// an integer-encoded "12" digests like the string "12".
    #[test]
    fn what_the_digest_sees() {
        let in0 = [db_with(&[(b"k", b"v", -1)]), Db::new()];
        let in1 = [Db::new(), db_with(&[(b"k", b"v", -1)])];
        let ttl = [db_with(&[(b"k", b"v", 99)]), Db::new()];
        assert_ne!(dataset_digest(&[&in0]), dataset_digest(&[&in1]));
        assert_ne!(dataset_digest(&[&in0]), dataset_digest(&[&ttl]));
        let int = Entry { value: Value::Int(12), expire_at_ms: -1, access_ms: 0 };
        let text = Entry { value: Value::Str { bytes: b"12".to_vec(), raw: true }, expire_at_ms: -1, access_ms: 0 };
        assert_eq!(value_digest(Some(&int)), value_digest(Some(&text)));
    }
}
