//! Asking the user about a name that is not on the allowlist.
//!
//! The guest chooses what is asked, so: only a concrete host name is ever asked about (no
//! wildcard, no IP literal, nothing but host-name characters: the question reaches terminals
//! and windows); the rule an answer makes is built from the parsed name and port, never from
//! the guest's text; concurrent requests for one name share one question; and a guest gets
//! at most [`MAX_QUESTIONS`] questions per [`QUESTION_WINDOW`], the rest denied unasked.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::AllowRule;

/// A user's answer to "may the guest reach this unlisted name?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Approval {
    Once,
    /// For the rest of the task (the caller persists it; this proxy remembers it too).
    Always,
    Deny(String),
}

/// Asks whoever is attached about an unlisted `host:port`; the answer arrives on the channel
/// (dropping the sender counts as a denial).
pub type Approver =
    Arc<dyn Fn(&str, u16) -> tokio::sync::oneshot::Receiver<Approval> + Send + Sync>;

/// How long a request waits for a user's answer before it is denied.
pub const APPROVAL_TIMEOUT: Duration = Duration::from_secs(60);
/// Questions one attempt may ask per window; more are denied without asking.
pub const MAX_QUESTIONS: usize = 5;
pub const QUESTION_WINDOW: Duration = Duration::from_secs(60);

/// Whether `name` (normalized) is something a user can be asked about: a plain host name of
/// letters, digits, hyphens and dots, with a letter somewhere (not an IP literal).
pub fn askable(name: &str) -> bool {
    if name.is_empty() || name.len() > 253 || crate::target::parse_ip(name).is_some() {
        return false;
    }
    name.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    }) && name.bytes().any(|b| b.is_ascii_lowercase())
}

/// The rule an approval adds: exactly this name on exactly this port.
pub fn exact_rule(name: &str, port: u16) -> AllowRule {
    AllowRule {
        host: name.to_string(),
        port: Some(port),
    }
}

/// Open questions by (name, port); each waiter sees the answer when it comes.
type Open = HashMap<(String, u16), watch::Receiver<Option<Approval>>>;

/// The questions an attempt's proxy has open or has asked lately.
#[derive(Default)]
pub struct Questions {
    open: Mutex<Open>,
    asked: Mutex<VecDeque<Instant>>,
}

impl Questions {
    /// The user's answer about `name:port`: the answer to a question already open for it, or
    /// a new question if the rate allows, else a denial.
    pub async fn ask(&self, approver: &Approver, name: &str, port: u16) -> Approval {
        let key = (name.to_string(), port);
        let existing = self.lock_open().get(&key).cloned();
        if let Some(mut rx) = existing {
            return match rx.wait_for(Option::is_some).await {
                Ok(a) => a.clone().unwrap_or(Approval::Deny("no answer".into())),
                Err(_) => Approval::Deny("the question was dropped".into()),
            };
        }
        if !self.take_turn(Instant::now()) {
            return Approval::Deny(format!(
                "more than {MAX_QUESTIONS} approval questions in {} s; denied without asking",
                QUESTION_WINDOW.as_secs()
            ));
        }
        let (tx, rx) = watch::channel(None);
        self.lock_open().insert(key.clone(), rx);
        let answer = match tokio::time::timeout(APPROVAL_TIMEOUT, approver(name, port)).await {
            Ok(Ok(a)) => a,
            Ok(Err(_)) => Approval::Deny("nobody answered the approval request".into()),
            Err(_) => Approval::Deny(format!("no answer within {} s", APPROVAL_TIMEOUT.as_secs())),
        };
        self.lock_open().remove(&key);
        let _ = tx.send(Some(answer.clone()));
        answer
    }

    fn lock_open(&self) -> std::sync::MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a question at `now` if fewer than [`MAX_QUESTIONS`] were asked in the window.
    fn take_turn(&self, now: Instant) -> bool {
        let mut asked = self.asked.lock().unwrap_or_else(|e| e.into_inner());
        while asked
            .front()
            .is_some_and(|t| now.duration_since(*t) >= QUESTION_WINDOW)
        {
            asked.pop_front();
        }
        if asked.len() >= MAX_QUESTIONS {
            return false;
        }
        asked.push_back(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn only_concrete_host_names_are_asked_about() {
        for ok in ["example.com", "api.example.com", "a-b.test", "x1.io"] {
            assert!(askable(ok), "{ok}");
        }
        for bad in [
            "*.com",
            "*",
            "2606:4700::1111",
            "1.1.1.1",
            "127.1",
            "0x7f000001",
            "exa mple.com",
            "evil.com\u{1b}[2J",
            "a..b",
            "-a.com",
            "",
            "a.b/c",
        ] {
            assert!(!askable(bad), "{bad:?}");
        }
    }

    #[test]
    fn an_ipv6_rule_keeps_its_port() {
        // The old rule, parsed from "{host}:{port}", read "2606:4700::1111:443" as a host.
        let r = exact_rule("example.com", 443);
        assert!(r.matches_name("example.com", 443) && !r.matches_name("example.com", 80));
    }

    fn counting_approver(asked: Arc<AtomicUsize>, answer: Approval) -> Approver {
        Arc::new(move |_, _| {
            asked.fetch_add(1, Ordering::SeqCst);
            let (tx, rx) = tokio::sync::oneshot::channel();
            let answer = answer.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let _ = tx.send(answer);
            });
            rx
        })
    }

    #[tokio::test]
    async fn concurrent_requests_for_one_name_share_one_question() {
        let asked = Arc::new(AtomicUsize::new(0));
        let approver = counting_approver(asked.clone(), Approval::Once);
        let q = Arc::new(Questions::default());
        let mut joins = Vec::new();
        for _ in 0..20 {
            let (q, approver) = (q.clone(), approver.clone());
            joins.push(tokio::spawn(async move {
                q.ask(&approver, "a.test", 443).await
            }));
        }
        for j in joins {
            assert_eq!(j.await.unwrap(), Approval::Once);
        }
        assert_eq!(asked.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_flood_of_names_is_denied_without_asking_past_the_rate() {
        let asked = Arc::new(AtomicUsize::new(0));
        let approver = counting_approver(asked.clone(), Approval::Deny("no".into()));
        let q = Questions::default();
        for i in 0..50 {
            let _ = q.ask(&approver, &format!("n{i}.test"), 443).await;
        }
        assert_eq!(asked.load(Ordering::SeqCst), MAX_QUESTIONS);
    }
}
