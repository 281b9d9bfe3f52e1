//! Finds and opens the virtio-serial port the host talks on.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::PathBuf;

use berth_proto::AGENT_PORT_NAME;

/// Looks up `/sys/class/virtio-ports/*/name` for our port name (there is no udev in the
/// guest to make `/dev/virtio-ports/NAME`) and opens the matching `/dev/vportNpM`.
pub fn open_agent_port() -> io::Result<File> {
    let path = find_port()?;
    OpenOptions::new().read(true).write(true).open(path)
}

fn find_port() -> io::Result<PathBuf> {
    for entry in std::fs::read_dir("/sys/class/virtio-ports")? {
        let entry = entry?;
        let name = std::fs::read_to_string(entry.path().join("name")).unwrap_or_default();
        if name.trim() == AGENT_PORT_NAME {
            return Ok(PathBuf::from("/dev").join(entry.file_name()));
        }
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        format!("no virtio-serial port named {AGENT_PORT_NAME}"),
    ))
}
