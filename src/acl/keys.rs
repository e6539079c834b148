//! The key permissions a command needs for each of its keys: read
//! (`%R~`) when its key spec accesses the value, write (`%W~`) when it
//! inserts, deletes or updates (Redis's `ACLSelectorCheckKey`), from the key
//! specifications of Redis's command table (COMMAND INFO's, carried in
//! `commands::docs_data`). The keys are where the router finds them.

use std::sync::OnceLock;

use super::{PERM_READ, PERM_WRITE};
use crate::commands::docs::{self, D};
use crate::commands::{key_positions, CommandTable};

enum Begin {
    Index(usize),
    Keyword(&'static str, i64),
    Unknown,
}

enum Find {
    Range { last: i64, step: usize, limit: i64 },
    Keynum { idx: usize, first: usize, step: usize },
    Unknown,
}

struct Spec {
    perm: u8,
    not_key: bool,
    begin: Begin,
    find: Find,
}

struct Plan {
    specs: Vec<Spec>,
    /// Every spec's permission together: for a key no spec places.
    union: u8,
    /// SET: reads only with its GET argument (Redis's `setGetKeys`).
    set_like: bool,
    /// BITFIELD: writes only with SET or INCRBY (Redis's `bitfieldGetKeys`).
    bitfield: bool,
    /// SORT: reads its key, writes its STORE key (Redis's `sortGetKeys`).
    sort: bool,
}

fn plans() -> &'static [Plan] {
    static PLANS: OnceLock<Vec<Plan>> = OnceLock::new();
    PLANS.get_or_init(|| CommandTable::get().specs.iter().map(|s| plan(s.name)).collect())
}

fn int(d: Option<&D>) -> i64 {
    d.and_then(D::as_int).unwrap_or(0)
}

fn plan(name: &str) -> Plan {
    let mut specs = Vec::new();
    if let Some(info) = docs::info(name) {
        for ks in info[8].items() {
            let flag_names: Vec<&str> = docs::get(ks, "flags").map(|f| f.items().iter().filter_map(D::as_str).collect()).unwrap_or_default();
            let mut perm = 0;
            for f in &flag_names {
                match *f {
                    "access" => perm |= PERM_READ,
                    "insert" | "delete" | "update" => perm |= PERM_WRITE,
                    _ => {}
                }
            }
            let bs = docs::get(ks, "begin_search");
            let bspec = bs.and_then(|b| docs::get(b, "spec"));
            let begin = match bs.and_then(|b| docs::get(b, "type")).and_then(D::as_str) {
                Some("index") => Begin::Index(int(bspec.and_then(|s| docs::get(s, "index"))) as usize),
                Some("keyword") => Begin::Keyword(
                    bspec.and_then(|s| docs::get(s, "keyword")).and_then(D::as_str).unwrap_or(""),
                    int(bspec.and_then(|s| docs::get(s, "startfrom"))),
                ),
                _ => Begin::Unknown,
            };
            let fk = docs::get(ks, "find_keys");
            let fspec = fk.and_then(|f| docs::get(f, "spec"));
            let g = |k: &str| int(fspec.and_then(|s| docs::get(s, k)));
            let find = match fk.and_then(|f| docs::get(f, "type")).and_then(D::as_str) {
                Some("range") => Find::Range { last: g("lastkey"), step: g("keystep").max(1) as usize, limit: g("limit") },
                Some("keynum") => Find::Keynum { idx: g("keynumidx") as usize, first: g("firstkey") as usize, step: g("keystep").max(1) as usize },
                _ => Find::Unknown,
            };
            specs.push(Spec { perm, not_key: flag_names.contains(&"not_key"), begin, find });
        }
    }
    let union = specs.iter().filter(|s| !s.not_key).fold(0, |u, s| u | s.perm);
    Plan { specs, union, set_like: name == "set", bitfield: name == "bitfield", sort: name == "sort" }
}

