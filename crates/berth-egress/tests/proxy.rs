//! The proxy against real loopback servers and hostile clients, host-side (no VM).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_egress::{AllowRule, EgressEvent, EgressProxy, Mode, Policy};

/// A loopback HTTP server that answers every request with `hello from <name>` and counts
/// the bytes it received.
fn origin(name: &'static str) -> (u16, Arc<Mutex<u64>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let received = Arc::new(Mutex::new(0u64));
    let r = received.clone();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let r = r.clone();
            std::thread::spawn(move || {
                let mut s = s;
                let mut buf = vec![0u8; 65536];
                let mut head = Vec::new();
                s.set_read_timeout(Some(Duration::from_secs(5))).ok();
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    *r.lock().unwrap() += n as u64;
                    head.extend_from_slice(&buf[..n]);
                    if head.windows(4).any(|w| w == b"\r\n\r\n") && !head.starts_with(b"POST") {
                        break;
                    }
                }
                let body = format!("hello from {name}\n");
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    (port, received)
}

struct Proxy {
    port: u16,
    events: Arc<Mutex<Vec<EgressEvent>>>,
    _p: EgressProxy,
}

fn proxy(allow: &[&str], budget: Option<u64>) -> Proxy {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let events = Arc::new(Mutex::new(Vec::new()));
    let e = events.clone();
    let policy = Policy {
        mode: Mode::Allowlist,
        allow: allow.iter().map(|a| AllowRule::parse(a).unwrap()).collect(),
        resolve: [("svc.test".to_string(), "127.0.0.1".parse().unwrap())].into(),
        egress_budget: budget,
        max_connections: None,
    };
    let p =
        EgressProxy::start_tcp(l, policy, Arc::new(move |ev| e.lock().unwrap().push(ev))).unwrap();
    Proxy {
        port,
        events,
        _p: p,
    }
}

fn request(proxy: u16, raw: &[u8]) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", proxy)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(raw).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn allowed_http_and_connect_work_and_denials_are_403s_and_every_request_is_an_event() {
    let (o, _) = origin("origin");
    let p = proxy(&[&format!("svc.test:{o}")], None);
    let ok = request(
        p.port,
        format!("GET http://svc.test:{o}/x HTTP/1.1\r\nHost: svc.test\r\n\r\n").as_bytes(),
    );
    assert!(
        ok.starts_with("HTTP/1.1 200") && ok.contains("hello from origin"),
        "{ok}"
    );
    let tunnel = request(
        p.port,
        format!("CONNECT svc.test:{o} HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .as_bytes(),
    );
    assert!(
        tunnel.starts_with("HTTP/1.1 200 Connection Established")
            && tunnel.contains("hello from origin"),
        "{tunnel}"
    );
    for target in [
        format!("localhost:{o}"),
        format!("127.1:{o}"),
        format!("0x7f000001:{o}"),
        format!("[::1]:{o}"),
        "169.254.169.254:80".into(),
        "unlisted.test:443".into(),
        format!("svc.test:{}", o + 1),
    ] {
        let r = request(
            p.port,
            format!("CONNECT {target} HTTP/1.1\r\n\r\n").as_bytes(),
        );
        assert!(r.starts_with("HTTP/1.1 403"), "{target}: {r}");
    }
    // An allowed request's event comes when its connection is done: wait for all nine.
    for _ in 0..100 {
        if p.events.lock().unwrap().len() >= 9 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let events = p.events.lock().unwrap().clone();
    assert_eq!(events.len(), 9);
    assert_eq!(events.iter().filter(|e| e.decision == "allow").count(), 2);
    assert!(
        events
            .iter()
            .all(|e| e.decision == "allow" || e.reason.is_some())
    );
    let get = events.iter().find(|e| e.method == "GET").unwrap();
    assert!(get.bytes_up > 0 && get.bytes_down > 0 && get.host == "svc.test");
}

#[test]
fn hostile_clients_do_not_take_the_proxy_down_and_other_proxies_keep_working() {
    let (o, _) = origin("origin");
    let victim = proxy(&[&format!("svc.test:{o}")], None);
    let other = proxy(&[&format!("svc.test:{o}")], None);
    // Garbage, a 1 GiB header (stopped at 16 KiB), a slowloris that never ends its head.
    assert!(request(victim.port, b"\x00\xff garbage \r\n\r\n").starts_with("HTTP/1.1 400"));
    let mut big = TcpStream::connect(("127.0.0.1", victim.port)).unwrap();
    big.write_all(b"GET http://svc.test/ HTTP/1.1\r\nX-Big: ")
        .unwrap();
    let chunk = vec![b'a'; 1 << 20];
    let mut sent = 0u64;
    while sent < 1 << 30 {
        if big.write_all(&chunk).is_err() {
            break; // the proxy hung up, as it should
        }
        sent += chunk.len() as u64;
    }
    assert!(sent < 1 << 30, "the proxy read a whole 1 GiB header");
    let mut slow: Vec<TcpStream> = (0..20)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", victim.port)).unwrap();
            s.write_all(b"CONNECT svc.test:1 HTTP/1.1\r\nX-Slow: 1\r\n")
                .unwrap();
            s
        })
        .collect();
    // 1,000 CONNECTs at once.
    let threads: Vec<_> = (0..1000)
        .map(|_| {
            let port = victim.port;
            std::thread::spawn(move || {
                let r = request(
                    port,
                    format!("CONNECT svc.test:{o} HTTP/1.1\r\n\r\n").as_bytes(),
                );
                r.starts_with("HTTP/1.1 200") || r.starts_with("HTTP/1.1 503")
            })
        })
        .collect();
    let answered = threads
        .into_iter()
        .filter(|_| true)
        .map(|t| t.join().unwrap())
        .filter(|ok| *ok)
        .count();
    assert_eq!(answered, 1000, "every CONNECT got an answer");
    // The other attempt's proxy was never affected, and the victim still works afterwards.
    let r = request(
        other.port,
        format!("GET http://svc.test:{o}/ HTTP/1.1\r\n\r\n").as_bytes(),
    );
    assert!(r.contains("hello from origin"), "{r}");
    let r = request(
        victim.port,
        format!("GET http://svc.test:{o}/ HTTP/1.1\r\n\r\n").as_bytes(),
    );
    assert!(r.contains("hello from origin"), "{r}");
    // The slowloris connections are cut after the head timeout.
    std::thread::sleep(Duration::from_secs(11));
    let mut buf = [0u8; 64];
    let n = slow[0].read(&mut buf).unwrap_or(0);
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 408"));
    slow.clear();
}

