//! INFO, with Redis's sections and field names.

use super::CommandSpec;

pub fn commands() -> Vec<CommandSpec> {
    vec![]
}
