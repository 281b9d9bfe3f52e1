//! The fuzz harness for the gateway's whole handling of one guest connection: the bytes go
//! through hyper's server, the phantom checks, the stripping, the approval and the forward
//! over verified TLS to a real upstream on loopback (a rustls server with a certificate from
//! a test CA) that answers every request with what reached it. Checked on every input:
//! nothing the guest gets back holds the secret's value; no event holds it; the upstream
//! gets the key in its header only, exactly once, and never the phantom in a header.

use std::convert::Infallible;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::gateway::{Gateway, SecretApproval, SecretBinding};

const VALUE: &str = "sk-fuzz-REAL-VALUE-7f3a9c";
const PHANTOM: &str = "berth-phantom-fuzz-0123456789abcdef";
const HEADER: &str = "x-api-key";

struct Harness {
    rt: tokio::runtime::Runtime,
    gateway: Arc<Gateway>,
    /// What broke an invariant (set by the upstream or the event sink).
    broken: Arc<Mutex<Option<String>>>,
}

fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(|| {
        // As in Berth's own binaries (Rust's runtime does it; libFuzzer's `main` does not):
        // a write to a closed connection is an error, not a signal that kills the process.
        // SAFETY: ignoring SIGPIPE process-wide, before any thread of the harness exists.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        let ca = crate::intercept::AttemptCa::new(&["localhost".to_string()]).expect("a CA");
        let server = ca.server_config("localhost").expect("a certificate");
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("a loopback port");
        let port = listener.local_addr().expect("its port").port();
        let broken = Arc::new(Mutex::new(None));
        rt.spawn(upstream(listener, server, broken.clone()));
        let binding = |name: &str, approve| SecretBinding {
            name: name.into(),
            upstream: format!("https://localhost:{port}/v1"),
            header: HEADER.into(),
            template: "{}".into(),
            phantom: PHANTOM.into(),
            expires_at: None,
            max_requests: None,
            approve,
            extra_roots_pem: Some(ca.pem()),
            intercept: false,
            value: Arc::new(|| Ok(VALUE.to_string())),
        };
        let seen = broken.clone();
        let sink: crate::EventSink = Arc::new(move |ev| {
            if format!("{ev:?}").contains(VALUE) {
                *seen.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some(format!("an event holds the value: {ev:?}"));
            }
        });
        let gateway = Gateway::new(
            vec![
                binding("fuzz", SecretApproval::None),
                binding("asks", SecretApproval::Each),
            ],
            None,
            sink,
        )
        .expect("the gateway");
        Harness {
            rt,
            gateway: Arc::new(gateway),
            broken,
        }
    })
}

/// The upstream: answers each request with its method, target, headers (the key's header
/// left out) and body.
async fn upstream(
    listener: tokio::net::TcpListener,
    config: Arc<rustls::ServerConfig>,
    broken: Arc<Mutex<Option<String>>>,
) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            return;
        };
        let (config, broken) = (config.clone(), broken.clone());
        tokio::spawn(async move {
            let Ok(tls) = tokio_rustls::TlsAcceptor::from(config).accept(tcp).await else {
                return;
            };
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let broken = broken.clone();
                async move {
                    let keys: Vec<_> = req.headers().get_all(HEADER).iter().collect();
                    let mut why = None;
                    if keys.len() != 1 || keys[0] != VALUE {
                        why = Some(format!("the upstream got the key header as {keys:?}"));
                    }
                    let mut seen = format!("{} {}\n", req.method(), req.uri());
                    for (k, v) in req.headers() {
                        let v = String::from_utf8_lossy(v.as_bytes());
                        if v.contains(PHANTOM) {
                            why = Some(format!("the phantom reached the upstream in {k}"));
                        }
                        if k != HEADER {
                            seen.push_str(&format!("{k}: {v}\n"));
                        }
                    }
                    if let Some(why) = why {
                        *broken.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
                    }
                    let body = req.into_body().collect().await.map(|b| b.to_bytes());
                    seen.push_str(&String::from_utf8_lossy(&body.unwrap_or_default()));
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(seen))))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .await;
        });
    }
}

/// One guest connection carrying `data`; panics when an invariant breaks. The first call
/// checks the harness itself: a request with the phantom must reach the upstream (else the
/// checks above would hold for nothing).
pub fn gateway_connection(data: &[u8]) {
    static CHECKED: std::sync::Once = std::sync::Once::new();
    CHECKED.call_once(|| {
        let out = connection(
            format!(
                "POST /gateway/fuzz/messages?x=1 HTTP/1.1\r\nHost: 10.0.2.100:3128\r\n\
                 {HEADER}: {PHANTOM}\r\nx-other: 1\r\ncontent-length: 4\r\n\r\nbody"
            )
            .as_bytes(),
        );
        let text = String::from_utf8_lossy(&out);
        assert!(
            text.contains("POST /v1/messages?x=1") && text.contains("x-other: 1"),
            "the fuzz harness's request did not reach its upstream: {text}"
        );
    });
    connection(data);
}

fn connection(data: &[u8]) -> Vec<u8> {
    let h = harness();
    let out = h.rt.block_on(async {
        let (mut guest, host) = tokio::io::duplex(1 << 16);
        let served = tokio::spawn(h.gateway.clone().serve(Vec::new(), host));
        let (mut rx, mut tx) = tokio::io::split(&mut guest);
        let send = async {
            let _ = tx.write_all(data).await;
            let _ = tx.shutdown().await;
        };
        let mut out = Vec::new();
        let receive = tokio::time::timeout(Duration::from_secs(10), rx.read_to_end(&mut out));
        let _ = tokio::join!(send, receive);
        match tokio::time::timeout(Duration::from_secs(10), served).await {
            Ok(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            _ => {}
        }
        out
    });
    if let Some(why) = h.broken.lock().unwrap_or_else(|e| e.into_inner()).take() {
        panic!("{why}");
    }
    let value = VALUE.as_bytes();
    assert!(
        !out.windows(value.len()).any(|w| w == value),
        "the secret's value reached the guest"
    );
    out
}
