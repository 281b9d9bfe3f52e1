//! Egress from inside real VMs: no network by default, an allowlisting proxy as the only way
//! out, every request audited. Every server here listens on the host's loopback only.

use std::path::Path;

use berth_tests::{LoopbackHttp, TestEnv, simple_repo};
use serde_json::Value;

fn run_in_attempt(env: &TestEnv, repo: &Path, net: &[&str], script: &str) -> (String, Value) {
    let out = env
        .berth()
        .args(["run", "--repo"])
        .arg(repo)
        .args(net)
        .args(["--", "sh", "-c", script])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let audit = env
        .berth()
        .args(["audit", "1.1", "--json"])
        .output()
        .unwrap();
    let audit: Value = serde_json::from_slice(&audit.stdout).unwrap();
    (stdout, audit)
}

fn egress_events(audit: &Value) -> Vec<Value> {
    audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "egress")
        .map(|e| e["data"].clone())
        .collect()
}

#[test]
fn with_networking_off_the_guest_has_no_nic_no_dns_and_reaches_nothing() {
    let env = TestEnv::new();
    let host = LoopbackHttp::start("host");
    let out = env
        .berth()
        .args(["vm", "run", "--", "sh", "-c"])
        .arg(format!(
            "ls /sys/class/net; getent hosts svc.test || echo no-dns; \
             curl -sS -m 5 http://10.0.2.2:{p}/ || echo no-host; \
             curl -sS -m 5 http://10.0.2.100:3128/ || echo no-proxy; \
             curl -sS -m 5 http://127.0.0.1:{p}/ || echo no-loopback",
            p = host.port
        ))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout, "lo\nno-dns\nno-host\nno-proxy\nno-loopback\n",
        "{out:?}"
    );
    assert_eq!(*host.received.lock().unwrap(), 0);
}

