//! The proxy server: one per attempt, on the socket QEMU's `guestfwd` bridges into.
//!
//! Each connection carries one request: `CONNECT host:port` (a tunnel, for HTTPS) or a plain
//! HTTP request in absolute form (`GET http://host/path`), served and forwarded by hyper with
//! `Connection: close` (see `forward.rs`).
//! The request head is capped in size (16 KiB) and time (10 s, against slowloris), parsed
//! strictly, decided by [`crate::decide`], and every request, allowed or not, produces one
//! [`EgressEvent`] when it ends.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use crate::approval::{Approval, Approver, Questions, askable, exact_rule};
use crate::decide::{Decision, decide};
use crate::events::{Gate, ProtocolGate, capped};
use crate::forward::forward_plain;
use crate::gateway::{Gateway, SecretBinding, is_gateway_request};
use crate::policy::Policy;
use crate::request::{parse_request, read_head};

const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections at once per attempt (each holds a bridge process on the host).
const MAX_CONNECTIONS: usize = 128;
/// A connection on which nothing moved either way for this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// How often an idle connection checks the clock.
const IDLE_CHECK: Duration = Duration::from_secs(5);
/// Bytes moved per read/write while relaying; large buffers cut the syscalls on fast links.
const COPY_BUF: usize = 256 * 1024;

/// One request through the proxy, as the audit records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EgressEvent {
    pub host: String,
    pub port: u16,
    /// `CONNECT` or the HTTP method.
    pub method: String,
    /// `allow` or `deny`.
    pub decision: &'static str,
    /// The rule that decided.
    pub rule: String,
    pub reason: Option<String>,
    pub bytes_up: u64,
    pub bytes_down: u64,
    /// A use of a bound secret through the gateway: its name, the path and the status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
}

/// Where events go (the supervisor writes them to the audit log).
pub type EventSink = Arc<dyn Fn(EgressEvent) + Send + Sync>;

struct Shared {
    policy: Policy,
    /// Names approved "always" while this proxy runs.
    approved: std::sync::Mutex<Vec<crate::AllowRule>>,
    approver: Option<Approver>,
    questions: Questions,
    protocol_gate: ProtocolGate,
    sink: EventSink,
    uploaded: AtomicU64,
    slots: Semaphore,
    /// The secrets gateway, when secrets are bound to the attempt.
    gateway: Option<Arc<Gateway>>,
}

