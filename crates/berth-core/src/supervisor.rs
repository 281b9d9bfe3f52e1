//! The attempt supervisor: one small detached process per running attempt (like Lima's host
//! agent). It owns the attempt's VM (QEMU, virtiofsd) and its agent channel, runs the
//! attempt's command under a PTY, writes everything the command prints to `output.log`, and
//! serves `supervisor.sock` for the CLI and the app: attach (the command's terminal), exec
//! (more commands), stop. Closing those clients never stops the attempt.
//!
//! Clients speak `berth-proto` frames (same caps as the agent channel): `Hello`, then
//! `Attach`, `Exec`, `Stdin`, `StdinEof`, `Resize`, `Signal`, `PowerOff` (stop). Exec ids are
//! the client's own; the supervisor maps them to agent ids. Id 0 is the attempt's command.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_db::{AttemptId, AttemptState};
use berth_egress::{Approval, Approver};
use berth_proto::{FrameReader, Hello, Message, PROTOCOL_VERSION, WinSize, write_message};
use berth_vm::agent::{AgentError, AgentSender, ExecControl};
use berth_vm::logfile::RotatingLog;
use berth_vm::{Hypervisor, RunningVm};
use serde_json::json;

use crate::task::{
    TaskError, VmSettings, attempt_request, audit, boot_attempt, set_failed, set_state,
};
use crate::{Clock, Store};

/// The error an attempt the user stopped records (so front ends can tell it from a crash).
pub const STOPPED_BY_USER: &str = "stopped by the user";

/// How much recent output an attaching client is sent first.
const REPLAY_BYTES: u64 = 64 * 1024;
/// Frames queued per client; a client that falls further behind is disconnected.
const CLIENT_QUEUE: usize = 1024;
/// The PTY size until a client says otherwise.
const DEFAULT_SIZE: WinSize = WinSize { rows: 24, cols: 80 };

/// One client's outgoing queue. A client that falls behind (its queue is full: it stopped
/// reading) is disconnected, not silently dropped from the list with its socket left open
/// (its terminal would freeze and it would miss approval questions).
#[derive(Clone)]
struct Sink {
    tx: SyncSender<Message>,
    conn: Arc<UnixStream>,
}

impl Sink {
    fn try_send(&self, msg: Message) -> Result<(), TrySendError<Message>> {
        let sent = self.tx.try_send(msg);
        if let Err(TrySendError::Full(_)) = &sent {
            let _ = self.conn.shutdown(std::net::Shutdown::Both);
        }
        sent
    }
}

/// How long a write to a client may block before the client is dropped.
const CLIENT_WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Open questions to the attached user about unlisted names.
#[derive(Default)]
struct Desk {
    attached: Mutex<Vec<Sink>>,
    pending: Mutex<HashMap<u32, Pending>>,
    next: AtomicU32,
    /// While a question waits: a file naming what it is about (`berth ls` shows the attempt
    /// as waiting for approval); gone when none waits.
    marker: Option<std::path::PathBuf>,
    /// A `berth run` follows this attempt and has not attached yet (it can only once the
    /// command runs): a question asked before then waits for it instead of being denied.
    awaits_follower: AtomicBool,
}

impl Desk {
    /// Writes (or removes) the waiting marker from the questions open now.
    fn mark(&self, pending: &HashMap<u32, Pending>) {
        let Some(path) = &self.marker else { return };
        if pending.is_empty() {
            let _ = std::fs::remove_file(path);
        } else {
            let mut open: Vec<String> = pending
                .values()
                .map(|(_, host, port)| format!("{host}:{port}"))
                .collect();
            open.sort();
            let _ = std::fs::write(path, open.join("\n"));
        }
    }
}

/// An approval request waiting for its answer: where to send it, and what it was about.
type Pending = (tokio::sync::oneshot::Sender<Approval>, String, u16);