#[test]
fn the_allowlist_lets_through_exactly_what_it_names_and_every_request_is_audited() {
    let env = TestEnv::new();
    let repo = simple_repo(&env);
    let svc = LoopbackHttp::start("svc");
    let p = svc.port;
    // `localhost` is a name that means loopback: listed, it is still refused (the address
    // literals themselves are refused as rules before anything starts, see
    // `cli_conventions.rs`; the proxy's own check on listed literals is `decide.rs`'s test).
    let allow = format!("--allow=svc.test:{p} --allow=localhost:{p}");
    let mut net: Vec<String> = vec![
        "--network".into(),
        "allowlist".into(),
        "--resolve".into(),
        "svc.test=127.0.0.1".into(),
    ];
    net.extend(allow.split(' ').map(str::to_string));
    let net: Vec<&str> = net.iter().map(String::as_str).collect();
    // NO_PROXY is emptied so curl sends even loopback spellings to the proxy.
    let script = format!(
        "export no_proxy= NO_PROXY=; \
         for url in http://svc.test:{p}/http http://unlisted.test:{p}/ http://localhost:{p}/ \
                    http://127.1:{p}/ http://0x7f000001:{p}/ 'http://[::1]:{p}/' \
                    http://169.254.169.254/latest/meta-data/ http://svc.test:{q}/; do \
           echo \"$url => $(curl -sS -g -m 10 \"$url\" 2>&1 | head -n 1)\"; \
         done; \
         echo \"connect => $(curl -sS -m 10 -p http://svc.test:{p}/tunnel)\"; \
         echo \"direct => $(curl -sS -m 5 --noproxy '*' http://10.0.2.2:{p}/ 2>&1 | head -c 20)\"",
        q = p + 1
    );
    let (stdout, audit) = run_in_attempt(&env, &repo, &net, &script);
    let line = |prefix: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line for {prefix}: {stdout}"))
            .to_string()
    };
    assert!(
        line(&format!("http://svc.test:{p}/http =>")).ends_with("hello from svc"),
        "{stdout}"
    );
    assert!(line("connect =>").ends_with("hello from svc"), "{stdout}");
    for denied in [
        format!("http://unlisted.test:{p}/"),
        format!("http://localhost:{p}/"),
        format!("http://127.1:{p}/"),
        format!("http://0x7f000001:{p}/"),
        format!("http://[::1]:{p}/"),
        "http://169.254.169.254/".into(),
        format!("http://svc.test:{}/", p + 1),
    ] {
        let l = line(&denied);
        assert!(l.contains("berth:") && !l.contains("hello"), "{l}");
    }
    assert!(line("direct =>").contains("curl: (7)"), "{stdout}");

    let events = egress_events(&audit);
    let decision = |host: &str, method: &str| -> Vec<String> {
        events
            .iter()
            .filter(|e| e["host"] == host && e["method"] == method)
            .map(|e| e["decision"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(decision("svc.test", "GET"), ["allow", "deny"], "{events:?}");
    assert_eq!(decision("svc.test", "CONNECT"), ["allow"]);
    for host in ["unlisted.test", "localhost", "[::1]", "169.254.169.254"] {
        assert_eq!(decision(host, "GET"), ["deny"], "{host}: {events:?}");
    }
    // curl normalises 127.1 and 0x7f000001 before asking; both arrive as 127.0.0.1.
    assert_eq!(decision("127.0.0.1", "GET"), ["deny", "deny"], "{events:?}");
    let allowed = events.iter().find(|e| e["decision"] == "allow").unwrap();
    assert!(
        allowed["bytes_up"].as_u64().unwrap() > 0 && allowed["bytes_down"].as_u64().unwrap() > 0
    );
    assert!(
        events
            .iter()
            .all(|e| e["rule"].as_str().is_some_and(|r| !r.is_empty()))
    );
    // `berth ls` counts the denials.
    let ls = env.berth().args(["ls", "--json"]).output().unwrap();
    let ls: Value = serde_json::from_slice(&ls.stdout).unwrap();
    assert_eq!(ls[0]["denied_requests"], 7);
}

#[test]
fn the_egress_budget_stops_an_upload_that_exceeds_it() {
    let env = TestEnv::new();
    let repo = simple_repo(&env);
    let svc = LoopbackHttp::start("svc");
    let p = svc.port;
    let net = [
        "--network",
        "allowlist",
        "--allow",
        &format!("svc.test:{p}"),
        "--resolve",
        "svc.test=127.0.0.1",
        "--egress-budget",
        "64KiB",
    ];
    let script = format!(
        "head -c 2000000 /dev/zero > /tmp/blob; \
         curl -sS -m 30 -p -H 'Expect:' --data-binary @/tmp/blob http://svc.test:{p}/upload >/dev/null 2>&1; \
         echo \"after => $(curl -sS -m 10 http://svc.test:{p}/small)\""
    );
    let (stdout, audit) = run_in_attempt(&env, &repo, &net, &script);
    assert!(
        stdout.contains("after => berth: the egress budget of 65536 bytes is used up"),
        "{stdout}"
    );
    assert!(
        *svc.received.lock().unwrap() < 65536 + 64 * 1024,
        "{} bytes got out",
        svc.received.lock().unwrap()
    );
    let events = egress_events(&audit);
    assert!(
        events.iter().any(|e| e["reason"]
            .as_str()
            .is_some_and(|r| r.contains("budget was used up"))),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["rule"] == "egress_budget" && e["decision"] == "deny")
    );
}

#[test]
fn berth_toml_configures_the_network_and_its_mistakes_are_clear() {
    let env = TestEnv::new();
    let repo = simple_repo(&env);
    let svc = LoopbackHttp::start("svc");
    std::fs::write(
        repo.join("berth.toml"),
        format!(
            "[network]\nmode = \"allowlist\"\nallow = [\"svc.test:{}\"]\nresolve = {{ \"svc.test\" = \"127.0.0.1\" }}\n",
            svc.port
        ),
    )
    .unwrap();
    // The file is the repo's word, and an agent can write the repo: until the user trusts
    // this exact content, it widens nothing and the run is refused, creating nothing.
    let refused = env
        .berth()
        .args(["run", "--repo"])
        .arg(&repo)
        .args(["--", "true"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(125), "{refused:?}");
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("berth config trust") && err.contains("resolve: svc.test → 127.0.0.1"),
        "{err}"
    );
    assert!(!env.data_dir().join("attempts/1.1").exists());
    let trusted = env
        .berth()
        .args(["config", "trust", "--repo"])
        .arg(&repo)
        .output()
        .unwrap();
    assert!(trusted.status.success(), "{trusted:?}");
    let out = env
        .berth()
        .args(["run", "--repo"])
        .arg(&repo)
        .args(["--", "sh", "-c"])
        .arg(format!("curl -sS -m 10 http://svc.test:{}/", svc.port))
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(stdout.contains("hello from svc"), "{stdout}");
    // The effective policy is printed when the attempts start.
    assert!(
        stderr.contains(&format!(
            "network: allowlist; allow svc.test:{}; svc.test → 127.0.0.1",
            svc.port
        )),
        "{stderr}"
    );
    // A changed file (here: an agent maps a name onto the cloud metadata address) asks again.
    let mut text = std::fs::read_to_string(repo.join("berth.toml")).unwrap();
    text = text.replace(
        "resolve = {",
        "resolve = { \"m.test\" = \"169.254.169.254\",",
    );
    std::fs::write(repo.join("berth.toml"), text).unwrap();
    let again = env
        .berth()
        .args(["task", "new", "--repo"])
        .arg(&repo)
        .args(["--", "true"])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(125), "{again:?}");
    assert!(String::from_utf8_lossy(&again.stderr).contains("m.test → 169.254.169.254"));
    std::fs::write(
        repo.join("berth.toml"),
        "[network]\nmode = \"allowlist\"\nalow = []\n",
    )
    .unwrap();
    let out = env
        .berth()
        .args(["run", "--repo"])
        .arg(&repo)
        .args(["--", "true"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        err.contains("berth.toml") && err.contains("line 3") && err.contains("alow"),
        "{err}"
    );
}

/// Starts task 1 (one attempt, allowlist network, `other.test` mapped to loopback) whose
/// guest waits for /work/go, then runs `then`; returns its supervisor socket once it runs.
fn approval_task(env: &TestEnv, repo: &Path, extra: &[&str], then: &str) -> std::path::PathBuf {
    let script = format!("while [ ! -f /work/go ]; do sleep 0.2; done; {then}; sleep 600");
    let out = env
        .berth()
        .args(["task", "new", "--repo"])
        .arg(repo)
        .args([
            "--network",
            "allowlist",
            "--resolve",
            "other.test=127.0.0.1",
        ])
        .args(extra)
        .args(["--", "sh", "-c", &script])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let socket = env.data_dir().join("attempts/1.1/supervisor.sock");
    assert!(berth_tests::wait_until(
        std::time::Duration::from_secs(120),
        || socket.exists()
    ));
    socket
}

/// Task 1 whose guest, once let go, asks once for `other.test` (served by a loopback
/// server named `name`) and prints `got <the page or why it was refused>`.
fn one_request(env: &TestEnv, name: &'static str) -> (LoopbackHttp, std::path::PathBuf) {
    let repo = simple_repo(env);
    let svc = LoopbackHttp::start(name);
    let p = svc.port;
    let then = format!("echo \"got $(curl -sS -m 90 http://other.test:{p}/)\"");
    let socket = approval_task(env, &repo, &[], &then);
    (svc, socket)
}

/// Whether the guest's `got ...` line has arrived whole.
fn got_line(seen: &str) -> bool {
    seen.split_once("got ")
        .is_some_and(|(_, rest)| rest.contains('\n'))
}

/// Lets the guest of [`approval_task`] go on.
fn go(env: &TestEnv) {
    std::fs::write(env.data_dir().join("attempts/1.1/work/go"), "").unwrap();
}

#[test]
fn an_unlisted_name_waits_for_the_attached_user_once_deny_always() {
    use berth_core::SupervisorClient;
    use berth_proto::Message;
    let env = TestEnv::new();
    let repo = simple_repo(&env);
    let svc = LoopbackHttp::start("svc");
    let p = svc.port;
    let socket = approval_task(
        &env,
        &repo,
        &[
            "--allow",
            &format!("svc.test:{p}"),
            "--resolve",
            "svc.test=127.0.0.1",
        ],
        &format!(
            "python3 hostile.py; \
             for i in 1 2 3 4; do echo \"req$i $(curl -sS -m 90 http://other.test:{p}/)\"; done"
        ),
    );
    // First the guest names targets nobody may be asked about: a wildcard (whose "always"
    // would allow every .com), IPv6 and IPv4 literals, terminal escapes. Each is denied
    // without a question (the loop below fails on any question but other.test's).
    std::fs::write(
        env.data_dir().join("attempts/1.1/work/hostile.py"),
        "import socket\n\
         for t in ['*.com:443', '[2606:4700::1111]:443', '1.1.1.1:443', 'a\\x1b[2J.test:443']:\n\
         \x20   s = socket.create_connection(('10.0.2.100', 3128))\n\
         \x20   s.sendall(('CONNECT %s HTTP/1.1\\r\\nHost: %s\\r\\n\\r\\n' % (t, t)).encode())\n\
         \x20   print('hostile', t.encode('unicode_escape').decode(), s.recv(200).split(b'\\r\\n')[0].decode())\n",
    )
    .unwrap();
    let mut client = SupervisorClient::connect(&socket).unwrap();
    client.attach(None).unwrap();
    go(&env);
    let answers = ["once", "deny", "always"];
    let mut asked = 0;
    let mut seen = String::new();
    while !seen.contains("req4") || !seen[seen.find("req4").unwrap()..].contains('\n') {
        match client.recv().unwrap() {
            Message::Stdout { id: 0, data } => seen.push_str(&String::from_utf8_lossy(&data)),
            Message::ApprovalRequest { id, host, port } => {
                assert_eq!((host.as_str(), port), ("other.test", p));
                assert!(asked < 3, "asked again after 'always'");
                if asked == 0 {
                    // While the question waits, `berth ls` says so and names it.
                    let ls = env.berth().args(["ls", "--json"]).output().unwrap();
                    let ls: serde_json::Value = serde_json::from_slice(&ls.stdout).unwrap();
                    assert_eq!(ls[0]["waiting_for"][0], format!("other.test:{p}"), "{ls}");
                    let human = env.berth().arg("ls").output().unwrap();
                    assert!(String::from_utf8_lossy(&human.stdout).contains("waiting"));
                }
                client
                    .writer()
                    .send(&Message::Approve {
                        id,
                        decision: answers[asked].into(),
                    })
                    .unwrap();
                asked += 1;
            }
            _ => {}
        }
    }
    let line = |n: u32| {
        seen.lines()
            .find(|l| l.starts_with(&format!("req{n}")))
            .unwrap()
            .to_string()
    };
    assert!(line(1).ends_with("hello from svc"), "{seen}");
    let ls = env.berth().args(["ls", "--json"]).output().unwrap();
    let ls: serde_json::Value = serde_json::from_slice(&ls.stdout).unwrap();
    assert_eq!(ls[0]["waiting_for"], serde_json::json!([]), "{ls}");
    assert!(
        line(2).contains("was not approved: denied by the user"),
        "{seen}"
    );
    assert!(line(3).ends_with("hello from svc"), "{seen}");
    assert!(line(4).ends_with("hello from svc"), "{seen}");
    assert_eq!(asked, 3);
    let audit = env
        .berth()
        .args(["audit", "1.1", "--json"])
        .output()
        .unwrap();
    let audit: Value = serde_json::from_slice(&audit.stdout).unwrap();
    let hostile = seen.lines().filter(|l| l.starts_with("hostile")).count();
    assert_eq!(hostile, 4, "{seen}");
    assert!(
        seen.lines()
            .filter(|l| l.starts_with("hostile"))
            .all(|l| l.contains(" 403") || l.contains(" 400")),
        "{seen}"
    );
    let rules: Vec<String> = egress_events(&audit)
        .iter()
        .filter(|e| e["host"] == "other.test")
        .map(|e| {
            format!(
                "{} {}",
                e["decision"].as_str().unwrap(),
                e["rule"].as_str().unwrap()
            )
        })
        .collect();
    assert!(
        rules[0].starts_with("allow approved once by the user"),
        "{rules:?}"
    );
    assert_eq!(rules[1], "deny approval");
    assert!(
        rules[2].starts_with("allow approved for the task by the user"),
        "{rules:?}"
    );
    assert!(
        rules[3].starts_with("allow approved earlier for the task"),
        "{rules:?}"
    );
    let approvals = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "approval")
        .count();
    assert_eq!(approvals, 3);
    // "Always" is kept in the task's policy for its next boot.
    let db = rusqlite::Connection::open(env.data_dir().join("berth.db")).unwrap();
    let policy: String = db
        .query_row(
            "SELECT policy FROM attempts WHERE task_id = 1 AND n = 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(policy.contains(&format!("other.test:{p}")), "{policy}");
    drop(client);
    assert!(
        env.berth()
            .args(["stop", "1.1"])
            .status()
            .unwrap()
            .success()
    );
}

#[test]
fn a_question_nobody_answered_yet_is_asked_again_of_a_client_that_attaches_later() {
    use berth_core::SupervisorClient;
    use berth_proto::Message;
    let env = TestEnv::new();
    let (svc, socket) = one_request(&env, "late");
    // The first client (a window that is then closed, say) is asked and never answers.
    let mut first = SupervisorClient::connect(&socket).unwrap();
    first.attach(None).unwrap();
    go(&env);
    let asked = loop {
        if let Message::ApprovalRequest { id, host, port } = first.recv().unwrap() {
            assert_eq!((host.as_str(), port), ("other.test", svc.port));
            break id;
        }
    };
    // A client attaching now is asked the same question, and its answer counts.
    let mut second = SupervisorClient::connect(&socket).unwrap();
    second.attach(None).unwrap();
    let mut seen = String::new();
    let mut answered = false;
    // The guest prints one "got ..." line either way: the page, or why it was refused.
    while !got_line(&seen) {
        match second.recv().unwrap() {
            Message::ApprovalRequest { id, .. } => {
                assert_eq!(id, asked);
                assert!(!answered, "asked twice");
                answered = true;
                second
                    .writer()
                    .send(&Message::Approve {
                        id,
                        decision: "once".into(),
                    })
                    .unwrap();
            }
            Message::Stdout { data, .. } => seen.push_str(&String::from_utf8_lossy(&data)),
            _ => {}
        }
    }
    assert!(answered, "the second client was never asked: {seen}");
    assert!(seen.contains("got hello from late"), "{seen}");
    // The first client hears that the question was answered, so it can drop its prompt.
    loop {
        if let Message::ApprovalClosed { id, decision } = first.recv().unwrap() {
            assert_eq!((id, decision.as_str()), (asked, "once"));
            break;
        }
    }
    drop(first);
    let stop = env.berth().args(["stop", "1.1"]).output().unwrap();
    assert!(stop.status.success(), "{stop:?}");
}

#[test]
fn a_question_nobody_answers_expires_for_every_client() {
    use berth_core::SupervisorClient;
    use berth_proto::Message;
    let env = TestEnv::new();
    let (svc, socket) = one_request(&env, "never");
    let mut client = SupervisorClient::connect(&socket).unwrap();
    client.attach(None).unwrap();
    go(&env);
    let mut asked = None;
    let mut seen = String::new();
    // The proxy waits 60 s for an answer, then denies and the question is closed for all.
    let closed = loop {
        match client.recv().unwrap() {
            Message::ApprovalRequest { id, .. } => asked = Some(id),
            Message::ApprovalClosed { id, decision } => break (id, decision),
            Message::Stdout { data, .. } => seen.push_str(&String::from_utf8_lossy(&data)),
            _ => {}
        }
    };
    assert_eq!(Some(closed.0), asked);
    assert_eq!(closed.1, "expired");
    while !got_line(&seen) {
        if let Message::Stdout { data, .. } = client.recv().unwrap() {
            seen.push_str(&String::from_utf8_lossy(&data));
        }
    }
    assert!(
        seen.contains("not approved: no answer within 60 s"),
        "{seen}"
    );
    assert_eq!(*svc.received.lock().unwrap(), 0);
    let stop = env.berth().args(["stop", "1.1"]).output().unwrap();
    assert!(stop.status.success(), "{stop:?}");
}