#[test]
fn the_budget_stops_an_upload_that_exceeds_it_and_later_requests() {
    let (o, received) = origin("origin");
    let p = proxy(&[&format!("svc.test:{o}")], Some(100_000));
    let mut s = TcpStream::connect(("127.0.0.1", p.port)).unwrap();
    s.write_all(format!("CONNECT svc.test:{o} HTTP/1.1\r\n\r\n").as_bytes())
        .unwrap();
    let mut head = [0u8; 39];
    s.read_exact(&mut head).unwrap();
    let mut sent = 0u64;
    let chunk = vec![b'x'; 8192];
    while sent < 10_000_000 {
        if s.write_all(&chunk).is_err() {
            break;
        }
        sent += chunk.len() as u64;
        std::thread::sleep(Duration::from_micros(200));
    }
    drop(s);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        *received.lock().unwrap() <= 100_000 + 64 * 1024,
        "the origin got {} bytes",
        received.lock().unwrap()
    );
    let r = request(
        p.port,
        format!("GET http://svc.test:{o}/ HTTP/1.1\r\n\r\n").as_bytes(),
    );
    assert!(r.starts_with("HTTP/1.1 403") && r.contains("budget"), "{r}");
    std::thread::sleep(Duration::from_millis(500));
    let events = p.events.lock().unwrap();
    assert!(events.iter().any(|e| {
        e.reason
            .as_deref()
            .is_some_and(|r| r.contains("budget was used up"))
    }));
    assert!(events.iter().any(|e| e.rule == "egress_budget"));
}

/// A loopback server that records every request head it gets (all of them, on one
/// connection, until the client closes) and answers each.
fn recording_origin() -> (u16, Arc<Mutex<Vec<String>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let heads = Arc::new(Mutex::new(Vec::new()));
    let h = heads.clone();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let mut s = s;
            s.set_read_timeout(Some(Duration::from_secs(3))).ok();
            let mut all = Vec::new();
            let mut buf = [0u8; 4096];
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 {
                    break;
                }
                all.extend_from_slice(&buf[..n]);
            }
            let text = String::from_utf8_lossy(&all).into_owned();
            h.lock().unwrap().push(text);
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        }
    });
    (port, heads)
}

#[test]
fn plain_http_sends_the_checked_host_and_nothing_pipelined_after_the_body() {
    let (port, heads) = recording_origin();
    let p = proxy(&[&format!("svc.test:{port}")], None);
    // On a shared address (a CDN), `Host:` picks the site: the guest names an allowed one in
    // the URL and another in Host, then pipelines a second request the policy never saw.
    let raw = format!(
        "POST http://svc.test:{port}/a HTTP/1.1\r\nHost: forbidden.test\r\nContent-Length: 4\r\n\r\n\
         bodyGET http://forbidden.test/steal HTTP/1.1\r\nHost: forbidden.test\r\n\r\n"
    );
    let answer = request(p.port, raw.as_bytes());
    assert!(answer.contains("200 OK"), "{answer}");
    let heads = heads.lock().unwrap();
    assert_eq!(heads.len(), 1);
    let got = &heads[0];
    // Header names are case-insensitive (hyper writes them in lowercase).
    let lower = got.to_ascii_lowercase();
    assert!(
        lower.contains(&format!("\r\nhost: svc.test:{port}\r\n")),
        "{got}"
    );
    assert_eq!(lower.matches("\r\nhost:").count(), 1, "{got}");
    assert!(!got.contains("forbidden"), "{got}");
    assert!(got.ends_with("\r\n\r\nbody"), "{got:?}");
}

#[test]
fn a_garbage_flood_makes_a_bounded_number_of_audit_events() {
    let p = proxy(&[], None);
    for _ in 0..200 {
        let _ = request(
            p.port,
            &[b'A'; 100]
                .iter()
                .chain(b"\r\n\r\n")
                .copied()
                .collect::<Vec<u8>>(),
        );
    }
    let events = p.events.lock().unwrap();
    assert!(
        events.len() <= 21,
        "{} events for 200 garbage requests",
        events.len()
    );
    assert!(events.iter().all(|e| e.method.len() <= 16 + "…".len()));
}
