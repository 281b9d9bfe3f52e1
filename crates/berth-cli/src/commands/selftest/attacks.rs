//! The attacks and how each is judged: what should happen, and what the host's evidence
//! says happened. An attack whose evidence is missing is "not run", never "stopped".

use serde::Serialize;
use serde_json::Value;

use super::evidence::{EXHAUST_MEMORY, Evidence, FrameRun, OUTPUT_LIMIT};

#[derive(Debug, Serialize)]
pub struct Verdict {
    pub attack: &'static str,
    pub should: &'static str,
    pub happened: String,
    /// `stopped`, `BREACH` or `not run`.
    pub outcome: &'static str,
}

type Judge = fn(&Evidence) -> Result<String, (bool, String)>;

/// `Ok(what happened)`: stopped. `Err((true, why))`: it got through. `Err((false, why))`: it
/// could not be judged.
const ATTACKS: &[(&str, &str, Judge)] = &[
    (
        "host-file-by-path",
        "a host file's path, `..` past /work and /proc/*/root find nothing",
        host_file_by_path,
    ),
    (
        "host-file-search",
        "a walk of every guest file system finds no host file",
        host_file_search,
    ),
    (
        "share-symlink",
        "a link in /work to a host path resolves in the guest; pull keeps it a link",
        share_symlink,
    ),
    (
        "share-hardlink",
        "a hard link to a host file cannot be made",
        share_hardlink,
    ),
    (
        "share-setuid",
        "a setuid file made in /work is never root's on the host",
        share_setuid,
    ),
    (
        "host-proc",
        "no host process is visible in the guest's /proc",
        host_proc,
    ),
    (
        "host-sys",
        "the host's machine id, hostname and boot id are nowhere in /sys or /proc",
        host_sys,
    ),
    (
        "agent-port",
        "the agent's port is closed to the guest's user",
        agent_port,
    ),
    (
        "direct-tcp",
        "no TCP connection except to the proxy; the host's loopback is unreachable",
        direct_tcp,
    ),
    ("direct-udp", "no datagram leaves the VM", direct_udp),
    (
        "dns-exfiltration",
        "no name is resolved for the guest; nothing reaches a resolver",
        dns_exfil,
    ),
    (
        "loopback-via-proxy",
        "the proxy refuses the host's loopback in 13 spellings, GET and CONNECT",
        loopback_via_proxy,
    ),
    (
        "host-addresses-via-proxy",
        "the proxy refuses the host's own addresses",
        host_addresses,
    ),
    (
        "private-ranges",
        "the proxy refuses private and link-local ranges",
        private_ranges,
    ),
    (
        "metadata-address",
        "the proxy refuses the cloud metadata address in every spelling",
        metadata,
    ),
    (
        "dns-rebinding",
        "an allowed name that resolves to loopback is refused at connect",
        rebinding,
    ),
    (
        "smuggle-host-mismatch",
        "a Host header naming loopback goes nowhere but the allowed name",
        smuggle_host,
    ),
    (
        "smuggle-pipelining",
        "a request pipelined or smuggled behind an allowed one is not forwarded",
        smuggle_pipelining,
    ),
    (
        "smuggle-absolute-form",
        "userinfo, fragments and odd URL forms never reach loopback",
        smuggle_absolute,
    ),
    (
        "connect-tricks",
        "CONNECT to loopback, a wrong port or a mangled target is refused",
        connect_tricks,
    ),
    (
        "other-attempt-workspace",
        "another running attempt's workspace is not visible",
        other_workspace,
    ),
    (
        "other-attempt-policy",
        "another attempt's allowed name is refused here",
        other_policy,
    ),
    (
        "phantom-at-another-gateway",
        "another attempt's phantom token is refused at this one's gateway",
        phantom_other,
    ),
    (
        "secret-sent-elsewhere",
        "the phantom sent to another host stays a phantom",
        secret_elsewhere,
    ),
    (
        "connect-to-secret-upstream",
        "the secret's upstream cannot be reached around the gateway",
        secret_upstream,
    ),
    (
        "secret-in-guest",
        "the secret's value is in no guest process, file or output",
        secret_in_guest,
    ),
    (
        "approval-spoof",
        "printed prompts and escapes approve nothing and never reach the audit raw",
        approval_spoof,
    ),
    (
        "git-hooks",
        "hooks in the workspace's .git and hooksPath never run on the host",
        git_hooks,
    ),
    (
        "git-config",
        "the workspace's git config (fsmonitor, pager, include) never runs or spreads",
        git_config,
    ),
    (
        "git-filters",
        "filter and diff drivers from .gitattributes never run on pull",
        git_filters,
    ),
    (
        "git-symlink",
        "a symlink entry is pulled as a link; no host file is read into the branch",
        git_symlink,
    ),
    (
        "git-dotgit-entry",
        "a tree entry named .git is refused at import",
        git_dotgit,
    ),
    (
        "git-deep-tree",
        "a tree 2100 levels deep is refused with a clear error",
        git_deep,
    ),
    (
        "qemu-jail",
        "QEMU, taken over and asking for a host file, is refused by its Landlock jail",
        qemu_jail,
    ),
    (
        "agent-frame-4gib",
        "a 4 GiB frame length ends the run with an error, no allocation",
        frames_length,
    ),
    (
        "agent-frame-garbage",
        "garbage on the agent port ends the run with an error",
        frames_garbage,
    ),
    (
        "fill-share",
        "filling /work stops that attempt at its workspace limit, work kept",
        fill_share,
    ),
    (
        "fill-disk",
        "filling the root disk stops that attempt at its disk limit",
        fill_disk,
    ),
    (
        "fill-output",
        "a flood of output keeps at most the attempt's output limit on the host",
        fill_output,
    ),
    (
        "memory-exhaustion",
        "the guest's memory ends at its RAM: QEMU stays within its size",
        memory,
    ),
    (
        "fork-bomb",
        "a fork bomb makes no host process, and a stop ends the attempt",
        fork_bomb,
    ),
];

