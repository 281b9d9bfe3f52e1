//! One file per subcommand.

pub mod bench;
pub mod bench_workspace;
pub mod demo;
pub mod diff;
pub mod doctor;
pub mod image;
pub mod pull;
pub mod run;
pub mod vm;
pub mod vm_run;
