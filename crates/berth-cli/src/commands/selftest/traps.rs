//! What the selftest listens with, on the host's loopback only: traps that count whatever
//! reaches them (a single connection or datagram is a breach), and the one server the guest
//! is allowed to reach, which records what it was sent.

use std::io::{Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A TCP port that counts connections; it never answers.
pub struct TcpTrap {
    pub port: u16,
    hits: Arc<AtomicU64>,
}

impl TcpTrap {
    pub fn start() -> std::io::Result<TcpTrap> {
        let l = TcpListener::bind("127.0.0.1:0")?;
        let port = l.local_addr()?.port();
        let hits = Arc::new(AtomicU64::new(0));
        let h = hits.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                h.fetch_add(1, Ordering::SeqCst);
                drop(s);
            }
        });
        Ok(TcpTrap { port, hits })
    }

    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::SeqCst)
    }
}

/// A UDP port that counts datagrams.
pub struct UdpTrap {
    pub port: u16,
    hits: Arc<AtomicU64>,
}

impl UdpTrap {
    pub fn start() -> std::io::Result<UdpTrap> {
        let s = UdpSocket::bind("127.0.0.1:0")?;
        let port = s.local_addr()?.port();
        let hits = Arc::new(AtomicU64::new(0));
        let h = hits.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while s.recv_from(&mut buf).is_ok() {
                h.fetch_add(1, Ordering::SeqCst);
            }
        });
        Ok(UdpTrap { port, hits })
    }

    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::SeqCst)
    }
}

/// The server the attempts may reach (as `allowed.selftest`): answers every request with a
/// short body (`/neighbour-phantom` with what [`Allowed::set_phantom`] gave it) and keeps
/// every request head it was sent.
pub struct Allowed {
    pub port: u16,
    pub seen: Arc<Mutex<Vec<String>>>,
    phantom: Arc<Mutex<String>>,
}

impl Allowed {
    pub fn start() -> std::io::Result<Allowed> {
        let l = TcpListener::bind("127.0.0.1:0")?;
        let port = l.local_addr()?.port();
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let phantom: Arc<Mutex<String>> = Arc::default();
        let (s2, p2) = (seen.clone(), phantom.clone());
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                let (seen, phantom) = (s2.clone(), p2.clone());
                std::thread::spawn(move || serve(s, &seen, &phantom));
            }
        });
        Ok(Allowed {
            port,
            seen,
            phantom,
        })
    }

    pub fn set_phantom(&self, p: &str) {
        *self.phantom.lock().unwrap_or_else(|e| e.into_inner()) = p.to_string();
    }

    /// Every request head it was sent, joined.
    pub fn seen(&self) -> String {
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .join("\n")
    }
}

/// One connection: its heads (pipelined ones too) are recorded and each gets an answer.
fn serve(mut s: std::net::TcpStream, seen: &Mutex<Vec<String>>, phantom: &Mutex<String>) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    while buf.len() < 1 << 20 {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            buf.drain(..end + 4);
            let body = if head.contains("/neighbour-phantom") {
                phantom.lock().unwrap_or_else(|e| e.into_inner()).clone()
            } else {
                "selftest-allowed".to_string()
            };
            seen.lock().unwrap_or_else(|e| e.into_inner()).push(head);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            let _ = s.flush();
        }
    }
}
