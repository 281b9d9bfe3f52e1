//! Keeping a guest from flooding the audit through its proxy. Every field of an event that
//! the guest chose is capped, and requests that were not even HTTP (garbage, slowloris,
//! oversized heads) are recorded one by one only up to [`PROTOCOL_EVENTS_PER_MINUTE`]; the
//! rest are counted and recorded as one summary event.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Individually recorded malformed requests per minute.
pub const PROTOCOL_EVENTS_PER_MINUTE: u32 = 20;
const WINDOW: Duration = Duration::from_secs(60);

/// `s` cut to at most `max` bytes (at a character boundary), marked when cut.
pub fn capped(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// What to do with one malformed request's event.
#[derive(Debug, PartialEq, Eq)]
pub enum Gate {
    /// Record it; first record a summary of this many suppressed before it, if non-zero.
    Record {
        suppressed_before: u64,
    },
    Suppress,
}

#[derive(Default)]
pub struct ProtocolGate {
    state: Mutex<Option<(Instant, u32, u64)>>,
}

impl ProtocolGate {
    pub fn check(&self, now: Instant) -> Gate {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (start, count, suppressed) = st.get_or_insert((now, 0, 0));
        let mut before = 0;
        if now.duration_since(*start) >= WINDOW {
            before = *suppressed;
            *start = now;
            *count = 0;
            *suppressed = 0;
        }
        if *count < PROTOCOL_EVENTS_PER_MINUTE {
            *count += 1;
            Gate::Record {
                suppressed_before: before,
            }
        } else {
            *suppressed += 1;
            Gate::Suppress
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_garbage_flood_is_recorded_as_a_few_events_and_one_count() {
        let gate = ProtocolGate::default();
        let t0 = Instant::now();
        let recorded = (0..10_000)
            .filter(|_| gate.check(t0) != Gate::Suppress)
            .count();
        assert_eq!(recorded as u32, PROTOCOL_EVENTS_PER_MINUTE);
        let later = t0 + WINDOW;
        assert_eq!(
            gate.check(later),
            Gate::Record {
                suppressed_before: 10_000 - PROTOCOL_EVENTS_PER_MINUTE as u64
            }
        );
    }

    #[test]
    fn fields_are_capped_at_a_char_boundary() {
        assert_eq!(capped("abc", 10), "abc");
        assert_eq!(capped(&"x".repeat(20_000), 16).len(), 16 + "…".len());
        assert_eq!(capped("ééé", 3), "é…");
    }
}
