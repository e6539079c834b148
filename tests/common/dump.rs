//! Taking a value out of a real redis-server's `DUMP key`: the payload is
//! the RDB type byte, the RDB object, the 2-byte RDB version and the
//! 8-byte CRC-64; the object's strings are RDB strings (possibly integers
//! or LZF-compressed). Shared by the tests that compare our encodings'
//! bytes with Redis's.

use super::Conn;

pub const TYPE_SET_INTSET: u8 = 11;
pub const TYPE_HASH_LISTPACK: u8 = 16;
pub const TYPE_ZSET_LISTPACK: u8 = 17;
pub const TYPE_LIST_QUICKLIST_2: u8 = 18;
/// A quicklist node holding a listpack (1 would be one plain element).
pub const QUICKLIST_NODE_PACKED: u64 = 2;

/// An RDB length: 6-bit, 14-bit, 32 or 64-bit big-endian, or (second
/// value true) the kind of a specially encoded string.
pub fn read_len(b: &[u8], pos: &mut usize) -> (u64, bool) {
    let first = b[*pos];
    *pos += 1;
    match first >> 6 {
        0 => (u64::from(first & 0x3F), false),
        1 => {
            let v = (u64::from(first & 0x3F) << 8) | u64::from(b[*pos]);
            *pos += 1;
            (v, false)
        }
        2 => {
            let n = if first == 0x80 { 4 } else { 8 };
            let v = b[*pos..*pos + n].iter().fold(0u64, |v, &x| (v << 8) | u64::from(x));
            *pos += n;
            (v, false)
        }
        _ => (u64::from(first & 0x3F), true),
    }
}

/// An RDB string: raw, an integer in 1/2/4 bytes, or LZF-compressed.
pub fn read_string(b: &[u8], pos: &mut usize) -> Vec<u8> {
    let (n, special) = read_len(b, pos);
    if !special {
        let s = b[*pos..*pos + n as usize].to_vec();
        *pos += n as usize;
        return s;
    }
    let int = |width: usize, pos: &mut usize| {
        let mut le = [0u8; 8];
        le[..width].copy_from_slice(&b[*pos..*pos + width]);
        *pos += width;
        let shift = 64 - 8 * width as u32;
        ((i64::from_le_bytes(le) << shift) >> shift).to_string().into_bytes()
    };
    match n {
        0 => int(1, pos),
        1 => int(2, pos),
        2 => int(4, pos),
        3 => {
            let compressed = read_len(b, pos).0 as usize;
            let plain = read_len(b, pos).0 as usize;
            let out = ringkv::persistence::lzf::decompress(&b[*pos..*pos + compressed], plain).expect("LZF");
            *pos += compressed;
            out
        }
        other => panic!("unknown RDB string encoding {}", other),
    }
}

/// `DUMP key` without its envelope: the RDB type byte and the object.
pub fn dump(c: &mut Conn, key: &str) -> (u8, Vec<u8>) {
    let payload = c.cmd(&["DUMP", key]).opt_bytes().unwrap_or_else(|| panic!("no key {}", key));
    let n = payload.len();
    assert_eq!(&payload[n - 10..n - 8], &[10, 0], "RDB version 10 (redis 7.0)");
    (payload[0], payload[1..n - 10].to_vec())
}

/// The one listpack blob of a hash or sorted set.
pub fn dump_listpack(c: &mut Conn, key: &str, want_type: u8) -> Vec<u8> {
    let (t, obj) = dump(c, key);
    assert_eq!(t, want_type, "RDB type of {}", key);
    let mut pos = 0;
    let blob = read_string(&obj, &mut pos);
    assert_eq!(pos, obj.len());
    blob
}

/// Each quicklist node of a list: its container kind (1 plain, 2 packed)
/// and its bytes (the element, or the listpack).
pub fn dump_list_nodes(c: &mut Conn, key: &str) -> Vec<(u64, Vec<u8>)> {
    let (t, obj) = dump(c, key);
    assert_eq!(t, TYPE_LIST_QUICKLIST_2);
    let mut pos = 0;
    let nodes = read_len(&obj, &mut pos).0;
    let mut out = vec![];
    for _ in 0..nodes {
        let container = read_len(&obj, &mut pos).0;
        out.push((container, read_string(&obj, &mut pos)));
    }
    assert_eq!(pos, obj.len());
    out
}

/// The listpack of each quicklist node of a list (all packed).
pub fn dump_list(c: &mut Conn, key: &str) -> Vec<Vec<u8>> {
    dump_list_nodes(c, key)
        .into_iter()
        .map(|(container, blob)| {
            assert_eq!(container, QUICKLIST_NODE_PACKED);
            blob
        })
        .collect()
}