impl Desk {
    /// The proxy's approver: asks every attached client; with nobody attached, denies.
    fn approver(self: &Arc<Self>) -> Approver {
        let desk = self.clone();
        Arc::new(move |host: &str, port: u16| {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let attached = desk.attached.lock().unwrap_or_else(|e| e.into_inner());
            if attached.is_empty() && !desk.awaits_follower.load(Ordering::SeqCst) {
                let _ = tx.send(Approval::Deny("nobody is attached to approve it".into()));
                return rx;
            }
            let id = desk.next.fetch_add(1, Ordering::SeqCst) + 1;
            {
                let mut pending = desk.pending.lock().unwrap_or_else(|e| e.into_inner());
                pending.insert(id, (tx, host.to_string(), port));
                desk.mark(&pending);
            }
            for sink in attached.iter() {
                let _ = sink.try_send(Message::ApprovalRequest {
                    id,
                    host: host.to_string(),
                    port,
                });
            }
            rx
        })
    }
}

impl Desk {
    /// Tells every attached client that question `id` needs no answer any more, so other
    /// windows and terminals drop their prompt.
    fn closed(&self, id: u32, decision: &str) {
        for sink in self
            .attached
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = sink.try_send(Message::ApprovalClosed {
                id,
                decision: decision.to_string(),
            });
        }
    }

    /// Forgets the questions the proxy stopped waiting for (its 60 s ran out), telling the
    /// attached clients.
    fn expire(&self) {
        let expired: Vec<u32> = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            let gone: Vec<u32> = pending
                .iter()
                .filter(|(_, (tx, _, _))| tx.is_closed())
                .map(|(id, _)| *id)
                .collect();
            for id in &gone {
                pending.remove(id);
            }
            self.mark(&pending);
            gone
        };
        for id in expired {
            self.closed(id, "expired");
        }
    }

    /// Sends a newly attached client the questions still waiting for an answer (one asked
    /// before it attached, or while the app was closed).
    fn ask_again(&self, sink: &Sink) {
        self.expire();
        let pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let mut open: Vec<_> = pending.iter().collect();
        open.sort_by_key(|(id, _)| **id);
        for (id, (_, host, port)) in open {
            let _ = sink.try_send(Message::ApprovalRequest {
                id: *id,
                host: host.clone(),
                port: *port,
            });
        }
    }
}

/// `request` with the attempt's environment under the client's own variables (the
/// client's win where both name one, e.g. its TERM).
fn with_attempt_env(
    base: &[(String, String)],
    mut request: berth_proto::ExecRequest,
) -> berth_proto::ExecRequest {
    let mut env: Vec<(String, String)> = base
        .iter()
        .filter(|(k, _)| !request.env.iter().any(|(c, _)| c == k))
        .cloned()
        .collect();
    env.append(&mut request.env);
    request.env = env;
    request
}

/// What the client threads share with the main loop.
struct Hub {
    desk: Arc<Desk>,
    /// agent exec id -> (client sink, client's id for it)
    execs: Mutex<HashMap<u32, (Sink, u32)>>,
    main: ExecControl,
    /// The attempt command's environment (proxy, prompt, caches, secrets' phantoms): every
    /// `berth exec` starts from it, so a command there reaches what the attempt reaches.
    env: Vec<(String, String)>,
    agent: AgentSender,
    stop: Arc<AtomicBool>,
    store: Store,
    id: AttemptId,
    clock: Clock,
    /// The attached terminals' sizes; the PTY follows the latest (see `pty_sizes.rs`).
    sizes: Mutex<crate::pty_sizes::TerminalSizes>,
    /// Numbers the clients, for `sizes`.
    clients: std::sync::atomic::AtomicU64,
}

