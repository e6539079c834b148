//! GEO commands on sorted sets (Redis's geo.c): GEOADD GEODIST GEOHASH
//! GEOPOS GEORADIUS GEORADIUSBYMEMBER (and their _RO forms) GEOSEARCH
//! GEOSEARCHSTORE. A point is a member whose score is its 52-bit geohash
//! (`types::geohash`).
//!
//! GEOADD is ZADD with computed scores, as in Redis: it builds the ZADD
//! arguments, runs the ZADD handler and is propagated as that ZADD. The
//! searches keep `georadiusGeneric`'s order of checks, one parser for the
//! five search commands. The STORE forms may name a key of another shard:
//! the key finder below gives the destination to the router, which runs
//! the command under the hold like any multi-key write.

use super::lookup::{WrongType, ZSetKind};
use super::string::float80::F80;
use super::zset::score::parse_strict;
use super::{err, flags::*, CommandSpec, Ctx};
use crate::protocol::Reply;
use crate::shard::Value;
use crate::types::geohash::{self, Search, Shape, LAT_MAX, LAT_MIN, LONG_MAX, LONG_MIN};
use crate::types::zset_tree::{ScoreBound, ScoreRange};
use crate::types::ZSet;
use crate::util::eq_ic;
use std::cmp::Ordering;

pub fn commands() -> Vec<CommandSpec> {
    const READ: &[&str] = &["@read", "@geo", "@slow"];
    const WRITE_: &[&str] = &["@write", "@geo", "@slow"];
    let g = |name: &'static str, arity: i32, flags: u32, handler: super::Handler| CommandSpec::new(name, arity, flags, handler).keys(1, 1, 1).group("geo");
    vec![
        g("geoadd", -5, WRITE | DENYOOM, geoadd)
            .acl(WRITE_)
            .doc("3.2.0", "Add one or more geospatial items in the geospatial index represented using a sorted set"),
        g("geodist", -4, READONLY, geodist).acl(READ).doc("3.2.0", "Returns the distance between two members of a geospatial index"),
        g("geohash", -2, READONLY, geohash_cmd).acl(READ).doc("3.2.0", "Returns members of a geospatial index as standard geohash strings"),
        g("geopos", -2, READONLY, geopos).acl(READ).doc("3.2.0", "Returns longitude and latitude of members of a geospatial index"),
        g("georadius", -6, WRITE | DENYOOM, georadius)
            .find_keys(radius_keys)
            .acl(WRITE_)
            .doc("3.2.0", "Query a sorted set representing a geospatial index to fetch members matching a given maximum distance from a point"),
        g("georadius_ro", -6, READONLY, georadius_ro).acl(READ).doc("3.2.10", "A read-only variant for GEORADIUS"),
        g("georadiusbymember", -5, WRITE | DENYOOM, georadiusbymember)
            .find_keys(radius_keys)
            .acl(WRITE_)
            .doc("3.2.0", "Query a sorted set representing a geospatial index to fetch members matching a given maximum distance from a member"),
        g("georadiusbymember_ro", -5, READONLY, georadiusbymember_ro).acl(READ).doc("3.2.10", "A read-only variant for GEORADIUSBYMEMBER"),
        g("geosearch", -7, READONLY, geosearch)
            .acl(READ)
            .doc("6.2.0", "Query a sorted set representing a geospatial index to fetch members inside an area of a box or a circle."),
        g("geosearchstore", -8, WRITE | DENYOOM, geosearchstore).keys(1, 2, 1).acl(WRITE_).doc(
            "6.2.0",
            "Query a sorted set representing a geospatial index to fetch members inside an area of a box or a circle, and store the result in another key.",
        ),
    ]
}

/// GEORADIUS[BYMEMBER]'s keys as Redis 7.0's key specs give them (COMMAND
/// GETKEYS): the source, then the key after the first STORE and after the
/// first STOREDIST from the options on. The command stores into the last
/// of them (`georadiusGetKeys`); when that is yet another key ("STORE a
/// STORE b") it is added too, so the router holds every shard written.
fn radius_keys(args: &[&[u8]], out: &mut Vec<usize>) {
    if args.len() < 2 {
        return;
    }
    out.push(1);
    let options_at = if args.first().is_some_and(|name| eq_ic(name, "georadius")) { 6 } else { 5 };
    for word in ["store", "storedist"] {
        if let Some(i) = (options_at..args.len().saturating_sub(1)).find(|&i| eq_ic(args[i], word)) {
            out.push(i + 1);
        }
    }
    let mut last = None;
    let mut i = 5;
    while i + 1 < args.len() {
        if eq_ic(args[i], "store") || eq_ic(args[i], "storedist") {
            last = Some(i + 1);
            i += 1;
        }
        i += 1;
    }
    if let Some(last) = last.filter(|l| !out.contains(l)) {
        out.push(last);
    }
}

