//! The host's client for the guest agent.
//!
//! The guest is untrusted, so everything here is bounded: frames are capped by
//! `berth-proto`, a reader thread feeds a bounded queue (memory stays constant however fast
//! the guest writes), output is rate-limited, and every wait has a deadline. Any protocol
//! violation ends the session with an error naming what the guest did.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_proto::{
    ExecRequest, ExitStatus, FrameReader, Hello, MAX_CHUNK, Message, PROTOCOL_VERSION, ProtoError,
    write_message,
};
use thiserror::Error;

/// Frames buffered between the reader thread and the consumer.
const QUEUE_FRAMES: usize = 64;
/// Guest output the host accepts per second; beyond it the reader slows down (backpressure).
pub const MAX_OUTPUT_BYTES_PER_SEC: u64 = 64 * 1024 * 1024;
/// Silence after which the host pings the agent.
const PING_AFTER: Duration = Duration::from_secs(5);

#[derive(Debug, Error)]
pub enum AgentError {
    #[error(
        "the guest agent did not answer within {}s of boot; the guest may have failed to \
         start (guest console: {console})", .waited.as_secs()
    )]
    BootTimeout { waited: Duration, console: String },
    #[error(
        "the guest stopped answering for {}s; it was stopped (guest console: {console})",
        .waited.as_secs()
    )]
    Unresponsive { waited: Duration, console: String },
    #[error(
        "the guest broke the agent protocol ({source}); the guest is misbehaving or is not \
         running berth-agent, so it was stopped (guest console: {console})"
    )]
    Protocol {
        #[source]
        source: ProtoError,
        console: String,
    },
    #[error(
        "the guest agent speaks protocol version {theirs}, this berth speaks {PROTOCOL_VERSION}; \
         rebuild the image with `berth image build`"
    )]
    Version { theirs: u32 },
    #[error(
        "the guest closed the agent channel (the VM shut down or crashed; guest console: {console})"
    )]
    Closed { console: String },
    #[error("cannot reach the agent socket {path}: {source}")]
    Connect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the guest agent sent an unexpected {kind} message; the guest is misbehaving, so it \
         was stopped (guest console: {console})"
    )]
    Unexpected { kind: &'static str, console: String },
    #[error("interrupted")]
    Interrupted,
}

/// Where a command's output goes, and what may interrupt the wait.
pub trait ExecIo {
    fn stdout(&mut self, data: &[u8]);
    fn stderr(&mut self, data: &[u8]);
    /// The agent could not run the command (e.g. no such program).
    fn error(&mut self, message: &str);
    /// Polled while waiting: `true` ends the exec with [`AgentError::Interrupted`].
    fn interrupted(&mut self) -> bool {
        false
    }
}

/// A handle to send stdin/signals/resizes for the exec in progress, from another thread.
#[derive(Clone)]
pub struct ExecControl {
    writer: Arc<Mutex<UnixStream>>,
    id: u32,
}

impl ExecControl {
    /// The exec's id on the agent channel.
    pub fn id(&self) -> u32 {
        self.id
    }

    pub fn stdin(&self, data: &[u8]) -> std::io::Result<()> {
        for chunk in data.chunks(MAX_CHUNK) {
            self.send(&Message::Stdin {
                id: self.id,
                data: chunk.to_vec(),
            })?;
        }
        Ok(())
    }
    pub fn close_stdin(&self) -> std::io::Result<()> {
        self.send(&Message::StdinEof { id: self.id })
    }
    pub fn signal(&self, signal: i32) -> std::io::Result<()> {
        self.send(&Message::Signal {
            id: self.id,
            signal,
        })
    }
    pub fn resize(&self, rows: u16, cols: u16) -> std::io::Result<()> {
        self.send(&Message::Resize {
            id: self.id,
            size: berth_proto::WinSize { rows, cols },
        })
    }
    fn send(&self, msg: &Message) -> std::io::Result<()> {
        let mut w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        write_message(&mut *w, msg)
    }
}

/// How long one write to the guest agent may block.
pub const AGENT_WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts execs on the agent from any thread.
#[derive(Clone)]
pub struct AgentSender {
    writer: Arc<Mutex<UnixStream>>,
    next_id: Arc<AtomicU32>,
}

impl AgentSender {
    /// Starts `request`; its output arrives through [`AgentClient::recv`] under the
    /// returned exec's id.
    pub fn start(&self, request: ExecRequest) -> std::io::Result<ExecControl> {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let control = ExecControl {
            writer: self.writer.clone(),
            id,
        };
        control.send(&Message::Exec { id, request })?;
        Ok(control)
    }
}