/// A running proxy; dropping it stops it.
pub struct EgressProxy {
    /// The interception CA's certificate, when a bound secret asked for interception.
    ca_pem: Option<String>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for EgressProxy {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

enum Listener {
    Unix(std::os::unix::net::UnixListener),
    Tcp(std::net::TcpListener),
}

impl EgressProxy {
    /// The attempt's interception CA (PEM) the guest must trust, if any binding asked for
    /// interception.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// Serves on a unix socket (what the VM's bridge connects to), with the gateway of
    /// `secrets` (see [`crate::gateway`]); asks `approver`, if any, about unlisted names and
    /// about secret uses that need approval.
    pub fn start_unix(
        listener: std::os::unix::net::UnixListener,
        policy: Policy,
        sink: EventSink,
        approver: Option<Approver>,
        secrets: Vec<SecretBinding>,
    ) -> std::io::Result<EgressProxy> {
        Self::start(Listener::Unix(listener), policy, sink, approver, secrets)
    }

    /// Serves on TCP (benchmarks and host-side tests).
    pub fn start_tcp(
        listener: std::net::TcpListener,
        policy: Policy,
        sink: EventSink,
    ) -> std::io::Result<EgressProxy> {
        Self::start(Listener::Tcp(listener), policy, sink, None, Vec::new())
    }

    /// Like [`EgressProxy::start_tcp`], with a gateway for `secrets` (tests, benchmarks).
    pub fn start_tcp_with_secrets(
        listener: std::net::TcpListener,
        policy: Policy,
        sink: EventSink,
        approver: Option<Approver>,
        secrets: Vec<SecretBinding>,
    ) -> std::io::Result<EgressProxy> {
        Self::start(Listener::Tcp(listener), policy, sink, approver, secrets)
    }

    fn start(
        listener: Listener,
        policy: Policy,
        sink: EventSink,
        approver: Option<Approver>,
        secrets: Vec<SecretBinding>,
    ) -> std::io::Result<EgressProxy> {
        let gateway = if secrets.is_empty() {
            None
        } else {
            let gw = Gateway::new(secrets, approver.clone(), sink.clone())
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
            Some(Arc::new(gw))
        };
        let ca_pem = gateway.as_ref().and_then(|g| g.ca_pem());
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .thread_name("berth-egress")
            .build()?;
        match &listener {
            Listener::Unix(l) => l.set_nonblocking(true)?,
            Listener::Tcp(l) => l.set_nonblocking(true)?,
        }
        let slots = policy
            .max_connections
            .map(|n| n as usize)
            .unwrap_or(MAX_CONNECTIONS);
        let shared = Arc::new(Shared {
            policy,
            approved: std::sync::Mutex::new(Vec::new()),
            approver,
            questions: Questions::default(),
            protocol_gate: ProtocolGate::default(),
            sink,
            uploaded: AtomicU64::new(0),
            slots: Semaphore::new(slots),
            gateway,
        });
        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("berth-egress".into())
            .spawn(move || {
                rt.block_on(async move {
                match listener {
                    Listener::Unix(l) => {
                        let Ok(l) = tokio::net::UnixListener::from_std(l) else { return };
                        loop {
                            tokio::select! {
                                _ = &mut rx => return,
                                r = l.accept() => match r {
                                    Ok((s, _)) => spawn_conn(s, shared.clone()),
                                    Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                                },
                            }
                        }
                    }
                    Listener::Tcp(l) => {
                        let Ok(l) = tokio::net::TcpListener::from_std(l) else { return };
                        loop {
                            tokio::select! {
                                _ = &mut rx => return,
                                r = l.accept() => match r {
                                    Ok((s, _)) => spawn_conn(s, shared.clone()),
                                    Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                                },
                            }
                        }
                    }
                }
            });
            })?;
        Ok(EgressProxy {
            ca_pem,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }
}

fn spawn_conn<S>(stream: S, shared: Arc<Shared>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let Ok(_slot) = shared.slots.try_acquire() else {
            let mut s = stream;
            let _ = respond(
                &mut s,
                503,
                "too many connections through this attempt's proxy",
            )
            .await;
            return;
        };
        handle(stream, &shared).await;
    });
}

async fn handle<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    mut client: S,
    shared: &Shared,
) {
    // A head that is slow, oversized or not HTTP goes no further.
    let head = tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut client)).await;
    // A request for the attempt's own gateway is served by it (hyper, on this connection).
    if let (Some(gw), Ok(Ok((buf, head_len)))) = (&shared.gateway, &head)
        && is_gateway_request(&buf[..*head_len])
    {
        let Ok(Ok((buf, _))) = head else { return };
        gw.clone().serve(buf, client).await;
        return;
    }
    let head = match head {
        Ok(Ok((buf, head_len))) => parse_request(&buf[..head_len])
            .map(|req| (buf, head_len, req))
            .map_err(|why| (400, why)),
        Ok(Err((code, why))) => Err((code, why.to_string())),
        Err(_) => Err((408, "request head not received in time".to_string())),
    };
    let (buf, head_len, req) = match head {
        Ok(x) => x,
        Err((code, why)) => {
            refuse(
                &mut client,
                shared,
                &UNPARSED,
                "deny",
                "protocol",
                code,
                &why,
            )
            .await;
            return;
        }
    };
    let leftover = &buf[head_len..];
    let to = Target {
        host: &req.host,
        port: req.port,
        method: &req.method,
    };
    // A bound secret's upstream whose binding asked for interception: the tunnel ends here,
    // in TLS with the attempt's CA, and each request inside is a use of the secret.
    if let Some(gw) = &shared.gateway
        && req.method == "CONNECT"
        && gw.intercepts(&req.host, req.port)
    {
        if client
            .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            .await
            .is_ok()
        {
            gw.clone()
                .serve_intercepted(req.host.clone(), leftover.to_vec(), client)
                .await;
        }
        return;
    }
    // Otherwise a bound secret's upstream is reached only through the gateway, which sets
    // the key; straight there, the guest could only be after something else.
    if let Some(name) = shared
        .gateway
        .as_ref()
        .and_then(|g| g.binds_host(&req.host))
    {
        let why = format!(
            "{} is reached through the attempt's gateway for the secret {name}",
            req.host
        );
        refuse(
            &mut client,
            shared,
            &to,
            "deny",
            "secret upstream",
            403,
            &why,
        )
        .await;
        return;
    }
    if let Some(budget) = shared.policy.egress_budget {
        let used = shared.uploaded.load(Ordering::SeqCst);
        let body = req.plain.as_ref().map(|p| p.body).unwrap_or(0);
        if used >= budget || used + body > budget {
            let why = format!("the egress budget of {budget} bytes is used up");
            refuse(&mut client, shared, &to, "deny", "egress_budget", 403, &why).await;
            return;
        }
    }
    let (addrs, rule) = match decide_with_approval(shared, &req.host, req.port).await {
        Decision::Allow { addrs, rule } => (addrs, rule),
        Decision::Deny { reason, rule } => {
            refuse(&mut client, shared, &to, "deny", &rule, 403, &reason).await;
            return;
        }
    };
    let mut upstream = None;
    let mut last_err = String::from("no address");
    for addr in &addrs {
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                upstream = Some(s);
                break;
            }
            Ok(Err(e)) => last_err = format!("{addr}: {e}"),
            Err(_) => last_err = format!("{addr}: connect timed out"),
        }
    }
    let Some(mut upstream) = upstream else {
        let why = format!("cannot reach {}:{}: {last_err}", req.host, req.port);
        refuse(&mut client, shared, &to, "allow", &rule, 502, &why).await;
        return;
    };
    // Plain HTTP: hyper serves the one request and forwards it rebuilt (forward.rs).
    if let Some(plain) = &req.plain {
        let (up, down) =
            forward_plain(buf.clone(), client, upstream, plain.host_header.clone()).await;
        shared.uploaded.fetch_add(up, Ordering::SeqCst);
        event(shared, &to, "allow", &rule, None, up, down);
        return;
    }
    // CONNECT: a tunnel, with whatever the guest sent after its head going first.
    if client
        .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        .await
        .is_err()
    {
        return;
    }
    let mut up = 0u64;
    if !leftover.is_empty() {
        if upstream.write_all(leftover).await.is_err() {
            return;
        }
        up += leftover.len() as u64;
    }
    shared.uploaded.fetch_add(up, Ordering::SeqCst);
    let (bytes_up, bytes_down, budget_hit) = pump(client, upstream, shared).await;
    let reason = budget_hit.then(|| "cut off: the egress budget was used up".to_string());
    event(
        shared,
        &to,
        "allow",
        &rule,
        reason,
        up + bytes_up,
        bytes_down,
    );
}