/// Runs the attempt until its command exits or it is stopped. `stop` is set by a client's
/// stop request or by the process's SIGTERM handler.
pub fn supervise<H: Hypervisor>(
    store: &Store,
    hv: &H,
    settings: &VmSettings,
    id: AttemptId,
    clock: Clock,
    stop: Arc<AtomicBool>,
) -> Result<AttemptState, TaskError> {
    let (rec, desk) = begin(store, id, clock)?;
    // Until its socket is up (after the boot), `berth stop` asks through a file.
    let _watch = StopFileWatch::start(store.stop_request(id), stop.clone());
    let mut settings = settings.clone();
    settings.boot.cancel = Some(stop.clone());
    let settings = &settings;
    // Building the environment can take minutes: its progress goes where the attempt's
    // output goes (`berth logs`, attach, the app's card).
    let mut env_log = crate::output_log::open(&store.output_log(id)).ok();
    let mut progress = |line: &str| {
        if let Some(log) = env_log.as_mut() {
            let _ = log.write_all(format!("[berth] {line}\r\n").as_bytes());
        }
    };
    let booted = boot_attempt(
        store,
        hv,
        settings,
        &rec,
        clock,
        Some(desk.approver()),
        &mut progress,
    );
    let (session, proxy) = match booted {
        // Recorded as stopped by boot_attempt.
        Err(_) if stop.load(Ordering::SeqCst) => return Ok(AttemptState::Stopped),
        other => other?,
    };
    drop(env_log);
    // The pool keeps VMs of this attempt's shape waiting (its environment is built now).
    if let Ok(exe) = std::env::current_exe() {
        let _ = crate::pool::refill_after(&exe, store, &settings.image, &rec, settings.cpus);
    }
    run_booted(store, &rec, session, proxy, desk, clock, stop)
}

/// A pooled VM takes attempt `id` (see pool.rs): its workspace is already where the VM's
/// share is; the attempt's proxy binds the socket the VM's network bridge already points at
/// (`vm_name`'s run directory), then the command runs as in [`supervise`].
pub(crate) fn supervise_pooled<V: RunningVm>(
    store: &Store,
    run_root: &Path,
    vm_name: &str,
    mut session: berth_vm::session::VmSession<V>,
    id: AttemptId,
    clock: Clock,
    stop: Arc<AtomicBool>,
) -> Result<AttemptState, TaskError> {
    let (rec, desk) = match begin(store, id, clock) {
        Ok(r) => r,
        Err(e) => {
            session.kill();
            return Err(e);
        }
    };
    let proxy = (|| -> Result<Option<berth_egress::EgressProxy>, TaskError> {
        let policy = berth_egress::Policy {
            max_connections: Some(crate::limits::attempt_limits(store, id).connections),
            ..crate::egress::attempt_policy(&rec.policy)
        };
        let uses = crate::secrets::attempt_secrets(&rec.secrets);
        let sink = crate::egress::audit_sink(store, id, clock);
        let secrets = crate::secrets::gateway_bindings(store, &uses)?;
        let proxy = crate::egress::start_proxy(
            run_root,
            vm_name,
            &policy,
            sink,
            Some(desk.approver()),
            secrets,
        )?;
        if let Some(pem) = proxy.as_ref().and_then(|p| p.ca_pem()) {
            crate::secrets::install_guest_ca(&mut session.agent, pem)?;
        }
        Ok(proxy)
    })();
    let proxy = match proxy {
        Ok(p) => p,
        Err(e) => {
            session.kill();
            let mut db = store.db()?;
            set_failed(&mut db, clock, id, &e.to_string())?;
            return Err(e);
        }
    };
    run_booted(store, &rec, session, proxy, desk, clock, stop)
}

/// Sets `stop` when the attempt's stop-request file appears (`berth stop` writes it when the
/// supervisor has no socket yet, i.e. while it boots); ends when dropped.
struct StopFileWatch(Arc<AtomicBool>);

