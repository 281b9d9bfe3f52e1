//! The secrets gateway: how a guest uses a key it never holds.
//!
//! Each secret bound to an attempt has a base URL on the attempt's proxy
//! (`http://10.0.2.100:3128/gateway/<name>`) and a random per-attempt *phantom* token, which
//! the guest puts where its program expects the key. A request there must carry that
//! attempt's phantom (in the secret's header, `Authorization: Bearer`, or `x-api-key`); the
//! gateway then checks the binding's TTL, request cap and approval, strips every header that
//! carried the phantom, sets the real header (the value read from the keyring by the
//! binding's `value` function, only here, only when needed), and forwards the request over
//! verified TLS to the secret's upstream. The response streams back frame by frame, never
//! buffered or rewritten. Each use is one [`EgressEvent`] with the secret's name, the
//! upstream, method, path, status and bytes; never the value or the phantom.
//!
//! HTTP here is hyper's (server side for the guest's connection, client side with rustls to
//! the upstream), not hand-written.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::prefixed::Prefixed;

use crate::approval::{Approval, Approver};
use crate::events::capped;
use crate::proxy::{EgressEvent, EventSink};

/// Where a secret's base URL starts, on the proxy's own address.
pub const GATEWAY_PREFIX: &str = "/gateway/";

/// How a use of a bound secret is approved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretApproval {
    /// No question (the user chose so when binding it).
    None,
    /// The first use asks; "for this task" covers the rest.
    Task,
    /// Every use asks.
    Each,
}

/// Reads a secret's value (from the OS keyring) when the gateway first needs it.
pub type SecretValue = Arc<dyn Fn() -> Result<String, String> + Send + Sync>;

/// A secret bound to one attempt.
pub struct SecretBinding {
    pub name: String,
    /// `https://host[:port][/base/path]`.
    pub upstream: String,
    /// The header the upstream reads the key from (`x-api-key`, `authorization`).
    pub header: String,
    /// The header's value with `{}` where the key goes (`{}`, `Bearer {}`).
    pub template: String,
    pub phantom: String,
    pub expires_at: Option<Instant>,
    pub max_requests: Option<u64>,
    pub approve: SecretApproval,
    /// PEM certificates the upstream's chain may end in, besides the system's roots (a
    /// company's own CA; the tests' CA).
    pub extra_roots_pem: Option<String>,
    /// Also answer CONNECTs to the upstream's host with the attempt's CA (for programs
    /// that cannot take a base URL); otherwise such a CONNECT is refused.
    pub intercept: bool,
    pub value: SecretValue,
}

struct Bound {
    binding: SecretBinding,
    host: String,
    port: u16,
    authority: String,
    base: String,
    client: Client<HttpsConnector<HttpConnector>, Incoming>,
    used: AtomicU64,
    approved_for_task: AtomicBool,
    value: Mutex<Option<String>>,
}

/// The gateway of one attempt.
pub struct Gateway {
    bound: Vec<Bound>,
    /// The interception CA, when a binding asked for interception.
    ca: Option<crate::intercept::AttemptCa>,
    approver: Option<Approver>,
    sink: EventSink,
}

pub(crate) type Body = BoxBody<Bytes, hyper::Error>;

impl Gateway {
    /// Checks every binding's upstream and makes its TLS client.
    pub fn new(
        bindings: Vec<SecretBinding>,
        approver: Option<Approver>,
        sink: EventSink,
    ) -> Result<Gateway, String> {
        let mut bound = Vec::new();
        for binding in bindings {
            let uri: Uri = binding.upstream.parse().map_err(|e| {
                format!(
                    "secret {}: upstream '{}': {e}",
                    binding.name, binding.upstream
                )
            })?;
            if uri.scheme_str() != Some("https") {
                return Err(format!(
                    "secret {}: the upstream must be an https:// URL, not '{}'",
                    binding.name, binding.upstream
                ));
            }
            let host = uri.host().unwrap_or_default().to_ascii_lowercase();
            if host.is_empty() || uri.query().is_some() {
                return Err(format!(
                    "secret {}: '{}' is not a base URL (https://host[:port][/path])",
                    binding.name, binding.upstream
                ));
            }
            let port = uri.port_u16().unwrap_or(443);
            let authority = uri.authority().map(|a| a.to_string()).unwrap_or_default();
            let base = uri.path().trim_end_matches('/').to_string();
            let client = tls_client(binding.extra_roots_pem.as_deref())
                .map_err(|e| format!("secret {}: {e}", binding.name))?;
            bound.push(Bound {
                binding,
                host,
                port,
                authority,
                base,
                client,
                used: AtomicU64::new(0),
                approved_for_task: AtomicBool::new(false),
                value: Mutex::new(None),
            });
        }
        let intercepted: Vec<String> = bound
            .iter()
            .filter(|b| b.binding.intercept)
            .map(|b| b.host.clone())
            .collect();
        let ca = if intercepted.is_empty() {
            None
        } else {
            Some(crate::intercept::AttemptCa::new(&intercepted)?)
        };
        Ok(Gateway {
            bound,
            ca,
            approver,
            sink,
        })
    }

