#!/usr/bin/env python3
"""End-to-end test of the real desktop app: tauri-driver + WebKitWebDriver drive the window.

Run under a display (scripts/test.sh uses xvfb-run). Needs target/debug/berth-app built with
`--features custom-protocol`, target/debug/berth, the test image in target/berth-test-data,
tauri-driver and WebKitWebDriver. Screenshots of each step go to target/e2e-artifacts/.
Every server and VM involved is local; no network is used.
"""
import base64
import http.client
import http.server
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[2]
APP = ROOT / "target/debug/berth-app"
BERTH = ROOT / "target/debug/berth"
IMAGES = ROOT / "target/berth-test-data/images"
ART = ROOT / "target/e2e-artifacts"
def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


PORT, NATIVE_PORT = free_port(), free_port()
DRIVER = f"http://127.0.0.1:{PORT}"

passed = 0


def wd(method, path, body=None, timeout=60):
    # tauri-driver keeps pooled keep-alive connections to WebKitWebDriver, which closes idle
    # ones; a request sent on such a connection fails with "connection reset" before the
    # browser saw it, and tauri-driver then drops ours. Sending it again is safe.
    for attempt in range(4):
        req = urllib.request.Request(DRIVER + path, method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return json.loads(r.read() or b"{}").get("value")
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"{method} {path}: {e.code} {e.read()[:300]!r}") from None
        except (http.client.RemoteDisconnected, ConnectionResetError) as e:
            if attempt == 3:
                raise
            print(f"# the driver dropped {method} {path} ({e}); sending it again", file=sys.stderr)
            time.sleep(0.5)


class Window:
    def __init__(self):
        caps = {"capabilities": {"alwaysMatch": {"tauri:options": {"application": str(APP)}}}}
        # The first session can fail while a fresh X server and the WebKit driver warm up.
        for attempt in range(5):
            try:
                self.sid = wd("POST", "/session", caps, timeout=120)["sessionId"]
                return
            except Exception:
                if attempt == 4:
                    raise
                time.sleep(2)

    def s(self, path):
        return f"/session/{self.sid}{path}"

    def js(self, script, *args):
        return wd("POST", self.s("/execute/sync"), {"script": script, "args": list(args)})

    def find(self, css, timeout=30):
        deadline = time.time() + timeout
        while True:
            try:
                found = wd("POST", self.s("/element"), {"using": "css selector", "value": css})
                # W3C and legacy drivers name the element reference's key differently.
                return next(iter(found.values()))
            except RuntimeError:
                if time.time() > deadline:
                    raise AssertionError(f"no element {css!r} within {timeout}s")
                time.sleep(0.3)

    def click(self, css):
        # The view re-renders on state changes: an element found a moment ago may have been
        # replaced by its twin; find it again.
        for i in range(3):
            try:
                wd("POST", self.s(f"/element/{self.find(css)}/click"), {})
                return
            except RuntimeError as e:
                if "stale element" not in str(e) or i == 2:
                    raise

    def text(self, css):
        return self.js("const e = document.querySelector(arguments[0]); return e ? e.textContent : '';", css)

    def wait_text(self, css, needle, timeout=240):
        deadline = time.time() + timeout
        while needle not in self.text(css):
            if time.time() > deadline:
                raise AssertionError(f"{needle!r} never appeared in {css!r}; it shows: {self.text(css)[-500:]!r}")
            time.sleep(0.5)

    def press(self, attempt, label, css, needle, tries=3, timeout=60):
        """Clicks the attempt card's `label` button until `needle` shows in `css` (the view
        re-renders on every state change, so one click can land on a replaced button)."""
        for i in range(tries):
            self.js("const b = [...document.querySelectorAll(`[data-attempt-card='${arguments[0]}'] button`)]"
                    ".find(b => b.textContent === arguments[1]); if (b) b.click();", attempt, label)
            try:
                self.wait_text(css, needle, timeout=timeout if i == tries - 1 else 10)
                return
            except AssertionError:
                if i == tries - 1:
                    raise

    def keys(self, text):
        """Types `text` (WebDriver key codes allowed: \ue004 Tab, \ue007 Enter) where the
        keyboard focus is, as a user's keyboard would."""
        acts = []
        for ch in text:
            acts += [{"type": "keyDown", "value": ch}, {"type": "keyUp", "value": ch}]
        wd("POST", self.s("/actions"), {"actions": [{"type": "key", "id": "kb", "actions": acts}]})

    def chord(self, mod, key):
        acts = [{"type": "keyDown", "value": mod}, {"type": "keyDown", "value": key},
                {"type": "keyUp", "value": key}, {"type": "keyUp", "value": mod}]
        wd("POST", self.s("/actions"), {"actions": [{"type": "key", "id": "kb", "actions": acts}]})

    def tab_to(self, css, limit=150):
        """Presses Tab until the focus is on `css` (never clicking): it must be reachable by
        keyboard, and show where the focus is."""
        for _ in range(limit):
            if self.js("return !!document.activeElement && document.activeElement.matches(arguments[0])", css):
                assert self.js("const e = document.activeElement; return getComputedStyle(e).outlineStyle !== 'none' "
                               "|| e.matches(':focus-visible')"), f"{css} has no visible focus"
                return
            self.keys("\ue004")
        raise AssertionError(f"Tab never reached {css}; the focus is on "
                             f"{self.js('return document.activeElement.outerHTML.slice(0, 200)')}")

    def size(self, width, height):
        wd("POST", self.s("/window/rect"), {"width": width, "height": height})
        time.sleep(0.5)

    def type_into(self, css, text):
        wd("POST", self.s(f"/element/{self.find(css)}/value"), {"text": text})

    def shot(self, name):
        ART.mkdir(parents=True, exist_ok=True)
        png = base64.b64decode(wd("GET", self.s("/screenshot")))
        (ART / f"{name}.png").write_bytes(png)

    def close(self):
        try:
            wd("DELETE", self.s(""))
        except Exception:
            pass


