//! Plain HTTP through the proxy, on hyper: the guest's one request (already checked and
//! decided on from its head) is served by hyper's HTTP/1 server on the guest's connection
//! and sent upstream by hyper's client, rebuilt: origin-form, `Host` from the authority the
//! policy decided on (a guest's own `Host:` could name another site on a shared CDN
//! address), hop-by-hop headers dropped, `Connection: close`. Only that request is served
//! (no keep-alive), so bytes pipelined after its body, a request the policy never saw, go
//! nowhere. The response streams back as it comes.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{CONNECTION, HOST, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::gateway::{HOP_BY_HOP, plain};
use crate::prefixed::Prefixed;

/// Serves the guest's request on `client` (its first bytes in `prefix`) through `upstream`;
/// returns the bytes that went up (head and body) and came down (body).
pub(crate) async fn forward_plain<S>(
    prefix: Vec<u8>,
    client: S,
    upstream: TcpStream,
    host_header: String,
) -> (u64, u64)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Ok((sender, conn)) =
        hyper::client::conn::http1::handshake::<_, Incoming>(TokioIo::new(upstream)).await
    else {
        return (0, 0);
    };
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let sender = Arc::new(tokio::sync::Mutex::new(sender));
    let (up, down) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (u, d) = (up.clone(), down.clone());
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let (sender, host, up, down) = (sender.clone(), host_header.clone(), u.clone(), d.clone());
        async move {
            let (mut parts, body) = req.into_parts();
            let path = parts
                .uri
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .unwrap_or_else(|| "/".into());
            parts.uri = match path.parse() {
                Ok(u) => u,
                Err(_) => {
                    return Ok::<_, Infallible>(plain(
                        StatusCode::BAD_REQUEST,
                        "a request the proxy cannot rebuild",
                    ));
                }
            };
            parts.version = hyper::Version::HTTP_11;
            for h in HOP_BY_HOP {
                parts.headers.remove(*h);
            }
            let Ok(host) = HeaderValue::from_str(&host) else {
                return Ok(plain(
                    StatusCode::BAD_REQUEST,
                    "a request the proxy cannot rebuild",
                ));
            };
            parts.headers.insert(HOST, host);
            parts
                .headers
                .insert(CONNECTION, HeaderValue::from_static("close"));
            let head: usize = parts.method.as_str().len()
                + path.len()
                + parts
                    .headers
                    .iter()
                    .map(|(k, v)| k.as_str().len() + v.len() + 4)
                    .sum::<usize>();
            let body_len = parts
                .headers
                .get(hyper::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                .unwrap_or(0);
            up.fetch_add(head as u64 + body_len, Ordering::SeqCst);
            let sent = sender
                .lock()
                .await
                .send_request(Request::from_parts(parts, body))
                .await;
            let Ok(resp) = sent else {
                return Ok(plain(
                    StatusCode::BAD_GATEWAY,
                    "the upstream did not answer",
                ));
            };
            let (mut parts, body) = resp.into_parts();
            for h in HOP_BY_HOP {
                parts.headers.remove(*h);
            }
            let body = body
                .map_frame(move |f| {
                    if let Some(data) = f.data_ref() {
                        down.fetch_add(data.len() as u64, Ordering::SeqCst);
                    }
                    f
                })
                .boxed();
            Ok(Response::from_parts(parts, body))
        }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .keep_alive(false)
        .timer(TokioTimer::new())
        .serve_connection(TokioIo::new(Prefixed::new(prefix, client)), service)
        .await;
    (up.load(Ordering::SeqCst), down.load(Ordering::SeqCst))
}
