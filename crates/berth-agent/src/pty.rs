//! Pseudo-terminals for interactive commands.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};

use berth_proto::WinSize;

pub struct Pty {
    pub master: File,
    pub slave: File,
}

pub fn open(size: WinSize) -> io::Result<Pty> {
    let mut master = -1;
    let mut slave = -1;
    let ws = to_winsize(size);
    // SAFETY: out-pointers are valid; name and termios may be null per openpty(3).
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &ws,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: openpty returned two fresh descriptors that nothing else owns.
    let (master, slave) = unsafe { (File::from_raw_fd(master), File::from_raw_fd(slave)) };
    set_cloexec(&master)?;
    set_cloexec(&slave)?;
    Ok(Pty { master, slave })
}

pub fn resize(master: &File, size: WinSize) -> io::Result<()> {
    let ws = to_winsize(size);
    // SAFETY: TIOCSWINSZ reads one winsize from a valid pointer.
    let rc = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn to_winsize(size: WinSize) -> libc::winsize {
    libc::winsize {
        ws_row: size.rows,
        ws_col: size.cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

fn set_cloexec(f: &File) -> io::Result<()> {
    // SAFETY: F_SETFD on a descriptor we own.
    let rc = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
