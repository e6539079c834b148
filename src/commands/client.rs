//! CLIENT subcommands (Redis's networking.c client commands).

use super::CommandSpec;

pub fn commands() -> Vec<CommandSpec> {
    vec![]
}
