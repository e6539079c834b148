//! SLOWLOG, LATENCY, MONITOR, DEBUG, LOLWUT.

use super::CommandSpec;

pub fn commands() -> Vec<CommandSpec> {
    vec![]
}
