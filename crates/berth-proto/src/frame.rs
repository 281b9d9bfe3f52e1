//! Frame encoding: `[u32 len][u8 kind][u32 id][body]`, big-endian, `len` covering kind..body.

use std::io::{self, Read, Write};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{ExecRequest, ExitStatus, Hello, MAX_FRAME_LEN, Message, ProtoError, WinSize};

const HEADER_LEN: u32 = 5;

mod kind {
    pub const HELLO: u8 = 1;
    pub const EXEC: u8 = 2;
    pub const STARTED: u8 = 3;
    pub const STDIN: u8 = 4;
    pub const STDIN_EOF: u8 = 5;
    pub const STDOUT: u8 = 6;
    pub const STDERR: u8 = 7;
    pub const EXITED: u8 = 8;
    pub const SIGNAL: u8 = 9;
    pub const RESIZE: u8 = 10;
    pub const ERROR: u8 = 11;
    pub const PING: u8 = 12;
    pub const PONG: u8 = 13;
    pub const POWER_OFF: u8 = 14;
    pub const ATTACH: u8 = 15;
    pub const APPROVAL_REQUEST: u8 = 16;
    pub const APPROVE: u8 = 17;
    pub const APPROVAL_CLOSED: u8 = 18;
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ApprovalRequestBody {
    host: String,
    port: u16,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ApproveBody {
    decision: String,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PidBody {
    pid: u32,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SignalBody {
    signal: i32,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ErrorBody {
    message: String,
}

fn json<T: Serialize>(value: &T) -> Vec<u8> {
    // Serialising these plain structs into a Vec cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

/// Encodes `msg` into one frame and writes it with a single `write_all`.
///
/// Data messages longer than the frame limit are the caller's mistake; they are split by
/// the callers at [`crate::MAX_CHUNK`].
pub fn write_message(w: &mut impl Write, msg: &Message) -> io::Result<()> {
    let (kind, id, body): (u8, u32, Vec<u8>) = match msg {
        Message::Hello(h) => (kind::HELLO, 0, json(h)),
        Message::Exec { id, request } => (kind::EXEC, *id, json(request)),
        Message::Started { id, pid } => (kind::STARTED, *id, json(&PidBody { pid: *pid })),
        Message::Stdin { id, data } => (kind::STDIN, *id, data.clone()),
        Message::StdinEof { id } => (kind::STDIN_EOF, *id, Vec::new()),
        Message::Stdout { id, data } => (kind::STDOUT, *id, data.clone()),
        Message::Stderr { id, data } => (kind::STDERR, *id, data.clone()),
        Message::Exited { id, status } => (kind::EXITED, *id, json(status)),
        Message::Signal { id, signal } => {
            (kind::SIGNAL, *id, json(&SignalBody { signal: *signal }))
        }
        Message::Resize { id, size } => (kind::RESIZE, *id, json(size)),
        Message::Error { id, message } => (
            kind::ERROR,
            *id,
            json(&ErrorBody {
                message: message.clone(),
            }),
        ),
        Message::Ping { nonce } => (kind::PING, *nonce, Vec::new()),
        Message::Pong { nonce } => (kind::PONG, *nonce, Vec::new()),
        Message::PowerOff => (kind::POWER_OFF, 0, Vec::new()),
        Message::Attach { size } => (kind::ATTACH, 0, json(size)),
        Message::ApprovalRequest { id, host, port } => (
            kind::APPROVAL_REQUEST,
            *id,
            json(&ApprovalRequestBody {
                host: host.clone(),
                port: *port,
            }),
        ),
        Message::ApprovalClosed { id, decision } => (
            kind::APPROVAL_CLOSED,
            *id,
            json(&ApproveBody {
                decision: decision.clone(),
            }),
        ),
        Message::Approve { id, decision } => (
            kind::APPROVE,
            *id,
            json(&ApproveBody {
                decision: decision.clone(),
            }),
        ),
    };
    let len = HEADER_LEN as usize + body.len();
    if len > MAX_FRAME_LEN as usize {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} frame of {len} bytes exceeds {MAX_FRAME_LEN}",
                msg.kind_name()
            ),
        ));
    }
    let mut buf = Vec::with_capacity(4 + len);
    buf.extend_from_slice(&(len as u32).to_be_bytes());
    buf.push(kind);
    buf.extend_from_slice(&id.to_be_bytes());
    buf.extend_from_slice(&body);
    w.write_all(&buf)?;
    w.flush()
}

/// Reads frames from a byte stream, refusing oversized or malformed ones.
pub struct FrameReader<R> {
    inner: R,
}

impl<R: Read> FrameReader<R> {
    pub fn new(inner: R) -> Self {
        Self { inner }
    }

    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// Reads the next message. `Err(Closed)` means the peer closed the channel cleanly
    /// between frames; any other error leaves the stream unusable.
    pub fn read_message(&mut self) -> Result<Message, ProtoError> {
        let mut len_buf = [0u8; 4];
        if !read_exact_or_eof(&mut self.inner, &mut len_buf)? {
            return Err(ProtoError::Closed);
        }
        let len = u32::from_be_bytes(len_buf);
        if len > MAX_FRAME_LEN {
            return Err(ProtoError::FrameTooLarge { len });
        }
        if len < HEADER_LEN {
            return Err(ProtoError::FrameTooShort { len });
        }
        let mut frame = vec![0u8; len as usize];
        self.inner.read_exact(&mut frame).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                ProtoError::Closed
            } else {
                ProtoError::Io(e)
            }
        })?;
        let kind = frame[0];
        let id = u32::from_be_bytes([frame[1], frame[2], frame[3], frame[4]]);
        let body = frame.split_off(HEADER_LEN as usize);
        decode(kind, id, body)
    }
}