const UNIT_ERROR: &str = "ERR unsupported unit provided. please use M, KM, FT, MI";
const MEMBER_ERROR: &str = "ERR could not decode requested zset member";

/// Metres per unit (Redis's `extractUnitOrReply`).
fn unit(arg: &[u8]) -> Result<f64, String> {
    [("m", 1.0), ("km", 1000.0), ("ft", 0.3048), ("mi", 1609.34)]
        .iter()
        .find(|(name, _)| eq_ic(arg, name))
        .map(|&(_, m)| m)
        .ok_or_else(|| UNIT_ERROR.to_string())
}

fn number(arg: &[u8], error: &str) -> Result<f64, String> {
    parse_strict(arg).ok_or_else(|| error.to_string())
}

/// A longitude and latitude within Redis's limits (`extractLongLatOrReply`).
fn lon_lat(args: &[&[u8]]) -> Result<(f64, f64), String> {
    let lon = number(args[0], err::NOT_FLOAT)?;
    let lat = number(args[1], err::NOT_FLOAT)?;
    if !(LONG_MIN..=LONG_MAX).contains(&lon) || !(LAT_MIN..=LAT_MAX).contains(&lat) {
        return Err(format!("ERR invalid longitude,latitude pair {lon:.6},{lat:.6}"));
    }
    Ok((lon, lat))
}

/// `radius unit` (`extractDistanceOrReply`): the radius and metres per unit.
fn radius(args: &[&[u8]]) -> Result<(f64, f64), String> {
    let r = number(args[0], "ERR need numeric radius")?;
    if r < 0.0 {
        return Err("ERR radius cannot be negative".into());
    }
    Ok((r, unit(args[1])?))
}

/// `width height unit` (`extractBoxOrReply`).
fn dimensions(args: &[&[u8]]) -> Result<(f64, f64, f64), String> {
    let w = number(args[0], "ERR need numeric width")?;
    let h = number(args[1], "ERR need numeric height")?;
    if h < 0.0 || w < 0.0 {
        return Err("ERR height or width cannot be negative".into());
    }
    Ok((w, h, unit(args[2])?))
}

/// Redis's `addReplyDoubleDistance`: four decimals.
fn reply_distance(r: &mut Reply, d: f64) {
    r.bulk(format!("{d:.4}").as_bytes());
}

/// Redis's `addReplyHumanLongDouble` of a coordinate.
fn reply_coordinate(r: &mut Reply, v: f64) {
    r.double_text(F80::from_f64(v).to_human().as_bytes());
}

fn geoadd(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let (mut nx, mut xx) = (false, false);
    let mut first = 2;
    while first < args.len() {
        let opt = args[first];
        if eq_ic(opt, "nx") {
            nx = true;
        } else if eq_ic(opt, "xx") {
            xx = true;
        } else if !eq_ic(opt, "ch") {
            break;
        }
        first += 1;
    }
    if !(args.len() - first).is_multiple_of(3) || (xx && nx) {
        return r.error(err::SYNTAX);
    }
    // ZADD key [options] score member ...
    let mut scores = Vec::with_capacity((args.len() - first) / 3);
    for point in args[first..].chunks(3) {
        match lon_lat(point) {
            Ok((lon, lat)) => scores.push(geohash::score_of(lon, lat).to_string()),
            Err(e) => return r.error(&e),
        }
    }
    let mut zadd_args: Vec<&[u8]> = Vec::with_capacity(first + scores.len() * 2);
    zadd_args.push(b"zadd");
    zadd_args.extend_from_slice(&args[1..first]);
    for (score, point) in scores.iter().zip(args[first..].chunks(3)) {
        zadd_args.push(score.as_bytes());
        zadd_args.push(point[2]);
    }
    // Propagated as the ZADD, and only when it changed something (a
    // rewritten form is propagated unconditionally).
    let key = args[1];
    let dirty_before = ctx.shards.of(key).dirty;
    super::zset::zadd(ctx, &zadd_args, r);
    if ctx.shards.of(key).dirty != dirty_before {
        ctx.propagate_as(&zadd_args);
    }
}

fn zset_at<'c>(ctx: &'c mut Ctx, key: &[u8]) -> Result<Option<&'c ZSet>, WrongType> {
    Ok(ctx.lookup_read::<ZSetKind>(key)?.map(|e| match &e.value {
        Value::ZSet(z) => z,
        _ => unreachable!("a ZSetKind lookup"),
    }))
}

