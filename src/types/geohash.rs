//! Redis's 52-bit geohash (geohash.c, geohash_helper.c as in 7.0.15): a
//! longitude and latitude, each scaled to 26 bits over its range, their
//! bits interleaved (latitude in the even bits, longitude in the odd ones),
//! stored as a sorted-set score. A search covers the cell of the centre and
//! its eight neighbours at a step chosen from the radius, and filters the
//! members of those score ranges by exact distance or box.
//!
//! Every formula keeps Redis's order of floating-point operations: the
//! scores, the decoded coordinates and the distances are compared byte for
//! byte with redis-server's replies.

use std::f64::consts::PI;

pub const STEP_MAX: u32 = 26;
pub const LAT_MIN: f64 = -85.05112878;
pub const LAT_MAX: f64 = 85.05112878;
pub const LONG_MIN: f64 = -180.0;
pub const LONG_MAX: f64 = 180.0;
/// Earth's quadratic mean radius for WGS-84, as Redis has it.
pub const EARTH_RADIUS_METERS: f64 = 6372797.560856;
const MERCATOR_MAX: f64 = 20037726.37;
const D_R: f64 = PI / 180.0;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Hash {
    pub bits: u64,
    pub step: u32,
}

impl Hash {
    fn is_zero(&self) -> bool {
        self.bits == 0 && self.step == 0
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Range {
    pub min: f64,
    pub max: f64,
}

#[derive(Clone, Copy, Debug)]
pub struct Area {
    pub longitude: Range,
    pub latitude: Range,
}

const WGS84_LONG: Range = Range { min: LONG_MIN, max: LONG_MAX };
const WGS84_LAT: Range = Range { min: LAT_MIN, max: LAT_MAX };

/// Spreads the low 32 bits of `v` to the even bit positions.
fn spread(v: u32) -> u64 {
    let mut x = v as u64;
    x = (x | (x << 16)) & 0x0000_FFFF_0000_FFFF;
    x = (x | (x << 8)) & 0x00FF_00FF_00FF_00FF;
    x = (x | (x << 4)) & 0x0F0F_0F0F_0F0F_0F0F;
    x = (x | (x << 2)) & 0x3333_3333_3333_3333;
    (x | (x << 1)) & 0x5555_5555_5555_5555
}

/// Gathers the even bits of `v` into the low 32 bits.
fn squash(v: u64) -> u32 {
    let mut x = v & 0x5555_5555_5555_5555;
    x = (x | (x >> 1)) & 0x3333_3333_3333_3333;
    x = (x | (x >> 2)) & 0x0F0F_0F0F_0F0F_0F0F;
    x = (x | (x >> 4)) & 0x00FF_00FF_00FF_00FF;
    x = (x | (x >> 8)) & 0x0000_FFFF_0000_FFFF;
    x = (x | (x >> 16)) & 0x0000_0000_FFFF_FFFF;
    x as u32
}

/// Redis's `geohashEncode` over the given ranges; None outside them.
pub fn encode_in(long_range: Range, lat_range: Range, longitude: f64, latitude: f64, step: u32) -> Option<Hash> {
    if step == 0 || step > 32 {
        return None;
    }
    if !(LONG_MIN..=LONG_MAX).contains(&longitude) || !(LAT_MIN..=LAT_MAX).contains(&latitude) {
        return None;
    }
    if latitude < lat_range.min || latitude > lat_range.max || longitude < long_range.min || longitude > long_range.max {
        return None;
    }
    let scale = (1u64 << step) as f64;
    let lat_offset = (latitude - lat_range.min) / (lat_range.max - lat_range.min) * scale;
    let long_offset = (longitude - long_range.min) / (long_range.max - long_range.min) * scale;
    // C converts the offsets to uint32_t by truncation.
    let bits = spread(lat_offset as u32) | (spread(long_offset as u32) << 1);
    Some(Hash { bits, step })
}

/// The geohash of a WGS-84 point at `step` (None outside the limits).
pub fn encode(longitude: f64, latitude: f64, step: u32) -> Option<Hash> {
    encode_in(WGS84_LONG, WGS84_LAT, longitude, latitude, step)
}

/// The sorted-set score of a point: its 26-step hash as a 52-bit integer.
pub fn align52(hash: Hash) -> u64 {
    hash.bits << (52 - hash.step * 2)
}

/// Redis's `geohashDecode`: the cell `hash` covers.
pub fn decode_in(long_range: Range, lat_range: Range, hash: Hash) -> Area {
    let lat_cell = squash(hash.bits);
    let long_cell = squash(hash.bits >> 1);
    let cells = (1u64 << hash.step) as f64;
    let lat_scale = lat_range.max - lat_range.min;
    let long_scale = long_range.max - long_range.min;
    Area {
        latitude: Range {
            min: lat_range.min + (lat_cell as f64 / cells) * lat_scale,
            max: lat_range.min + ((lat_cell.wrapping_add(1)) as f64 / cells) * lat_scale,
        },
        longitude: Range {
            min: long_range.min + (long_cell as f64 / cells) * long_scale,
            max: long_range.min + ((long_cell.wrapping_add(1)) as f64 / cells) * long_scale,
        },
    }
}

/// The centre of a cell, clamped to the WGS-84 limits.
fn centre(area: &Area) -> (f64, f64) {
    let longitude = ((area.longitude.min + area.longitude.max) / 2.0).clamp(LONG_MIN, LONG_MAX);
    let latitude = ((area.latitude.min + area.latitude.max) / 2.0).clamp(LAT_MIN, LAT_MAX);
    (longitude, latitude)
}

/// C's conversion of a double to `uint64_t` as x86-64 compilers emit it
/// (a score is any double a client ZADDed, not only a geohash).
fn c_double_to_u64(x: f64) -> u64 {
    const TWO63: f64 = 9_223_372_036_854_775_808.0;
    fn cvtt(x: f64) -> u64 {
        if x.is_nan() || !(-TWO63..TWO63).contains(&x) {
            0x8000_0000_0000_0000
        } else {
            x as i64 as u64
        }
    }
    if x < TWO63 {
        cvtt(x)
    } else {
        cvtt(x - TWO63) ^ 0x8000_0000_0000_0000
    }
}

/// The point a sorted-set score stands for (Redis's `decodeGeohash`).
pub fn decode_score(score: f64) -> (f64, f64) {
    let hash = Hash { bits: c_double_to_u64(score), step: STEP_MAX };
    centre(&decode_in(WGS84_LONG, WGS84_LAT, hash))
}

/// The score of a point (GEOADD).
pub fn score_of(longitude: f64, latitude: f64) -> u64 {
    encode(longitude, latitude, STEP_MAX).map(align52).unwrap_or(0)
}

/// GEOHASH's 11-character standard geohash of a score: decoded, then
/// re-encoded over latitude -90..90 (Redis's internal range is ±85.05).
pub fn standard_geohash(score: f64) -> [u8; 11] {
    const ALPHABET: &[u8; 32] = b"0123456789bcdefghjkmnpqrstuvwxyz";
    let (longitude, latitude) = decode_score(score);
    let bits = encode_in(Range { min: -180.0, max: 180.0 }, Range { min: -90.0, max: 90.0 }, longitude, latitude, 26).map(|h| h.bits).unwrap_or(0);
    let mut out = [b'0'; 11];
    for (i, c) in out.iter_mut().enumerate().take(10) {
        *c = ALPHABET[((bits >> (52 - (i + 1) * 5)) & 0x1f) as usize];
    }
    out
}

/// Moves `hash` one cell along the axis whose bits `axis` masks
/// (longitude: the odd bits, latitude: the even ones), wrapping around as
/// Redis's `geohash_move_x` / `geohash_move_y` do: the other axis's bits
/// are set in the carry path so the addition or subtraction runs through.
fn move_along(hash: &mut Hash, axis: u64, d: i8) {
    if d == 0 {
        return;
    }
    let shift = 64 - hash.step * 2;
    let mut moving = hash.bits & axis;
    let kept = hash.bits & !axis;
    let zz = !axis >> shift;
    if d > 0 {
        moving = moving.wrapping_add(zz + 1);
    } else {
        moving |= zz;
        moving = moving.wrapping_sub(zz + 1);
    }
    moving &= axis >> shift;
    hash.bits = moving | kept;
}

const LONGITUDE_BITS: u64 = 0xaaaa_aaaa_aaaa_aaaa;
const LATITUDE_BITS: u64 = 0x5555_5555_5555_5555;

fn moved(hash: Hash, dx: i8, dy: i8) -> Hash {
    let mut h = hash;
    move_along(&mut h, LONGITUDE_BITS, dx);
    move_along(&mut h, LATITUDE_BITS, dy);
    h
}

/// What a search looks for around its centre.
#[derive(Clone, Copy, Debug)]
pub enum Shape {
    /// BYRADIUS / GEORADIUS, the radius in the request's unit.
    Radius(f64),
    /// BYBOX width height, in the request's unit.
    Box { width: f64, height: f64 },
}

/// A search: centre, shape, and the unit's metres (`conversion`).
#[derive(Clone, Copy, Debug)]
pub struct Search {
    pub longitude: f64,
    pub latitude: f64,
    pub shape: Shape,
    pub conversion: f64,
}

fn deg_rad(d: f64) -> f64 {
    d * D_R
}

fn rad_deg(r: f64) -> f64 {
    r / D_R
}

/// The haversine great-circle distance in metres (Redis 7.0's
/// `geohashGetDistance`).
pub fn distance(lon1: f64, lat1: f64, lon2: f64, lat2: f64) -> f64 {
    let lat1r = deg_rad(lat1);
    let lon1r = deg_rad(lon1);
    let lat2r = deg_rad(lat2);
    let lon2r = deg_rad(lon2);
    let u = ((lat2r - lat1r) / 2.0).sin();
    let v = ((lon2r - lon1r) / 2.0).sin();
    2.0 * EARTH_RADIUS_METERS * (u * u + lat1r.cos() * lat2r.cos() * v * v).sqrt().asin()
}

impl Search {
    /// The distance from the centre when the point is inside the shape
    /// (Redis's `geoWithinShape`).
    pub fn contains(&self, longitude: f64, latitude: f64) -> Option<f64> {
        match self.shape {
            Shape::Radius(r) => {
                let d = distance(self.longitude, self.latitude, longitude, latitude);
                (d <= r * self.conversion).then_some(d)
            }
            Shape::Box { width, height } => {
                let (width_m, height_m) = (width * self.conversion, height * self.conversion);
                let lon_distance = distance(longitude, latitude, self.longitude, latitude);
                let lat_distance = distance(longitude, latitude, longitude, self.latitude);
                if lon_distance > width_m / 2.0 || lat_distance > height_m / 2.0 {
                    return None;
                }
                Some(distance(self.longitude, self.latitude, longitude, latitude))
            }
        }
    }

    /// `[min lon, min lat, max lon, max lat]` of the shape (Redis's
    /// `geohashBoundingBox`: the longitude span is wider on the side
    /// nearer a pole).
    fn bounds(&self) -> [f64; 4] {
        let (half_height, half_width) = match self.shape {
            Shape::Radius(r) => (r, r),
            Shape::Box { width, height } => (height / 2.0, width / 2.0),
        };
        let height = self.conversion * half_height;
        let width = self.conversion * half_width;
        let lat_delta = rad_deg(height / EARTH_RADIUS_METERS);
        let long_delta_top = rad_deg(width / EARTH_RADIUS_METERS / deg_rad(self.latitude + lat_delta).cos());
        let long_delta_bottom = rad_deg(width / EARTH_RADIUS_METERS / deg_rad(self.latitude - lat_delta).cos());
        let long_delta = if self.latitude < 0.0 { long_delta_bottom } else { long_delta_top };
        [self.longitude - long_delta, self.latitude - lat_delta, self.longitude + long_delta, self.latitude + lat_delta]
    }

    /// The cells to scan, centre first then N S E W NE NW SE SW, with the
    /// ones that cannot hold a match left out (Redis's
    /// `geohashCalculateAreasByShapeWGS84`).
    pub fn cells(&self) -> [Option<Hash>; 9] {
        let [min_lon, min_lat, max_lon, max_lat] = self.bounds();
        let radius_meters = match self.shape {
            Shape::Radius(r) => r,
            Shape::Box { width, height } => ((width / 2.0) * (width / 2.0) + (height / 2.0) * (height / 2.0)).sqrt(),
        } * self.conversion;
        let mut steps = estimate_steps(radius_meters, self.latitude);
        let at = |steps| encode(self.longitude, self.latitude, steps).unwrap_or_default();
        let mut hash = at(steps);
        let area_of = |h| decode_in(WGS84_LONG, WGS84_LAT, h);
        let north = area_of(moved(hash, 0, 1));
        let south = area_of(moved(hash, 0, -1));
        let east = area_of(moved(hash, 1, 0));
        let west = area_of(moved(hash, -1, 0));
        let decrease = north.latitude.max < max_lat || south.latitude.min > min_lat || east.longitude.max < max_lon || west.longitude.min > min_lon;
        if steps > 1 && decrease {
            steps -= 1;
            hash = at(steps);
        }
        let area = area_of(hash);
        // N S E W NE NW SE SW as (dx, dy).
        const MOVES: [(i8, i8); 8] = [(0, 1), (0, -1), (1, 0), (-1, 0), (1, 1), (-1, 1), (1, -1), (-1, -1)];
        let mut cells = [Some(hash); 9];
        for (cell, &(dx, dy)) in cells[1..].iter_mut().zip(MOVES.iter()) {
            let useless = steps >= 2
                && ((dy < 0 && area.latitude.min < min_lat)
                    || (dy > 0 && area.latitude.max > max_lat)
                    || (dx < 0 && area.longitude.min < min_lon)
                    || (dx > 0 && area.longitude.max > max_lon));
            *cell = (!useless).then(|| moved(hash, dx, dy));
        }
        // Redis skips a cell equal to the last one scanned (huge radii
        // make neighbours coincide).
        let mut last: Option<Hash> = None;
        for (i, cell) in cells.iter_mut().enumerate() {
            let Some(h) = *cell else { continue };
            if h.is_zero() {
                *cell = None;
                continue;
            }
            if i > 0 && last == Some(h) {
                *cell = None;
                continue;
            }
            if i > 0 {
                last = Some(h);
            }
        }
        cells
    }
}

/// The score range `[min, max)` of the points inside cell `hash`.
pub fn score_range(hash: Hash) -> (u64, u64) {
    (align52(hash), align52(Hash { bits: hash.bits + 1, step: hash.step }))
}

/// Redis's `geohashEstimateStepsByRadius`.
fn estimate_steps(mut range_meters: f64, latitude: f64) -> u32 {
    if range_meters == 0.0 {
        return 26;
    }
    let mut step: i32 = 1;
    while range_meters < MERCATOR_MAX {
        range_meters *= 2.0;
        step += 1;
    }
    step -= 2;
    if !(-66.0..=66.0).contains(&latitude) {
        step -= 1;
        if !(-80.0..=80.0).contains(&latitude) {
            step -= 1;
        }
    }
    step.clamp(1, 26) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn palermo_scores_and_decodes_as_redis() {
        // GEOADD Sicily 13.361389 38.115556 "Palermo" stores this score in
        // redis-server 7.0.15, and GEOPOS gives back this point.
        assert_eq!(score_of(13.361389, 38.115556), 3479099956230698);
        let (lon, lat) = decode_score(3479099956230698.0);
        assert!((lon - 13.361389338970184).abs() < 1e-12 && (lat - 38.1155563954963).abs() < 1e-12);
        assert_eq!(&standard_geohash(3479099956230698.0), b"sqc8b49rny0");
    }

    #[test]
    fn distance_palermo_catania() {
        let d = distance(13.361389, 38.115556, 15.087269, 37.502669);
        assert!((d - 166274.15).abs() < 1.0, "{d}");
    }

    #[test]
    fn interleave_round_trips() {
        for v in [0u32, 1, 0x3ff_ffff, 0x155_5555, 12345] {
            assert_eq!(squash(spread(v)), v);
        }
    }
}
