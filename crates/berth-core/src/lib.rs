//! Berth's domain types, shared by every front end (the `berth` CLI, later the desktop app).
//!
//! This crate reads no environment variables and no `$HOME`: the binaries resolve paths and
//! pass them in.

mod data_dir;
mod id;

pub use data_dir::DataDir;
pub use id::random_id;
