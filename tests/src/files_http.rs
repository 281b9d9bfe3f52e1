//! A loopback HTTP server that serves a directory: the stand-in for a package registry
//! (a git index for cargo, packuments and tarballs for npm, a simple index for pip). It
//! answers `GET` and `HEAD`, origin-form and absolute-form alike, and records every path
//! asked for so a test can tell what was fetched. Loopback only.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct FilesHttp {
    pub port: u16,
    /// Every request line's path, in the order they came.
    pub requests: Arc<Mutex<Vec<String>>>,
}

impl FilesHttp {
    pub fn serve(root: &Path) -> FilesHttp {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let requests: Arc<Mutex<Vec<String>>> = Default::default();
        let (root, seen) = (root.to_path_buf(), requests.clone());
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                let (root, seen) = (root.clone(), seen.clone());
                std::thread::spawn(move || {
                    let _ = connection(s, &root, &seen);
                });
            }
        });
        FilesHttp { port, requests }
    }

    /// Whether some request's path contains `needle`.
    pub fn was_asked_for(&self, needle: &str) -> bool {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .any(|p| p.contains(needle))
    }
}

/// Requests on one connection, kept alive until the client closes it.
fn connection(s: TcpStream, root: &Path, seen: &Mutex<Vec<String>>) -> std::io::Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(s.try_clone()?);
    let mut out = s;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or("/"));
        let mut body_len = 0usize;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h)? == 0 {
                return Ok(());
            }
            if h.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                body_len = v.trim().parse().unwrap_or(0);
            }
        }
        std::io::copy(
            &mut (&mut reader).take(body_len as u64),
            &mut std::io::sink(),
        )?;
        let path = origin_path(target);
        seen.lock().unwrap().push(path.clone());
        let (status, kind, body) = match (method, file_for(root, &path)) {
            ("GET" | "HEAD", Some(file)) => ("200 OK", content_type(&file), std::fs::read(&file)?),
            _ => ("404 Not Found", "text/plain", b"not here\n".to_vec()),
        };
        write!(
            out,
            "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )?;
        if method != "HEAD" {
            out.write_all(&body)?;
        }
        out.flush()?;
    }
}

/// `http://host:port/a/b?q` and `/a/b?q` both give `/a/b`.
fn origin_path(target: &str) -> String {
    let rest = match target.split_once("://") {
        Some((_, after)) => after.find('/').map(|i| &after[i..]).unwrap_or("/"),
        None => target,
    };
    rest.split(['?', '#']).next().unwrap_or("/").to_string()
}

/// The file under `root` for `path`; a directory gives its `index.html` or `index.json`.
/// Nothing outside `root`.
fn file_for(root: &Path, path: &str) -> Option<PathBuf> {
    let rel = Path::new(path.trim_start_matches('/'));
    if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return None;
    }
    let p = root.join(rel);
    if p.is_dir() {
        return ["index.html", "index.json"]
            .iter()
            .map(|i| p.join(i))
            .find(|i| i.is_file());
    }
    p.is_file().then_some(p)
}

fn content_type(file: &Path) -> &'static str {
    match file.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}
