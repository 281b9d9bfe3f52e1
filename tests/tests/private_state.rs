//! Another local user can neither drive an attempt (its supervisor socket lets whoever
//! connects type into the agent's terminal and answer approval requests) nor read Berth's
//! state database, even when the data directory itself is world-readable.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use berth_tests::{TestEnv, simple_repo, wait_until};

const NOBODY: u32 = 65534;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// Runs a Python snippet as user `nobody` and returns what it printed.
fn as_nobody(script: &str) -> String {
    let out = Command::new("/usr/bin/python3")
        .args(["-c", script])
        .uid(NOBODY)
        .gid(NOBODY)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

const TRY: &str = "import socket, sys\n\
def attempt(f):\n    try:\n        f(); print('ALLOWED')\n    except PermissionError:\n        print('DENIED')\n";

#[test]
fn other_users_cannot_reach_the_supervisor_socket_or_read_the_database() {
    let env = TestEnv::new();
    // Make the data directory as open as a careless setup could: only Berth's own modes
    // below it may protect the attempt.
    std::fs::set_permissions(env.data_dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let repo = simple_repo(&env);
    let out = env
        .berth()
        .args(["task", "new", "--repo"])
        .arg(&repo)
        .args(["--", "sleep", "300"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let socket = env.data_dir().join("attempts/1.1/supervisor.sock");
    assert!(wait_until(Duration::from_secs(180), || socket.exists()));

    assert_eq!(mode(&env.data_dir().join("attempts")), 0o700);
    assert_eq!(mode(&env.data_dir().join("attempts/1.1")), 0o700);
    assert_eq!(mode(&socket), 0o600);
    assert_eq!(mode(&env.data_dir().join("berth.db")), 0o600);

    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if root {
        // The helper really runs as nobody: it can read a world-readable file here.
        let open = env.data_dir().join("open.txt");
        std::fs::write(&open, "x").unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
        let control = as_nobody(&format!(
            "{TRY}attempt(lambda: open('{}').read())",
            open.display()
        ));
        assert_eq!(control, "ALLOWED", "the helper cannot act as nobody at all");

        let connect = as_nobody(&format!(
            "{TRY}attempt(lambda: socket.socket(socket.AF_UNIX).connect('{}'))",
            socket.display()
        ));
        assert_eq!(
            connect, "DENIED",
            "another user connected to the supervisor socket"
        );
        let read = as_nobody(&format!(
            "{TRY}attempt(lambda: open('{}', 'rb').read())",
            env.data_dir().join("berth.db").display()
        ));
        assert_eq!(read, "DENIED", "another user read the state database");
    }
    let stop = env.berth().args(["stop", "1.1"]).output().unwrap();
    assert!(stop.status.success(), "{stop:?}");
}
