//! RESP2/RESP3: the request parser and the reply encoder.
//!
//! The parser never copies an argument: it yields byte ranges into the
//! receive buffer. The encoder writes straight into a connection's output
//! buffer and is the only place that knows whether the client speaks RESP2
//! or RESP3, so command handlers never branch on the protocol.

pub mod parser;
pub mod reply;

pub use parser::{parse_command, parse_frame, Args, FrameProgress, ParseError, ParseLimits};
pub use reply::Reply;
