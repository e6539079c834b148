//! CONFIG GET/SET/RESETSTAT/REWRITE/HELP over the config table.

use super::CommandSpec;

pub fn commands() -> Vec<CommandSpec> {
    vec![]
}
