//! The secrets gateway's cost: first-byte latency and streaming throughput of requests to a
//! TLS upstream on loopback, direct (a rustls client, as a program on the host would) and
//! through the gateway (plain HTTP to the attempt's proxy, as the guest's bridge delivers it;
//! the gateway keeps its TLS connections to the upstream alive).
//!
//! `cargo bench -p berth-tests --bench gateway -- [--requests 200] [--mib 256]`
#![allow(clippy::print_stdout)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_egress::{EgressProxy, Mode, Policy, SecretApproval, SecretBinding};
use berth_tests::TlsUpstream;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;

const PHANTOM: &str = "berth-phantom-bench";

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// One request through the gateway on a new connection: time to the first response byte,
/// and to the end (bytes read).
fn through_gateway(port: u16, path: &str) -> (Duration, Duration, usize) {
    let t = Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET /gateway/api{path} HTTP/1.1\r\nHost: 10.0.2.100:3128\r\nx-api-key: {PHANTOM}\r\n\
         Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = vec![0u8; 256 * 1024];
    let n = s.read(&mut buf).unwrap();
    let first = t.elapsed();
    let mut total = n;
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => total += n,
        }
    }
    (first, t.elapsed(), total)
}

/// `GET /bytes/<mib>` straight to the upstream over a blocking rustls stream; bytes read
/// (headers included).
fn direct_stream(config: &Arc<rustls::ClientConfig>, port: u16, mib: usize) -> usize {
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(config.clone(), name).unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    write!(
        tls,
        "GET /bytes/{mib} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0;
    loop {
        match tls.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => total += n,
        }
    }
    total
}

fn main() {
    let (requests, mib) = (
        berth_tests::bench_arg("--requests", 200),
        berth_tests::bench_arg("--mib", 256),
    );
    let up = TlsUpstream::start();
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let binding = SecretBinding {
        name: "api".into(),
        upstream: format!("https://localhost:{}", up.port),
        header: "x-api-key".into(),
        template: "{}".into(),
        phantom: PHANTOM.into(),
        expires_at: None,
        max_requests: None,
        approve: SecretApproval::None,
        extra_roots_pem: Some(up.ca_pem.clone()),
        intercept: false,
        value: Arc::new(|| Ok("sk-bench".into())),
    };
    let policy = Policy {
        mode: Mode::Allowlist,
        ..Policy::default()
    };
    let _proxy =
        EgressProxy::start_tcp_with_secrets(l, policy, Arc::new(|_| {}), None, vec![binding])
            .unwrap();

    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject;
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(up.ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tls_config = Arc::new(config.clone());
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_only()
        .enable_http1()
        .build();
    let direct = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build::<_, Empty<Bytes>>(connector);
    let url =
        |p: &str| -> hyper::Uri { format!("https://localhost:{}{p}", up.port).parse().unwrap() };

    // Warm both paths (TLS sessions, pools).
    for _ in 0..5 {
        through_gateway(port, "/v1/hello");
        rt.block_on(direct.get(url("/v1/hello"))).unwrap();
    }
    let mut d_first = Vec::new();
    let mut g_first = Vec::new();
    for _ in 0..requests {
        let t = Instant::now();
        let resp = rt.block_on(direct.get(url("/v1/hello"))).unwrap();
        d_first.push(t.elapsed());
        rt.block_on(resp.into_body().collect()).unwrap();
        g_first.push(through_gateway(port, "/v1/hello").0);
    }
    // Streams are read the same way on both paths: a blocking socket, 256 KiB reads.
    let t = Instant::now();
    let bytes = direct_stream(&tls_config, up.port, mib);
    let d_secs = t.elapsed().as_secs_f64();
    assert!(bytes >= mib << 20, "{bytes}");
    let (_, g_total, g_bytes) = through_gateway(port, &format!("/bytes/{mib}"));
    assert!(g_bytes >= mib << 20, "{g_bytes}");
    let g_secs = g_total.as_secs_f64();
    let (d, g) = (median(d_first), median(g_first));
    println!("requests: {requests}, stream: {mib} MiB");
    println!(
        "first byte, direct (keep-alive TLS):            {:.3} ms (median)",
        d.as_secs_f64() * 1e3
    );
    println!(
        "first byte, gateway (new connection each time): {:.3} ms (median), +{:.3} ms",
        g.as_secs_f64() * 1e3,
        (g.as_secs_f64() - d.as_secs_f64()) * 1e3
    );
    println!("stream, direct:  {:.0} MiB/s", mib as f64 / d_secs);
    println!(
        "stream, gateway: {:.0} MiB/s ({:.2}x direct)",
        mib as f64 / g_secs,
        d_secs / g_secs
    );
}