fn geodist(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let to_meters = match args.len() {
        4 => 1.0,
        5 => match unit(args[4]) {
            Ok(m) => m,
            Err(e) => return r.error(&e),
        },
        _ => return r.error(err::SYNTAX),
    };
    let z = match zset_at(ctx, args[1]) {
        Err(WrongType) => return r.error(err::WRONGTYPE),
        Ok(None) => return r.null(),
        Ok(Some(z)) => z,
    };
    match (z.score(args[2]), z.score(args[3])) {
        (Some(a), Some(b)) => {
            let (lon1, lat1) = geohash::decode_score(a);
            let (lon2, lat2) = geohash::decode_score(b);
            reply_distance(r, geohash::distance(lon1, lat1, lon2, lat2) / to_meters);
        }
        _ => r.null(),
    }
}

/// GEOHASH and GEOPOS: one reply per member, from its score (None when
/// the key or the member is missing).
fn per_member(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply, reply: fn(&mut Reply, Option<f64>)) {
    let z = match zset_at(ctx, args[1]) {
        Err(WrongType) => return r.error(err::WRONGTYPE),
        Ok(z) => z,
    };
    r.array(args.len() - 2);
    for member in &args[2..] {
        reply(r, z.and_then(|z| z.score(member)));
    }
}

fn geohash_cmd(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    per_member(ctx, args, r, |r, score| match score {
        Some(score) => r.bulk(&geohash::standard_geohash(score)),
        None => r.null(),
    });
}

fn geopos(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    per_member(ctx, args, r, |r, score| match score {
        Some(score) => {
            let (lon, lat) = geohash::decode_score(score);
            r.array(2);
            reply_coordinate(r, lon);
            reply_coordinate(r, lat);
        }
        None => r.null_array(),
    });
}

/// Which of the five search commands (Redis's RADIUS_* / GEOSEARCH flags).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Variant {
    Radius { by_member: bool, store_allowed: bool },
    Search { store: bool },
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Sort {
    None,
    Asc,
    Desc,
}

fn georadius(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    search_command(ctx, args, r, Variant::Radius { by_member: false, store_allowed: true });
}

fn georadius_ro(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    search_command(ctx, args, r, Variant::Radius { by_member: false, store_allowed: false });
}

fn georadiusbymember(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    search_command(ctx, args, r, Variant::Radius { by_member: true, store_allowed: true });
}

fn georadiusbymember_ro(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    search_command(ctx, args, r, Variant::Radius { by_member: true, store_allowed: false });
}

fn geosearch(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    search_command(ctx, args, r, Variant::Search { store: false });
}

fn geosearchstore(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    search_command(ctx, args, r, Variant::Search { store: true });
}

/// One point found: member, score, distance in metres, coordinates.
struct Point {
    member: Vec<u8>,
    score: f64,
    distance: f64,
    longitude: f64,
    latitude: f64,
}

/// A parsed search request (everything `georadiusGeneric` reads before
/// it scans).
struct Request<'a> {
    search: Option<Search>,
    store: Option<&'a [u8]>,
    store_distance: bool,
    with_distance: bool,
    with_hash: bool,
    with_coordinates: bool,
    sort: Sort,
    count: u64,
    any: bool,
}