pub fn judge(ev: &Evidence) -> Vec<Verdict> {
    ATTACKS
        .iter()
        .map(|(attack, should, f)| {
            let (outcome, happened) = match f(ev) {
                Ok(h) => ("stopped", h),
                Err((true, h)) => ("BREACH", h),
                Err((false, h)) => ("not run", h),
            };
            Verdict {
                attack,
                should,
                happened,
                outcome,
            }
        })
        .collect()
}

pub fn table(v: &[Verdict]) -> String {
    let w = v.iter().map(|x| x.attack.len()).max().unwrap_or(6).max(6);
    let mut out = format!(
        "{:<w$}  {:<8}  WHAT SHOULD HAPPEN / WHAT HAPPENED\n",
        "ATTACK", "RESULT"
    );
    for x in v {
        out += &format!("{:<w$}  {:<8}  {}\n", x.attack, x.outcome, x.should);
        out += &format!(
            "{:<w$}  {:<8}  -> {}\n",
            "",
            "",
            berth_core::escape_controls(&x.happened)
        );
    }
    out
}

// ------------------------------------------------------------------------------ helpers

fn report<'a>(ev: &'a Evidence, name: &str) -> Result<&'a Value, (bool, String)> {
    ev.guest
        .get(name)
        .ok_or_else(|| (false, "the guest never reported it".to_string()))
}

fn breach(why: impl Into<String>) -> Result<String, (bool, String)> {
    Err((true, why.into()))
}

fn unknown(why: impl Into<String>) -> Result<String, (bool, String)> {
    Err((false, why.into()))
}