/// Redis's `getKeysUsingKeySpecs` for one spec: where its keys are.
fn spec_positions(s: &Spec, args: &[&[u8]], out: &mut Vec<(usize, u8)>) {
    let argc = args.len();
    let first = match s.begin {
        Begin::Index(i) => i,
        Begin::Keyword(kw, from) => {
            let found = if from >= 0 {
                (from as usize..argc).find(|&i| args[i].eq_ignore_ascii_case(kw.as_bytes()))
            } else {
                let start = argc as i64 + from;
                (0..=start.max(-1)).rev().filter(|&i| i >= 0).map(|i| i as usize).find(|&i| args[i].eq_ignore_ascii_case(kw.as_bytes()))
            };
            match found {
                Some(i) => i + 1,
                None => return,
            }
        }
        Begin::Unknown => return,
    };
    if first >= argc {
        return;
    }
    let (first, last, step) = match s.find {
        Find::Range { last, step, limit } => {
            let last = if last >= 0 {
                first as i64 + last
            } else if limit <= 1 {
                argc as i64 + last
            } else {
                first as i64 + ((argc - first) as i64 / limit + last)
            };
            (first, last, step)
        }
        Find::Keynum { idx, first: fk, step } => {
            let Some(n) = args.get(first + idx).and_then(|a| crate::commands::parse_i64(a)) else { return };
            let start = first + fk;
            (start, start as i64 + n * step as i64 - 1, step)
        }
        Find::Unknown => return,
    };
    let mut i = first;
    while (i as i64) <= last && i < argc {
        out.push((i, s.perm));
        i += step;
    }
}

/// Marks a position a `not_key` spec places (not a key to check).
const NOT_KEY: u8 = 0x80;

/// The keys of command `id` with `args`, each with the permission it needs.
pub fn key_perms(id: usize, args: &[&[u8]]) -> Vec<(usize, u8)> {
    let spec = &CommandTable::get().specs[id];
    let plan = &plans()[id];
    let mut placed = Vec::new();
    if plan.specs.len() > 1 || plan.specs.iter().any(|s| s.not_key) {
        for s in &plan.specs {
            let from = placed.len();
            spec_positions(s, args, &mut placed);
            if s.not_key {
                placed[from..].iter_mut().for_each(|p| p.1 = NOT_KEY);
            }
        }
    }
    let mut out = Vec::new();
    for pos in key_positions(&spec.keys, args) {
        let mut perm = match placed.iter().find(|(p, _)| *p == pos) {
            // A channel routed like a key (SPUBLISH, SSUBSCRIBE): no key.
            Some(&(_, NOT_KEY)) => continue,
            Some(&(_, perm)) => perm,
            None => plan.union,
        };
        if plan.set_like && !args.get(3..).unwrap_or(&[]).iter().any(|a| a.eq_ignore_ascii_case(b"get")) {
            perm &= !PERM_READ;
        }
        if plan.sort {
            perm = if pos == 1 { PERM_READ } else { PERM_WRITE };
        }
        if plan.bitfield && !args.get(2..).unwrap_or(&[]).iter().any(|a| a.eq_ignore_ascii_case(b"set") || a.eq_ignore_ascii_case(b"incrby")) {
            perm = PERM_READ;
        }
        out.push((pos, perm));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perms(args: &[&[u8]]) -> Vec<(usize, u8)> {
        let t = CommandTable::get();
        key_perms(t.lookup(args[0]).unwrap(), args)
    }

    #[test]
    fn perms_by_spec() {
        assert_eq!(perms(&[b"get", b"k"]), vec![(1, PERM_READ)]);
        assert_eq!(perms(&[b"set", b"k", b"v"]), vec![(1, PERM_WRITE)]);
        assert_eq!(perms(&[b"set", b"k", b"v", b"GET"]), vec![(1, PERM_READ | PERM_WRITE)]);
        assert_eq!(perms(&[b"lmove", b"a", b"b", b"left", b"right"]), vec![(1, PERM_READ | PERM_WRITE), (2, PERM_WRITE)]);
        assert_eq!(perms(&[b"exists", b"a"]), vec![(1, 0)]);
        assert_eq!(perms(&[b"del", b"a", b"b"]), vec![(1, PERM_WRITE), (2, PERM_WRITE)]);
        assert_eq!(perms(&[b"spublish", b"ch", b"m"]), vec![]);
        assert_eq!(perms(&[b"sort", b"r", b"store", b"w"]), vec![(1, PERM_READ), (3, PERM_WRITE)]);
    }
}
