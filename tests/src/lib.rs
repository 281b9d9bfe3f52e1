//! Shared helpers for Berth's end-to-end tests, so a test reads like a story:
//!
//! ```no_run
//! let env = berth_tests::TestEnv::new();
//! let mut vm = env.boot_vm(None);
//! assert_eq!(vm.sh("echo hi").stdout, "hi\n");
//! ```
//!
//! The guest image is built once by `scripts/test.sh` into `target/berth-test-data`; every
//! test gets its own data directory (sharing that image) and its own HOME.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod bench;
mod env;
mod files_http;
mod http;
mod leftovers;
pub mod model_api;
mod registries;
mod repo;
mod tls_upstream;
mod vm;

pub use bench::bench_arg;
pub use env::{TestEnv, berth_bin, find_virtiofsd, target_dir};
pub use files_http::FilesHttp;
pub use http::LoopbackHttp;
pub use leftovers::{Leftovers, output_with_stdin, peak_rss_kib, processes_mentioning, wait_until};
pub use model_api::{ApiRequest, ModelApi, Vendor};
pub use registries::{Files, Registries};
pub use repo::{commit_file, commit_files, git, repo_with, simple_repo};
pub use tls_upstream::{Seen, TlsUpstream};
pub use vm::{Output, TestVm, auto_accel};
