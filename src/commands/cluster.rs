//! CLUSTER commands, emulating a single node that owns every slot, so that
//! cluster-aware clients and `memtier_benchmark --cluster-mode` work.

use super::CommandSpec;

pub fn commands() -> Vec<CommandSpec> {
    vec![]
}
