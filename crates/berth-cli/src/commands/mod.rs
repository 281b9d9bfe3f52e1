//! One file per subcommand.

pub mod app;
pub mod attach;
pub mod audit;
pub mod bench;
pub mod bench_attempts;
pub mod bench_egress;
pub mod bench_workspace;
pub mod bridge;
pub mod demo;
pub mod diff;
pub mod doctor;
pub mod exec;
pub mod image;
pub mod logs;
pub mod ls;
pub mod net;
pub mod pull;
pub mod rm;
pub mod run;
pub mod stop;
pub mod supervise;
pub mod target;
pub mod task;
pub mod vm;
pub mod vm_run;
