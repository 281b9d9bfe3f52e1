//! A real TLS upstream on loopback, with its own CA (made here with rcgen), standing in for
//! an API a secret is for. It records every request (method, path, headers, when) and
//! answers:
//! - `/sse`: 20 server-sent events, 200 ms apart, each flushed as its own chunk;
//! - `/mark`: records that it came (the streaming test's "I have read the first event");
//! - `.../bytes/N`: N MiB (benchmarks);
//! - anything else: `{"ok":true}`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub at: Instant,
}

pub struct TlsUpstream {
    pub port: u16,
    /// The CA that signed the upstream's certificate (for `localhost`), PEM.
    pub ca_pem: String,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    /// When `/sse` sent its last event.
    pub last_event_at: Arc<Mutex<Option<Instant>>>,
    _rt: tokio::runtime::Runtime,
}

impl TlsUpstream {
    /// An upstream whose certificate is for `localhost`.
    pub fn start() -> TlsUpstream {
        Self::start_for(&["localhost"])
    }

    /// An upstream whose certificate is for `names`.
    pub fn start_for(names: &[&str]) -> TlsUpstream {
        let (acceptor, ca_pem) = tls_acceptor(names);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen: Arc<Mutex<Vec<Seen>>> = Default::default();
        let last_event_at: Arc<Mutex<Option<Instant>>> = Default::default();
        let (s, l) = (seen.clone(), last_event_at.clone());
        rt.spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, s, l) = (acceptor.clone(), s.clone(), l.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |req| {
                        let (s, l) = (s.clone(), l.clone());
                        async move { Ok::<_, std::convert::Infallible>(answer(req, &s, &l)) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        TlsUpstream {
            port,
            ca_pem,
            seen,
            last_event_at,
            _rt: rt,
        }
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// A TLS acceptor whose certificate is for `names`, signed by a CA made here (its PEM).
pub fn tls_acceptor(names: &[&str]) -> (tokio_rustls::TlsAcceptor, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "berth test upstream CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let leaf = rcgen::CertificateParams::new(names)
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![leaf.der().clone()], key)
    .unwrap();
    (tokio_rustls::TlsAcceptor::from(Arc::new(config)), ca.pem())
}

type Body = BoxBody<Bytes, std::convert::Infallible>;

fn answer(
    req: Request<Incoming>,
    seen: &Mutex<Vec<Seen>>,
    last: &Arc<Mutex<Option<Instant>>>,
) -> Response<Body> {
    let path = req.uri().path().to_string();
    seen.lock().unwrap().push(Seen {
        method: req.method().to_string(),
        path: path.clone(),
        headers: req
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        at: Instant::now(),
    });
    if let Some(mib) = path
        .rsplit_once("/bytes/")
        .and_then(|(_, n)| n.parse::<usize>().ok())
    {
        let (mut tx, body) =
            http_body_util::channel::Channel::<Bytes, std::convert::Infallible>::new(4);
        tokio::spawn(async move {
            let chunk = Bytes::from(vec![b'x'; 256 * 1024]);
            for _ in 0..mib * 4 {
                if tx.send(Frame::data(chunk.clone())).await.is_err() {
                    return;
                }
            }
        });
        return Response::builder()
            .header("content-type", "application/octet-stream")
            .header("content-length", (mib * 1024 * 1024).to_string())
            .body(body.boxed())
            .unwrap();
    }
    if path.ends_with("/sse") {
        let (mut tx, body) =
            http_body_util::channel::Channel::<Bytes, std::convert::Infallible>::new(1);
        let last = last.clone();
        tokio::spawn(async move {
            for i in 1..=20 {
                let event = format!("event: tick\ndata: {{\"n\":{i}}}\n\n");
                if tx.send(Frame::data(Bytes::from(event))).await.is_err() {
                    return;
                }
                if i == 20 {
                    *last.lock().unwrap() = Some(Instant::now());
                } else {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        });
        return Response::builder()
            .header("content-type", "text/event-stream")
            .body(body.boxed())
            .unwrap();
    }
    Response::builder()
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(b"{\"ok\":true}\n")).boxed())
        .unwrap()
}
