//! The user's terminal: raw mode for `-t`, and its size.

use std::os::fd::RawFd;

pub fn is_tty(fd: RawFd) -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(fd) == 1 }
}

/// The size of the terminal on `fd`, if it is one.
pub fn size(fd: RawFd) -> Option<(u16, u16)> {
    // SAFETY: winsize is plain data; TIOCGWINSZ fills it through a valid pointer.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: see above.
    let rc = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) };
    (rc == 0 && ws.ws_row > 0).then_some((ws.ws_row, ws.ws_col))
}

/// The attributes raw mode replaced, for [`restore`] on a path that exits at once.
static SAVED: std::sync::Mutex<Option<libc::termios>> = std::sync::Mutex::new(None);

/// Gives the user's terminal back as Berth found it: its saved attributes, and the screen
/// state a guest program may have left (`less`/`top` in the alternate screen, the cursor
/// hidden, colours on). For detaching or ending while such a program runs.
pub fn restore() {
    if let Some(t) = *SAVED.lock().unwrap_or_else(|e| e.into_inner()) {
        // SAFETY: restores attributes tcgetattr filled for stdin.
        unsafe {
            libc::tcsetattr(0, libc::TCSANOW, &t);
        }
    }
    if is_tty(1) {
        use std::io::Write;
        // Leave the alternate screen, show the cursor, reset colours, normal keypad.
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(b"\x1b[?1049l\x1b[?25h\x1b[0m\x1b[?1l\x1b>");
        let _ = out.flush();
    }
}

/// Puts stdin in raw mode until dropped.
pub struct RawMode {
    saved: libc::termios,
}

impl RawMode {
    pub fn enable() -> Option<RawMode> {
        // SAFETY: termios is plain data filled by tcgetattr.
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: valid pointer to a termios for stdin.
        if unsafe { libc::tcgetattr(0, &mut t) } != 0 {
            return None;
        }
        let saved = t;
        *SAVED.lock().unwrap_or_else(|e| e.into_inner()) = Some(saved);
        // SAFETY: cfmakeraw edits the struct in place; tcsetattr reads it.
        unsafe {
            libc::cfmakeraw(&mut t);
            libc::tcsetattr(0, libc::TCSANOW, &t);
        }
        Some(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: restores the attributes saved in `enable`.
        unsafe {
            libc::tcsetattr(0, libc::TCSANOW, &self.saved);
        }
    }
}
