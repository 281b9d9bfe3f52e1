//! The wire protocol between the host and the guest agent.
//!
//! Every message is one frame: a 4-byte big-endian length, then that many bytes holding a
//! 1-byte kind, a 4-byte big-endian exec id and the body. Control bodies are JSON; output and
//! input bodies are raw bytes. A reader refuses any length above [`MAX_FRAME_LEN`] before
//! allocating anything, so a hostile peer cannot make the other side allocate more than one
//! frame's worth of memory.
//!
//! The host speaks first with [`Message::Hello`]; the agent answers with its own hello. A
//! peer that sees a different [`PROTOCOL_VERSION`] stops with [`ProtoError::Version`].

mod frame;
mod message;

pub use frame::{FrameReader, write_message};
pub use message::{ExecRequest, ExitStatus, Hello, Message, WinSize};

use thiserror::Error;

/// The protocol version both sides must agree on.
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest body of stdin/stdout/stderr data in one frame.
pub const MAX_CHUNK: usize = 32 * 1024;

/// Largest frame length either side accepts (kind + exec id + body).
pub const MAX_FRAME_LEN: u32 = 256 * 1024;

/// Name of the virtio-serial port the agent listens on.
pub const AGENT_PORT_NAME: &str = "org.berth.agent.0";

#[derive(Debug, Error)]
pub enum ProtoError {
    #[error("peer closed the channel")]
    Closed,
    #[error("channel read/write failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("peer sent a frame of {len} bytes; the limit is {MAX_FRAME_LEN}")]
    FrameTooLarge { len: u32 },
    #[error("peer sent a frame of {len} bytes, shorter than a frame header")]
    FrameTooShort { len: u32 },
    #[error("peer sent a frame of unknown kind {kind}")]
    UnknownKind { kind: u8 },
    /// Never carries the parser's text: it quotes the peer's bytes (a guest-chosen field name
    /// would reach error messages, the app and notifications). Where, not what.
    #[error("peer sent a malformed {kind} body (at line {line}, column {column})")]
    BadBody {
        kind: &'static str,
        line: usize,
        column: usize,
    },
    #[error("peer speaks protocol version {theirs}, this side speaks {PROTOCOL_VERSION}")]
    Version { theirs: u32 },
}