/// Each result of a `results` map, as text.
fn results(r: &Value) -> Vec<(String, String)> {
    r["results"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str().map(str::to_string).unwrap_or(v.to_string()),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Every proxy answer must be a refusal (4xx/5xx, or no HTTP at all); none a 2xx.
fn all_refused(r: &Value, what: &str) -> Result<String, (bool, String)> {
    let res = results(r);
    if res.is_empty() {
        return unknown("no results");
    }
    let through: Vec<_> = res.iter().filter(|(_, s)| s.starts_with('2')).collect();
    if !through.is_empty() {
        return breach(format!("answered: {through:?}"));
    }
    let codes: std::collections::BTreeSet<_> = res.iter().map(|(_, s)| short(s)).collect();
    Ok(format!(
        "{} {what} refused ({})",
        res.len(),
        codes.into_iter().collect::<Vec<_>>().join(", ")
    ))
}

fn short(s: &str) -> String {
    s.chars().take(24).collect()
}

fn trap_untouched(ev: &Evidence) -> Result<(), (bool, String)> {
    if ev.trap_hits > 0 {
        return Err((
            true,
            format!(
                "the host's loopback trap got {} connection(s)",
                ev.trap_hits
            ),
        ));
    }
    Ok(())
}

fn guest_saw(ev: &Evidence, name: &str, needle: &str) -> bool {
    ev.guest
        .get(name)
        .is_some_and(|v| v.to_string().contains(needle))
}

// ------------------------------------------------------------------------------ files

fn host_file_by_path(ev: &Evidence) -> Result<String, (bool, String)> {
    let r = report(ev, "host-file-by-path")?;
    if r.to_string().contains(&ev.host_token) {
        return breach("the guest read the host file's contents");
    }
    Ok(format!("{} paths tried: none found", results(r).len()))
}

fn host_file_search(ev: &Evidence) -> Result<String, (bool, String)> {
    let r = report(ev, "host-file-search")?;
    let name = ev
        .host_marker
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if r.to_string().contains(&ev.host_token) || r.to_string().contains(&name) {
        return breach(format!("found: {}", r["found"]));
    }
    Ok(format!(
        "{} entries searched, the host file is not among them",
        r["searched"]
    ))
}

fn share_symlink(ev: &Evidence) -> Result<String, (bool, String)> {
    let r = report(ev, "share-symlink")?;
    if r.to_string().contains(&ev.host_token) {
        return breach("the link led to the host file");
    }
    Ok(format!(
        "reading it: {}",
        short(r["read"].as_str().unwrap_or("?"))
    ))
}

fn share_setuid(ev: &Evidence) -> Result<String, (bool, String)> {
    let r = report(ev, "share-setuid")?;
    let Some((uid, mode)) = ev.share_setuid else {
        return unknown(format!(
            "no file on the host: {}",
            short(&r["made"].to_string())
        ));
    };
    let setuid = mode & 0o4000 != 0;
    if uid == 0 && setuid {
        return breach("the host has a setuid-root file the guest wrote");
    }
    let whose = if uid == ev.berth_uid {
        "yours".to_string()
    } else {
        format!("uid {uid}, the VM's own")
    };
    Ok(format!(
        "on the host: {whose}{}",
        if setuid {
            ", setuid to that uid only"
        } else {
            ", no setuid bit"
        }
    ))
}

fn share_hardlink(ev: &Evidence) -> Result<String, (bool, String)> {
    let r = report(ev, "share-hardlink")?;
    use std::os::unix::fs::MetadataExt;
    let links = std::fs::metadata(&ev.host_marker)
        .map(|m| m.nlink())
        .unwrap_or(0);
    if links != 1 || r.to_string().contains(&ev.host_token) {
        return breach(format!("the host file now has {links} links"));
    }
    Ok(format!(
        "host: {}; /work/..: {}",
        short(r["host"].as_str().unwrap_or("?")),
        short(r["parent"].as_str().unwrap_or("?"))
    ))
}

fn host_proc(ev: &Evidence) -> Result<String, (bool, String)> {
    let r = report(ev, "host-proc")?;
    if r.to_string().contains(&ev.canary) {
        return breach("a host process's environment was readable in the guest");
    }
    Ok(format!(
        "{} guest processes carry the host's canary",
        r["hits"].as_array().map(|a| a.len()).unwrap_or(0)
    ))
}

fn host_sys(ev: &Evidence) -> Result<String, (bool, String)> {
    let r = report(ev, "host-sys")?;
    if ev.host_ids.is_empty() {
        return unknown("this host has no machine id, hostname or boot id to compare");
    }
    let text = r.to_string();
    if let Some(id) = ev.host_ids.iter().find(|id| text.contains(id.as_str())) {
        return breach(format!("the guest saw the host's {id}"));
    }
    Ok(format!("{} host identifiers, none seen", ev.host_ids.len()))
}

fn agent_port(ev: &Evidence) -> Result<String, (bool, String)> {
    let r = report(ev, "agent-port")?;
    let res = results(r);
    if let Some((dev, _)) = res.iter().find(|(_, s)| s == "written") {
        return breach(format!("the guest's user wrote to /dev/{dev}"));
    }
    if res.is_empty() {
        return unknown("the guest saw no port");
    }
    Ok(format!("{} ports, each refused", res.len()))
}

// ------------------------------------------------------------------------------ network

fn direct_tcp(ev: &Evidence) -> Result<String, (bool, String)> {
    let r = report(ev, "direct-tcp")?;
    trap_untouched(ev)?;
    let res = results(r);
    if let Some((to, _)) = res.iter().find(|(_, s)| s == "connected") {
        return breach(format!("connected to {to}"));
    }
    Ok(format!("{} addresses, no connection", res.len()))
}

fn direct_udp(ev: &Evidence) -> Result<String, (bool, String)> {
    report(ev, "direct-udp")?;
    if ev.udp_hits > 0 {
        return breach(format!("{} datagrams reached the host", ev.udp_hits));
    }
    Ok("sent, none arrived".into())
}

fn dns_exfil(ev: &Evidence) -> Result<String, (bool, String)> {
    let r = report(ev, "dns-exfiltration")?;
    let udp = r["udp"].to_string();
    if udp.contains("answered") {
        return breach(format!("a resolver answered: {udp}"));
    }
    if !r["resolver"].as_str().unwrap_or("").starts_with("error") {
        return breach(format!("the name resolved: {}", r["resolver"]));
    }
    let p = r["proxy"].as_str().unwrap_or("");
    if p.starts_with('2') {
        return breach("the proxy fetched the name");
    }
    if ev.udp_hits > 0 {
        return breach("a datagram reached the host");
    }
    Ok(format!("no resolver answers; the proxy said {}", short(p)))
}

fn loopback_via_proxy(ev: &Evidence) -> Result<String, (bool, String)> {
    trap_untouched(ev)?;
    all_refused(report(ev, "loopback-via-proxy")?, "requests")
}

fn host_addresses(ev: &Evidence) -> Result<String, (bool, String)> {
    trap_untouched(ev)?;
    all_refused(report(ev, "host-addresses-via-proxy")?, "addresses")
}

fn private_ranges(ev: &Evidence) -> Result<String, (bool, String)> {
    all_refused(report(ev, "private-ranges")?, "addresses")
}

fn metadata(ev: &Evidence) -> Result<String, (bool, String)> {
    all_refused(report(ev, "metadata-address")?, "spellings")
}

fn rebinding(ev: &Evidence) -> Result<String, (bool, String)> {
    trap_untouched(ev)?;
    all_refused(report(ev, "dns-rebinding")?, "names")
}

fn smuggle_host(ev: &Evidence) -> Result<String, (bool, String)> {
    report(ev, "smuggle-host-mismatch")?;
    trap_untouched(ev)?;
    Ok("the trap on the host's loopback got nothing".into())
}

fn smuggle_pipelining(ev: &Evidence) -> Result<String, (bool, String)> {
    report(ev, "smuggle-pipelining")?;
    trap_untouched(ev)?;
    if ev.allowed_seen.contains("/smuggled") || ev.allowed_seen.contains("/second") {
        // Reaching the allowed server is not a breach, but say so.
        return Ok("the second request went to the allowed name only; the trap got nothing".into());
    }
    Ok("nothing after the first request was forwarded; the trap got nothing".into())
}

fn smuggle_absolute(ev: &Evidence) -> Result<String, (bool, String)> {
    let r = report(ev, "smuggle-absolute-form")?;
    trap_untouched(ev)?;
    Ok(format!("{} forms, none reached the trap", results(r).len()))
}

fn connect_tricks(ev: &Evidence) -> Result<String, (bool, String)> {
    trap_untouched(ev)?;
    all_refused(report(ev, "connect-tricks")?, "targets")
}

fn other_workspace(ev: &Evidence) -> Result<String, (bool, String)> {
    let r = report(ev, "other-attempt-workspace")?;
    if ev.attacker_output.contains(&ev.neighbour_token)
        || r["found"].as_array().is_some_and(|a| !a.is_empty())
    {
        return breach(format!("found: {}", r["found"]));
    }
    Ok(format!(
        "{} entries searched while the neighbour ran",
        r["searched"]
    ))
}

fn other_policy(ev: &Evidence) -> Result<String, (bool, String)> {
    let r = report(ev, "other-attempt-policy")?;
    let s = r["status"].as_str().unwrap_or("");
    if s.starts_with('2') || ev.allowed_seen.contains("/neighbour-only") {
        return breach("the neighbour's allowed name answered this attempt");
    }
    Ok(format!("refused ({})", short(s)))
}

// ------------------------------------------------------------------------------ secrets

fn phantom_other(ev: &Evidence) -> Result<String, (bool, String)> {
    let r = report(ev, "phantom-at-another-gateway")?;
    if ev.neighbour_phantom.is_empty() || r["had_theirs"] != true {
        return unknown("the neighbour's phantom never reached the attacker");
    }
    let s = r["status"].as_str().unwrap_or("");
    if s.starts_with('2') || ev.upstream_hits > 0 {
        return breach(format!(
            "the gateway forwarded it ({s}; upstream got {})",
            ev.upstream_hits
        ));
    }
    if s != "401" && s != "403" {
        return unknown(format!(
            "the gateway answered {}, not a refusal of the token",
            short(s)
        ));
    }
    Ok(format!("refused ({s}), the upstream got nothing"))
}

fn secret_elsewhere(ev: &Evidence) -> Result<String, (bool, String)> {
    report(ev, "secret-sent-elsewhere")?;
    if ev.allowed_seen.contains(&ev.secret_value) {
        return breach("the real value reached another host");
    }
    if !ev.allowed_seen.contains("/leak") {
        return unknown("the request never reached the allowed host");
    }
    Ok("the other host got the phantom, never the value".into())
}

fn secret_upstream(ev: &Evidence) -> Result<String, (bool, String)> {
    let r = report(ev, "connect-to-secret-upstream")?;
    if ev.upstream_hits > 0 {
        return breach(format!(
            "the upstream got {} connection(s)",
            ev.upstream_hits
        ));
    }
    all_refused(r, "ways")
}

fn secret_in_guest(ev: &Evidence) -> Result<String, (bool, String)> {
    let r = report(ev, "secret-in-guest")?;
    if ev.attacker_output.contains(&ev.secret_value) || r.to_string().contains(&ev.secret_value) {
        return breach("the value was in the guest");
    }
    if r["phantom_in_env"] != true || r["read"].as_u64().unwrap_or(0) == 0 {
        return unknown("the guest's environments were not read");
    }
    if r["hits"].as_array().is_some_and(|h| !h.is_empty()) {
        return breach(format!("the value's shape was found: {}", r["hits"]));
    }
    Ok(format!(
        "{} environments and files searched: only the phantom",
        r["read"]
    ))
}

fn approval_spoof(ev: &Evidence) -> Result<String, (bool, String)> {
    report(ev, "approval-spoof")?;
    let audit = serde_json::to_string(&ev.attacker_audit).unwrap_or_default();
    if ev.attacker_audit.is_empty() {
        return unknown("no audit");
    }
    if audit.contains("evil.selftest:443") {
        return breach("the forged prompt's words reached the audit");
    }
    if ev.attacker_audit.iter().any(|e| e["kind"] == "approval") {
        return breach("an approval was recorded");
    }
    if audit.contains('\u{1b}') {
        return breach("a raw escape sequence reached the audit");
    }
    // Berth's own terminal text about the attempt (its audit, the task list): the guest's
    // escapes and bells, in the host name it asked for, arrive made visible, never raw.
    if ev.attacker_shown.is_empty() {
        return unknown("berth audit and berth ls printed nothing");
    }
    if ev.attacker_shown.contains(['\u{1b}', '\u{7}', '\u{9b}']) {
        return breach("a raw control sequence reached `berth audit` or `berth ls`");
    }
    Ok("no approval; no guest text in the audit; `berth audit` and `berth ls` show its escapes made visible".into())
}

// ------------------------------------------------------------------------------ git

fn pulled(ev: &Evidence) -> Result<(), (bool, String)> {
    if ev.attacker_pull["branch"].as_str().is_none() {
        return Err((
            false,
            format!("the attacker's branch was not pulled: {}", ev.attacker_pull),
        ));
    }
    if !guest_saw(ev, "hostile-git-staged", "hostile") {
        return Err((false, "the guest did not commit its hostile .git".into()));
    }
    Ok(())
}

fn ran(ev: &Evidence, prefix: &str) -> Vec<String> {
    ev.host_dir_files
        .iter()
        .filter(|f| f.starts_with(prefix))
        .cloned()
        .collect()
}

fn git_hooks(ev: &Evidence) -> Result<String, (bool, String)> {
    pulled(ev)?;
    let r = ran(ev, "hook-ran");
    if !r.is_empty() || !ran(ev, "dotgit-hook").is_empty() {
        return breach(format!("ran on the host: {r:?}"));
    }
    Ok("8 hooks in two places: none ran".into())
}

fn git_config(ev: &Evidence) -> Result<String, (bool, String)> {
    pulled(ev)?;
    if !ran(ev, "config-ran").is_empty() || !ran(ev, "dotgit-ran").is_empty() {
        return breach("a command from the workspace's config ran");
    }
    if !ev.user_git_unchanged {
        return breach("the user's .git/config or hooks changed");
    }
    Ok("nothing ran; the user's .git is unchanged".into())
}

fn git_filters(ev: &Evidence) -> Result<String, (bool, String)> {
    pulled(ev)?;
    if !ran(ev, "filter-ran").is_empty() || !ran(ev, "executed").is_empty() {
        return breach("a filter or the workspace's script ran on the host");
    }
    Ok("no filter ran".into())
}

fn git_symlink(ev: &Evidence) -> Result<String, (bool, String)> {
    pulled(ev)?;
    if ev.pulled_blob_holds_token {
        return breach("the host file's contents are in the pulled branch");
    }
    match &ev.symlink_entry {
        Some((0o120000, target)) => Ok(format!("a link to {}", String::from_utf8_lossy(target))),
        Some((mode, _)) => breach(format!("pulled as mode {mode:o}, not a link")),
        None => unknown("the link is not on the branch"),
    }
}

fn refused_pull(v: &Value, needle: &str) -> Result<String, (bool, String)> {
    if v["branch"].as_str().is_some() && v["error"].is_null() {
        return breach(format!("imported as {}", v["branch"]));
    }
    let e = v["error"].as_str().unwrap_or("");
    if e.to_lowercase().contains(needle) {
        Ok(format!("refused: {}", short_line(e)))
    } else {
        unknown(format!("refused for another reason: {}", short_line(e)))
    }
}

fn short_line(s: &str) -> String {
    s.lines().next().unwrap_or("").chars().take(90).collect()
}

fn git_dotgit(ev: &Evidence) -> Result<String, (bool, String)> {
    refused_pull(&ev.dotgit_pull, ".git")
}

fn git_deep(ev: &Evidence) -> Result<String, (bool, String)> {
    refused_pull(&ev.neighbour_pull, "deep")
}

// ------------------------------------------------------------------------------ agent

fn frames(run: &FrameRun, needle: &str) -> Result<String, (bool, String)> {
    if run.hung {
        return breach("berth hung for 3 minutes");
    }
    if run.code.is_none() {
        return unknown(format!("did not run: {}", short_line(&run.stderr)));
    }
    if run.peak_rss_kib > 200 * 1024 {
        return breach(format!("berth grew to {} MiB", run.peak_rss_kib / 1024));
    }
    if run.code != Some(crate::BERTH_FAILURE as i32) || !run.stderr.contains(needle) {
        return unknown(format!("exit {:?}: {}", run.code, short_line(&run.stderr)));
    }
    Ok(format!(
        "a clear error in {:.0} s, berth at most {} MiB",
        run.secs,
        run.peak_rss_kib / 1024
    ))
}

fn qemu_jail(ev: &Evidence) -> Result<String, (bool, String)> {
    if !ev.qemu_open_inside.contains("\"return\"") {
        return unknown(format!(
            "the monitor did not work: {}",
            short_line(&ev.qemu_open_inside)
        ));
    }
    if ev.qemu_open_outside.contains("\"return\"") {
        return breach(
            "QEMU opened the host file (no Landlock on this kernel, or BERTH_NO_JAIL=1)",
        );
    }
    if !ev.qemu_open_outside.contains("Permission denied") {
        return unknown(short_line(&ev.qemu_open_outside));
    }
    Ok("its own overlay: opened; the host file: permission denied".into())
}

fn frames_length(ev: &Evidence) -> Result<String, (bool, String)> {
    frames(&ev.frames_length, "4294967295")
}

fn frames_garbage(ev: &Evidence) -> Result<String, (bool, String)> {
    frames(&ev.frames_garbage, "protocol")
}

// ------------------------------------------------------------------------------ resources

fn limit_event(audit: &[Value], what: &str) -> Option<u64> {
    audit
        .iter()
        .find(|e| e["kind"] == "limit" && e["data"]["limit"] == what)
        .and_then(|e| e["data"]["used"].as_u64())
}

fn fill(rec: &Value, audit: &[Value], what: &str) -> Result<String, (bool, String)> {
    if rec.is_null() {
        return unknown("the attempt was not made");
    }
    match (rec["state"].as_str(), limit_event(audit, what)) {
        (Some("stopped"), Some(used)) => Ok(format!(
            "stopped at {} MiB: {}",
            used >> 20,
            short_line(rec["error"].as_str().unwrap_or(""))
        )),
        (Some("exited"), _) => breach(format!("it wrote everything and exited: {rec}")),
        _ => unknown(format!("state {}", rec["state"])),
    }
}

fn fill_share(ev: &Evidence) -> Result<String, (bool, String)> {
    fill(&ev.fill_share, &ev.fill_share_audit, "workspace")
}

fn fill_disk(ev: &Evidence) -> Result<String, (bool, String)> {
    fill(&ev.fill_disk, &ev.fill_disk_audit, "disk")
}

fn fill_output(ev: &Evidence) -> Result<String, (bool, String)> {
    if !ev.exhaust_output.contains("\"ended\": true") {
        return unknown("the flood did not finish");
    }
    if ev.output_kept > OUTPUT_LIMIT + (1 << 17) {
        return breach(format!(
            "{} bytes kept, the limit is {OUTPUT_LIMIT}",
            ev.output_kept
        ));
    }
    Ok(format!("24 MiB printed, {} KiB kept", ev.output_kept >> 10))
}

fn memory(ev: &Evidence) -> Result<String, (bool, String)> {
    if !ev.exhaust_output.contains("memory-exhaustion") {
        return unknown("the guest never got to exhaust its memory");
    }
    let Some(peak) = ev.exhaust_qemu_peak_mib else {
        return unknown("QEMU's memory was not measured");
    };
    // The guest's RAM, QEMU's translation cache under TCG, and QEMU itself.
    let bound = EXHAUST_MEMORY + ev.exhaust_tcg_mib + 160;
    if peak > bound {
        return breach(format!("QEMU peaked at {peak} MiB, more than {bound}"));
    }
    Ok(format!(
        "QEMU peaked at {peak} MiB (guest {EXHAUST_MEMORY} MiB, bound {bound})"
    ))
}

fn fork_bomb(ev: &Evidence) -> Result<String, (bool, String)> {
    let Some(stop) = &ev.bomb_stop else {
        return unknown("the bomb was not watched");
    };
    if ev.procs_peak_bomb > ev.procs_at_bomb + 1 {
        return breach(format!(
            "host processes grew from {} to {}",
            ev.procs_at_bomb, ev.procs_peak_bomb
        ));
    }
    match stop {
        Ok(secs) => Ok(format!(
            "host processes stayed at {}; stopped in {secs:.1} s",
            ev.procs_at_bomb
        )),
        Err(e) => breach(format!(
            "the attempt could not be stopped: {}",
            short_line(e)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn outcome(ev: &Evidence, attack: &str) -> &'static str {
        judge(ev)
            .into_iter()
            .find(|v| v.attack == attack)
            .map(|v| v.outcome)
            .unwrap()
    }

    /// The judges see a breach in the host's evidence even when the guest reports nothing
    /// unusual; and evidence that is missing is "not run", never "stopped".
    #[test]
    fn the_host_evidence_decides_and_missing_evidence_is_not_a_pass() {
        let mut ev = Evidence {
            secret_value: "sk-selftest-v".into(),
            host_token: "host-secret-t".into(),
            ..Default::default()
        };
        assert!(judge(&ev).iter().all(|v| v.outcome == "not run"));
        ev.guest.insert(
            "loopback-via-proxy".into(),
            json!({"results": {"GET 127.0.0.1": "403"}}),
        );
        assert_eq!(outcome(&ev, "loopback-via-proxy"), "stopped");
        ev.trap_hits = 1;
        assert_eq!(outcome(&ev, "loopback-via-proxy"), "BREACH");
        ev.trap_hits = 0;
        ev.guest.insert(
            "metadata-address".into(),
            json!({"results": {"169.254.169.254": "200"}}),
        );
        assert_eq!(outcome(&ev, "metadata-address"), "BREACH");
        ev.guest.insert(
            "secret-in-guest".into(),
            json!({"read": 10, "hits": [], "phantom_in_env": true}),
        );
        assert_eq!(outcome(&ev, "secret-in-guest"), "stopped");
        ev.attacker_output = "leaked sk-selftest-v".into();
        assert_eq!(outcome(&ev, "secret-in-guest"), "BREACH");
        ev.guest
            .insert("hostile-git-staged".into(), json!({"head": "1 hostile"}));
        ev.attacker_pull = json!({"branch": "berth/2/1"});
        ev.symlink_entry = Some((0o120000, b"/x".to_vec()));
        assert_eq!(outcome(&ev, "git-symlink"), "stopped");
        ev.symlink_entry = Some((0o100644, b"host-secret-t".to_vec()));
        assert_eq!(outcome(&ev, "git-symlink"), "BREACH");
        ev.host_dir_files = vec!["hook-ran-post-checkout".into()];
        assert_eq!(outcome(&ev, "git-hooks"), "BREACH");
        ev.neighbour_pull = json!({"branch": "berth/1/1"});
        assert_eq!(outcome(&ev, "git-deep-tree"), "BREACH");
        ev.fill_share = json!({"state": "exited"});
        assert_eq!(outcome(&ev, "fill-share"), "BREACH");
        ev.bomb_stop = Some(Ok(1.0));
        (ev.procs_at_bomb, ev.procs_peak_bomb) = (4, 40);
        assert_eq!(outcome(&ev, "fork-bomb"), "BREACH");
        ev.guest
            .insert("approval-spoof".into(), json!({"status": 403}));
        ev.attacker_audit = vec![json!({"kind": "egress", "data": {"host": "evil\\x1b"}})];
        assert_eq!(outcome(&ev, "approval-spoof"), "not run");
        ev.attacker_shown = "1.1  egress  deny evil\\x1b[2J.selftest".into();
        assert_eq!(outcome(&ev, "approval-spoof"), "stopped");
        ev.attacker_shown = "1.1  egress  deny evil\u{1b}[2J.selftest".into();
        assert_eq!(outcome(&ev, "approval-spoof"), "BREACH");
        ev.guest
            .insert("share-setuid".into(), json!({"made": "0o104755"}));
        assert_eq!(outcome(&ev, "share-setuid"), "not run");
        ev.share_setuid = Some((1_900_000_001, 0o104755));
        assert_eq!(outcome(&ev, "share-setuid"), "stopped");
        ev.share_setuid = Some((0, 0o104755));
        assert_eq!(outcome(&ev, "share-setuid"), "BREACH");
    }
}
