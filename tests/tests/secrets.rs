//! Secrets in real VMs: the guest uses a key it never holds. A real TLS upstream on
//! loopback gets the value from the attempt's gateway; the guest has only a phantom that
//! works at its own gateway; the value is in no guest-visible place and nowhere on disk, in
//! no host process's arguments or environment, in no log or audit event.
//!
//! The values live in the kernel keyring: `scripts/test.sh` runs the suite inside
//! `keyctl session -` (a CI machine has no desktop Secret Service).

use std::io::Read;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_tests::{TestEnv, TlsUpstream, simple_repo};

const VALUE: &str = "sk-live-berth-test-9f8e7d6c5b4a";

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn set_secret(env: &TestEnv, up: &TlsUpstream) {
    let ca = env.home.path().join("upstream-ca.pem");
    std::fs::write(&ca, &up.ca_pem).unwrap();
    let out = berth_tests::output_with_stdin(
        env.berth()
            .args(["secret", "set", "api", "--header", "x-api-key"])
            .args(["--key-env", "API_KEY", "--url-env", "API_URL"])
            .arg("--upstream")
            .arg(format!("https://localhost:{}/base", up.port))
            .arg("--ca-file")
            .arg(&ca),
        VALUE.as_bytes(),
    );
    assert!(
        out.status.success(),
        "{} (is the suite inside `keyctl session -`?)",
        text(&out)
    );
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let Ok(meta) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if meta.is_dir() {
                stack.push(p);
            } else if meta.is_file()
                && std::fs::read(&p).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle))
            {
                found.push(p.display().to_string());
            }
        }
    }
    found
}

/// Dumps the running attempt's guest RAM (QMP `pmemsave` of its 512 MiB) and reports
/// whether it holds the secret's value and the guest's phantom.
fn scan_guest_ram(run_dir: &Path, phantom: &str) -> (bool, bool) {
    let socket = std::fs::read_dir(run_dir)
        .unwrap()
        .flatten()
        .map(|e| e.path().join("qmp.sock"))
        .find(|p| p.exists())
        .expect("the attempt's QMP socket");
    // Into the VM's own run directory: QEMU's jail lets it write nowhere else.
    let dump = socket.with_file_name("ram.dump");
    let stream = std::os::unix::net::UnixStream::connect(&socket).unwrap();
    let mut qmp = qapi::Qmp::from_stream(&stream);
    qmp.handshake().unwrap();
    qmp.execute(&qapi::qmp::pmemsave {
        val: 0,
        size: 512 << 20,
        filename: dump.display().to_string(),
    })
    .unwrap();
    let ram = std::fs::read(&dump).unwrap();
    let _ = std::fs::remove_file(&dump);
    assert_eq!(ram.len(), 512 << 20);
    let holds = |needle: &[u8]| ram.windows(needle.len()).any(|w| w == needle);
    (holds(VALUE.as_bytes()), holds(phantom.as_bytes()))
}

/// Host processes whose arguments or environment hold `needle`.
fn processes_holding(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let pid = e.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        for part in ["cmdline", "environ"] {
            if std::fs::read(format!("/proc/{pid}/{part}"))
                .is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes()))
            {
                found.push(format!("{pid}/{part}"));
            }
        }
    }
    found
}

