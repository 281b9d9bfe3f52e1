//! Berth's domain types, shared by every front end (the `berth` CLI, later the desktop app).
//!
//! This crate reads no environment variables and no `$HOME`: the binaries resolve paths and
//! pass them in.

mod attempt;
mod data_dir;
mod id;
mod task;

pub use attempt::{AttemptId, AttemptRecord, Store, StoreError, TaskRecord};
pub use data_dir::DataDir;
pub use id::random_id;
pub use task::{
    NewTask, PreparedTask, Pulled, TaskError, VmSettings, diff_attempt, prepare_task, pull_attempt,
    run_attempt,
};