    /// The attempt's interception CA (PEM), when a binding asked for interception.
    pub fn ca_pem(&self) -> Option<String> {
        self.ca.as_ref().map(|c| c.pem())
    }

    /// Whether a CONNECT to `host:port` is intercepted (a bound upstream whose binding asked
    /// for it).
    pub fn intercepts(&self, host: &str, port: u16) -> bool {
        let host = crate::target::normalize(host);
        self.ca.is_some()
            && self
                .bound
                .iter()
                .any(|b| b.binding.intercept && b.host == host && b.port == port)
    }

    /// Serves an intercepted tunnel to `host`: TLS with a certificate from the attempt's CA,
    /// then each request inside it as a use of the host's secret (same checks, the full
    /// path on the upstream).
    pub(crate) async fn serve_intercepted<S>(
        self: Arc<Self>,
        host: String,
        prefix: Vec<u8>,
        client: S,
    ) where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let host = crate::target::normalize(&host);
        let Some(config) = self.ca.as_ref().and_then(|ca| ca.server_config(&host).ok()) else {
            return;
        };
        let io = Prefixed::new(prefix, client);
        let Ok(tls) = tokio_rustls::TlsAcceptor::from(config).accept(io).await else {
            return;
        };
        let gw = self.clone();
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let (gw, host) = (gw.clone(), host.clone());
            async move {
                let Some(b) = gw
                    .bound
                    .iter()
                    .find(|b| b.host == host && b.binding.intercept)
                else {
                    return Ok::<_, Infallible>(plain(StatusCode::NOT_FOUND, "not intercepted"));
                };
                let rest = req.uri().path().to_string();
                Ok(gw.use_secret(b, req, &rest, "").await)
            }
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(10))
            .serve_connection(TokioIo::new(tls), service)
            .await;
    }

    /// Whether `host` is a bound secret's upstream (the guest reaches it only through here).
    pub fn binds_host(&self, host: &str) -> Option<&str> {
        let host = crate::target::normalize(host);
        self.bound
            .iter()
            .find(|b| b.host == host)
            .map(|b| b.binding.name.as_str())
    }

    /// Serves one guest connection (its first bytes already read into `prefix`).
    pub(crate) async fn serve<S>(self: Arc<Self>, prefix: Vec<u8>, client: S)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let io = TokioIo::new(Prefixed::new(prefix, client));
        let gw = self.clone();
        let service = hyper::service::service_fn(move |req| {
            let gw = gw.clone();
            async move { Ok::<_, Infallible>(gw.handle(req).await) }
        });
        // A guest that shuts its side after its request still gets the answer.
        let _ = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(10))
            .half_close(true)
            .serve_connection(io, service)
            .await;
    }

    async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        let path = req.uri().path().to_string();
        // Only requests for the proxy's own address come here (a pipelined request for
        // another host on the same connection is no gateway request).
        if let Some(a) = req.uri().authority()
            && a.as_str() != format!("{}:{}", crate::GUEST_PROXY_ADDR, crate::GUEST_PROXY_PORT)
        {
            return plain(StatusCode::BAD_REQUEST, "not a gateway request");
        }
        let Some((name, rest)) = split_gateway_path(&path) else {
            return plain(
                StatusCode::NOT_FOUND,
                "no such secret on this attempt's gateway",
            );
        };
        let Some(b) = self.bound.iter().find(|b| b.binding.name == name) else {
            return plain(
                StatusCode::NOT_FOUND,
                "no such secret on this attempt's gateway",
            );
        };
        let rest = rest.to_string();
        self.use_secret(b, req, &rest, &b.base).await
    }

    /// One use of `b`: checks, then the request to `https://<upstream><base><rest>` with the
    /// real header, its response streamed back.
    async fn use_secret(
        &self,
        b: &Bound,
        req: Request<Incoming>,
        rest: &str,
        base: &str,
    ) -> Response<Body> {
        let method = req.method().to_string();
        let shown_path = capped(rest, 512);
        let deny = |code: StatusCode, why: &str| {
            let ev = self.event(
                b,
                &method,
                &shown_path,
                "deny",
                Some(why.to_string()),
                code.as_u16(),
                0,
            );
            (self.sink)(ev);
            plain(code, why)
        };
        if has_dot_segments(rest) {
            return deny(StatusCode::BAD_REQUEST, "a path with . or .. segments");
        }
        if !presents_phantom(req.headers(), &b.binding) {
            return deny(
                StatusCode::UNAUTHORIZED,
                "this request does not carry the attempt's token for the secret",
            );
        }
        if b.binding.expires_at.is_some_and(|t| Instant::now() >= t) {
            return deny(
                StatusCode::FORBIDDEN,
                "the secret's time on this attempt is up",
            );
        }
        let n = b.used.fetch_add(1, Ordering::SeqCst) + 1;
        if b.binding.max_requests.is_some_and(|max| n > max) {
            return deny(StatusCode::FORBIDDEN, "the secret's request cap is reached");
        }
        if let Err(why) = self.approve(b).await {
            return deny(StatusCode::FORBIDDEN, &why);
        }
        let value = match self.value(b) {
            Ok(v) => v,
            Err(why) => {
                return deny(
                    StatusCode::BAD_GATEWAY,
                    &format!("the secret's value cannot be read: {why}"),
                );
            }
        };
        let query = req
            .uri()
            .query()
            .map(|q| format!("?{q}"))
            .unwrap_or_default();
        let target = format!("https://{}{base}{rest}{query}", b.authority);
        let (mut parts, body) = req.into_parts();
        parts.uri = match target.parse() {
            Ok(u) => u,
            Err(_) => {
                return deny(
                    StatusCode::BAD_REQUEST,
                    "a path the upstream URL cannot take",
                );
            }
        };
        parts.version = hyper::Version::HTTP_11;
        strip_for_upstream(&mut parts.headers, &b.binding);
        let Ok(host) = HeaderValue::from_str(&b.authority) else {
            return deny(
                StatusCode::BAD_GATEWAY,
                "the upstream's name is no header value",
            );
        };
        parts.headers.insert(hyper::header::HOST, host);
        match real_header(&b.binding, &value) {
            Some((k, v)) => {
                parts.headers.insert(k, v);
            }
            None => return deny(StatusCode::BAD_GATEWAY, "the secret's header is malformed"),
        }
        let up_bytes = parts
            .headers
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            .unwrap_or(0);
        let resp = match b.client.request(Request::from_parts(parts, body)).await {
            Ok(r) => r,
            Err(e) => {
                let why = format!(
                    "cannot reach the secret's upstream {}: {}",
                    b.authority,
                    error_chain(&e)
                );
                return deny(StatusCode::BAD_GATEWAY, &why);
            }
        };
        let status = resp.status().as_u16();
        let (mut parts, body) = resp.into_parts();
        for h in HOP_BY_HOP {
            parts.headers.remove(*h);
        }
        // Streamed through as it comes; the audit event is made when the body ends (or
        // the guest goes away), with the bytes that passed.
        let mut done = UseRecord {
            sink: self.sink.clone(),
            event: self.event(b, &method, &shown_path, "allow", None, status, up_bytes),
        };
        let body = body
            .map_frame(move |frame| {
                // The whole record lives in the body (recorded when the body is dropped).
                let record = &mut done;
                if let Some(d) = frame.data_ref() {
                    record.event.bytes_down += d.len() as u64;
                }
                frame
            })
            .boxed();
        Response::from_parts(parts, body)
    }

    /// Asks the user when the binding says so.
    async fn approve(&self, b: &Bound) -> Result<(), String> {
        let ask = match b.binding.approve {
            SecretApproval::None => false,
            SecretApproval::Task => !b.approved_for_task.load(Ordering::SeqCst),
            SecretApproval::Each => true,
        };
        if !ask {
            return Ok(());
        }
        let Some(approver) = &self.approver else {
            return Err("the secret needs approval and nobody is attached to give it".into());
        };
        // `secret:<name>` can never be a network question (those are plain host names), so
        // front ends say what is asked, and an "always" is never taken for a network rule.
        let rx = approver(&format!("secret:{}", b.binding.name), b.port);
        let answer = tokio::time::timeout(crate::APPROVAL_TIMEOUT, rx).await;
        match answer {
            Ok(Ok(Approval::Once)) => Ok(()),
            Ok(Ok(Approval::Always)) => {
                b.approved_for_task.store(true, Ordering::SeqCst);
                Ok(())
            }
            Ok(Ok(Approval::Deny(why))) => Err(format!("the use of the secret was denied: {why}")),
            Ok(Err(_)) => Err("the use of the secret was denied: no answer".into()),
            Err(_) => Err("the use of the secret was not approved in time".into()),
        }
    }

    fn value(&self, b: &Bound) -> Result<String, String> {
        let mut cached = b.value.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = cached.as_ref() {
            return Ok(v.clone());
        }
        let v = (b.binding.value)()?;
        *cached = Some(v.clone());
        Ok(v)
    }

    /// The audit event of one use (or refusal) of `b`.
    #[allow(clippy::too_many_arguments)]
    fn event(
        &self,
        b: &Bound,
        method: &str,
        path: &str,
        decision: &'static str,
        reason: Option<String>,
        status: u16,
        up: u64,
    ) -> EgressEvent {
        EgressEvent {
            host: b.host.clone(),
            port: b.port,
            method: capped(method, 16),
            decision,
            rule: format!("secret {}", b.binding.name),
            reason,
            bytes_up: up,
            bytes_down: 0,
            secret: Some(b.binding.name.clone()),
            path: Some(path.to_string()),
            status: Some(status),
        }
    }
}

