//! A user's answer to "may this attempt reach NAME:PORT?", wherever it was asked (an attached
//! terminal or window through the supervisor, or `berth run`'s own terminal): audited, and
//! "always" kept in the task's policy so its other attempts and next boots have it too.

use berth_egress::Approval;
use serde_json::json;

use crate::task::audit;
use crate::{AttemptId, Clock, Store};

/// Applies the user's `decision` ("once", "always"; anything else denies) about `host:port`
/// for attempt `id`; returns what the proxy is told and the decision's name.
pub fn record_approval(
    store: &Store,
    clock: Clock,
    id: AttemptId,
    host: &str,
    port: u16,
    decision: &str,
) -> (Approval, &'static str) {
    let (approval, decision) = match decision {
        "once" => (Approval::Once, "once"),
        "always" => (Approval::Always, "always"),
        _ => (Approval::Deny("denied by the user".into()), "deny"),
    };
    if let Ok(mut db) = store.db() {
        let data = json!({"host": host, "port": port, "decision": decision});
        let _ = audit(&mut db, clock, id, "approval", data);
        if approval == Approval::Always
            && berth_egress::askable(host)
            && let Ok(attempts) = db.task_attempts(id.task)
        {
            // From the parsed name and port the proxy asked about, never re-parsed text.
            let rule = berth_egress::exact_rule(host, port);
            for a in attempts {
                let mut policy = crate::egress::attempt_policy(&a.policy);
                if !policy.allow.contains(&rule) {
                    policy.allow.push(rule.clone());
                }
                let json = serde_json::to_string(&policy).unwrap_or_default();
                let _ = db.update_attempt(a.id, |r| r.policy = json);
            }
        }
    }
    (approval, decision)
}

/// Where one answer goes: the proxy waits on it (until its own timeout).
pub struct AnswerSlot(tokio::sync::oneshot::Sender<Approval>);

impl AnswerSlot {
    /// The proxy stopped waiting (it timed out, or the attempt ended).
    pub fn is_closed(&self) -> bool {
        self.0.is_closed()
    }

    pub fn send(self, approval: Approval) {
        let _ = self.0.send(approval);
    }
}

/// An approver that hands each question (name, port, where to answer) to `ask`, which must
/// not block: it answers later, from wherever the user is asked.
pub fn approver_from(
    ask: impl Fn(&str, u16, AnswerSlot) + Send + Sync + 'static,
) -> berth_egress::Approver {
    std::sync::Arc::new(move |host: &str, port: u16| {
        let (tx, rx) = tokio::sync::oneshot::channel();
        ask(host, port, AnswerSlot(tx));
        rx
    })
}
