//! Whose size an attempt's terminal has when several clients are attached: the one that
//! attached or resized last, and when it leaves, the last one still attached (like tmux's
//! "latest"), so a window closing elsewhere never leaves the user with a wrong-sized screen.

use berth_proto::WinSize;

/// The attached clients' terminal sizes, the most recent last.
#[derive(Debug, Default)]
pub(crate) struct TerminalSizes {
    clients: Vec<(u64, WinSize)>,
}

impl TerminalSizes {
    /// Client `me` attached or resized to `size`: the PTY takes it.
    pub(crate) fn set(&mut self, me: u64, size: WinSize) -> WinSize {
        self.clients.retain(|(c, _)| *c != me);
        self.clients.push((me, size));
        size
    }

    /// Client `me` left: the size the PTY takes now, if it changes (the last one still
    /// attached; nothing when none is, or when `me` was not the latest).
    pub(crate) fn leave(&mut self, me: u64) -> Option<WinSize> {
        let was_latest = self.clients.last().is_some_and(|(c, _)| *c == me);
        self.clients.retain(|(c, _)| *c != me);
        if was_latest {
            self.clients.last().map(|(_, s)| *s)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size(rows: u16, cols: u16) -> WinSize {
        WinSize { rows, cols }
    }

    #[test]
    fn the_size_follows_the_latest_client_still_attached() {
        let mut s = TerminalSizes::default();
        assert_eq!(s.set(1, size(30, 100)), size(30, 100));
        assert_eq!(s.set(2, size(50, 150)), size(50, 150));
        // An earlier client resizes: it is the latest now.
        assert_eq!(s.set(1, size(40, 120)), size(40, 120));
        // Client 2 leaves: not the latest, nothing changes.
        assert_eq!(s.leave(2), None);
        s.set(3, size(20, 60));
        // The latest leaves: back to the one before it.
        assert_eq!(s.leave(3), Some(size(40, 120)));
        assert_eq!(s.leave(1), None);
        assert_eq!(s.leave(9), None);
    }
}
