//! COMMAND DOCS data: what redis-server 7.0 documents for each command ringkv
//! implements (generated into `docs_data.rs` by `gen_docs.py`), replayed
//! through the reply encoder so RESP2 and RESP3 clients get Redis's shapes.

use crate::protocol::reply::Reply;

/// One node of a COMMAND DOCS reply.
pub enum D {
    Bulk(&'static str),
    Status(&'static str),
    Int(i64),
    Arr(&'static [D]),
    Set(&'static [D]),
    Map(&'static [(&'static str, D)]),
}

/// Redis's documentation fields for `name` (`container|sub` for subcommands),
/// subcommands excluded.
pub fn fields(name: &str) -> Option<&'static [(&'static str, D)]> {
    let docs = super::docs_data::DOCS;
    let i = docs.binary_search_by(|(n, _)| (*n).cmp(name)).ok()?;
    match &docs[i].1 {
        D::Map(f) => Some(f),
        _ => None,
    }
}

/// redis-server's COMMAND INFO entry for `name` (`container|sub` for
/// subcommands): name, arity, flags, first/last/step, ACL categories, tips,
/// key specifications, subcommands.
pub fn info(name: &str) -> Option<&'static [D]> {
    let infos = super::docs_data::INFO;
    let i = infos.binary_search_by(|(n, _)| (*n).cmp(name)).ok()?;
    match &infos[i].1 {
        D::Arr(items) if items.len() == 10 => Some(items),
        _ => None,
    }
}

/// The value of `key` in a map node.
pub fn get<'a>(d: &'a D, key: &str) -> Option<&'a D> {
    match d {
        D::Map(pairs) => pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| v),
        _ => None,
    }
}

impl D {
    pub fn as_int(&self) -> Option<i64> {
        match self {
            D::Int(n) => Some(*n),
            _ => None,
        }
    }
    pub fn as_str(&self) -> Option<&'static str> {
        match self {
            D::Bulk(s) | D::Status(s) => Some(*s),
            _ => None,
        }
    }
    pub fn items(&self) -> &'static [D] {
        match self {
            D::Arr(items) | D::Set(items) => items,
            _ => &[],
        }
    }
}

pub fn emit(r: &mut Reply, d: &D) {
    match d {
        D::Bulk(s) => r.bulk(s.as_bytes()),
        D::Status(s) => r.simple(s),
        D::Int(n) => r.int(*n),
        D::Arr(items) => {
            r.array(items.len());
            items.iter().for_each(|x| emit(r, x));
        }
        D::Set(items) => {
            r.set(items.len());
            items.iter().for_each(|x| emit(r, x));
        }
        D::Map(pairs) => {
            r.map(pairs.len());
            emit_pairs(r, pairs);
        }
    }
}

/// The pairs of a map whose header the caller has written.
pub fn emit_pairs(r: &mut Reply, pairs: &[(&'static str, D)]) {
    for (k, v) in pairs {
        r.bulk(k.as_bytes());
        emit(r, v);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sorted_and_found() {
        let docs = super::super::docs_data::DOCS;
        assert!(docs.windows(2).all(|w| w[0].0 < w[1].0), "DOCS must stay sorted for binary search");
        let get = super::fields("get").expect("GET is documented");
        assert!(get.iter().any(|(k, _)| *k == "arguments"));
        assert!(super::fields("config|get").is_some());
        assert!(super::fields("no-such-command").is_none());
    }
}
