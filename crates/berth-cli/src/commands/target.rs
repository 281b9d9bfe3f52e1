//! `ATTEMPT|TASK` arguments: `3.1` names one attempt, `3` every attempt of task 3.

use std::str::FromStr;

use anyhow::{Result, bail};
use berth_core::{AttemptId, Db};

#[derive(Debug, Clone, Copy)]
pub enum Target {
    Attempt(AttemptId),
    Task(u32),
}

impl FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.contains('.') {
            s.parse()
                .map(Target::Attempt)
                .map_err(|e: berth_core::DbError| e.to_string())
        } else {
            match s.parse::<u32>() {
                Ok(t) if t > 0 => Ok(Target::Task(t)),
                _ => Err(format!("'{s}' is neither an attempt (3.1) nor a task (3)")),
            }
        }
    }
}

impl Target {
    pub fn is_task(&self) -> bool {
        matches!(self, Target::Task(_))
    }

    /// The attempts named, in order; an error if there are none.
    pub fn attempts(&self, db: &Db) -> Result<Vec<AttemptId>> {
        let ids: Vec<AttemptId> = match self {
            Target::Attempt(id) => {
                db.attempt(*id)?;
                vec![*id]
            }
            Target::Task(t) => db.task_attempts(*t)?.into_iter().map(|a| a.id).collect(),
        };
        if ids.is_empty() {
            bail!("no such task or attempt; `berth ls` lists them");
        }
        Ok(ids)
    }
}
