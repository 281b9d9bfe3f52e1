//! Reading and checking what a guest sends the proxy: one request head, strictly, so the
//! policy can decide on it (`httparse`, the parser hyper itself uses).
//!
//! A plain HTTP request is then forwarded by hyper (`forward.rs`), rebuilt, never relayed as
//! the guest wrote it. Chunked request bodies are refused here: over plain HTTP a guest has
//! no need for them (HTTPS, through CONNECT, carries anything), and a body of announced
//! length is what the budget can count before it goes.

use tokio::io::{AsyncRead, AsyncReadExt};

pub(crate) const MAX_HEAD: usize = 16 * 1024;

pub(crate) struct Request {
    pub method: String,
    pub host: String,
    pub port: u16,
    /// For plain HTTP: the `Host` header upstream gets (from the checked authority), and
    /// how many body bytes the request announced.
    pub plain: Option<Plain>,
}

pub(crate) struct Plain {
    pub host_header: String,
    pub body: u64,
}

/// Reads until the end of the request head; returns the buffer and the head's length.
pub(crate) async fn read_head<S: AsyncRead + Unpin>(
    s: &mut S,
) -> Result<(Vec<u8>, usize), (u16, &'static str)> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        let n = s
            .read(&mut chunk)
            .await
            .map_err(|_| (400, "connection error"))?;
        if n == 0 {
            return Err((400, "connection closed before the request head ended"));
        }
        let start = buf.len().saturating_sub(3);
        buf.extend_from_slice(&chunk[..n]);
        if let Some(pos) = buf[start..].windows(4).position(|w| w == b"\r\n\r\n") {
            return Ok((buf, start + pos + 4));
        }
        if buf.len() > MAX_HEAD {
            return Err((431, "request head larger than 16 KiB"));
        }
    }
}

pub(crate) fn parse_request(head: &[u8]) -> Result<Request, String> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err("incomplete request head".into()),
        Err(e) => return Err(format!("malformed request: {e}")),
    }
    let method = req.method.unwrap_or("").to_string();
    let target = req.path.unwrap_or("");
    if method == "CONNECT" {
        let (host, port) = split_authority(target, None)?;
        return Ok(Request {
            method,
            host,
            port,
            plain: None,
        });
    }
    let Some(rest) = target.strip_prefix("http://") else {
        return Err(format!(
            "'{target}' is not an absolute http:// URL (use CONNECT for https)"
        ));
    };
    let authority = match rest.find(['/', '?']) {
        Some(i) => &rest[..i],
        None => rest,
    };
    if authority.contains('@') {
        return Err("credentials in the URL are not forwarded".into());
    }
    let (host, port) = split_authority(authority, Some(80))?;
    let mut body = 0u64;
    // The authority the policy decided on, not whatever `Host:` the guest wrote.
    let host_header = if port == 80 {
        host.clone()
    } else {
        format!("{host}:{port}")
    };
    for h in req.headers.iter() {
        let name = h.name.to_ascii_lowercase();
        match name.as_str() {
            "transfer-encoding" => {
                return Err("chunked request bodies are not forwarded over plain HTTP; \
                            use https"
                    .into());
            }
            "content-length" => {
                let n = std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .ok_or("a Content-Length that is not a number")?;
                if body != 0 && body != n {
                    return Err("two different Content-Length headers".into());
                }
                body = n;
            }
            _ => {}
        }
    }
    Ok(Request {
        method,
        host,
        port,
        plain: Some(Plain { host_header, body }),
    })
}

fn split_authority(a: &str, default_port: Option<u16>) -> Result<(String, u16), String> {
    let bad = || format!("'{a}' is not host:port");
    let (host, port) = if let Some(rest) = a.strip_prefix('[') {
        let (h, tail) = rest.split_once(']').ok_or_else(bad)?;
        (format!("[{h}]"), tail.strip_prefix(':'))
    } else {
        match a.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (a.to_string(), None),
        }
    };
    let port = match (port, default_port) {
        (Some(p), _) => p.parse::<u16>().map_err(|_| bad())?,
        (None, Some(d)) => d,
        (None, None) => return Err(bad()),
    };
    if host.is_empty() || host.len() > 255 {
        return Err(bad());
    }
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarded(head: &str) -> (String, u64) {
        let r = parse_request(head.as_bytes()).unwrap();
        let p = r.plain.unwrap();
        (p.host_header, p.body)
    }

    #[test]
    fn host_comes_from_the_checked_authority_not_the_guests_header() {
        let (host, _) = forwarded(
            "GET http://allowed.test/x HTTP/1.1\r\nHost: other-site.test\r\nHOST: third.test\r\n\r\n",
        );
        assert_eq!(host, "allowed.test");
        let (host, _) = forwarded("GET http://a.test:8080/ HTTP/1.1\r\n\r\n");
        assert_eq!(host, "a.test:8080");
    }

    #[test]
    fn only_the_announced_body_is_forwarded_and_chunked_bodies_are_refused() {
        let (_, n) = forwarded("POST http://a.test/ HTTP/1.1\r\nContent-Length: 5\r\n\r\n");
        assert_eq!(n, 5);
        let (_, n) = forwarded("GET http://a.test/ HTTP/1.1\r\n\r\n");
        assert_eq!(n, 0);
        for bad in [
            "POST http://a.test/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST http://a.test/ HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            "POST http://a.test/ HTTP/1.1\r\nContent-Length: lots\r\n\r\n",
        ] {
            assert!(parse_request(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