/// The policy's decision, plus earlier "always" answers; for a name that is only missing
/// from the allowlist, the attached user's answer. An approval adds the name to the
/// allowlist for this request (or for good); the range checks still apply to it.
async fn decide_with_approval(shared: &Shared, host: &str, port: u16) -> Decision {
    let mut policy = shared.policy.clone();
    let first = decide(&policy, host, port).await;
    let approved = shared
        .approved
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let name = crate::target::normalize(host);
    if matches!(&first, Decision::Deny { rule, .. } if rule == "allowlist")
        && approved.iter().any(|r| r.matches_name(&name, port))
    {
        policy.allow.extend(approved);
        return match decide(&policy, host, port).await {
            Decision::Allow { addrs, rule } => Decision::Allow {
                addrs,
                rule: format!("approved earlier for the task by the user; {rule}"),
            },
            deny => deny,
        };
    }
    let unlisted = matches!(&first, Decision::Deny { rule, .. } if rule == "allowlist");
    let (Some(approver), true) = (&shared.approver, unlisted) else {
        return first;
    };
    // Only a concrete host name is asked about, and the rule is built from it, not from the
    // guest's text: no wildcard, no IP literal, nothing a terminal would interpret.
    if !askable(&name) {
        return first;
    }
    let rule = exact_rule(&name, port);
    let answer = shared.questions.ask(approver, &name, port).await;
    let how = match answer {
        Approval::Deny(why) => {
            return Decision::Deny {
                reason: format!("{name} is not on the allowlist and was not approved: {why}"),
                rule: "approval".into(),
            };
        }
        Approval::Once => "approved once by the user",
        Approval::Always => {
            shared
                .approved
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(rule.clone());
            "approved for the task by the user"
        }
    };
    policy.allow.push(rule);
    match decide(&policy, host, port).await {
        Decision::Allow { addrs, rule } => Decision::Allow {
            addrs,
            rule: format!("{how}; {rule}"),
        },
        deny => deny,
    }
}

/// Where a request was going, for its audit event.
struct Target<'a> {
    host: &'a str,
    port: u16,
    method: &'a str,
}

