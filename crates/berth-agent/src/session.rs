//! One host session on the agent port: hello, then requests until the host goes away.

use std::collections::HashMap;
use std::fs::File;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_proto::{FrameReader, Hello, Message, PROTOCOL_VERSION, ProtoError, write_message};

use crate::exec::{self, Running};
use crate::reaper::Reaper;
use crate::{log, pty};

pub enum End {
    PowerOff,
    HostGone,
}

/// The agent's half of the channel, shared by every thread that sends.
#[derive(Clone)]
pub struct Sender {
    port: Arc<Mutex<File>>,
}

impl Sender {
    /// Sends one message; errors mean the host is gone, which the reader notices too.
    pub fn send(&self, msg: &Message) {
        let mut port = self.port.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = write_message(&mut *port, msg) {
            log(&format!("cannot send {}: {e}", msg.kind_name()));
        }
    }
}

pub type Table = Arc<Mutex<HashMap<u32, Running>>>;

pub fn serve(port: File, reaper: &Reaper) -> Result<End, ProtoError> {
    let sender = Sender {
        port: Arc::new(Mutex::new(port.try_clone()?)),
    };
    let mut reader = FrameReader::new(port);
    // While no host is connected, reads return EOF at once: poll until a hello arrives.
    let hello = loop {
        match reader.read_message() {
            Ok(Message::Hello(h)) => break h,
            Ok(other) => log(&format!("ignoring {} before hello", other.kind_name())),
            Err(ProtoError::Closed) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(e),
        }
    };
    sender.send(&Message::Hello(Hello {
        version: PROTOCOL_VERSION,
        software: format!("berth-agent {}", env!("CARGO_PKG_VERSION")),
    }));
    if hello.version != PROTOCOL_VERSION {
        return Err(ProtoError::Version {
            theirs: hello.version,
        });
    }

    let table: Table = Arc::new(Mutex::new(HashMap::new()));
    loop {
        let msg = match reader.read_message() {
            Ok(m) => m,
            Err(ProtoError::Closed) => return Ok(End::HostGone),
            Err(e) => return Err(e),
        };
        match msg {
            Message::Exec { id, request } => {
                exec::start(id, request, &sender, reaper, &table);
            }
            Message::Stdin { id, data } => with(&table, id, |r| r.write_stdin(Some(data))),
            Message::StdinEof { id } => with(&table, id, |r| r.write_stdin(None)),
            Message::Signal { id, signal } => with(&table, id, |r| r.signal(signal)),
            Message::Resize { id, size } => with(&table, id, |r| {
                if let Some(master) = &r.pty_master {
                    let _ = pty::resize(master, size);
                }
            }),
            Message::Ping { nonce } => sender.send(&Message::Pong { nonce }),
            Message::PowerOff => return Ok(End::PowerOff),
            other => log(&format!("ignoring unexpected {}", other.kind_name())),
        }
    }
}

fn with(table: &Table, id: u32, f: impl FnOnce(&Running)) {
    let table = table.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(running) = table.get(&id) {
        f(running);
    }
}
