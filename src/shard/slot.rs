//! Redis Cluster hash slots: CRC16/XMODEM of the key (or of its `{hashtag}`),
//! modulo 16384. The slot decides the owning shard.

pub const SLOT_COUNT: usize = 16384;

static CRC16_TABLE: [u16; 256] = {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u16) << 8;
        let mut j = 0;
        while j < 8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
            j += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

pub fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        crc = (crc << 8) ^ CRC16_TABLE[(((crc >> 8) as u8) ^ b) as usize];
    }
    crc
}

/// Redis's `keyHashSlot`: hash only the part between the first `{` and the
/// next `}` when that part is non-empty.
pub fn key_slot(key: &[u8]) -> u16 {
    if let Some(open) = memchr::memchr(b'{', key) {
        if let Some(len) = memchr::memchr(b'}', &key[open + 1..]) {
            if len > 0 {
                return crc16(&key[open + 1..open + 1 + len]) & (SLOT_COUNT as u16 - 1);
            }
        }
    }
    crc16(key) & (SLOT_COUNT as u16 - 1)
}

/// Slots are split into `shards` contiguous ranges, as `CLUSTER SLOTS` reports.
#[inline]
pub fn slot_shard(slot: u16, shards: usize) -> usize {
    (slot as usize * shards) / SLOT_COUNT
}

/// The inclusive slot range owned by `shard`.
pub fn shard_slot_range(shard: usize, shards: usize) -> (u16, u16) {
    let first = (shard * SLOT_COUNT).div_ceil(shards);
    let last = ((shard + 1) * SLOT_COUNT).div_ceil(shards) - 1;
    (first as u16, last as u16)
}

#[inline]
pub fn key_shard(key: &[u8], shards: usize) -> usize {
    if shards == 1 {
        return 0;
    }
    slot_shard(key_slot(key), shards)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn matches_redis_cluster_spec() {
        assert_eq!(crc16(b"123456789"), 0x31c3);
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"{user1000}.followers"));
        assert_eq!(key_slot(b"foo{}{bar}"), crc16(b"foo{}{bar}") & 16383);
    }
    #[test]
    fn ranges_cover_all_slots() {
        for shards in 1..=16 {
            let mut next = 0u32;
            for s in 0..shards {
                let (a, b) = shard_slot_range(s, shards);
                assert_eq!(a as u32, next);
                for slot in [a, b] {
                    assert_eq!(slot_shard(slot, shards), s);
                }
                next = b as u32 + 1;
            }
            assert_eq!(next, 16384);
        }
    }
}