/// Redis's `georadiusGeneric`.
fn search_command(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply, variant: Variant) {
    let source_at = if variant == (Variant::Search { store: true }) { 2 } else { 1 };
    let source = args[source_at];
    // Parse and scan while the set is borrowed; the reply or the store
    // comes after, from the points found.
    let (request, found) = {
        let z = match zset_at(ctx, source) {
            Err(WrongType) => return r.error(err::WRONGTYPE),
            Ok(z) => z,
        };
        let request = match parse_request(args, variant, z) {
            Ok(q) => q,
            Err(e) => return r.error(&e),
        };
        let found = z.map(|z| {
            let search = request.search.expect("parsed with a source");
            let limit = if request.any { request.count as usize } else { 0 };
            (search, scan(z, &search, limit))
        });
        (request, found)
    };
    let Some((search, mut points)) = found else {
        if let Some(dest) = request.store {
            if ctx.db(dest).delete(dest) {
                ctx.modified(ctx.db, dest);
                ctx.notify(crate::messaging::notify::GENERIC, "del", dest);
            }
            return r.int(0);
        }
        return r.array(0);
    };
    let mut sort = request.sort;
    if request.count != 0 && sort == Sort::None && !request.any {
        sort = Sort::Asc;
    }
    if points.is_empty() && request.store.is_none() {
        return r.array(0);
    }
    let returned = if request.count == 0 { points.len() } else { points.len().min(request.count as usize) };
    if sort != Sort::None {
        let by_distance = |a: &Point, b: &Point| {
            let o = a.distance.partial_cmp(&b.distance).unwrap_or(Ordering::Equal);
            if sort == Sort::Desc {
                o.reverse()
            } else {
                o
            }
        };
        // Equal distances come out as Redis orders them: a full sort is
        // glibc's qsort, a merge sort (stable); COUNT sorts the first
        // `returned` with Redis's partial quicksort.
        if returned == points.len() {
            points.sort_by(by_distance);
        } else {
            partial_quicksort(&mut points, &by_distance, 0, returned - 1);
        }
    }
    points.truncate(returned);
    for p in &mut points {
        p.distance /= search.conversion;
    }
    match request.store {
        None => reply_points(r, &points, &request),
        Some(dest) => {
            let mut elements: Vec<(Vec<u8>, f64)> = points.into_iter().map(|p| (p.member, if request.store_distance { p.distance } else { p.score })).collect();
            elements.sort_by(|a, b| a.1.partial_cmp(&b.1).unwrap_or(Ordering::Equal).then_with(|| a.0.cmp(&b.0)));
            let event = if matches!(variant, Variant::Search { .. }) { "geosearchstore" } else { "georadiusstore" };
            let limits = super::zset::limits(ctx);
            super::zset::store_result(ctx, dest, &elements, limits, r, event);
            // Redis counts one write per stored member.
            if elements.len() > 1 {
                ctx.shards.of(dest).dirty += elements.len() as u64 - 1;
            }
        }
    }
}

fn parse_request<'a>(args: &[&'a [u8]], variant: Variant, z: Option<&ZSet>) -> Result<Request<'a>, String> {
    let mut q = Request {
        search: None,
        store: None,
        store_distance: false,
        with_distance: false,
        with_hash: false,
        with_coordinates: false,
        sort: Sort::None,
        count: 0,
        any: false,
    };
    let centre_of = |member: &[u8]| -> Result<Option<(f64, f64)>, String> {
        match z {
            None => Ok(None),
            Some(z) => z.score(member).map(|s| Some(geohash::decode_score(s))).ok_or_else(|| MEMBER_ERROR.to_string()),
        }
    };
    let base = match variant {
        Variant::Radius { by_member: false, .. } => {
            let (longitude, latitude) = lon_lat(&args[2..4])?;
            let (r, conversion) = radius(&args[4..6])?;
            q.search = Some(Search { longitude, latitude, shape: Shape::Radius(r), conversion });
            6
        }
        Variant::Radius { by_member: true, .. } => {
            if let Some((longitude, latitude)) = centre_of(args[2])? {
                let (r, conversion) = radius(&args[3..5])?;
                q.search = Some(Search { longitude, latitude, shape: Shape::Radius(r), conversion });
            }
            5
        }
        Variant::Search { store: false } => 2,
        Variant::Search { store: true } => {
            q.store = Some(args[1]);
            3
        }
    };
    let is_search = matches!(variant, Variant::Search { .. });
    let store_allowed = matches!(variant, Variant::Radius { store_allowed: true, .. });
    let (mut from_member, mut from_lonlat, mut by_radius, mut by_box) = (false, false, false, false);
    let mut centre = (0.0, 0.0);
    let (mut shape, mut conversion) = (Shape::Radius(0.0), 0.0);
    let rest = &args[base..];
    let mut i = 0;
    while i < rest.len() {
        let arg = rest[i];
        let left = rest.len() - i - 1;
        if eq_ic(arg, "withdist") {
            q.with_distance = true;
        } else if eq_ic(arg, "withhash") {
            q.with_hash = true;
        } else if eq_ic(arg, "withcoord") {
            q.with_coordinates = true;
        } else if eq_ic(arg, "any") {
            q.any = true;
        } else if eq_ic(arg, "asc") {
            q.sort = Sort::Asc;
        } else if eq_ic(arg, "desc") {
            q.sort = Sort::Desc;
        } else if eq_ic(arg, "count") && left >= 1 {
            let n = super::parse_i64(rest[i + 1]).ok_or_else(|| err::NOT_INTEGER.to_string())?;
            if n <= 0 {
                return Err("ERR COUNT must be > 0".into());
            }
            q.count = n as u64;
            i += 1;
        } else if (eq_ic(arg, "store") || eq_ic(arg, "storedist")) && left >= 1 && store_allowed {
            q.store = Some(rest[i + 1]);
            q.store_distance = eq_ic(arg, "storedist");
            i += 1;
        } else if eq_ic(arg, "storedist") && variant == (Variant::Search { store: true }) {
            q.store_distance = true;
        } else if eq_ic(arg, "frommember") && left >= 1 && is_search && !from_lonlat {
            if let Some(c) = centre_of(rest[i + 1])? {
                centre = c;
            }
            from_member = true;
            i += 1;
        } else if eq_ic(arg, "fromlonlat") && left >= 2 && is_search && !from_member {
            centre = lon_lat(&rest[i + 1..i + 3])?;
            from_lonlat = true;
            i += 2;
        } else if eq_ic(arg, "byradius") && left >= 2 && is_search && !by_box {
            let (r, c) = radius(&rest[i + 1..i + 3])?;
            (shape, conversion) = (Shape::Radius(r), c);
            by_radius = true;
            i += 2;
        } else if eq_ic(arg, "bybox") && left >= 3 && is_search && !by_radius {
            let (width, height, c) = dimensions(&rest[i + 1..i + 4])?;
            (shape, conversion) = (Shape::Box { width, height }, c);
            by_box = true;
            i += 3;
        } else {
            return Err(err::SYNTAX.into());
        }
        i += 1;
    }
    if q.store.is_some() && (q.with_distance || q.with_hash || q.with_coordinates) {
        let what = if variant == (Variant::Search { store: true }) { "GEOSEARCHSTORE" } else { "STORE option in GEORADIUS" };
        return Err(format!("ERR {what} is not compatible with WITHDIST, WITHHASH and WITHCOORD options"));
    }
    let name = String::from_utf8_lossy(args[0]);
    if is_search && !(from_member || from_lonlat) {
        return Err(format!("ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for {name}"));
    }
    if is_search && !(by_radius || by_box) {
        return Err(format!("ERR exactly one of BYRADIUS and BYBOX can be specified for {name}"));
    }
    if q.any && q.count == 0 {
        return Err("ERR the ANY argument requires COUNT argument".into());
    }
    if is_search && z.is_some() {
        q.search = Some(Search { longitude: centre.0, latitude: centre.1, shape, conversion });
    }
    Ok(q)
}

