//! `berth __bridge SOCKET`: QEMU starts this once per guest connection to the proxy address
//! (`guestfwd ... cmd:`), with the connection on stdin/stdout; it relays both ways into the
//! attempt's proxy socket. It holds no policy: the proxy decides.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::ExitCode;

pub fn run(socket: &Path) -> ExitCode {
    let Ok(stream) = UnixStream::connect(socket) else {
        return ExitCode::from(1);
    };
    let Ok(mut to_proxy) = stream.try_clone() else {
        return ExitCode::from(1);
    };
    let upload = std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = [0u8; 32 * 1024];
        while let Ok(n) = stdin.read(&mut buf) {
            if n == 0 || to_proxy.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to_proxy.shutdown(std::net::Shutdown::Write);
    });
    let mut from_proxy = stream;
    let mut stdout = std::io::stdout().lock();
    let mut buf = [0u8; 32 * 1024];
    while let Ok(n) = from_proxy.read(&mut buf) {
        if n == 0
            || stdout
                .write_all(&buf[..n])
                .and_then(|_| stdout.flush())
                .is_err()
        {
            break;
        }
    }
    drop(upload); // the guest may keep its half open; we are done when the proxy is
    ExitCode::SUCCESS
}
