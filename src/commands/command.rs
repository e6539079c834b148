//! COMMAND (COUNT INFO DOCS LIST GETKEYS), built from the command table.

use super::CommandSpec;

pub fn commands() -> Vec<CommandSpec> {
    vec![]
}
