//! QMP (QEMU's control socket) through the `qapi` crate.

use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use crate::{VmError, VmStatus};

fn connect(socket: &Path) -> Result<UnixStream, VmError> {
    let stream = UnixStream::connect(socket)
        .map_err(|e| VmError::Qmp(format!("cannot connect to {}: {e}", socket.display())))?;
    let t = Some(Duration::from_secs(5));
    let _ = stream.set_read_timeout(t);
    let _ = stream.set_write_timeout(t);
    Ok(stream)
}

/// `query-status`.
pub fn status(socket: &Path) -> Result<VmStatus, VmError> {
    let stream = connect(socket)?;
    let mut qmp = qapi::Qmp::from_stream(&stream);
    qmp.handshake().map_err(|e| VmError::Qmp(e.to_string()))?;
    let info = qmp
        .execute(&qapi::qmp::query_status {})
        .map_err(|e| VmError::Qmp(e.to_string()))?;
    Ok(match info.status {
        qapi::qmp::RunState::running => VmStatus::Running,
        other => VmStatus::Other(format!("{other:?}")),
    })
}

/// `quit`: QEMU exits at once without waiting for the guest.
pub fn quit(socket: &Path) -> Result<(), VmError> {
    let stream = connect(socket)?;
    let mut qmp = qapi::Qmp::from_stream(&stream);
    qmp.handshake().map_err(|e| VmError::Qmp(e.to_string()))?;
    // QEMU may close the socket before answering; either way it is quitting.
    let _ = qmp.execute(&qapi::qmp::quit {});
    Ok(())
}
