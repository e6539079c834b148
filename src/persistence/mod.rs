//! Persistence: the RDB format, the O_DIRECT writer, and snapshots (SAVE in
//! the foreground, BGSAVE in a forked child), plus loading at start-up.

pub mod aof;
pub mod aof_file;
pub mod aof_reload;
pub mod aof_rewrite;
pub mod cow;
pub mod lanes;
pub mod lzf;
pub mod payload;
pub mod rdb;
pub mod rdb_load;
pub mod snapshot;
pub mod writer;

pub use snapshot::{Persistence, SaveStatus};
