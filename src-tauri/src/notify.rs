//! OS notifications: an attempt finished, failed, or waits for an approval.
//!
//! Which changes deserve one is decided by [`notices`], a pure function of the attempts'
//! states before and after, tested on its own. Delivery on Linux is one `Notify` call to
//! `org.freedesktop.Notifications` on the session bus; without a bus or a notification
//! server the notice is logged and dropped (the window shows the same state anyway).

use std::collections::HashMap;

/// One notification to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub summary: String,
    pub body: String,
}

/// What the watcher knows of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub state: String,
    pub exit_code: Option<i32>,
    pub error: Option<String>,
    pub title: String,
}

fn live(state: &str) -> bool {
    matches!(state, "created" | "booting" | "running")
}

/// The notices for attempts that left a live state since `before`. Attempts first seen now
/// (the app just opened, or a task made and finished in between) get none: only changes
/// the app watched happen.
pub fn notices(before: &HashMap<String, Seen>, now: &HashMap<String, Seen>) -> Vec<Notice> {
    let mut out: Vec<(String, Notice)> = Vec::new();
    for (id, seen) in now {
        let Some(prev) = before.get(id) else { continue };
        if !live(&prev.state) || live(&seen.state) {
            continue;
        }
        let notice = match (seen.state.as_str(), seen.exit_code) {
            ("exited", Some(0)) => Notice {
                summary: format!("Attempt {id} finished"),
                body: format!(
                    "{}: done; review its diff and pull it as a branch",
                    seen.title
                ),
            },
            ("exited", code) => Notice {
                summary: format!("Attempt {id} failed"),
                body: format!(
                    "{}: its command exited with {}",
                    seen.title,
                    code.map_or("no code".to_string(), |c| c.to_string())
                ),
            },
            ("failed", _) => Notice {
                summary: format!("Attempt {id} failed"),
                body: format!(
                    "{}: {}",
                    seen.title,
                    seen.error.as_deref().unwrap_or("see its log")
                ),
            },
            // Stopped by the user: they know. Stopped because its supervisor died: say so.
            ("stopped", _)
                if seen
                    .error
                    .as_deref()
                    .is_some_and(|e| e != berth_core::STOPPED_BY_USER) =>
            {
                Notice {
                    summary: format!("Attempt {id} stopped"),
                    body: format!("{}: {}", seen.title, seen.error.as_deref().unwrap_or("")),
                }
            }
            _ => continue,
        };
        out.push((id.clone(), notice));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out.into_iter().map(|(_, n)| n).collect()
}

/// The notice for a network request waiting for the user's answer. The host name comes from
/// the guest: anything but the characters of a host name or address is shown as `?`, so it
/// cannot carry markup into notification servers that render some.
pub fn approval_notice(attempt: &str, host: &str, port: u16) -> Notice {
    let host: String = host
        .chars()
        .take(253)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '[' | ']') {
                c
            } else {
                '?'
            }
        })
        .collect();
    Notice {
        summary: format!("Attempt {attempt} waits for your approval"),
        body: format!("It {}.", berth_core::approval_text(&host, port)),
    }
}

/// Shows `notice` without blocking the caller.
pub fn show(notice: Notice) {
    // Titles, errors and host names can come from a guest or a repo: every notification is
    // cleaned here, where all of them pass.
    let notice = Notice {
        summary: berth_core::notification_text(&notice.summary, 120),
        body: berth_core::notification_text(&notice.body, 400),
    };
    std::thread::spawn(move || {
        if let Err(e) = deliver(&notice) {
            eprintln!(
                "berth-app: notification not shown ({e}): {}",
                notice.summary
            );
        }
    });
}

#[cfg(target_os = "linux")]
fn deliver(n: &Notice) -> Result<(), String> {
    use std::time::Duration;

    let conn = dbus::blocking::Connection::new_session().map_err(|e| e.to_string())?;
    let proxy = conn.with_proxy(
        "org.freedesktop.Notifications",
        "/org/freedesktop/Notifications",
        Duration::from_secs(5),
    );
    let hints = dbus::arg::PropMap::new();
    let (_id,): (u32,) = proxy
        .method_call(
            "org.freedesktop.Notifications",
            "Notify",
            (
                "Berth",
                0u32,
                "berth-app",
                n.summary.as_str(),
                n.body.as_str(),
                Vec::<String>::new(),
                hints,
                -1i32,
            ),
        )
        .map_err(|e| e.to_string())?;
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn deliver(_n: &Notice) -> Result<(), String> {
    Err("notifications are only implemented for Linux desktops so far".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(state: &str, exit_code: Option<i32>, error: Option<&str>) -> Seen {
        Seen {
            state: state.into(),
            exit_code,
            error: error.map(str::to_string),
            title: "Fix the test".into(),
        }
    }

    fn map(items: &[(&str, Seen)]) -> HashMap<String, Seen> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn finishing_failing_and_dying_are_noticed_once() {
        let before = map(&[
            ("1.1", seen("running", None, None)),
            ("1.2", seen("running", None, None)),
            ("1.3", seen("booting", None, None)),
            ("1.4", seen("running", None, None)),
        ]);
        let now = map(&[
            ("1.1", seen("exited", Some(0), None)),
            ("1.2", seen("exited", Some(3), None)),
            ("1.3", seen("failed", None, Some("the VM did not boot"))),
            ("1.4", seen("stopped", None, Some("its supervisor died"))),
        ]);
        let n = notices(&before, &now);
        let summaries: Vec<_> = n.iter().map(|n| n.summary.as_str()).collect();
        assert_eq!(
            summaries,
            [
                "Attempt 1.1 finished",
                "Attempt 1.2 failed",
                "Attempt 1.3 failed",
                "Attempt 1.4 stopped"
            ]
        );
        assert!(n[1].body.contains("exited with 3"));
        assert!(n[2].body.contains("did not boot"));
        // The next poll sees no change: nothing new.
        assert!(notices(&now, &now).is_empty());
    }

    #[test]
    fn a_guest_chosen_host_name_cannot_carry_markup() {
        let n = approval_notice("1.1", "<a href=\"x\">evil</a>&amp;.test", 80);
        assert!(!n.body.contains('<') && !n.body.contains('&') && !n.body.contains('"'));
        assert!(
            n.body.contains("?a?href??x??evil??a??amp?.test:80"),
            "{}",
            n.body
        );
        assert_eq!(
            approval_notice("1.1", "other.test", 8080).body,
            "It wants to reach other.test:8080, which is not on its allowlist."
        );
    }

    #[test]
    fn nothing_for_a_user_stop_new_attempts_or_attempts_seen_first_when_done() {
        let before = map(&[("1.1", seen("running", None, None))]);
        let now = map(&[
            (
                "1.1",
                seen("stopped", None, Some(berth_core::STOPPED_BY_USER)),
            ),
            ("2.1", seen("booting", None, None)),
            ("3.1", seen("exited", Some(0), None)),
        ]);
        assert!(notices(&before, &now).is_empty());
        assert!(notices(&HashMap::new(), &now).is_empty());
    }
}