#[test]
fn the_guest_uses_a_key_it_never_holds() {
    let env = TestEnv::new();
    let up = TlsUpstream::start();
    set_secret(&env, &up);
    let repo = simple_repo(&env);
    let script = format!(
        "curl -sS -H \"x-api-key: $API_KEY\" \"$API_URL/v1/hello\"; \
         curl -sS -o /dev/null -w 'wrong:%{{http_code}}\\n' -H 'x-api-key: berth-phantom-wrong' \"$API_URL/v1/hello\"; \
         https_proxy=http://10.0.2.100:3128 curl -sS -m 10 https://localhost:{port}/ 2>&1 | head -c 300; echo; \
         curl -sN -H \"x-api-key: $API_KEY\" \"$API_URL/sse\" | (read -r a; read -r b; echo \"first:$b\"; \
           curl -sS -H \"x-api-key: $API_KEY\" \"$API_URL/mark\" >/dev/null; cat >/dev/null); \
         echo \"phantom:$API_KEY\"; v={tail}; \
         echo \"value-in-env:$(cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n' | grep -c -- \"$v\")\"; \
         echo guest-done; sleep 8",
        port = up.port,
        // The guest looks for the value's tail: neither the guest's RAM nor the test's
        // command line then holds the whole value.
        tail = &VALUE[VALUE.len() - 12..],
    );
    let mut child = env
        .berth()
        .current_dir(&repo)
        .args([
            "run", "--repo", ".", "--secret", "api", "--", "sh", "-c", &script,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout: Arc<Mutex<String>> = Default::default();
    let reader = {
        let (mut pipe, seen) = (child.stdout.take().unwrap(), stdout.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                seen.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        })
    };
    // While the attempt runs: no host process carries the value in its arguments or
    // environment, and nothing in the run dir (the VM's disks and sockets) holds it. Once
    // the guest has used the secret, its whole RAM is dumped and searched too.
    let mut leaks = Vec::new();
    let mut ram_checked = false;
    for _ in 0..120 {
        leaks.extend(processes_holding(VALUE));
        leaks.extend(files_containing(&env.run_dir(), VALUE.as_bytes()));
        let so_far = stdout.lock().unwrap().clone();
        if !ram_checked && so_far.contains("guest-done") {
            let phantom = so_far
                .lines()
                .find_map(|l| l.trim().strip_prefix("phantom:"))
                .unwrap()
                .to_string();
            let (has_value, has_phantom) = scan_guest_ram(&env.run_dir(), &phantom);
            assert!(
                has_phantom,
                "the RAM dump does not hold the guest's token: not the guest's RAM"
            );
            assert!(!has_value, "the value is in the guest's RAM");
            ram_checked = true;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(
        ram_checked,
        "the guest never got as far as using the secret"
    );
    reader.join().unwrap();
    let mut out = child.wait_with_output().unwrap();
    out.stdout = stdout.lock().unwrap().clone().into_bytes();
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(leaks.is_empty(), "the value leaked: {leaks:?}");
    assert!(shown.contains("{\"ok\":true}"), "{shown}");
    assert!(shown.contains("wrong:401"), "{shown}");
    assert!(
        shown.contains("403") && shown.contains("CONNECT"),
        "a CONNECT to the upstream must be refused: {shown}"
    );
    assert!(shown.contains("first:data: {\"n\":1}"), "{shown}");
    let phantom = shown
        .lines()
        .find_map(|l| l.trim().strip_prefix("phantom:"))
        .expect("the guest's token")
        .to_string();
    assert!(phantom.starts_with("berth-phantom-"), "{phantom}");
    assert!(
        !shown.contains(VALUE),
        "the value reached the guest: {shown}"
    );

    // The upstream got the real value, never a phantom; the stream passed event by event
    // (the guest's mark came before the upstream sent its last event).
    let seen = up.requests();
    let hello = seen.iter().find(|s| s.path == "/base/v1/hello").unwrap();
    assert!(hello.headers.contains(&("x-api-key".into(), VALUE.into())));
    assert!(
        seen.iter()
            .all(|s| !s.headers.iter().any(|(_, v)| v.contains("berth-phantom"))),
        "{seen:?}"
    );
    assert_eq!(
        seen.iter().filter(|s| s.path == "/base/v1/hello").count(),
        1
    );
    let mark = seen.iter().find(|s| s.path == "/base/mark").expect("mark");
    let last = up.last_event_at.lock().unwrap().expect("the stream ended");
    assert!(
        mark.at < last,
        "the guest read the first event only after the last was sent"
    );

    // Every use is in the audit (name, path, status), with neither value nor phantom; the
    // value is nowhere in the data directory (database, logs, workspace, overlays).
    let audit = env.berth().args(["audit", "1.1"]).output().unwrap();
    let audit_text = text(&audit);
    assert!(audit_text.contains("secret"), "{audit_text}");
    assert!(audit_text.contains("/v1/hello"), "{audit_text}");
    assert!(!audit_text.contains(VALUE) && !audit_text.contains(&phantom));
    assert_eq!(
        files_containing(env.data_dir(), VALUE.as_bytes()),
        Vec::<String>::new()
    );
    let ls = env
        .berth()
        .args(["secret", "ls", "--json"])
        .output()
        .unwrap();
    let ls: serde_json::Value = serde_json::from_slice(&ls.stdout).unwrap();
    assert!(ls[0]["last_used_at"].as_u64().is_some(), "{ls}");
    assert!(!ls.to_string().contains(VALUE));

    // Attempt A's phantom is worthless at attempt B's gateway; B's own works up to its cap.
    let script = format!(
        "for k in {phantom} $API_KEY $API_KEY $API_KEY; do \
         curl -sS -o /dev/null -w 'code:%{{http_code}}\\n' -H \"x-api-key: $k\" \"$API_URL/v1/b\"; done"
    );
    let out = env
        .berth()
        .current_dir(&repo)
        .args([
            "run",
            "--repo",
            ".",
            "--secret",
            "api:max-requests=2",
            "--",
            "sh",
            "-c",
        ])
        .arg(&script)
        .output()
        .unwrap();
    let shown = text(&out);
    let codes: Vec<&str> = shown
        .lines()
        .filter_map(|l| l.trim().strip_prefix("code:"))
        .collect();
    assert_eq!(codes, ["401", "200", "200", "403"], "{shown}");
    assert_eq!(
        up.requests()
            .iter()
            .filter(|s| s.path == "/base/v1/b")
            .count(),
        2
    );

    // An unknown secret is refused before anything is made.
    let out = env
        .berth()
        .current_dir(&repo)
        .args(["run", "--repo", ".", "--secret", "nope", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    assert!(text(&out).contains("no secret 'nope'"), "{}", text(&out));
    let _ = Command::new("true").status();
}

/// The interception fallback: a program that talks to the real host name (no base URL)
/// gets the key set by the attempt's own name-constrained CA; any other host behind CONNECT
/// keeps its own certificate.
#[test]
fn a_program_without_a_base_url_gets_the_key_through_interception() {
    let env = TestEnv::new();
    let up = TlsUpstream::start();
    let other = TlsUpstream::start_for(&["other.test"]);
    set_secret(&env, &up);
    let repo = simple_repo(&env);
    berth_tests::commit_file(&repo, "other-ca.pem", &other.ca_pem, "the other host's CA");
    let script = format!(
        "openssl x509 -in /usr/local/share/ca-certificates/berth-attempt.crt -noout -text \
           | grep -A2 'Name Constraints'; \
         curl -sS --noproxy '' -H \"x-api-key: $API_KEY\" https://localhost:{port}/v1/direct; echo; \
         curl -sS --noproxy '' -o /dev/null -w 'other:%{{http_code}}\\n' --cacert other-ca.pem \
           https://other.test:{other_port}/x",
        port = up.port,
        other_port = other.port
    );
    let out = env
        .berth()
        .current_dir(&repo)
        .args(["run", "--repo", ".", "--secret", "api:intercept"])
        .args([
            "--network",
            "allowlist",
            "--resolve",
            "other.test=127.0.0.1",
        ])
        .arg("--allow")
        .arg(format!("other.test:{}", other.port))
        .args(["--", "sh", "-c", &script])
        .output()
        .unwrap();
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(
        shown.contains("Permitted:") && shown.contains("DNS:localhost"),
        "{shown}"
    );
    assert!(shown.contains("{\"ok\":true}"), "{shown}");
    assert!(
        shown.contains("other:200"),
        "not the other host's own certificate: {shown}"
    );
    let seen = up.requests();
    let direct = seen
        .iter()
        .find(|s| s.path == "/v1/direct")
        .expect("intercepted request");
    assert!(direct.headers.contains(&("x-api-key".into(), VALUE.into())));
    assert!(
        !direct
            .headers
            .iter()
            .any(|(_, v)| v.contains("berth-phantom"))
    );
    assert!(
        other
            .requests()
            .iter()
            .all(|s| !s.headers.iter().any(|(_, v)| v.contains(VALUE))),
        "the value went to another host"
    );
    let audit = text(&env.berth().args(["audit", "1.1"]).output().unwrap());
    assert!(
        audit.contains("/v1/direct") && !audit.contains(VALUE),
        "{audit}"
    );
}