pub struct AgentClient {
    writer: Arc<Mutex<UnixStream>>,
    inbox: Receiver<Result<Message, ProtoError>>,
    console: String,
    next_id: Arc<AtomicU32>,
    next_nonce: u32,
    unresponsive_after: Duration,
    last_heard: Instant,
    pinged: bool,
    pub agent_software: String,
}

impl AgentClient {
    /// Connects to the agent socket and waits for the agent's hello.
    ///
    /// `alive` is polled while waiting: return `false` when the VM is gone to stop early.
    pub fn connect(
        socket: &Path,
        console_log: &Path,
        boot_timeout: Duration,
        alive: &mut dyn FnMut() -> bool,
    ) -> Result<AgentClient, AgentError> {
        let console = console_log.display().to_string();
        let stream = UnixStream::connect(socket).map_err(|source| AgentError::Connect {
            path: socket.to_path_buf(),
            source,
        })?;
        let read_half = stream.try_clone().map_err(|source| AgentError::Connect {
            path: socket.to_path_buf(),
            source,
        })?;
        // A guest that stops reading must not wedge the host: a write that cannot finish in
        // time fails (and with it the exec or the ping waiting on the same lock).
        let _ = stream.set_write_timeout(Some(AGENT_WRITE_TIMEOUT));
        let (tx, inbox) = sync_channel(QUEUE_FRAMES);
        std::thread::spawn(move || read_frames(read_half, tx));
        let mut client = AgentClient {
            writer: Arc::new(Mutex::new(stream)),
            inbox,
            console,
            next_id: Arc::new(AtomicU32::new(1)),
            next_nonce: 1,
            unresponsive_after: boot_timeout.max(Duration::from_secs(30)),
            last_heard: Instant::now(),
            pinged: false,
            agent_software: String::new(),
        };
        client.send(&Message::Hello(Hello {
            version: PROTOCOL_VERSION,
            software: format!("berth {}", env!("CARGO_PKG_VERSION")),
        }))?;
        let deadline = Instant::now() + boot_timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(AgentError::BootTimeout {
                    waited: boot_timeout,
                    console: client.console.clone(),
                });
            }
            match client
                .inbox
                .recv_timeout(left.min(Duration::from_millis(100)))
            {
                Ok(Ok(Message::Hello(h))) => {
                    if h.version != PROTOCOL_VERSION {
                        return Err(AgentError::Version { theirs: h.version });
                    }
                    client.agent_software = h.software;
                    return Ok(client);
                }
                Ok(Ok(other)) => return Err(client.unexpected(&other)),
                Ok(Err(e)) => return Err(client.map_read_error(e)),
                Err(RecvTimeoutError::Timeout) => {
                    if !alive() {
                        return Err(AgentError::Closed {
                            console: client.console.clone(),
                        });
                    }
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(AgentError::Closed {
                        console: client.console.clone(),
                    });
                }
            }
        }
    }

    /// Silence after which a running guest counts as hung (default: 30 s).
    pub fn set_unresponsive_after(&mut self, d: Duration) {
        self.unresponsive_after = d;
        self.last_heard = Instant::now();
    }

    /// A handle that starts execs from other threads.
    pub fn sender(&self) -> AgentSender {
        AgentSender {
            writer: self.writer.clone(),
            next_id: self.next_id.clone(),
        }
    }

    /// Starts `request` and returns a handle for stdin/signals/resizes; then call
    /// [`AgentClient::wait`] to stream its output until it ends.
    pub fn start(&mut self, request: ExecRequest) -> Result<ExecControl, AgentError> {
        self.sender()
            .start(request)
            .map_err(|_| AgentError::Closed {
                console: self.console.clone(),
            })
    }

    /// The next message from the agent, or `None` after `timeout` of quiet. Pings the agent
    /// after 5 s of silence and fails with [`AgentError::Unresponsive`] once it has been
    /// silent for the hang timeout. Protocol violations and a closed channel are errors.
    pub fn recv(&mut self, timeout: Duration) -> Result<Option<Message>, AgentError> {
        match self.inbox.recv_timeout(timeout) {
            Ok(Ok(msg)) => {
                self.last_heard = Instant::now();
                self.pinged = false;
                match msg {
                    Message::Pong { .. } => Ok(None),
                    Message::Hello(_) | Message::Ping { .. } => Err(self.unexpected(&msg)),
                    other => Ok(Some(other)),
                }
            }
            Ok(Err(e)) => Err(self.map_read_error(e)),
            Err(RecvTimeoutError::Disconnected) => Err(AgentError::Closed {
                console: self.console.clone(),
            }),
            Err(RecvTimeoutError::Timeout) => {
                let silent = self.last_heard.elapsed();
                if silent >= self.unresponsive_after {
                    return Err(AgentError::Unresponsive {
                        waited: silent,
                        console: self.console.clone(),
                    });
                }
                if silent >= PING_AFTER && !self.pinged {
                    let nonce = self.next_nonce;
                    self.next_nonce += 1;
                    self.send(&Message::Ping { nonce })?;
                    self.pinged = true;
                }
                Ok(None)
            }
        }
    }

    /// Streams the exec's output into `io` until it exits.
    pub fn wait(
        &mut self,
        exec: &ExecControl,
        io: &mut dyn ExecIo,
    ) -> Result<ExitStatus, AgentError> {
        loop {
            if io.interrupted() {
                return Err(AgentError::Interrupted);
            }
            match self.recv(Duration::from_millis(100))? {
                Some(Message::Stdout { id, data }) if id == exec.id => io.stdout(&data),
                Some(Message::Stderr { id, data }) if id == exec.id => io.stderr(&data),
                Some(Message::Error { id, message }) if id == exec.id => io.error(&message),
                Some(Message::Exited { id, status }) if id == exec.id => return Ok(status),
                // Another exec's messages: not ours to show.
                Some(
                    Message::Started { .. }
                    | Message::Stdout { .. }
                    | Message::Stderr { .. }
                    | Message::Error { .. }
                    | Message::Exited { .. },
                ) => {}
                Some(other) => return Err(self.unexpected(&other)),
                None => {}
            }
        }
    }

    /// Runs `request` to completion.
    pub fn exec(
        &mut self,
        request: ExecRequest,
        io: &mut dyn ExecIo,
    ) -> Result<ExitStatus, AgentError> {
        let exec = self.start(request)?;
        let _ = exec.close_stdin();
        self.wait(&exec, io)
    }

    /// Asks the agent to sync and power the VM off. The VM exits shortly after.
    pub fn power_off(&mut self) {
        let _ = self.send(&Message::PowerOff);
    }

    fn send(&self, msg: &Message) -> Result<(), AgentError> {
        let mut w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        write_message(&mut *w, msg)
            .and_then(|_| w.flush())
            .map_err(|_| AgentError::Closed {
                console: self.console.clone(),
            })
    }

    fn protocol(&self, source: ProtoError) -> AgentError {
        AgentError::Protocol {
            source,
            console: self.console.clone(),
        }
    }

    fn unexpected(&self, msg: &Message) -> AgentError {
        AgentError::Unexpected {
            kind: msg.kind_name(),
            console: self.console.clone(),
        }
    }

    fn map_read_error(&self, e: ProtoError) -> AgentError {
        use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset};
        match e {
            ProtoError::Io(io)
                if matches!(io.kind(), ConnectionReset | BrokenPipe | ConnectionAborted) =>
            {
                AgentError::Closed {
                    console: self.console.clone(),
                }
            }
            ProtoError::Closed => AgentError::Closed {
                console: self.console.clone(),
            },
            other => self.protocol(other),
        }
    }
}

/// Reader thread: decodes frames into the bounded queue, throttling guest output.
fn read_frames(stream: UnixStream, tx: std::sync::mpsc::SyncSender<Result<Message, ProtoError>>) {
    let mut reader = FrameReader::new(stream);
    let mut window_start = Instant::now();
    let mut window_bytes: u64 = 0;
    loop {
        let msg = reader.read_message();
        let stop = msg.is_err();
        if let Ok(Message::Stdout { data, .. } | Message::Stderr { data, .. }) = &msg {
            window_bytes += data.len() as u64;
            if window_bytes > MAX_OUTPUT_BYTES_PER_SEC {
                let rest = Duration::from_secs(1).saturating_sub(window_start.elapsed());
                std::thread::sleep(rest);
            }
            if window_start.elapsed() >= Duration::from_secs(1) {
                window_start = Instant::now();
                window_bytes = 0;
            }
        }
        if tx.send(msg).is_err() || stop {
            return;
        }
    }
}
