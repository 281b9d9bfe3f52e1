//! A loopback HTTP server for network tests: answers `hello from <name>` to anything and
//! counts the bytes it received. Loopback only.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct LoopbackHttp {
    pub port: u16,
    pub received: Arc<Mutex<u64>>,
}

impl LoopbackHttp {
    pub fn start(name: &'static str) -> LoopbackHttp {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(0u64));
        let r = received.clone();
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                let r = r.clone();
                std::thread::spawn(move || {
                    let mut s = s;
                    s.set_read_timeout(Some(Duration::from_millis(500))).ok();
                    let mut buf = vec![0u8; 65536];
                    let mut head = Vec::new();
                    loop {
                        match s.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                *r.lock().unwrap() += n as u64;
                                head.extend_from_slice(&buf[..n]);
                                let done = head.windows(4).any(|w| w == b"\r\n\r\n")
                                    && !head.starts_with(b"PUT")
                                    && !head.starts_with(b"POST");
                                if done {
                                    break;
                                }
                            }
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
        LoopbackHttp { port, received }
    }
}
