//! One file per subcommand.

pub mod bench;
pub mod doctor;
pub mod image;
pub mod vm;
pub mod vm_run;
