//! The secrets gateway on the host, against a real TLS upstream on loopback: only the
//! attempt's phantom opens it, the upstream gets the real key and never the phantom,
//! responses stream event by event, limits and the CONNECT refusal hold, and no audit event
//! carries the value.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_egress::{
    Approval, EgressEvent, EgressProxy, Mode, Policy, SecretApproval, SecretBinding,
};
use berth_tests::TlsUpstream;

const VALUE: &str = "sk-real-value-7d1c0f";
const PHANTOM: &str = "berth-phantom-0123456789abcdef";

fn binding(up: &TlsUpstream, phantom: &str) -> SecretBinding {
    SecretBinding {
        name: "api".into(),
        upstream: format!("https://localhost:{}/base", up.port),
        header: "x-api-key".into(),
        template: "{}".into(),
        phantom: phantom.into(),
        expires_at: None,
        max_requests: None,
        approve: SecretApproval::None,
        extra_roots_pem: Some(up.ca_pem.clone()),
        intercept: false,
        value: Arc::new(|| Ok(VALUE.to_string())),
    }
}

type Events = Arc<Mutex<Vec<EgressEvent>>>;

fn proxy(bindings: Vec<SecretBinding>) -> (EgressProxy, u16, Events) {
    proxy_asking(bindings, None)
}

fn proxy_asking(
    bindings: Vec<SecretBinding>,
    approver: Option<berth_egress::Approver>,
) -> (EgressProxy, u16, Events) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let events: Events = Default::default();
    let e = events.clone();
    let policy = Policy {
        mode: Mode::Allowlist,
        ..Policy::default()
    };
    let p = EgressProxy::start_tcp_with_secrets(
        l,
        policy,
        Arc::new(move |ev| e.lock().unwrap().push(ev)),
        approver,
        bindings,
    )
    .unwrap();
    (p, port, events)
}

/// One request through the proxy as the guest would send it; the status and the body.
fn request(port: u16, path: &str, key: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let key = key
        .map(|k| format!("x-api-key: {k}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 10.0.2.100:3128\r\n{key}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let code = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, out)
}

#[test]
fn the_upstream_gets_the_real_key_only_for_the_attempts_phantom() {
    let up = TlsUpstream::start();
    let (_p, port, events) = proxy(vec![binding(&up, PHANTOM)]);
    let (code, body) = request(port, "/gateway/api/v1/hello?x=1", Some(PHANTOM));
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("{\"ok\":true}"), "{body}");
    let seen = up.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/base/v1/hello");
    assert!(
        seen[0]
            .headers
            .contains(&("x-api-key".into(), VALUE.into()))
    );
    assert!(
        !seen[0].headers.iter().any(|(_, v)| v.contains(PHANTOM)),
        "{:?}",
        seen[0].headers
    );
    // Absolute form on the proxy's own address (a client that sends everything through
    // its proxy) reaches the gateway too.
    let (code, _) = request(
        port,
        "http://10.0.2.100:3128/gateway/api/v1/again",
        Some(PHANTOM),
    );
    assert_eq!(code, 200);

    // Wrong, missing, or another attempt's phantom: refused, and nothing reaches the upstream.
    let before = up.requests().len();
    for key in [Some("berth-phantom-wrong"), None, Some(VALUE)] {
        let (code, body) = request(port, "/gateway/api/v1/hello", key);
        assert_eq!(code, 401, "{key:?}: {body}");
    }
    // A path that climbs out of the upstream's base: refused before anything else.
    for path in ["/gateway/api/../admin", "/gateway/api/%2e%2e/admin"] {
        let (code, body) = request(port, path, Some(PHANTOM));
        assert_eq!(code, 400, "{path}: {body}");
    }
    let (_b, port_b, _) = proxy(vec![binding(&up, "berth-phantom-of-attempt-b")]);
    assert_eq!(
        request(port_b, "/gateway/api/v1/hello", Some(PHANTOM)).0,
        401
    );
    assert_eq!(
        up.requests().len(),
        before,
        "a refused request reached the upstream"
    );

    // The upstream's host is reached only through the gateway.
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "CONNECT localhost:{} HTTP/1.1\r\n\r\n", up.port).unwrap();
    let mut line = String::new();
    BufReader::new(&s).read_line(&mut line).unwrap();
    assert!(line.contains("403"), "{line}");

    // Every use is audited with the secret's name, path and status; never the value.
    let events = events.lock().unwrap().clone();
    let json = serde_json::to_string(&events).unwrap();
    assert!(!json.contains(VALUE) && !json.contains(PHANTOM), "{json}");
    let uses: Vec<_> = events.iter().filter(|e| e.secret.is_some()).collect();
    assert!(
        uses.iter().any(|e| e.decision == "allow"
            && e.status == Some(200)
            && e.path.as_deref() == Some("/v1/hello")),
        "{uses:?}"
    );
    assert_eq!(uses.iter().filter(|e| e.status == Some(401)).count(), 3);
    assert!(
        events
            .iter()
            .any(|e| e.rule == "secret upstream" && e.decision == "deny"),
        "{events:?}"
    );
}