/// A request whose head could not be read or parsed.
const UNPARSED: Target<'static> = Target {
    host: "",
    port: 0,
    method: "?",
};

/// Records a request that goes no further, and tells the guest why with `code`.
async fn refuse<S: AsyncWrite + Unpin>(
    client: &mut S,
    shared: &Shared,
    to: &Target<'_>,
    decision: &'static str,
    rule: &str,
    code: u16,
    why: &str,
) {
    let record = rule != "protocol"
        || match shared.protocol_gate.check(std::time::Instant::now()) {
            Gate::Suppress => false,
            Gate::Record { suppressed_before } => {
                if suppressed_before > 0 {
                    let summary = format!(
                        "{suppressed_before} more malformed requests in the minute before were \
                         refused without an event each"
                    );
                    event(shared, &UNPARSED, "deny", "protocol", Some(summary), 0, 0);
                }
                true
            }
        };
    if record {
        event(shared, to, decision, rule, Some(why.to_string()), 0, 0);
    }
    let _ = respond(client, code, why).await;
}

fn event(
    shared: &Shared,
    to: &Target<'_>,
    decision: &'static str,
    rule: &str,
    reason: Option<String>,
    up: u64,
    down: u64,
) {
    // Host and method come from the guest: capped, like everything it can make long.
    (shared.sink)(EgressEvent {
        host: capped(to.host, 255),
        port: to.port,
        method: capped(to.method, 16),
        decision,
        rule: capped(rule, 512),
        reason: reason.map(|r| capped(&r, 1024)),
        bytes_up: up,
        bytes_down: down,
        secret: None,
        path: None,
        status: None,
    });
}

async fn respond<S: AsyncWrite + Unpin>(s: &mut S, code: u16, why: &str) -> std::io::Result<()> {
    let status = match code {
        400 => "Bad Request",
        403 => "Forbidden",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        502 => "Bad Gateway",
        _ => "Service Unavailable",
    };
    let body = format!("berth: {why}\n");
    let msg = format!(
        "HTTP/1.1 {code} {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(msg.as_bytes()).await?;
    s.shutdown().await
}

/// Copies both ways until both sides are done, or nothing moved either way for
/// [`IDLE_TIMEOUT`]; uploads count against the budget.
async fn pump<S: AsyncRead + AsyncWrite + Unpin>(
    client: S,
    upstream: TcpStream,
    shared: &Shared,
) -> (u64, u64, bool) {
    let (mut cr, mut cw) = tokio::io::split(client);
    let (mut ur, mut uw) = upstream.into_split();
    let started = tokio::time::Instant::now();
    // Milliseconds since `started` of the last byte moved either way.
    let last = AtomicU64::new(0);
    let touch = || last.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
    let idle = || {
        let since = started.elapsed().as_millis() as u64 - last.load(Ordering::Relaxed);
        since >= IDLE_TIMEOUT.as_millis() as u64
    };
    let upload = async {
        let mut buf = vec![0u8; COPY_BUF];
        let mut total = 0u64;
        let mut hit = false;
        loop {
            let n = match tokio::time::timeout(IDLE_CHECK, cr.read(&mut buf)).await {
                Err(_) if idle() => break,
                Err(_) => continue,
                Ok(Ok(0) | Err(_)) => break,
                Ok(Ok(n)) => n,
            };
            touch();
            let after = shared.uploaded.fetch_add(n as u64, Ordering::SeqCst) + n as u64;
            if let Some(b) = shared.policy.egress_budget
                && after > b
            {
                hit = true;
                break;
            }
            if uw.write_all(&buf[..n]).await.is_err() {
                break;
            }
            total += n as u64;
        }
        let _ = uw.shutdown().await;
        (total, hit)
    };
    let download = async {
        let mut buf = vec![0u8; COPY_BUF];
        let mut total = 0u64;
        loop {
            let n = match tokio::time::timeout(IDLE_CHECK, ur.read(&mut buf)).await {
                Err(_) if idle() => break,
                Err(_) => continue,
                Ok(Ok(0) | Err(_)) => break,
                Ok(Ok(n)) => n,
            };
            touch();
            if cw.write_all(&buf[..n]).await.is_err() {
                break;
            }
            total += n as u64;
        }
        let _ = cw.shutdown().await;
        total
    };
    let ((up, hit), down) = tokio::join!(upload, download);
    (up, down, hit)
}