/// One use of a secret, recorded when dropped: its response body ended or was abandoned.
struct UseRecord {
    sink: EventSink,
    event: EgressEvent,
}

impl Drop for UseRecord {
    fn drop(&mut self) {
        (self.sink)(self.event.clone());
    }
}

/// Headers that belong to one connection, never forwarded either way.
pub(crate) const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Drops what must not go upstream: hop-by-hop headers, the guest's Host, and every header
/// that may carry the phantom (the secret's own, `Authorization`, `x-api-key`).
fn strip_for_upstream(headers: &mut HeaderMap, b: &SecretBinding) {
    for h in HOP_BY_HOP {
        headers.remove(*h);
    }
    headers.remove(hyper::header::HOST);
    headers.remove(hyper::header::AUTHORIZATION);
    headers.remove("x-api-key");
    headers.remove(b.header.as_str());
    // Byte-wise: a value with bytes outside visible ASCII is still a header (found by the
    // gateway_connection fuzz target: such a header carried the phantom to the upstream).
    let phantom = b.phantom.as_bytes();
    let carrying: Vec<HeaderName> = headers
        .iter()
        .filter(|(_, v)| {
            !phantom.is_empty() && v.as_bytes().windows(phantom.len()).any(|w| w == phantom)
        })
        .map(|(k, _)| k.clone())
        .collect();
    for k in carrying {
        headers.remove(k);
    }
}