def step(name):
    global passed
    passed += 1
    print(f"ok {passed} - {name}", flush=True)


def berth(data, *args):
    return subprocess.run([str(BERTH), "--data-dir", str(data), *args], check=True,
                          capture_output=True, text=True,
                          env=dict(os.environ, BERTH_KEYRING="keyutils")).stdout


def git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def loopback_server(body):
    """A host service on 127.0.0.1 that only the approval step may reach."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def notifications(path):
    try:
        return [json.loads(line) for line in path.read_text().splitlines()]
    except FileNotFoundError:
        return []


def wait_notification(path, needle, timeout=60):
    deadline = time.time() + timeout
    while not any(needle in n["summary"] for n in notifications(path)):
        if time.time() > deadline:
            raise AssertionError(f"no notification {needle!r}; got {notifications(path)}")
        time.sleep(0.3)


def main():
    work = pathlib.Path(tempfile.mkdtemp(prefix="be2e", dir="/tmp"))
    data = work / "data"
    data.mkdir()
    (data / "images").symlink_to(IMAGES)
    repo = work / "repo"
    shutil.copytree(ROOT / "examples/demo", repo)
    # The only way a guest may reach this host's loopback: a name the user mapped.
    (repo / "berth.toml").write_text('[network]\nresolve = { "other.test" = "127.0.0.1" }\n')
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@x", "commit", "-qm", "demo")
    # Secrets go to the kernel keyring (scripts/test.sh runs this inside `keyctl session -`):
    # the private session bus here has no Secret Service.
    env = dict(os.environ, BERTH_DATA_DIR=str(data), BERTH_BIN=str(BERTH), BERTH_KEYRING="keyutils")
    env.pop("VISUAL", None)
    # A fake editor: records what "Open in editor" ran it with.
    editor_log = work / "editor-args"
    editor = work / "fake-editor"
    editor.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" > {editor_log}\n")
    editor.chmod(0o755)
    # The user sets the editor from the CLI (their own hand, so it needs no confirmation); a
    # command saved by the window itself runs only after a native dialog.
    berth(data, "config", "editor", str(editor))
    # A notification server on this test's own session bus (scripts/test.sh runs the test
    # under dbus-run-session).
    notes = work / "notifications.jsonl"
    if "DBUS_SESSION_BUS_ADDRESS" not in os.environ:
        raise SystemExit("run this under dbus-run-session (scripts/test.sh does)")
    notifier = subprocess.Popen(["/usr/bin/python3", str(ROOT / "tests/e2e/notification_server.py"), str(notes)],
                                stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert notifier.stdout.readline().strip() == "ready", "the notification server did not start"
    service = loopback_server(b"hello-from-host")
    # Own ports and an own process group, so runs never meet and nothing outlives this one.
    ART.mkdir(parents=True, exist_ok=True)
    log = open(ART / "driver-and-app.log", "w")
    driver = subprocess.Popen(["tauri-driver", "--port", str(PORT), "--native-port", str(NATIVE_PORT)],
                              env=env, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    win = None
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(DRIVER + "/status", timeout=1)
                break
            except Exception:
                time.sleep(0.1)
        win = Window()
        win.find("#new-task-button")
        # First run: the checklist says what this machine has (the image is there).
        win.wait_text(".checklist", "Accelerator", timeout=60)
        assert win.js("return document.querySelector('[data-check=Image]').dataset.ok") == "true"
        assert win.js("return !document.querySelector('button[name=try-demo]').disabled")
        win.shot("01-empty")
        step("the app opens on a first-run checklist (image built, accelerator, virtiofsd, editor; Try the demo)")

        win.js("const i = document.querySelector('input[name=repo-path]'); i.value = '/tmp';"
               "document.querySelector('button[name=add-repo]').click();")
        win.wait_text(".error", "not a git repository", timeout=20)
        win.js("const i = document.querySelector('input[name=repo-path]'); i.value = arguments[0];"
               "document.querySelector('button[name=add-repo]').click();", str(repo / ".berth"))
        win.wait_text("[data-repo]", "main", timeout=20)
        assert win.text("[data-repo] .path") == str(repo), win.text("[data-repo] .path")
        win.shot("02-repo-added")
        step("Repos: a folder that is no repo is refused; the test's repo is added with its branches")

        win.js("document.querySelector('details.settings').open = true;"
               "document.querySelector('input[name=editor]').value = arguments[0];"
               "document.querySelector('button[name=save-editor]').click();", str(editor))
        win.wait_text(".settings", f"runs: {editor}", timeout=20)
        win.js("document.querySelector('details.settings').open = false;")
        step("Settings: the editor command is saved")

        win.click("#new-task-button")
        # The repo comes from the Repos section.
        assert win.js("return document.querySelector('input[name=repo]').value") == str(repo)
        win.wait_text("select[name=base]", "main", timeout=20)
        win.js("document.querySelector('input[name=command]').value = arguments[0];"
               "document.querySelector('input[name=title]').value = 'Fix the failing test';"
               "document.querySelector('input[name=attempts]').value = '2';",
               # The agent also leaves a file whose name is HTML: the app must show it as text.
               "sh -c 'bash .berth/demo-agent.sh; touch \"<img src=x onerror=document.title=1>.txt\"; exec bash -i'")
        win.shot("02-new-task")
        # The repo's berth.toml maps a name onto loopback: that is the repo's word, so the app
        # asks first, showing the effective policy; Cancel creates nothing.
        win.click("button[name=create]")
        win.wait_text("#trust-config", "resolve: other.test → 127.0.0.1", timeout=20)
        win.wait_text("#trust-config .effective", "network: off", timeout=5)
        win.shot("02b-trust-config")
        win.click("#trust-config button[name=cancel]")
        time.sleep(1)
        assert win.js("return document.querySelector('[data-task]') === null"), "Cancel created a task"
        assert json.loads(berth(data, "ls", "--json")) == []
        step("an untrusted berth.toml asks first, with the effective policy; Cancel creates nothing")

        win.click("button[name=create]")
        win.click("#trust-config button[name=trust]")
        win.find('[data-task="1"]')
        step("a task with 2 attempts is created from the New agent task dialog")

        for n in (1, 2):
            win.wait_text(f'[data-attempt="1.{n}"] .xterm-rows', "[demo agent] done")
        # The prompt typed into the dialog reaches the agent as $BERTH_PROMPT.
        win.wait_text('[data-attempt="1.1"] .xterm-rows', "task: Fix the failing test (attempt 1.1)", timeout=10)
        win.shot("03-two-attempts-running")
        step("both terminals show their attempt's output")

        win.click('[data-attempt="1.1"] .xterm-helper-textarea')
        win.type_into('[data-attempt="1.1"] .xterm-helper-textarea', "echo typed-$((6*7)) | tee typed.txt\n")
        win.wait_text('[data-attempt="1.1"] .xterm-rows', "typed-42", timeout=60)
        win.shot("04-typed-into-terminal")
        step("a command typed into a terminal runs in the guest")

        # Another attempt changing state re-renders the window; the terminal being typed in
        # keeps the keyboard.
        berth(data, "stop", "1.2")
        win.wait_text('[data-attempt-card="1.2"] .badge', "stopped", timeout=120)
        assert win.js("return !!document.activeElement.closest('[data-attempt=\"1.1\"]')"), \
            "a re-render took the keyboard away from the terminal"
        step("a re-render leaves the keyboard in the terminal being typed in")

        win.press("1.1", "Stop", '[data-attempt-card="1.1"] .badge', "stopped", timeout=120)
        win.press("1.1", "Diff", '[data-diff="1.1"]', "calc.py")
        win.wait_text('[data-diff="1.1"]', "<img src=x onerror=document.title=1>.txt", timeout=10)
        assert win.js("return document.querySelectorAll('[data-diff] img').length") == 0
        assert win.js("return document.title") == "Berth"
        win.shot("05-diff")
        step("the diff shows the change, and a guest file name made of HTML stays text")

        win.press("1.1", "Pull as branch", ".note", "pulled 1.1 as berth/1/1")
        assert "return a + b" in git(repo, "show", "berth/1/1:calc.py")
        assert "Berth-Attempt: 1.1" in git(repo, "log", "-1", "--format=%B", "berth/1/1^")
        win.shot("06-pulled")
        step("Pull as branch puts the attempt into the repo as berth/1/1")

        win.press("1.1", "Open in editor", ".note", "opened berth/1/1")
        deadline = time.time() + 20
        while not editor_log.exists() and time.time() < deadline:
            time.sleep(0.2)
        checkout = pathlib.Path(editor_log.read_text().strip())
        assert "return a + b" in (checkout / "calc.py").read_text()
        assert git(checkout, "rev-parse", "--abbrev-ref", "HEAD").strip() == "berth/1/1"
        assert git(repo, "status", "--porcelain").strip() == "", "the user's checkout changed"
        win.shot("07-open-in-editor")
        step("Open in editor runs the configured editor on a checkout of berth/1/1")

        win.js("document.querySelector('button[name=compare]').click();")
        win.wait_text('[data-compare="1.1/1.2"]', "typed.txt", timeout=60)
        files = win.js("return [...document.querySelectorAll('[data-compare] details.diff-file')].map(e => e.dataset.file)")
        # Both fixed calc.py alike; they differ in their notes and in what was typed into 1.1.
        assert sorted(files) == ["NOTES.md", "typed.txt"], files
        win.shot("08-compare")
        step("Compare shows what one attempt did differently from the other")

        # Delete on an attempt whose commits were never pulled asks in the app's own dialog;
        # Cancel keeps everything (the old confirm() force-deleted without showing anything).
        win.press("1.2", "Delete", "#delete-attempt", "not pulled")
        win.shot("08b-delete-dialog")
        win.click("#delete-attempt button[name=cancel]")
        time.sleep(1)
        assert win.js("return document.querySelector('#delete-attempt') === null"), "the dialog stayed"
        win.find('[data-attempt-card="1.2"]', timeout=5)
        assert any(a["id"] == "1.2" for a in json.loads(berth(data, "ls", "--json"))), "1.2 was deleted"
        assert (data / "attempts/1.2/work/.git").is_dir(), "1.2's workspace was deleted"
        step("Delete on unpulled work asks in a dialog; Cancel keeps the attempt and its work")

        win.press("1.2", "Delete", "#delete-attempt", "not pulled")
        win.click("#delete-attempt button[name=pull-delete]")
        deadline = time.time() + 60
        while win.js("return !!document.querySelector('[data-attempt-card=\"1.2\"]')"):
            if time.time() > deadline:
                raise AssertionError("Pull and delete left the attempt's card")
            time.sleep(0.3)
        assert "return a + b" in git(repo, "show", "berth/1/2:calc.py")
        assert not any(a["id"] == "1.2" for a in json.loads(berth(data, "ls", "--json")))
        step("Pull and delete keeps the work as berth/1/2, then deletes the attempt")

        win.press("1.1", "Audit", '[data-audit="1.1"]', "ran sh -c")
        win.wait_text('[data-audit="1.1"]', "pull", timeout=30)
        win.shot("09-audit")
        step("the audit timeline shows the commands and the pull")

        port = service.server_address[1]
        win.click("#new-task-button")
        win.wait_text("select[name=base]", "main", timeout=20)
        win.js("document.querySelector('input[name=command]').value = arguments[0];"
               "document.querySelector('input[name=title]').value = 'Needs the network';"
               "document.querySelector('input[name=attempts]').value = '1';"
               "document.querySelector('select[name=network]').value = 'allowlist';",
               f"sh -c 'until curl -fsS -m 90 http://other.test:{port}/; do sleep 1; done; echo; exec bash -i'")
        win.click("button[name=create]")
        win.wait_text('[data-approval^="2.1/"]', "other.test", timeout=240)
        win.wait_text('[data-task="2"] .badge', "waiting for approval", timeout=10)
        wait_notification(notes, "Attempt 2.1 waits for your approval")
        win.shot("10-approval-banner")
        win.js("[...document.querySelectorAll('[data-approval^=\"2.1/\"] button')]"
               ".find(b => b.textContent === 'Allow once').click();")
        win.wait_text('[data-attempt="2.1"] .xterm-rows', "hello-from-host", timeout=120)
        win.press("2.1", "Audit", '[data-audit="2.1"]', f"allowed GET other.test:{port}")
        win.shot("11-approved")
        step("an unlisted request waits in a banner (and a notification); Allow once lets it through")

        berth(data, "task", "new", "--repo", str(repo), "--title", "from the CLI", "--", "true")
        win.find('[data-task="3"]', timeout=10)
        win.shot("12-cli-task-appears")
        step("a task created with the CLI appears in the running app")
        wait_notification(notes, "Attempt 3.1 finished", timeout=240)
        assert not any("1.1" in n["summary"] or "1.2" in n["summary"] for n in notifications(notes)), \
            f"stopping an attempt yourself is no news: {notifications(notes)}"
        step("an OS notification says when an attempt finishes")

        envrepo = work / "envrepo"
        envrepo.mkdir()
        (envrepo / "berth.toml").write_text('[env]\nsetup = ["echo env-step-ran; sleep 4"]\n')
        git(envrepo, "init", "-q", "-b", "main")
        git(envrepo, "add", ".")
        git(envrepo, "-c", "user.name=t", "-c", "user.email=t@x", "commit", "-qm", "env")
        win.js("const i = document.querySelector('input[name=repo-path]'); i.value = arguments[0];"
               "document.querySelector('button[name=add-repo]').click();", str(envrepo))
        sel = f'[data-env="{envrepo}"]'
        win.wait_text(sel, "not built yet", timeout=20)
        win.click(f"{sel} button[name=env-build]")
        win.wait_text(sel, "building environment", timeout=60)
        win.shot("13-env-building")
        win.find(f'{sel}[data-env-state="done"]', timeout=300)
        win.wait_text(sel, "ago in", timeout=10)
        assert win.text(f"{sel} button[name=env-build]") == "Rebuild", win.text(sel)
        win.shot("14-env-built")
        step("Repos: the environment is built from the app, with its progress, and shows as built")

        (envrepo / "berth.toml").write_text(
            '[env]\nsetup = ["echo about-to-fail; echo why-it-failed >&2; exit 3"]\n')
        git(envrepo, "-c", "user.name=t", "-c", "user.email=t@x", "commit", "-qam", "bad step")
        win.click(f"{sel} button[name=env-build]")
        win.find(f'{sel}[data-env-state="failed"]', timeout=300)
        shown = win.text(sel)
        assert "failed:" in shown and "exited 3" in shown and "why-it-failed" in shown, shown
        assert win.text(f"{sel} button[name=env-build]") == "Build", shown
        win.shot("15-env-failed")
        step("a failing setup step shows as failed with its output on the Repos view")

        value = "sk-e2e-never-shown-5b1d"
        win.js("document.querySelector('details.settings').open = true;"
               "const v = (n, x) => { document.querySelector(`input[name=${n}]`).value = x; };"
               "v('secret-name', 'api'); v('secret-upstream', 'https://api.example.invalid');"
               "v('secret-header', 'Authorization: Bearer {}'); v('secret-key-env', 'API_KEY');"
               "v('secret-value', arguments[0]);"
               "document.querySelector('button[name=add-secret]').click();", value)
        win.wait_text('[data-secret="api"]', "authorization", timeout=20)
        win.js("document.querySelector('[data-secret=api]').scrollIntoView();")
        win.shot("16-secret-stored")
        page = win.js("return document.documentElement.outerHTML + [...document.querySelectorAll('input')].map(i => i.value).join(' ')")
        assert value not in page, "the secret's value is in the window"
        listed = json.loads(berth(data, "secret", "ls", "--json"))
        assert [s["name"] for s in listed] == ["api"] and value not in json.dumps(listed), listed
        win.click("#new-task-button")
        win.find("input[name=bind-secret][value=api]")
        # The repo now has berth/1/1 and berth/1/2 too: the base offered is still the branch
        # the repo has checked out, not an old attempt's result.
        win.wait_text("select[name=base]", "berth/1/1", timeout=20)
        assert win.js("return document.querySelector('select[name=base]').value") == "main"
        win.shot("17-new-task-with-secret")
        # An agent preset whose secret is not set: refused in the dialog, saying how.
        win.js("const p = document.querySelector('select[name=preset]'); p.value = 'agent:claude';"
               "p.dispatchEvent(new Event('change'));"
               "document.querySelector('input[name=title]').value = 'fix the failing test';")
        win.wait_text("#new-task", "never inside the VM", timeout=10)
        win.click("button[name=create]")
        win.wait_text("#new-task .error", "berth secret set anthropic", timeout=20)
        win.shot("18-agent-needs-its-secret")
        win.js("document.querySelector('#new-task').close();")
        win.js("document.querySelector('[data-secret=api] button').click();")
        win.wait_text(".settings", "No secrets", timeout=20)
        assert json.loads(berth(data, "secret", "ls", "--json")) == []
        step("Settings: a secret is stored (its value never shown again), offered to new tasks (whose base is the checked-out branch), and removed; an agent preset without its secret is refused, saying how")

        # Claude Code for real: its key in the keyring (set from the CLI, as the README says),
        # its CLI installed with the app's Install button, then the Claude preset with 2
        # attempts against a stand-in of its API on loopback TLS.
        ca = work / "api-ca.pem"
        api = subprocess.Popen([str(ROOT / "target/debug/model-api-standin"), "anthropic", str(ca)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                               start_new_session=True)
        try:
            port = int(api.stdout.readline().split()[1])
            subprocess.run([str(BERTH), "--data-dir", str(data), "secret", "set", "anthropic",
                            "--upstream", f"https://localhost:{port}", "--header", "x-api-key",
                            "--ca-file", str(ca)],
                           input="sk-e2e-key-from-the-keyring", env=env, check=True,
                           capture_output=True, text=True)
            win.js("document.querySelector('details.settings').open = true;")
            win.click("button[name=save-editor]")  # any refresh: the agents list reloads
            win.wait_text("[data-agent=claude]", "secret anthropic set", timeout=30)
            win.js("document.querySelector('[data-agent=claude] button[name=install-agent]').click();")
            win.wait_text("[data-agent=claude]", "on the image", timeout=900)
            win.shot("19-agent-installed")
            step("Settings → Agents: Install puts Claude Code's CLI on the image (fetched by the host's npm, installed by a setup VM)")

            win.js("document.querySelector('details.settings').open = false;")
            before = {t["id"] for t in json.loads(berth(data, "ls", "--json"))}
            win.click("#new-task-button")
            win.js("const p = document.querySelector('select[name=preset]'); p.value = 'agent:claude';"
                   "p.dispatchEvent(new Event('change'));"
                   "document.querySelector('input[name=title]').value = 'write hello.txt, then run the check';"
                   "document.querySelector('input[name=attempts]').value = '2';")
            win.shot("20-new-task-claude")
            win.click("button[name=create]")
            deadline = time.time() + 60
            new = []
            # The task's attempts appear one by one (each workspace is made in turn).
            while len(new) < 2 and time.time() < deadline:
                new = [t["id"] for t in json.loads(berth(data, "ls", "--json")) if t["id"] not in before]
                time.sleep(0.5)
            assert len(new) == 2, f"the Claude task's attempts: {new}"
            for a in sorted(new):
                win.wait_text(f'[data-attempt="{a}"] .xterm-rows', "Done: wrote hello.txt", timeout=900)
                # Readable lines, not the raw event stream.
                shown = win.text(f'[data-attempt="{a}"] .xterm-rows')
                assert "hello.txt" in shown and '"type":"assistant"' not in shown, shown
            win.shot("21-claude-two-attempts")
            step("the Claude preset's 2 attempts show the agent's readable output in their terminals")

            first = sorted(new)[0]
            win.press(first, "Pull as branch", ".note", f"as berth/{first.replace('.', '/')}", timeout=120)
            assert git(repo, "show", f"berth/{first.replace('.', '/')}:hello.txt").strip() == "hello from the stand-in model"
            win.shot("22-claude-pulled")
            step("one Claude attempt is pulled: the file its tool call wrote is on the branch")

            # The comparison strip: one row per attempt, with its state and exit code.
            task = first.split(".")[0]
            second = sorted(new)[1]
            for a in sorted(new):
                win.wait_text(f'[data-strip-row="{a}"]', "done", timeout=60)
            row = win.text(f'[data-strip-row="{second}"]')
            assert "0" in row and "Choose" in row, row
            head_branch = git(repo, "symbolic-ref", "--short", "HEAD").strip()
            before_merge = git(repo, "rev-parse", head_branch).strip()
            choose = ("[...document.querySelectorAll(`[data-strip-row='${arguments[0]}'] button`)]"
                      ".find(b => b.textContent === 'Choose').click();")
            # A file of the user's in the checkout: Choose (with merge) refuses and changes nothing.
            (repo / "my-notes.txt").write_text("mine\n")
            win.js(choose, second)
            win.wait_text("[role=alert]", "changes of yours", timeout=60)
            assert git(repo, "rev-parse", head_branch).strip() == before_merge
            assert (repo / "my-notes.txt").read_text() == "mine\n"
            win.shot("23-choose-refused-dirty")
            step("the comparison strip shows both attempts' exit codes; Choose refuses to merge into a checkout with the user's changes")

            (repo / "my-notes.txt").unlink()
            win.js(choose, second)
            win.wait_text(".note", f"chose {second}", timeout=120)
            branch = f"berth/{second.replace('.', '/')}"
            subprocess.run(["git", "-C", str(repo), "merge-base", "--is-ancestor", branch, head_branch], check=True)
            assert git(repo, "show", f"{head_branch}:hello.txt").strip() == "hello from the stand-in model"
            assert git(repo, "status", "--porcelain").strip() == "", "the checkout was left dirty"
            win.shot("24-chosen-merged")
            step("Choose pulls the winner and merges it into the task's branch in the clean checkout")

            # An idle interactive shell waits for input; a silent command after a whole line works.
            out = berth(data, "task", "new", "--repo", str(repo), "--title", "idle and busy", "--attempts", "2",
                        "--", "sh", "-c", 'if [ "${BERTH_ATTEMPT#*.}" = 1 ]; then exec bash -i; else echo building; exec sleep 600; fi')
            tid = max(int(t["id"].split(".")[0]) for t in json.loads(berth(data, "ls", "--json")))
            win.click(f'[data-task="{tid}"]')
            win.wait_text(f'[data-attempt-card="{tid}.1"] .badge', "waiting for input", timeout=300)
            time.sleep(4)
            assert "working" in win.text(f'[data-attempt-card="{tid}.2"] .badge'), win.text(f'[data-attempt-card="{tid}.2"] .badge')
            win.shot("25-waiting-for-input")
            berth(data, "stop", str(tid))
            step("an idle shell shows waiting for input, a busy command working")

            # Follow up: a new prompt runs the attempt again in its workspace; two commits.
            berth(data, "task", "new", "--repo", str(repo), "--title", "first ask", "--",
                  "sh", "-c", 'echo "$BERTH_PROMPT" >> steps.txt')
            fid = max(int(t["id"].split(".")[0]) for t in json.loads(berth(data, "ls", "--json")))
            att = f"{fid}.1"
            win.click(f'[data-task="{fid}"]')
            win.wait_text(f'[data-attempt-card="{att}"] .badge', "done", timeout=300)
            win.press(att, "Follow up", "#follow-up", "Follow up on")
            win.type_into("#follow-up input[name=follow-up-text]", "second ask\ue007")  # Enter submits
            win.wait_text(".note", "runs again", timeout=60)
            deadline = time.time() + 300
            while sum(1 for e in json.loads(berth(data, "audit", att, "--json"))
                      if e["kind"] == "lifecycle" and e["data"].get("event") == "exited") < 2:
                if time.time() > deadline:
                    raise AssertionError("the follow-up never finished")
                time.sleep(1)
            win.press(att, "Pull as branch", ".note", f"as berth/{fid}/1", timeout=120)
            fb = f"berth/{fid}/1"
            assert git(repo, "show", f"{fb}:steps.txt") == "first ask\nsecond ask\n"
            subjects = git(repo, "log", "--format=%s", f"{head_branch}..{fb}").splitlines()
            assert len(subjects) == 2 and subjects[1] == "Berth: first ask", subjects
            win.shot("26-follow-up")
            step("a follow-up prompt from the app produces a second commit on the same attempt")

            # Restart from base: a new attempt of the task from its base with a changed prompt.
            win.press(att, "Follow up", "#follow-up", "Follow up on")
            win.type_into("#follow-up input[name=follow-up-text]", "third ask")
            win.click("#follow-up button[name=restart-from-base]")
            win.wait_text(".note", "starts over from the task's base", timeout=60)
            win.wait_text(f'[data-attempt-card="{fid}.2"] .badge', "done", timeout=300)
            berth(data, "pull", f"{fid}.2")
            assert git(repo, "show", f"berth/{fid}/2:steps.txt") == "third ask\n"
            assert git(repo, "show", f"{fb}:steps.txt") == "first ask\nsecond ask\n"
            win.shot("27-restart-from-base")
            step("Restart from base starts a new attempt of the task from its base; the attempt it came from is kept")

            # The repo's tests, run by Berth after each agent, in the strip; a running attempt's
            # changes reviewed live; the review view's tree, split layout and folding.
            (repo / "berth.toml").write_text(
                '[network]\nresolve = { "other.test" = "127.0.0.1" }\n\n[test]\ncommand = "python3 -m unittest -q"\n')
            git(repo, "add", "berth.toml")
            git(repo, "-c", "user.name=t", "-c", "user.email=t@x", "commit", "-qm", "tests")
            berth(data, "config", "trust", "--repo", str(repo))
            berth(data, "task", "new", "--repo", str(repo), "--title", "review", "--attempts", "3", "--",
                  "sh", "-c", 'case "${BERTH_ATTEMPT#*.}" in 1) bash .berth/demo-agent.sh; mkdir -p src/deep; '
                  'printf "one\\ntwo\\n" > src/deep/new.txt;; 2) true;; 3) echo live > live.txt; exec sleep 600;; esac')
            rid = max(int(t["id"].split(".")[0]) for t in json.loads(berth(data, "ls", "--json")))
            win.click(f'[data-task="{rid}"]')
            win.wait_text(f'[data-strip-row="{rid}.1"] [data-test-result]', "passed", timeout=300)
            win.wait_text(f'[data-strip-row="{rid}.2"] [data-test-result]', "failed (exit 1)", timeout=300)
            assert "pending" in win.text(f'[data-strip-row="{rid}.3"] [data-test-result]'), win.text(f'[data-strip-row="{rid}.3"]')
            win.wait_text(f'[data-attempt-card="{rid}.3"] [data-changing]', "live.txt", timeout=60)
            win.press(f"{rid}.3", "Diff", f'[data-diff="{rid}.3"]', "live.txt")
            assert "still running" in win.text("[data-review] h2"), win.text("[data-review] h2")
            win.shot("28-live-diff-and-tests")
            win.press(f"{rid}.1", "Diff", f'[data-diff="{rid}.1"]', "calc.py")
            tree = win.text("nav.tree")
            assert "src/deep/" in tree and "new.txt" in tree and "calc.py" in tree, tree
            win.click("button[name=diff-unified]")  # the layout is kept across runs
            assert win.js("return document.querySelectorAll('[data-diff] tr.add').length") > 0, "no added lines"
            win.click("button[name=diff-split]")
            win.find("[data-diff] table.hunks col:nth-child(4)")
            win.click("button[name=collapse-all]")
            assert win.js("return [...document.querySelectorAll('details.diff-file')].every(d => !d.open)"), "Collapse all left files open"
            win.click("button[name=expand-all]")
            win.shot("29-review-split")
            step("the strip shows each attempt's tests; a running attempt is reviewed live; the review has a file tree, split view and folding")

            # The same window at 1024x700 and 1440x900, light and dark: nothing spills sideways,
            # attempts sit side by side at 1024 px.
            for w, hgt in ((1024, 700), (1440, 900)):
                win.size(w, hgt)
                for theme in ("light", "dark"):
                    win.js("localStorage.setItem('berth.theme', arguments[0]);"
                           "document.documentElement.dataset.theme = arguments[0];", theme)
                    time.sleep(0.3)
                    assert win.js("return document.querySelector('main').scrollWidth <= document.querySelector('main').clientWidth + 1"), \
                        f"the view spills sideways at {w}px"
                    tops = win.js("return [...document.querySelectorAll('.attempts .card')].map(c => Math.round(c.getBoundingClientRect().top))")
                    assert len(tops) >= 2 and tops[0] == tops[1], f"attempts not side by side at {w}px: {tops}"
                    win.shot(f"30-attempts-{w}x{hgt}-{theme}")
                    win.js("document.querySelector('[data-review]').scrollIntoView()")
                    win.shot(f"30-review-{w}x{hgt}-{theme}")
                    win.js("document.querySelector('main').scrollTop = 0")
            win.js("localStorage.removeItem('berth.theme'); delete document.documentElement.dataset.theme;")
            berth(data, "stop", str(rid))
            step("at 1024x700 and 1440x900, light and dark, nothing spills sideways and attempts sit side by side")

            # Keyboard only: New agent task, then Diff, then Choose, never a click.
            win.js("document.activeElement && document.activeElement.blur()")
            win.chord("\ue009", "n")
            win.find("#new-task input[name=title]")
            win.tab_to("#new-task input[name=title]")
            win.keys("keyboard only")
            win.keys("\ue007")
            kid = None
            deadline = time.time() + 60
            while kid is None or kid == rid:
                kid = max(int(t["id"].split(".")[0]) for t in json.loads(berth(data, "ls", "--json")))
                if time.time() > deadline:
                    raise AssertionError("Enter in the dialog made no task")
                time.sleep(0.5)
            win.wait_text(f'[data-attempt-card="{kid}.1"] .badge', "done", timeout=300)
            win.wait_text(f'[data-attempt-card="{kid}.2"] .badge', "done", timeout=300)
            win.js("document.activeElement && document.activeElement.blur()")
            win.tab_to(f'[data-attempt-card="{kid}.1"] button:not([name])', limit=200)
            while win.js("return document.activeElement.textContent") != "Diff":
                win.keys("\ue004")
            win.keys("\ue007")
            win.wait_text(f'[data-diff="{kid}.1"]', "calc.py", timeout=120)
            win.tab_to(f'[data-strip-row="{kid}.1"] button[name=choose]', limit=300)
            win.keys("\ue007")
            win.wait_text(".note", f"chose {kid}.1", timeout=120)
            win.shot("31-keyboard-only")
            step("keyboard only: New agent task (Ctrl+N, Enter), Diff, Choose, each reached with Tab and showing its focus")

            # Settings → Warm pool: a VM boots and waits; 0 drains it.
            win.js("document.querySelector('details.settings').open = true;"
                   "document.querySelector('input[name=pool-size]').value = '1';"
                   "document.querySelector('button[name=save-pool]').click();")
            win.wait_text(".note", "keeping 1 VM(s) waiting", timeout=30)
            deadline = time.time() + 180
            while not any(x["state"] == "ready" for x in json.loads(berth(data, "pool", "ls", "--json"))):
                if time.time() > deadline:
                    raise AssertionError("the pooled VM never became ready: " + berth(data, "pool", "ls"))
                time.sleep(1)
            win.js("document.querySelector('input[name=pool-size]').value = '0';"
                   "document.querySelector('button[name=save-pool]').click();")
            win.wait_text(".note", "the pool is off; drained 1", timeout=30)
            assert json.loads(berth(data, "pool", "ls", "--json")) == []
            win.js("document.querySelector('details.settings').open = false;")
            step("Settings: the warm pool boots a VM that waits, and 0 drains it")
        finally:
            api.stdin.close()
            api.terminate()
    finally:
        if win:
            win.close()
        try:
            os.killpg(driver.pid, signal.SIGTERM)
            driver.wait(timeout=10)
        except Exception:
            os.killpg(driver.pid, signal.SIGKILL)
        os.killpg(notifier.pid, signal.SIGTERM)
        service.shutdown()
        for t in [str(n) for n in range(1, 13)]:
            subprocess.run([str(BERTH), "--data-dir", str(data), "stop", t], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    print(f"{passed} passed, 0 failed")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # report, then fail the run
        print(f"not ok - {e}", file=sys.stderr)
        print(f"{passed} passed, 1 failed")
        sys.exit(1)
