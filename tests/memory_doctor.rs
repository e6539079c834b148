//! MEMORY DOCTOR on a fresh instance (its "empty" report, byte for byte
//! as redis-server's, RESP2 bulk and RESP3 verbatim), MEMORY PURGE and
//! MALLOC-STATS. The report's other conditions are unit tests in
//! src/commands/memory_doctor.rs. Passes against redis-server too
//! (`RINGKV_TEST_TARGET=redis cargo test --test memory_doctor`).

mod common;

use common::Server;

const EMPTY: &str = "Hi Sam, this instance is empty or is using very little memory, my issues detector can't be used in these conditions. Please, leave for your mission on Earth and fill it with some data. The new Sam and I will be back to our programming as soon as I finished rebooting.\n";

#[test]
fn doctor_on_an_empty_instance() {
    let s = Server::ringkv(&["--shards", "3"]);
    let mut c = s.conn();
    let r = String::from_utf8(c.cmd_raw(&["MEMORY", "DOCTOR"])).unwrap();
    assert_eq!(r, format!("${}\r\n{EMPTY}\r\n", EMPTY.len()));
    let _ = c.cmd_raw(&["HELLO", "3"]);
    let r = String::from_utf8(c.cmd_raw(&["MEMORY", "DOCTOR"])).unwrap();
    assert_eq!(r, format!("={}\r\ntxt:{EMPTY}\r\n", EMPTY.len() + 4));
    assert_eq!(c.cmd_raw(&["MEMORY", "PURGE"]), b"+OK\r\n");
    let r = String::from_utf8_lossy(&c.cmd_raw(&["MEMORY", "MALLOC-STATS"])).into_owned();
    assert!(r.starts_with('=') && r.contains("txt:___ Begin jemalloc statistics ___\n"), "{}", &r[..r.len().min(200)]);
    assert!(r.ends_with("--- End jemalloc statistics ---\n\r\n"), "{}", &r[r.len().saturating_sub(200)..]);
}