/// The header that carries the real value, marked sensitive (kept out of debug output).
fn real_header(b: &SecretBinding, value: &str) -> Option<(HeaderName, HeaderValue)> {
    let name = HeaderName::from_bytes(b.header.as_bytes()).ok()?;
    let mut v = HeaderValue::from_str(&b.template.replacen("{}", value, 1)).ok()?;
    v.set_sensitive(true);
    Some((name, v))
}

/// Whether the request carries the binding's phantom where a key goes.
fn presents_phantom(headers: &HeaderMap, b: &SecretBinding) -> bool {
    let expected_in_template = b.template.replacen("{}", &b.phantom, 1);
    let bearer = format!("Bearer {}", b.phantom);
    [b.header.as_str(), "authorization", "x-api-key"]
        .iter()
        .filter_map(|h| headers.get(*h)?.to_str().ok())
        .any(|v| {
            let v = v.trim();
            ct_eq(v, &expected_in_template) || ct_eq(v, &b.phantom) || ct_eq(v, &bearer)
        })
}

/// Compares without stopping at the first difference.
fn ct_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// `/gateway/<name>/rest` → (`name`, `/rest`).
pub(crate) fn split_gateway_path(path: &str) -> Option<(&str, &str)> {
    let after = path.strip_prefix(GATEWAY_PREFIX)?;
    let (name, rest) = match after.find('/') {
        Some(i) => (&after[..i], &after[i..]),
        None => (after, ""),
    };
    (!name.is_empty()).then_some((name, rest))
}

pub(crate) fn has_dot_segments(path: &str) -> bool {
    path.split('/').any(|seg| {
        let s = seg.to_ascii_lowercase().replace("%2e", ".");
        s == "." || s == ".."
    })
}

