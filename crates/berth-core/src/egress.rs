//! Starting an attempt's egress proxy and telling the guest about it.

use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::Arc;

use berth_db::AttemptId;
use berth_egress::{EgressEvent, EgressProxy, GUEST_PROXY_ADDR, GUEST_PROXY_PORT, Mode, Policy};
use berth_vm::RunDir;

use crate::task::{TaskError, audit};
use crate::{Clock, Store};

/// The environment that points the guest's tools at the proxy (programs that ignore it have
/// no route anywhere).
pub fn proxy_env(policy: &Policy) -> Vec<(String, String)> {
    if policy.mode == Mode::Off {
        return Vec::new();
    }
    let url = format!("http://{GUEST_PROXY_ADDR}:{GUEST_PROXY_PORT}");
    let mut env = Vec::new();
    for k in ["http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"] {
        env.push((k.to_string(), url.clone()));
    }
    for k in ["no_proxy", "NO_PROXY"] {
        env.push((k.to_string(), "localhost,127.0.0.1,::1".to_string()));
    }
    env
}

/// Listens on the VM's `egress.sock` with `policy`, handing every event to `sink`.
/// `None` when networking is off (the VM then gets no NIC at all).
pub fn start_proxy(
    run_root: &Path,
    vm_name: &str,
    policy: &Policy,
    sink: Arc<dyn Fn(EgressEvent) + Send + Sync>,
    approver: Option<berth_egress::Approver>,
    secrets: Vec<berth_egress::SecretBinding>,
) -> Result<Option<EgressProxy>, TaskError> {
    if policy.mode == Mode::Off && secrets.is_empty() {
        return Ok(None);
    }
    let dir = RunDir::create(run_root, vm_name).map_err(|e| TaskError::Refused(e.to_string()))?;
    let path = dir.egress_socket();
    let _ = std::fs::remove_file(&path);
    let refused =
        |e: std::io::Error| TaskError::Refused(format!("cannot listen on {}: {e}", path.display()));
    let listener = UnixListener::bind(&path).map_err(refused)?;
    let proxy = EgressProxy::start_unix(listener, policy.clone(), sink, approver, secrets);
    Ok(Some(proxy.map_err(refused)?))
}

/// Events waiting for the database at most; more are counted and summarised.
const AUDIT_QUEUE: usize = 1024;

/// A sink that records each request in the attempt's audit log (from a writer thread, so the
/// proxy never waits on the database). The queue is bounded: when a guest makes events
/// faster than the database takes them, the excess is counted and recorded as one event.
pub fn audit_sink(
    store: &Store,
    id: AttemptId,
    clock: Clock,
) -> Arc<dyn Fn(EgressEvent) + Send + Sync> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<EgressEvent>(AUDIT_QUEUE);
    let dropped = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let store = store.clone();
    let counted = dropped.clone();
    std::thread::spawn(move || {
        let Ok(mut db) = store.db() else { return };
        loop {
            let next = rx.recv_timeout(std::time::Duration::from_secs(1));
            if let Ok(ev) = &next {
                let data = serde_json::to_value(ev).unwrap_or_default();
                // A use of a bound secret is its own kind of event (it carries no value).
                let kind = match &ev.secret {
                    Some(name) => {
                        if ev.decision == "allow" {
                            crate::secrets::mark_used(&mut db, name, clock() / 1000);
                        }
                        "secret"
                    }
                    None => "egress",
                };
                let _ = audit(&mut db, clock, id, kind, data);
            }
            let lost = counted.swap(0, std::sync::atomic::Ordering::SeqCst);
            if lost > 0 {
                let data = serde_json::json!({"dropped": lost, "why": "the guest made events faster than they could be recorded"});
                let _ = audit(&mut db, clock, id, "egress", data);
            }
            if matches!(next, Err(std::sync::mpsc::RecvTimeoutError::Disconnected)) {
                return;
            }
        }
    });
    Arc::new(move |ev| {
        if tx.try_send(ev).is_err() {
            dropped.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    })
}

/// The attempt's stored policy.
pub fn attempt_policy(policy_json: &str) -> Policy {
    serde_json::from_str(policy_json).unwrap_or_default()
}