impl StopFileWatch {
    fn start(file: std::path::PathBuf, stop: Arc<AtomicBool>) -> StopFileWatch {
        let done = Arc::new(AtomicBool::new(false));
        let watching = done.clone();
        std::thread::spawn(move || {
            while !watching.load(Ordering::SeqCst) {
                if file.exists() {
                    stop.store(true, Ordering::SeqCst);
                    let _ = std::fs::remove_file(&file);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        StopFileWatch(done)
    }
}

impl Drop for StopFileWatch {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// The supervisor's claim on the attempt: its pid in the record, the state booting, and the
/// desk where approval questions wait.
fn begin(
    store: &Store,
    id: AttemptId,
    clock: Clock,
) -> Result<(berth_db::AttemptRecord, Arc<Desk>), TaskError> {
    let mut db = store.db()?;
    let pid = std::process::id();
    let started = berth_vm::rundir::start_time(pid);
    db.update_attempt(id, |a| {
        a.supervisor_pid = Some(pid);
        a.supervisor_start = started;
    })?;
    let rec = db.attempt(id)?;
    let rec = if rec.state == AttemptState::Booting {
        rec
    } else {
        set_state(
            &mut db,
            clock,
            id,
            AttemptState::Booting,
            json!({"supervisor_pid": pid}),
        )?
    };
    let desk = Arc::new(Desk {
        marker: Some(store.waiting_marker(id)),
        ..Desk::default()
    });
    let _ = std::fs::remove_file(store.waiting_marker(id));
    Ok((rec, desk))
}

/// From a booted VM with its proxy to the attempt's end: the follow-up's step commit, the
/// command, the clients, the repo's tests, the final state.
fn run_booted<V: RunningVm>(
    store: &Store,
    rec: &berth_db::AttemptRecord,
    mut session: berth_vm::session::VmSession<V>,
    proxy: Option<berth_egress::EgressProxy>,
    desk: Arc<Desk>,
    clock: Clock,
    stop: Arc<AtomicBool>,
) -> Result<AttemptState, TaskError> {
    let id = rec.id;
    let mut db = store.db()?;
    let title = store.db()?.task(id.task)?.title;
    // A follow-up: what the earlier runs left becomes a commit of its own first.
    if let Some(previous) = crate::followup::take_followup(store, id, &title) {
        let _ = crate::followup::commit_step(&mut session.agent, &previous);
    }
    let prompt = crate::followup::current_prompt(store, id, &title);
    // `berth run` follows this attempt from its log and gives it no terminal, as it gives
    // none to the attempts it boots itself; everyone else gets one.
    let foreground = std::fs::remove_file(store.foreground_marker(id)).is_ok();
    let request = attempt_request(store, rec, &prompt, (!foreground).then_some(DEFAULT_SIZE));
    desk.awaits_follower.store(foreground, Ordering::SeqCst);
    let main = match session.agent.start(request.clone()) {
        Ok(m) => m,
        Err(e) => {
            session.kill();
            set_failed(&mut db, clock, id, &e.to_string())?;
            return Err(berth_vm::session::SessionError::from(e).into());
        }
    };
    set_state(&mut db, clock, id, AttemptState::Running, json!({}))?;
    audit(
        &mut db,
        clock,
        id,
        "command",
        json!({"phase": "start", "exec": "main", "argv": request.argv, "cwd": request.cwd}),
    )?;

    let log_path = store.output_log(id);
    let mut limit_watch = crate::limits::LimitWatch::new(
        store,
        id,
        session
            .vm
            .as_ref()
            .and_then(|vm| vm.console_log().parent().map(Path::to_path_buf))
            .as_deref(),
    );
    let log = crate::output_log::open_capped(&log_path, limit_watch.limits().output / 2)
        .map_err(|e| TaskError::Refused(format!("cannot write {}: {e}", log_path.display())))?;
    // Without a terminal nothing turns a line end into CR LF: the log gets it as a
    // terminal would show it, like `berth run`'s own attempts' logs.
    let mut log = LogSink {
        log,
        crlf: foreground,
        after_cr: false,
    };
    let hub = Arc::new(Hub {
        desk: desk.clone(),
        execs: Mutex::new(HashMap::new()),
        main: main.clone(),
        env: request.env.clone(),
        agent: session.agent.sender(),
        stop: stop.clone(),
        store: store.clone(),
        id,
        clock,
        sizes: Mutex::default(),
        clients: Default::default(),
    });
    let socket = store.socket(id);
    let _ = std::fs::remove_file(&socket);
    // Bound under another name, made 0600, then renamed into place: the socket never
    // appears with the umask's looser mode (the directory is 0700 already).
    let staging = socket.with_extension("sock.new");
    let _ = std::fs::remove_file(&staging);
    let listener = UnixListener::bind(&staging)
        .and_then(|l| {
            std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(0o600))?;
            std::fs::rename(&staging, &socket)?;
            Ok(l)
        })
        .map_err(|e| TaskError::Refused(format!("cannot listen on {}: {e}", socket.display())))?;
    {
        let hub = hub.clone();
        std::thread::spawn(move || accept_clients(listener, hub));
    }

    let watching = crate::live_changes::WatchGuard(Arc::new(AtomicBool::new(false)));
    crate::live_changes::watch(store.clone(), id, watching.0.clone());
    let mut last_check = std::time::Instant::now();
    let mut input = crate::input_wait::InputWatch::new(store.input_marker(id));
    let outcome = loop {
        if stop.load(Ordering::SeqCst) {
            break Outcome::Stopped;
        }
        if last_check.elapsed() >= Duration::from_millis(500) {
            last_check = std::time::Instant::now();
            if let Some(problem) = session.vm.as_mut().and_then(|vm| vm.problem()) {
                break Outcome::Broken(problem);
            }
            desk.expire();
            input.tick(last_check);
            if let Some(hit) = limit_watch.check() {
                break Outcome::Limit(hit);
            }
        }
        match session.agent.recv(Duration::from_millis(100)) {
            Ok(None) => {}
            Ok(Some(msg)) => {
                if let Message::Stdout { id, data } | Message::Stderr { id, data } = &msg
                    && *id == main.id()
                {
                    input.output(data);
                }
                if let Some(end) = route(&hub, msg, &mut log, &main) {
                    break end;
                }
            }
            // The channel broke: if QEMU is gone, why it went is the better answer.
            Err(e) => match session.vm_problem(Duration::from_secs(2)) {
                Some(problem) => break Outcome::Broken(problem),
                None => break Outcome::Failed(e),
            },
        }
    };
    let _ = std::fs::remove_file(&socket);
    drop(input);
    drop(watching);
    let final_state = match outcome {
        Outcome::Exited(code) => {
            audit(
                &mut db,
                clock,
                id,
                "command",
                json!({"phase": "end", "exec": "main", "exit_code": code}),
            )?;
            if let Some(plan) = crate::repo_test::attempt_plan(store, id) {
                run_repo_test(&hub, &mut session.agent, &plan, &mut log, code);
            }
            session.shutdown();
            set_state(
                &mut db,
                clock,
                id,
                AttemptState::Exited,
                json!({"exit_code": code}),
            )?;
            // Only now, with the guest gone and the state saying so, is the workspace read.
            let _ = crate::review::record_changes(store, id);
            AttemptState::Exited
        }
        Outcome::Stopped => {
            session.shutdown();
            set_state(
                &mut db,
                clock,
                id,
                AttemptState::Stopped,
                json!({"error": STOPPED_BY_USER}),
            )?;
            let _ = crate::review::record_changes(store, id);
            AttemptState::Stopped
        }
        Outcome::Limit(hit) => {
            // At once: a guest filling a disk is not asked to stop filling it.
            session.kill();
            crate::limits::record_stop(&mut db, clock, id, &hit)?;
            let _ = crate::review::record_changes(store, id);
            AttemptState::Stopped
        }
        Outcome::Failed(e) => {
            session.keep_console();
            session.kill();
            set_failed(&mut db, clock, id, &e.to_string())?;
            AttemptState::Failed
        }
        Outcome::Broken(problem) => {
            session.keep_console();
            session.kill();
            let error = format!("{problem}; the VM was stopped (`berth start` boots it again)");
            set_failed(&mut db, clock, id, &error)?;
            AttemptState::Failed
        }
    };
    drop(proxy);
    // Tell attached clients the attempt is over (their sockets close when we exit).
    for sink in hub
        .desk
        .attached
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .drain(..)
    {
        let _ = sink.try_send(Message::PowerOff);
    }
    Ok(final_state)
}

/// The attempt's output log, with CR added before a bare LF when the command has no
/// terminal (a terminal's line discipline adds it otherwise).
struct LogSink {
    log: RotatingLog,
    crlf: bool,
    /// The last byte written was a CR (its LF, if next, needs none).
    after_cr: bool,
}

impl std::io::Write for LogSink {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if !self.crlf {
            return self.log.write(data);
        }
        self.log.write_all(&crlf(data, self.after_cr))?;
        if let Some(&last) = data.last() {
            self.after_cr = last == b'\r';
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.log.flush()
    }
}

/// `data` with every LF not already after a CR turned into CR LF (`after_cr`: the byte
/// before `data` was a CR).
fn crlf(data: &[u8], after_cr: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 16);
    let mut prev_cr = after_cr;
    for &b in data {
        if b == b'\n' && !prev_cr {
            out.push(b'\r');
        }
        out.push(b);
        prev_cr = b == b'\r';
    }
    out
}

enum Outcome {
    Exited(i32),
    Stopped,
    /// A limit of the attempt's (limits.rs) was reached.
    Limit(crate::limits::LimitHit),
    Failed(AgentError),
    Broken(String),
}

/// After the agent: the repo's test command, its output where the agent's went, its result
/// audited (`berth compare` and the app's strip read it from there).
fn run_repo_test(
    hub: &Hub,
    agent: &mut berth_vm::agent::AgentClient,
    plan: &crate::repo_test::TestPlan,
    log: &mut LogSink,
    code: i32,
) {
    let say = |log: &mut LogSink, data: &[u8]| {
        let _ = log.write_all(data);
        broadcast(hub, data);
    };
    let head = format!(
        "\r\n[berth] the agent exited with {code}; running the repo's tests: {}\r\n",
        crate::table_cell(&plan.command, 200)
    );
    say(log, head.as_bytes());
    let stop = || hub.stop.load(Ordering::SeqCst);
    let result = crate::repo_test::run(agent, plan, hub.env.clone(), &stop, &mut |data| {
        say(log, data)
    });
    say(
        log,
        format!("[berth] tests {}\r\n", result.words()).as_bytes(),
    );
    if let Ok(mut db) = hub.store.db() {
        let _ = audit(
            &mut db,
            hub.clock,
            hub.id,
            "test",
            serde_json::to_value(&result).unwrap_or_default(),
        );
    }
}

/// Sends output to every attached client; a client that cannot keep up is dropped.
fn broadcast(hub: &Hub, data: &[u8]) {
    let mut attached = hub.desk.attached.lock().unwrap_or_else(|e| e.into_inner());
    attached.retain(|sink| {
        match sink.try_send(Message::Stdout {
            id: 0,
            data: data.to_vec(),
        }) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
        }
    });
}

/// Sends one agent message where it belongs; returns the outcome when the command ended.
fn route(hub: &Hub, msg: Message, log: &mut LogSink, main: &ExecControl) -> Option<Outcome> {
    match msg {
        Message::Stdout { id, data } | Message::Stderr { id, data } if id == main.id() => {
            let _ = log.write_all(&data);
            broadcast(hub, &data);
        }
        Message::Error { id, message } if id == main.id() => {
            // The guest's words, labelled as such: never in Berth's own voice.
            let _ = writeln!(log, "[guest agent: {}]", guest_words(&message));
        }
        Message::Exited { id, status } if id == main.id() => {
            return Some(Outcome::Exited(status.shell_code()));
        }
        Message::Started { .. } => {}
        Message::Stdout { id, .. }
        | Message::Stderr { id, .. }
        | Message::Error { id, .. }
        | Message::Exited { id, .. } => {
            let mut execs = hub.execs.lock().unwrap_or_else(|e| e.into_inner());
            let (sink, local) = execs.get(&id).cloned()?;
            let relabeled = match msg {
                Message::Stdout { data, .. } => Message::Stdout { id: local, data },
                Message::Stderr { data, .. } => Message::Stderr { id: local, data },
                Message::Error { message, .. } => Message::Error { id: local, message },
                Message::Exited { status, .. } => {
                    execs.remove(&id);
                    if let Ok(mut db) = hub.store.db() {
                        let _ = audit(
                            &mut db,
                            hub.clock,
                            hub.id,
                            "command",
                            json!({"phase": "end", "exec": id, "exit_code": status.shell_code()}),
                        );
                    }
                    Message::Exited { id: local, status }
                }
                _ => return None,
            };
            let _ = sink.try_send(relabeled);
        }
        _ => {}
    }
    None
}

fn accept_clients(listener: UnixListener, hub: Arc<Hub>) {
    for stream in listener.incoming().flatten() {
        let hub = hub.clone();
        std::thread::spawn(move || serve_client(stream, hub));
    }
}

fn serve_client(stream: UnixStream, hub: Arc<Hub>) {
    let (Ok(write_half), Ok(conn)) = (stream.try_clone(), stream.try_clone()) else {
        return;
    };
    let _ = write_half.set_write_timeout(Some(CLIENT_WRITE_TIMEOUT));
    let (tx, queue) = sync_channel::<Message>(CLIENT_QUEUE);
    let sink = Sink {
        tx,
        conn: Arc::new(conn),
    };
    std::thread::spawn(move || {
        let mut w = write_half;
        for msg in queue {
            let stop = matches!(msg, Message::PowerOff);
            if write_message(&mut w, &msg).is_err() || stop {
                let _ = w.shutdown(std::net::Shutdown::Both);
                return;
            }
        }
    });
    let mut reader = FrameReader::new(stream);
    match reader.read_message() {
        Ok(Message::Hello(h)) if h.version == PROTOCOL_VERSION => {}
        _ => return,
    }
    let _ = sink.try_send(Message::Hello(Hello {
        version: PROTOCOL_VERSION,
        software: format!("berth supervisor {}", env!("CARGO_PKG_VERSION")),
    }));
    let mut mine: HashMap<u32, ExecControl> = HashMap::new();
    let mut attached = false;
    let me = hub.clients.fetch_add(1, Ordering::SeqCst);
    let sized = |size: WinSize| {
        let s = hub
            .sizes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .set(me, size);
        let _ = hub.main.resize(s.rows, s.cols);
    };
    while let Ok(msg) = reader.read_message() {
        match msg {
            Message::Attach { size } => {
                if let Some(s) = size {
                    sized(s);
                }
                replay(&hub.store.output_log(hub.id), &sink);
                hub.desk
                    .attached
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(sink.clone());
                hub.desk.awaits_follower.store(false, Ordering::SeqCst);
                hub.desk.ask_again(&sink);
                if !attached {
                    attached = true;
                    if let Ok(mut db) = hub.store.db() {
                        let _ = audit(
                            &mut db,
                            hub.clock,
                            hub.id,
                            "attach",
                            json!({"phase": "start"}),
                        );
                    }
                }
            }
            Message::Exec { id, request } => {
                match hub.agent.start(with_attempt_env(&hub.env, request.clone())) {
                    Ok(control) => {
                        if let Ok(mut db) = hub.store.db() {
                            let _ = audit(
                                &mut db,
                                hub.clock,
                                hub.id,
                                "command",
                                json!({"phase": "start", "exec": control.id(), "argv": request.argv, "cwd": request.cwd, "user": request.user}),
                            );
                        }
                        hub.execs
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(control.id(), (sink.clone(), id));
                        mine.insert(id, control);
                    }
                    Err(e) => {
                        let _ = sink.try_send(Message::Error {
                            id,
                            message: e.to_string(),
                        });
                    }
                }
            }
            Message::Stdin { id: 0, data } if attached => {
                let _ = hub.main.stdin(&data);
            }
            Message::Resize { id: 0, size } if attached => sized(size),
            Message::Stdin { id, data } => {
                if let Some(c) = mine.get(&id) {
                    let _ = c.stdin(&data);
                }
            }
            Message::StdinEof { id } => {
                if let Some(c) = mine.get(&id) {
                    let _ = c.close_stdin();
                }
            }
            Message::Resize { id, size } => {
                if let Some(c) = mine.get(&id) {
                    let _ = c.resize(size.rows, size.cols);
                }
            }
            Message::Signal { id, signal } => {
                if let Some(c) = mine.get(&id) {
                    let _ = c.signal(signal);
                }
            }
            Message::Ping { nonce } => {
                let _ = sink.try_send(Message::Pong { nonce });
            }
            Message::Approve { id, decision } if attached => answer(&hub, id, &decision),
            Message::PowerOff => hub.stop.store(true, Ordering::SeqCst),
            _ => break,
        }
    }
    let back = hub
        .sizes
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .leave(me);
    if let Some(s) = back {
        let _ = hub.main.resize(s.rows, s.cols);
    }
    if attached && let Ok(mut db) = hub.store.db() {
        let _ = audit(
            &mut db,
            hub.clock,
            hub.id,
            "attach",
            json!({"phase": "end"}),
        );
    }
}

/// A user's answer to an approval request; "always" is kept for the whole task.
fn answer(hub: &Hub, id: u32, decision: &str) {
    let pending = {
        let mut open = hub.desk.pending.lock().unwrap_or_else(|e| e.into_inner());
        let one = open.remove(&id);
        hub.desk.mark(&open);
        one
    };
    let Some((tx, host, port)) = pending else {
        return; // answered already (another client was quicker) or timed out
    };
    let (approval, decision) =
        crate::approvals::record_approval(&hub.store, hub.clock, hub.id, &host, port, decision);
    let _ = tx.send(approval);
    hub.desk.closed(id, decision);
}

/// A guest's message made printable and short.
fn guest_words(message: &str) -> String {
    crate::display::escape_controls(message)
        .chars()
        .take(300)
        .collect()
}

/// Sends the last [`REPLAY_BYTES`] of the log to a newly attached client.
fn replay(log: &Path, sink: &Sink) {
    let Ok(mut f) = std::fs::File::open(log) else {
        return;
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(REPLAY_BYTES)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    for chunk in buf.chunks(berth_proto::MAX_CHUNK) {
        let _ = sink.try_send(Message::Stdout {
            id: 0,
            data: chunk.to_vec(),
        });
    }
}

#[cfg(test)]
mod crlf_tests {
    #[test]
    fn a_log_without_a_terminal_gets_cr_lf_once() {
        assert_eq!(super::crlf(b"a\nb\r\nc", false), b"a\r\nb\r\nc");
        // A CR ending the previous write: its LF needs none.
        assert_eq!(super::crlf(b"\nx\n", true), b"\nx\r\n");
        assert_eq!(super::crlf(b"\r", false), b"\r");
    }
}

#[cfg(test)]
mod desk_tests {
    use std::sync::Arc;
    use std::sync::atomic::Ordering;
    use std::sync::mpsc::sync_channel;

    use berth_egress::Approval;
    use berth_proto::Message;

    use super::{Desk, Sink};

    fn sink() -> (Sink, std::sync::mpsc::Receiver<Message>) {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let (tx, rx) = sync_channel(8);
        let conn = Arc::new(a);
        (Sink { tx, conn }, rx)
    }

    #[test]
    fn with_nobody_attached_a_question_is_denied_at_once() {
        let desk = Arc::new(Desk::default());
        let mut answer = (desk.approver())("unlisted.test", 80);
        assert!(matches!(answer.try_recv(), Ok(Approval::Deny(_))));
    }

    #[test]
    fn a_question_asked_before_berth_run_attaches_waits_for_it() {
        let desk = Arc::new(Desk::default());
        desk.awaits_follower.store(true, Ordering::SeqCst);
        let mut answer = (desk.approver())("unlisted.test", 80);
        assert!(
            answer.try_recv().is_err(),
            "denied before berth run attached"
        );
        // berth run attaches (as serve_client does): the question is sent to it.
        let (sink, got) = sink();
        desk.attached.lock().unwrap().push(sink.clone());
        desk.awaits_follower.store(false, Ordering::SeqCst);
        desk.ask_again(&sink);
        match got.try_recv() {
            Ok(Message::ApprovalRequest { id, host, port }) => {
                assert_eq!((host.as_str(), port), ("unlisted.test", 80));
                let (tx, _, _) = desk.pending.lock().unwrap().remove(&id).unwrap();
                let _ = tx.send(Approval::Deny("answered".into()));
            }
            other => panic!("berth run was not asked: {other:?}"),
        }
        assert!(matches!(answer.try_recv(), Ok(Approval::Deny(why)) if why == "answered"));
    }
}
