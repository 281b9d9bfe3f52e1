//! berth-agent: runs inside the guest as PID 1 (started by the image's initramfs) and serves
//! the host over the virtio-serial port named [`berth_proto::AGENT_PORT_NAME`].
//!
//! It reaps every child (it is init), runs commands as the unprivileged `agent` user in
//! `/work`, streams their output and reports how they ended. It trusts nothing it is sent
//! beyond what the protocol names: exec, stdin, signal, resize, ping, power-off.

mod exec;
mod port;
mod pty;
mod reaper;
mod render;
mod session;
mod users;

use std::time::Duration;

fn main() {
    // `berth-agent render AGENT`: an agent's event stream made readable (see render.rs).
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("render") {
        std::process::exit(render::run(args.get(2).map(String::as_str).unwrap_or("")));
    }
    if std::process::id() == 1 {
        init_guest();
    }
    let reaper = reaper::Reaper::start();
    loop {
        let port = match port::open_agent_port() {
            Ok(p) => p,
            Err(e) => {
                log(&format!("cannot open the agent port: {e}; retrying"));
                std::thread::sleep(Duration::from_millis(500));
                continue;
            }
        };
        match session::serve(port, &reaper) {
            Ok(session::End::PowerOff) => power_off(),
            Ok(session::End::HostGone) => {}
            Err(e) => log(&format!("session ended: {e}")),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Messages for the guest console (visible in the VM's console log on the host).
pub(crate) fn log(msg: &str) {
    eprintln!("berth-agent: {msg}");
}

fn init_guest() {
    // SAFETY: sethostname reads exactly `name.len()` bytes from a valid buffer.
    unsafe {
        let name = b"berth";
        libc::sethostname(name.as_ptr().cast(), name.len());
    }
    // SAFETY: ignoring SIGPIPE for this process only; writes then return EPIPE instead.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

fn power_off() -> ! {
    // SAFETY: sync and reboot take no pointers; as PID 1 reboot(POWER_OFF) ends the VM.
    unsafe {
        libc::sync();
        libc::reboot(libc::RB_POWER_OFF);
    }
    // Not PID 1 (e.g. run on a host for debugging): just exit.
    std::process::exit(0)
}