/// The members inside the search, cell by cell in score order (Redis's
/// `membersOfAllNeighbors`); with `limit` (COUNT ANY) it stops once that
/// many are found.
fn scan(z: &ZSet, search: &Search, limit: usize) -> Vec<Point> {
    let mut points = Vec::new();
    for cell in search.cells().into_iter().flatten() {
        if limit != 0 && points.len() >= limit {
            break;
        }
        let (min, max) = geohash::score_range(cell);
        let range = ScoreRange { min: ScoreBound { value: min as f64, exclusive: false }, max: ScoreBound { value: max as f64, exclusive: true } };
        for (member, score) in z.range(z.score_range(&range), false) {
            let (longitude, latitude) = geohash::decode_score(score);
            if let Some(distance) = search.contains(longitude, latitude) {
                points.push(Point { member: member.to_vec(), score, distance, longitude, latitude });
            }
            if limit != 0 && points.len() >= limit {
                break;
            }
        }
    }
    points
}

fn reply_points(r: &mut Reply, points: &[Point], q: &Request) {
    let options = q.with_distance as usize + q.with_hash as usize + q.with_coordinates as usize;
    r.array(points.len());
    for p in points {
        if options > 0 {
            r.array(options + 1);
        }
        r.bulk(&p.member);
        if q.with_distance {
            reply_distance(r, p.distance);
        }
        if q.with_hash {
            r.int(p.score as i64);
        }
        if q.with_coordinates {
            r.array(2);
            reply_coordinate(r, p.longitude);
            reply_coordinate(r, p.latitude);
        }
    }
}

/// Redis's `pqsort` on ranks `left..=right` (`commands::pqsort`): its
/// order of equal elements is part of the reply (GEORADIUS ... COUNT with
/// ties).
fn partial_quicksort<T>(v: &mut [T], cmp: &impl Fn(&T, &T) -> Ordering, left: usize, right: usize) {
    super::pqsort::pqsort(v, cmp, left as i64, right as i64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_quicksort_sorts_the_asked_ranks() {
        let mut seed = 12345u64;
        for len in [1usize, 5, 7, 8, 40, 41, 100, 500] {
            let v: Vec<u32> = (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                    (seed >> 40) as u32 % 50
                })
                .collect();
            let mut sorted = v.clone();
            sorted.sort();
            for count in [1, len / 2 + 1, len] {
                let mut p = v.clone();
                partial_quicksort(&mut p, &|a: &u32, b: &u32| a.cmp(b), 0, count - 1);
                assert_eq!(p[..count], sorted[..count], "len {len} count {count}");
            }
        }
    }
}
