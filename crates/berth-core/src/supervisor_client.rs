//! Talking to a running attempt's supervisor over its socket.

use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_proto::{
    ExecRequest, ExitStatus, FrameReader, Hello, Message, PROTOCOL_VERSION, ProtoError, WinSize,
    write_message,
};
use berth_vm::agent::ExecIo;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum SupervisorError {
    #[error("the attempt is not running (nothing answers at {path}): {source}")]
    NotRunning {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the supervisor broke the protocol: {0}")]
    Protocol(#[from] ProtoError),
    #[error("the attempt ended")]
    Ended,
}

/// Sends frames to the supervisor from any thread.
#[derive(Clone)]
pub struct ClientWriter {
    stream: Arc<Mutex<UnixStream>>,
}

impl ClientWriter {
    pub fn send(&self, msg: &Message) -> std::io::Result<()> {
        let mut s = self.stream.lock().unwrap_or_else(|e| e.into_inner());
        write_message(&mut *s, msg)
    }
}

pub struct SupervisorClient {
    reader: FrameReader<UnixStream>,
    writer: ClientWriter,
}

impl SupervisorClient {
    pub fn connect(socket: &Path) -> Result<SupervisorClient, SupervisorError> {
        let not_running = |source| SupervisorError::NotRunning {
            path: socket.display().to_string(),
            source,
        };
        let stream = UnixStream::connect(socket).map_err(not_running)?;
        let read_half = stream.try_clone().map_err(not_running)?;
        let _ = read_half.set_read_timeout(Some(Duration::from_secs(10)));
        let mut client = SupervisorClient {
            reader: FrameReader::new(read_half),
            writer: ClientWriter {
                stream: Arc::new(Mutex::new(stream)),
            },
        };
        client
            .writer
            .send(&Message::Hello(Hello {
                version: PROTOCOL_VERSION,
                software: format!("berth {}", env!("CARGO_PKG_VERSION")),
            }))
            .map_err(not_running)?;
        match client.reader.read_message()? {
            Message::Hello(h) if h.version == PROTOCOL_VERSION => {}
            Message::Hello(h) => return Err(ProtoError::Version { theirs: h.version }.into()),
            _ => return Err(ProtoError::UnknownKind { kind: 0 }.into()),
        }
        let _ = client.reader.get_ref().set_read_timeout(None);
        Ok(client)
    }

    pub fn writer(&self) -> ClientWriter {
        self.writer.clone()
    }

    /// The next frame from the supervisor (blocking).
    pub fn recv(&mut self) -> Result<Message, SupervisorError> {
        match self.reader.read_message() {
            Ok(Message::PowerOff) | Err(ProtoError::Closed) => Err(SupervisorError::Ended),
            Ok(m) => Ok(m),
            Err(e) => Err(e.into()),
        }
    }

    /// Attaches to the attempt's terminal: recent output, then live output arrives through
    /// [`SupervisorClient::recv`] as `Stdout { id: 0 }`; send `Stdin`/`Resize` with id 0.
    pub fn attach(&self, size: Option<WinSize>) -> std::io::Result<()> {
        self.writer.send(&Message::Attach { size })
    }

    /// Runs another command in the attempt's VM and streams its output into `io`.
    pub fn exec(
        &mut self,
        request: ExecRequest,
        io: &mut dyn ExecIo,
    ) -> Result<ExitStatus, SupervisorError> {
        self.exec_with_stdin(request, None, io)
    }

    /// As [`Self::exec`], with `stdin` sent to the command as it is read (then its end).
    pub fn exec_with_stdin(
        &mut self,
        request: ExecRequest,
        stdin: Option<Box<dyn std::io::Read + Send>>,
        io: &mut dyn ExecIo,
    ) -> Result<ExitStatus, SupervisorError> {
        let send_err = |source| SupervisorError::NotRunning {
            path: String::from("the supervisor socket"),
            source,
        };
        self.writer
            .send(&Message::Exec { id: 1, request })
            .map_err(send_err)?;
        match stdin {
            None => self
                .writer
                .send(&Message::StdinEof { id: 1 })
                .map_err(send_err)?,
            Some(mut input) => {
                let writer = self.writer.clone();
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 16 * 1024];
                    loop {
                        match input.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                let data = buf[..n].to_vec();
                                if writer.send(&Message::Stdin { id: 1, data }).is_err() {
                                    return;
                                }
                            }
                        }
                    }
                    let _ = writer.send(&Message::StdinEof { id: 1 });
                });
            }
        }
        loop {
            match self.recv()? {
                Message::Stdout { id: 1, data } => io.stdout(&data),
                Message::Stderr { id: 1, data } => io.stderr(&data),
                Message::Error { id: 1, message } => io.error(&message),
                Message::Exited { id: 1, status } => return Ok(status),
                _ => {}
            }
        }
    }

    /// Asks the supervisor to stop the attempt (orderly VM power-off).
    pub fn stop(&self) -> std::io::Result<()> {
        self.writer.send(&Message::PowerOff)
    }
}

/// Connects to a live attempt's supervisor; for one that is not running, an error that says
/// what it is instead ("41.1 exited (0); see `berth logs 41.1`"), never a socket path.
pub fn connect_live(
    store: &crate::Store,
    id: berth_db::AttemptId,
) -> Result<SupervisorClient, crate::task::TaskError> {
    let rec = store.db()?.attempt(id)?;
    let not_running = |rec: &berth_db::AttemptRecord| {
        let how = match (rec.state, rec.exit_code) {
            (berth_db::AttemptState::Exited, Some(code)) => format!("exited ({code})"),
            (state, _) => state.to_string(),
        };
        crate::task::TaskError::Refused(format!(
            "{id} {how}; see `berth logs {id}` (or `berth start {id}` to boot it again)"
        ))
    };
    if !rec.state.is_live() {
        return Err(not_running(&rec));
    }
    SupervisorClient::connect(&store.socket(id)).map_err(|_| {
        // It ended between the two reads, or its supervisor is gone: what the record says.
        let rec = store.db().and_then(|db| db.attempt(id));
        match rec {
            Ok(r) if !r.state.is_live() => not_running(&r),
            Ok(r) if r.supervisor_pid.is_some() => crate::task::TaskError::Refused(format!(
                "{id} runs under `berth run` (pid {}), which shows its output in that \
                 terminal; attach and exec work on attempts started with `berth task new` \
                 (`berth stop {id}` stops it)",
                r.supervisor_pid.unwrap_or(0)
            )),
            _ => crate::task::TaskError::Refused(format!(
                "{id} is {} but its supervisor does not answer; `berth ls` checks on it",
                rec.map(|r| r.state.to_string()).unwrap_or_default()
            )),
        }
    })
}
