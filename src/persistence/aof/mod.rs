//! Redis 7.0's multi-part append-only file: the manifest and the names of
//! the files in `appenddirname/` (`manifest`), reading a file back as keys
//! and commands (`reader`), and the bytes appended per command (`append`).
//!
//! A library piece: nothing here executes a command or runs on a shard. The
//! server's AOF writer and its start-up load call these functions.

pub mod append;
pub mod manifest;
pub mod reader;

pub use append::{append_command, timestamp_annotation, AppendState};
pub use manifest::{load_manifest, needs_upgrade, persist_manifest, upgrade_old_style, AofInfo, FileType, Manifest, ManifestError};
pub use reader::{load_dir, read_aof, AofReadError, Command, DirLoad, DirStatus, FileRead, Item, LogLine, ReadOptions, Refusal, Truncation};
