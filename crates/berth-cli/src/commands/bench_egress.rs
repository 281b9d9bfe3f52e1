//! `berth bench egress`: throughput and added latency through the egress proxy vs direct,
//! on loopback (no VM).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use berth_core::bench::EgressProxy;
use berth_core::{AllowRule, Mode, Policy};

/// A loopback server: `GET /big` streams `size` bytes, anything else answers `ok`.
fn origin(size: u64) -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    let port = l.local_addr()?.port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut s = s;
                let mut head = Vec::new();
                let mut b = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut b) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&b[..n]),
                    }
                }
                let big = String::from_utf8_lossy(&head).starts_with("GET /big")
                    || String::from_utf8_lossy(&head).contains(" /big ");
                if big {
                    let _ = write!(
                        s,
                        "HTTP/1.1 200 OK\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n"
                    );
                    let chunk = vec![0u8; 256 * 1024];
                    let mut left = size;
                    while left > 0 {
                        let n = left.min(chunk.len() as u64) as usize;
                        if s.write_all(&chunk[..n]).is_err() {
                            return;
                        }
                        left -= n as u64;
                    }
                } else {
                    let _ = s.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n",
                    );
                }
            });
        }
    });
    Ok(port)
}

/// One request; returns the bytes of the body and head received.
fn fetch(addr: u16, request: &str) -> Result<u64> {
    let mut s = TcpStream::connect(("127.0.0.1", addr))?;
    s.write_all(request.as_bytes())?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Ok(total);
        }
        total += n as u64;
    }
}

pub fn run(size_mib: u64, requests: u32, json: bool) -> Result<()> {
    let size = size_mib << 20;
    let port = origin(size)?;
    let l = TcpListener::bind("127.0.0.1:0")?;
    let proxy_port = l.local_addr()?.port();
    let policy = Policy {
        mode: Mode::Allowlist,
        allow: vec![AllowRule::parse(&format!("origin.test:{port}")).map_err(anyhow::Error::msg)?],
        resolve: [("origin.test".to_string(), "127.0.0.1".parse()?)].into(),
        egress_budget: None,
        max_connections: None,
    };
    let _proxy = EgressProxy::start_tcp(l, policy, Arc::new(|_| {}))?;

    let direct_req = "GET /big HTTP/1.1\r\nHost: origin.test\r\n\r\n".to_string();
    let proxied_req =
        format!("GET http://origin.test:{port}/big HTTP/1.1\r\nHost: origin.test\r\n\r\n");
    let connect_req = format!(
        "CONNECT origin.test:{port} HTTP/1.1\r\n\r\nGET /big HTTP/1.1\r\nHost: origin.test\r\n\r\n"
    );
    let mut rates = Vec::new();
    for (what, target, req) in [
        ("direct", port, &direct_req),
        ("proxy, plain HTTP", proxy_port, &proxied_req),
        ("proxy, CONNECT tunnel", proxy_port, &connect_req),
    ] {
        let mut best = 0f64;
        for _ in 0..3 {
            let t = Instant::now();
            let got = fetch(target, req)?;
            if got < size {
                bail!("{what}: got {got} of {size} bytes");
            }
            best = best.max(size as f64 / t.elapsed().as_secs_f64() / (1 << 20) as f64);
        }
        rates.push((what, best));
    }
    let small_direct = "GET /s HTTP/1.1\r\nHost: x\r\n\r\n".to_string();
    let small_proxy = format!("GET http://origin.test:{port}/s HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut lat = Vec::new();
    for (what, target, req) in [
        ("direct", port, &small_direct),
        ("proxy", proxy_port, &small_proxy),
    ] {
        let mut times: Vec<Duration> = (0..requests)
            .map(|_| {
                let t = Instant::now();
                fetch(target, req).map(|_| t.elapsed())
            })
            .collect::<Result<_>>()?;
        times.sort();
        lat.push((what, times[times.len() / 2]));
    }
    let ratio = rates[1].1 / rates[0].1;
    let ratio_connect = rates[2].1 / rates[0].1;
    let added = lat[1].1.saturating_sub(lat[0].1);
    if json {
        println!(
            "{}",
            serde_json::json!({
                "size_mib": size_mib,
                "throughput_mib_s": {"direct": rates[0].1, "proxy_http": rates[1].1, "proxy_connect": rates[2].1},
                "ratio_http": ratio, "ratio_connect": ratio_connect,
                "latency_median_us": {"direct": lat[0].1.as_micros() as u64, "proxy": lat[1].1.as_micros() as u64},
                "added_latency_us": added.as_micros() as u64,
            })
        );
    } else {
        for (what, r) in &rates {
            println!("{what:<24} {r:>8.0} MiB/s  (best of 3, {size_mib} MiB)");
        }
        println!(
            "ratio proxy/direct        {ratio:>8.2}x (plain HTTP), {ratio_connect:.2}x (CONNECT)"
        );
        println!(
            "request latency, median   {:>8} us direct, {} us through the proxy (+{} us; {requests} requests)",
            lat[0].1.as_micros(),
            lat[1].1.as_micros(),
            added.as_micros()
        );
    }
    Ok(())
}