/// Like `read_exact`, but a clean EOF before the first byte returns `Ok(false)`.
fn read_exact_or_eof(r: &mut impl Read, buf: &mut [u8]) -> Result<bool, ProtoError> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) if filled == 0 => return Ok(false),
            Ok(0) => return Err(ProtoError::Closed),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ProtoError::Io(e)),
        }
    }
    Ok(true)
}

fn parse<T: DeserializeOwned>(kind: &'static str, body: &[u8]) -> Result<T, ProtoError> {
    serde_json::from_slice(body).map_err(|e| ProtoError::BadBody {
        kind,
        line: e.line(),
        column: e.column(),
    })
}

fn decode(kind: u8, id: u32, body: Vec<u8>) -> Result<Message, ProtoError> {
    Ok(match kind {
        kind::HELLO => Message::Hello(parse::<Hello>("hello", &body)?),
        kind::EXEC => Message::Exec {
            id,
            request: parse::<ExecRequest>("exec", &body)?,
        },
        kind::STARTED => Message::Started {
            id,
            pid: parse::<PidBody>("started", &body)?.pid,
        },
        kind::STDIN => Message::Stdin { id, data: body },
        kind::STDIN_EOF => Message::StdinEof { id },
        kind::STDOUT => Message::Stdout { id, data: body },
        kind::STDERR => Message::Stderr { id, data: body },
        kind::EXITED => Message::Exited {
            id,
            status: parse::<ExitStatus>("exited", &body)?,
        },
        kind::SIGNAL => Message::Signal {
            id,
            signal: parse::<SignalBody>("signal", &body)?.signal,
        },
        kind::RESIZE => Message::Resize {
            id,
            size: parse::<WinSize>("resize", &body)?,
        },
        kind::ERROR => Message::Error {
            id,
            message: parse::<ErrorBody>("error", &body)?.message,
        },
        kind::PING => Message::Ping { nonce: id },
        kind::PONG => Message::Pong { nonce: id },
        kind::POWER_OFF => Message::PowerOff,
        kind::ATTACH => Message::Attach {
            size: parse::<Option<WinSize>>("attach", &body)?,
        },
        kind::APPROVAL_REQUEST => {
            let b = parse::<ApprovalRequestBody>("approval-request", &body)?;
            Message::ApprovalRequest {
                id,
                host: b.host,
                port: b.port,
            }
        }
        kind::APPROVE => Message::Approve {
            id,
            decision: parse::<ApproveBody>("approve", &body)?.decision,
        },
        kind::APPROVAL_CLOSED => Message::ApprovalClosed {
            id,
            decision: parse::<ApproveBody>("approval-closed", &body)?.decision,
        },
        other => return Err(ProtoError::UnknownKind { kind: other }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(msg: Message) {
        let mut buf = Vec::new();
        write_message(&mut buf, &msg).unwrap();
        let mut reader = FrameReader::new(&buf[..]);
        assert_eq!(reader.read_message().unwrap(), msg);
        assert!(matches!(reader.read_message(), Err(ProtoError::Closed)));
    }

    #[test]
    fn every_message_survives_a_roundtrip() {
        roundtrip(Message::Hello(Hello {
            version: 1,
            software: "x".into(),
        }));
        roundtrip(Message::Exec {
            id: 3,
            request: ExecRequest {
                argv: vec!["sh".into(), "-c".into(), "echo hi".into()],
                env: vec![("A".into(), "b".into())],
                cwd: Some("/work".into()),
                user: None,
                pty: Some(WinSize { rows: 24, cols: 80 }),
            },
        });
        roundtrip(Message::Started { id: 3, pid: 77 });
        roundtrip(Message::Stdin {
            id: 3,
            data: vec![0, 255, 10],
        });
        roundtrip(Message::StdinEof { id: 3 });
        roundtrip(Message::Stdout {
            id: 3,
            data: b"out".to_vec(),
        });
        roundtrip(Message::Stderr {
            id: 3,
            data: Vec::new(),
        });
        roundtrip(Message::Exited {
            id: 3,
            status: ExitStatus {
                code: None,
                signal: Some(9),
            },
        });
        roundtrip(Message::Signal { id: 3, signal: 15 });
        roundtrip(Message::Resize {
            id: 3,
            size: WinSize { rows: 1, cols: 2 },
        });
        roundtrip(Message::Error {
            id: 3,
            message: "no such program".into(),
        });
        roundtrip(Message::Ping { nonce: 9 });
        roundtrip(Message::Pong { nonce: 9 });
        roundtrip(Message::PowerOff);
        roundtrip(Message::Attach { size: None });
        roundtrip(Message::ApprovalRequest {
            id: 4,
            host: "x.test".into(),
            port: 443,
        });
        roundtrip(Message::Approve {
            id: 4,
            decision: "once".into(),
        });
        roundtrip(Message::ApprovalClosed {
            id: 4,
            decision: "expired".into(),
        });
        roundtrip(Message::Attach {
            size: Some(WinSize {
                rows: 50,
                cols: 132,
            }),
        });
    }

    #[test]
    fn a_4_gib_length_prefix_is_refused_before_allocating() {
        let bytes = [0xff, 0xff, 0xff, 0xff, 1, 2, 3];
        let err = FrameReader::new(&bytes[..]).read_message().unwrap_err();
        assert!(
            matches!(err, ProtoError::FrameTooLarge { len: u32::MAX }),
            "{err}"
        );
    }

    #[test]
    fn garbage_bytes_are_an_error_not_a_panic() {
        // Every short garbage sequence either decodes or errors; none panics.
        let mut seed = 0x1234_5678u32;
        for _ in 0..2000 {
            let mut bytes = Vec::new();
            for _ in 0..(seed % 40) {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                bytes.push((seed >> 16) as u8);
            }
            // Keep the length prefix small so the body is actually parsed.
            if bytes.len() >= 4 {
                bytes[0] = 0;
                bytes[1] = 0;
            }
            let _ = FrameReader::new(&bytes[..]).read_message();
        }
        let err = FrameReader::new(&[0, 0, 0, 6, 99, 0, 0, 0, 0, 0][..])
            .read_message()
            .unwrap_err();
        assert!(matches!(err, ProtoError::UnknownKind { kind: 99 }));
        let err = FrameReader::new(&[0, 0, 0, 7, 1, 0, 0, 0, 0, b'{', b'x'][..])
            .read_message()
            .unwrap_err();
        assert!(matches!(err, ProtoError::BadBody { .. }));
    }

    #[test]
    fn a_truncated_frame_is_closed_not_a_hang() {
        let err = FrameReader::new(&[0, 0, 0, 50, 6, 0][..])
            .read_message()
            .unwrap_err();
        assert!(matches!(err, ProtoError::Closed));
        let err = FrameReader::new(&[0, 0, 0, 2][..])
            .read_message()
            .unwrap_err();
        assert!(matches!(err, ProtoError::FrameTooShort { len: 2 }));
    }

    #[test]
    fn unknown_json_fields_are_refused() {
        let body = br#"{"version":1,"software":"x","extra":1}"#;
        let mut bytes = ((5 + body.len()) as u32).to_be_bytes().to_vec();
        bytes.push(1);
        bytes.extend_from_slice(&[0, 0, 0, 0]);
        bytes.extend_from_slice(body);
        let err = FrameReader::new(&bytes[..]).read_message().unwrap_err();
        assert!(matches!(err, ProtoError::BadBody { .. }));
    }

    #[test]
    fn a_guest_chosen_field_name_never_reaches_the_error_text() {
        let body = "{\"version\":1,\"software\":\"x\",\"\u{1b}[2J<b>berth: all good</b>\":1}";
        let mut bytes = ((5 + body.len()) as u32).to_be_bytes().to_vec();
        bytes.push(1);
        bytes.extend_from_slice(&[0, 0, 0, 0]);
        bytes.extend_from_slice(body.as_bytes());
        let err = FrameReader::new(&bytes[..]).read_message().unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("malformed") && text.contains("column"),
            "{text}"
        );
        assert!(
            !text.contains("all good") && !text.contains('\u{1b}'),
            "{text}"
        );
    }
}