#[test]
fn a_streamed_response_passes_event_by_event() {
    let up = TlsUpstream::start();
    let (_p, port, events) = proxy(vec![binding(&up, PHANTOM)]);
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "GET /gateway/api/sse HTTP/1.1\r\nHost: 10.0.2.100:3128\r\nx-api-key: {PHANTOM}\r\n\
         Accept: text/event-stream\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    let mut first_at = None;
    while r.read_line(&mut line).unwrap() > 0 {
        if line.starts_with("data: {\"n\":1}") {
            first_at = Some(Instant::now());
            break;
        }
        line.clear();
    }
    assert!(first_at.is_some(), "no first event");
    assert!(
        up.last_event_at.lock().unwrap().is_none(),
        "the first event arrived only after the upstream sent the last: buffered"
    );
    let mut rest = String::new();
    let _ = r.read_to_string(&mut rest);
    assert!(rest.contains("data: {\"n\":20}"), "{rest}");
    // The use is recorded when the stream ends, with the bytes that passed.
    std::thread::sleep(Duration::from_millis(200));
    let ev = events.lock().unwrap().clone();
    let used = ev
        .iter()
        .find(|e| e.status == Some(200))
        .expect("a use event");
    assert!(used.bytes_down > 20 * 20, "{used:?}");
}

#[test]
fn a_binding_ends_at_its_ttl_and_its_request_cap() {
    let up = TlsUpstream::start();
    let mut capped = binding(&up, PHANTOM);
    capped.max_requests = Some(1);
    let (_p, port, _) = proxy(vec![capped]);
    assert_eq!(request(port, "/gateway/api/a", Some(PHANTOM)).0, 200);
    let (code, body) = request(port, "/gateway/api/b", Some(PHANTOM));
    assert_eq!(code, 403);
    assert!(body.contains("request cap"), "{body}");

    let mut expired = binding(&up, PHANTOM);
    expired.expires_at = Some(Instant::now());
    let (_p, port, _) = proxy(vec![expired]);
    let (code, body) = request(port, "/gateway/api/a", Some(PHANTOM));
    assert_eq!(code, 403);
    assert!(body.contains("time on this attempt is up"), "{body}");
    assert_eq!(up.requests().len(), 1);

    // A binding that needs approval, with nobody to ask: denied, never forwarded.
    let mut asks = binding(&up, PHANTOM);
    asks.approve = SecretApproval::Each;
    let (_p, port, _) = proxy(vec![asks]);
    let (code, body) = request(port, "/gateway/api/a", Some(PHANTOM));
    assert_eq!(code, 403, "{body}");
    assert_eq!(up.requests().len(), 1);
}

/// An approver that answers `answers` in turn and counts the questions.
fn answering(answers: Vec<Approval>) -> (berth_egress::Approver, Arc<Mutex<Vec<String>>>) {
    let asked: Arc<Mutex<Vec<String>>> = Default::default();
    let (q, left) = (asked.clone(), Arc::new(Mutex::new(answers)));
    let approver: berth_egress::Approver = Arc::new(move |host: &str, _port: u16| {
        q.lock().unwrap().push(host.to_string());
        let (tx, rx) = tokio::sync::oneshot::channel();
        let _ = tx.send(left.lock().unwrap().remove(0));
        rx
    });
    (approver, asked)
}

#[test]
fn approval_per_task_asks_once_and_a_denial_is_a_403_in_the_audit() {
    let up = TlsUpstream::start();
    let mut task = binding(&up, PHANTOM);
    task.approve = SecretApproval::Task;
    let (approver, asked) = answering(vec![Approval::Always]);
    let (_p, port, _) = proxy_asking(vec![task], Some(approver));
    assert_eq!(request(port, "/gateway/api/a", Some(PHANTOM)).0, 200);
    assert_eq!(request(port, "/gateway/api/b", Some(PHANTOM)).0, 200);
    assert_eq!(
        *asked.lock().unwrap(),
        ["secret:api"],
        "asked once for the task"
    );

    let mut each = binding(&up, PHANTOM);
    each.approve = SecretApproval::Each;
    let (approver, asked) = answering(vec![Approval::Once, Approval::Deny("no".into())]);
    let (_p, port, events) = proxy_asking(vec![each], Some(approver));
    assert_eq!(request(port, "/gateway/api/c", Some(PHANTOM)).0, 200);
    let (code, body) = request(port, "/gateway/api/d", Some(PHANTOM));
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("denied"), "{body}");
    assert_eq!(asked.lock().unwrap().len(), 2);
    assert!(!up.requests().iter().any(|s| s.path == "/base/d"));
    let events = events.lock().unwrap().clone();
    assert!(
        events.iter().any(|e| e.decision == "deny"
            && e.status == Some(403)
            && e.reason.as_deref().is_some_and(|r| r.contains("denied"))),
        "{events:?}"
    );
}