/// Whether a request head is for the gateway: its target is `/gateway/...`, or the same on
/// the proxy's own address in absolute form.
pub(crate) fn is_gateway_request(head: &[u8]) -> bool {
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let mut parts = line.split(|&b| b == b' ');
    let (_, Some(target)) = (parts.next(), parts.next()) else {
        return false;
    };
    let own = format!(
        "http://{}:{}",
        crate::GUEST_PROXY_ADDR,
        crate::GUEST_PROXY_PORT
    );
    let target = target.strip_prefix(own.as_bytes()).unwrap_or(target);
    target.starts_with(GATEWAY_PREFIX.as_bytes())
}

pub(crate) fn plain(code: StatusCode, why: &str) -> Response<Body> {
    let mut r = Response::new(
        Full::new(Bytes::from(format!("berth: {why}\n")))
            .map_err(|never| match never {})
            .boxed(),
    );
    *r.status_mut() = code;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain"),
    );
    r
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// A TLS client that verifies the upstream against the system's roots (and `extra`).
fn tls_client(
    extra: Option<&str>,
) -> Result<Client<HttpsConnector<HttpConnector>, Incoming>, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        let _ = roots.add(cert);
    }
    if let Some(pem) = extra {
        let mut n = 0;
        for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            let cert = cert.map_err(|e| format!("its CA certificate: {e}"))?;
            roots
                .add(cert)
                .map_err(|e| format!("its CA certificate: {e}"))?;
            n += 1;
        }
        if n == 0 {
            return Err("its CA file holds no PEM certificate".into());
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_only()
        .enable_http1()
        .build();
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .build(https))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_paths_and_heads_are_recognized() {
        assert_eq!(
            split_gateway_path("/gateway/anthropic/v1/messages"),
            Some(("anthropic", "/v1/messages"))
        );
        assert_eq!(split_gateway_path("/gateway/x"), Some(("x", "")));
        assert_eq!(split_gateway_path("/gateway/"), None);
        assert_eq!(split_gateway_path("/other"), None);
        assert!(is_gateway_request(b"POST /gateway/a/v1 HTTP/1.1\r\n\r\n"));
        assert!(is_gateway_request(
            b"GET http://10.0.2.100:3128/gateway/a/ HTTP/1.1\r\n\r\n"
        ));
        assert!(!is_gateway_request(
            b"GET http://evil.test/gateway/a/ HTTP/1.1\r\n\r\n"
        ));
        assert!(!is_gateway_request(
            b"CONNECT api.test:443 HTTP/1.1\r\n\r\n"
        ));
        assert!(has_dot_segments("/v1/../admin"));
        assert!(has_dot_segments("/v1/%2E%2e/admin"));
        assert!(!has_dot_segments("/v1/a..b"));
    }

    fn binding(header: &str, template: &str) -> SecretBinding {
        SecretBinding {
            name: "t".into(),
            upstream: "https://api.test".into(),
            header: header.into(),
            template: template.into(),
            phantom: "berth-phantom-abc".into(),
            expires_at: None,
            max_requests: None,
            approve: SecretApproval::None,
            extra_roots_pem: None,
            intercept: false,
            value: Arc::new(|| Ok("real".into())),
        }
    }

    #[test]
    fn only_the_phantom_opens_the_gateway_and_every_header_carrying_it_is_stripped() {
        let b = binding("authorization", "Bearer {}");
        let mut h = HeaderMap::new();
        assert!(!presents_phantom(&h, &b));
        h.insert(
            "authorization",
            HeaderValue::from_static("Bearer berth-phantom-abd"),
        );
        assert!(!presents_phantom(&h, &b));
        h.insert(
            "authorization",
            HeaderValue::from_static("Bearer berth-phantom-abc"),
        );
        assert!(presents_phantom(&h, &b));
        h.insert(
            "x-other",
            HeaderValue::from_static("copy berth-phantom-abc"),
        );
        h.insert("accept", HeaderValue::from_static("text/event-stream"));
        // With a byte outside visible ASCII in the value (not a `str` to hyper).
        h.insert(
            "x-obs",
            HeaderValue::from_bytes(b"\xb2 berth-phantom-abc").unwrap(),
        );
        strip_for_upstream(&mut h, &b);
        assert!(h.get("authorization").is_none() && h.get("x-other").is_none());
        assert!(h.get("x-obs").is_none());
        assert!(h.get("accept").is_some());
        let (k, v) = real_header(&b, "sk-real").unwrap();
        assert_eq!(
            (k.as_str(), v.to_str().unwrap()),
            ("authorization", "Bearer sk-real")
        );
        assert!(v.is_sensitive());
        let b = binding("x-api-key", "{}");
        let mut h = HeaderMap::new();
        h.insert("x-api-key", HeaderValue::from_static("berth-phantom-abc"));
        assert!(presents_phantom(&h, &b));
    }
}
