//! Agent layers: an agent's CLI installed on the root an attempt boots on (its environment's
//! layer, or the image's own root), as one more read-only qcow2 layer. A setup VM with no
//! network and no secret gets the fetched files (copies: nothing it does reaches the
//! download cache) in `/work`, checks their SHA-512s, unpacks them under
//! `/opt/berth/agents/NAME`, links its commands into `/usr/local/bin`, and runs its version
//! check as `agent`. Its root disk becomes the layer.
//!
//! ```text
//! <envs>/agents/<id12>/manifest.json   which agent, which version, on what
//! <envs>/agents/<id12>/root.qcow2      the layer (its backing file: the root it sits on)
//! ```
//!
//! The id covers the root it sits on (the file's identity, so a rebuilt environment gets a
//! new layer), the preset, and the fetched files' hashes.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use berth_proto::ExecRequest;
use berth_vm::session::VmSession;
use berth_vm::{Hypervisor, RootLayer, VmSpec};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::Store;
use crate::agent_install::{FetchKind, Fetched};
use crate::agents::AgentPreset;
use crate::task::{TaskError, VmSettings};

/// Where an agent's files go in the guest.
pub const AGENTS_DIR: &str = "/opt/berth/agents";

/// What `manifest.json` records about an agent layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentLayer {
    pub id: String,
    pub agent: String,
    pub version: String,
    /// What it sits on, for people: "the image" or "environment <id12>".
    pub on: String,
    /// The root it sits on (its backing file).
    pub base: PathBuf,
    pub layer: PathBuf,
    /// What the version check printed.
    pub check: String,
    pub built_at: u64,
    pub build_seconds: u64,
    pub size: u64,
}

pub fn layers_dir(store: &Store) -> PathBuf {
    crate::env::envs_dir(store).join("agents")
}

/// Every agent layer whose root is still there, newest first.
pub fn list_agent_layers(store: &Store) -> Vec<AgentLayer> {
    let mut out: Vec<AgentLayer> = std::fs::read_dir(layers_dir(store))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| read_manifest(&e.path()))
        .collect();
    out.sort_by_key(|m| std::cmp::Reverse(m.built_at));
    out
}

fn read_manifest(dir: &Path) -> Option<AgentLayer> {
    let m: AgentLayer =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).ok()?).ok()?;
    (m.layer.is_file() && m.base.is_file()).then_some(m)
}

/// The layer's id: the root's file identity, the preset, the files.
fn layer_id(base: &Path, preset: &AgentPreset, fetched: &Fetched) -> Result<String, TaskError> {
    let meta = std::fs::metadata(base)
        .map_err(|e| TaskError::Refused(format!("cannot read {}: {e}", base.display())))?;
    let mut h = Sha256::new();
    let mut part = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_be_bytes());
        h.update(bytes);
    };
    part(b"berth agent layer 1");
    part(base.as_os_str().as_encoded_bytes());
    for n in [
        meta.dev(),
        meta.ino(),
        meta.size(),
        meta.mtime() as u64,
        meta.mtime_nsec() as u64,
    ] {
        part(&n.to_be_bytes());
    }
    part(&serde_json::to_vec(preset).unwrap_or_default());
    part(fetched.sums().as_bytes());
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// The script the setup VM runs as root in `/work` (the files are in `/work/files`). With
/// `$BERTH_AGENT_ROOT` set it installs under that directory instead of `/` and skips the
/// check (the unit tests run it on the host that way).
pub fn install_script(preset: &AgentPreset, fetched: &Fetched) -> String {
    let q = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
    let name = &preset.name;
    let mut s = String::from("set -eu\nR=\"${BERTH_AGENT_ROOT:-}\"\n");
    s.push_str(&format!("d=\"$R{AGENTS_DIR}/{name}\"\n"));
    s.push_str("cd /work/files 2>/dev/null || cd files\n");
    s.push_str(
        "sha512sum --quiet -c ../SHA512SUMS || { echo 'the fetched files do not match their \
         SHA-512s; nothing was installed' >&2; exit 1; }\n",
    );
    if preset.node_major > 0 {
        s.push_str(&format!(
            "if ! command -v node >/dev/null || [ \"$(node -p 'process.versions.node.split(\".\")[0]')\" -lt {m} ]; then \
             echo '{label} needs Node.js {m} or newer in the guest; give the repo an environment \
             that has it (berth.toml [env]: a suite whose nodejs is {m} or newer, and \
             packages = [\"nodejs\"])' >&2; exit 1; fi\n",
            m = preset.node_major,
            label = preset.label.replace('\'', ""),
        ));
    }
    s.push_str("rm -rf \"$d\"\nmkdir -p \"$d\"\n");
    match fetched.spec.kind {
        FetchKind::Npm | FetchKind::NpmTree => {
            for f in &fetched.files {
                let members: Vec<String> = preset.extract.iter().map(|m| q(m)).collect();
                s.push_str(&format!(
                    "tar -xzf {} -C \"$d\" --no-same-owner --no-same-permissions --delay-directory-restore{}{}\n",
                    q(&f.name),
                    if members.is_empty() { "" } else { " -- " },
                    members.join(" ")
                ));
            }
        }
        FetchKind::Pypi => {
            s.push_str(
                "python3 -m venv \"$d/venv\"\n\"$d/venv/bin/pip\" install --no-index --no-deps \
                 --disable-pip-version-check --no-input --quiet ./*.whl\n",
            );
        }
    }
    for (file, content) in &preset.files {
        s.push_str(&format!(
            "printf '%s' {} > \"$d\"/{}\n",
            q(content),
            q(file)
        ));
    }
    s.push_str("chmod -R a+rX \"$d\"\nmkdir -p \"$R/usr/local/bin\"\n");
    for (bin, path) in &preset.bins {
        s.push_str(&format!(
            "[ -f \"$d\"/{p} ] || {{ echo {msg} >&2; exit 1; }}\nchmod a+rx \"$d\"/{p}\nln -sfn \"{AGENTS_DIR}/{name}/\"{p} \"$R/usr/local/bin/\"{b}\n",
            p = q(path),
            b = q(bin),
            msg = q(&format!("the package has no {path} (bins.{bin})")),
        ));
    }
    if !preset.check.is_empty() {
        let argv: Vec<String> = preset.check.iter().map(|a| q(a)).collect();
        s.push_str(&format!(
            "[ -n \"$R\" ] || {{ mkdir -p /run/berth-check && chown agent /run/berth-check && \
             runuser -u agent -- env HOME=/run/berth-check sh -c 'cd /run/berth-check && exec \"$@\"' sh {} </dev/null; }}\n",
            argv.join(" ")
        ));
    }
    s
}

/// The layer of `preset` installed on `base`, if it is installed (nothing is made).
pub(crate) fn find_agent_layer(
    store: &Store,
    preset: &AgentPreset,
    base: &Path,
) -> Option<AgentLayer> {
    // Its layer is keyed by the recorded hashes (checked when it was made).
    let fetched = crate::agent_install::find_fetched(store, preset)?;
    let id = layer_id(base, preset, &fetched).ok()?;
    read_manifest(&layers_dir(store).join(&id[..12])).filter(|m| m.id == id)
}

/// The preset's layer on `base` (the root the attempt would boot on), built if missing:
/// the files fetched on the host if they are not yet, then the setup VM. `on` says what
/// `base` is, for people.
#[allow(clippy::too_many_arguments)]
pub fn ensure_agent_layer<H: Hypervisor>(
    store: &Store,
    hv: &H,
    settings: &VmSettings,
    preset: &AgentPreset,
    base: RootLayer,
    on: &str,
    now_s: u64,
    progress: &mut dyn FnMut(&str),
) -> Result<(AgentLayer, bool), TaskError> {
    if let Some(m) = find_agent_layer(store, preset, &base.path) {
        return Ok((m, false));
    }
    let fetched = crate::agent_install::fetch_agent(store, preset, now_s, progress)?;
    let id = layer_id(&base.path, preset, &fetched)?;
    let dir = layers_dir(store).join(&id[..12]);
    std::fs::create_dir_all(layers_dir(store)).map_err(|e| {
        TaskError::Refused(format!(
            "cannot create {}: {e}",
            layers_dir(store).display()
        ))
    })?;
    let _lock = crate::env_build::EnvLock::take(
        &layers_dir(store),
        &id,
        "installing this agent",
        progress,
    )?;
    if let Some(m) = read_manifest(&dir).filter(|m| m.id == id) {
        return Ok((m, false));
    }
    crate::env_build::check_free_space(&layers_dir(store), 2 * fetched.bytes() + (1 << 30))?;
    let started = Instant::now();
    progress(&format!(
        "installing {} {} on {on} (a setup VM, no network)",
        preset.label, preset.version
    ));
    let staging = layers_dir(store).join(format!(".{}-{}.tmp", &id[..12], std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    let built = build(
        store,
        hv,
        settings,
        preset,
        &fetched,
        base.clone(),
        &staging,
        progress,
    );
    let check = match built {
        Ok(c) => c,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    let mut manifest = AgentLayer {
        id: id.clone(),
        agent: preset.name.clone(),
        version: preset.version.clone(),
        on: on.to_string(),
        base: base.path.clone(),
        layer: dir.join("root.qcow2"),
        check,
        built_at: now_s,
        build_seconds: started.elapsed().as_secs(),
        size: crate::env_build::disk_usage(&staging),
    };
    let json = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::write(staging.join("manifest.json"), json)
        .and_then(|_| std::fs::rename(&staging, &dir))
        .map_err(|e| {
            let _ = std::fs::remove_dir_all(&staging);
            TaskError::Refused(format!("cannot publish {}: {e}", dir.display()))
        })?;
    manifest.layer = dir.join("root.qcow2");
    progress(&format!(
        "{} {} installed in {} s ({})",
        preset.label, preset.version, manifest.build_seconds, manifest.check
    ));
    Ok((manifest, true))
}

/// `berth agent install` and the app's Install button: the agent `name` (at `version`, which
/// becomes the one its attempts run, else its pin) installed on what `repo`'s attempts boot
/// on (its environment, built first if missing) or, with no repo, on the image.
#[allow(clippy::too_many_arguments)]
pub fn install_agent<H: Hypervisor>(
    store: &Store,
    hv: &H,
    settings: &VmSettings,
    repo: Option<&Path>,
    name: &str,
    version: Option<&str>,
    clock: crate::Clock,
    progress: &mut dyn FnMut(&str),
) -> Result<(AgentLayer, bool), TaskError> {
    let mut preset = crate::agents::resolve_agent(store, repo, name)?;
    if let Some(v) = version {
        preset.version = v.to_string();
    }
    if preset.fetch.is_empty() {
        return Err(TaskError::Refused(format!(
            "{} has nothing to install (its preset has no fetch): the repo's environment \
             provides it",
            preset.label
        )));
    }
    preset.validate().map_err(TaskError::Refused)?;
    let plan = match repo {
        Some(r) => crate::env::plan_env(store, r, "HEAD")?,
        None => None,
    };
    let (base, on) = match plan {
        Some(plan) => {
            let env = crate::env::env_for_boot(store, hv, settings, &plan, clock, progress)?;
            (env.root_layer(), format!("environment {}", plan.short_id()))
        }
        None => (
            RootLayer {
                path: settings.image.rootfs(),
                format: "raw",
            },
            "the image".to_string(),
        ),
    };
    let out = ensure_agent_layer(
        store,
        hv,
        settings,
        &preset,
        base,
        &on,
        clock() / 1000,
        progress,
    )?;
    if version.is_some() {
        crate::agents::choose_agent_version(store, name, &preset.version)?;
    }
    Ok(out)
}

/// The setup VM: files in, script run, root disk kept. Returns the check's output.
#[allow(clippy::too_many_arguments)]
fn build<H: Hypervisor>(
    store: &Store,
    hv: &H,
    settings: &VmSettings,
    preset: &AgentPreset,
    fetched: &Fetched,
    base: RootLayer,
    staging: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<String, TaskError> {
    let _ = store;
    let work = staging.join("work");
    let files = work.join("files");
    std::fs::create_dir_all(&files)
        .map_err(|e| TaskError::Refused(format!("cannot create {}: {e}", files.display())))?;
    for f in &fetched.files {
        std::fs::copy(fetched.dir.join(&f.name), files.join(&f.name))
            .map_err(|e| TaskError::Refused(format!("cannot copy {}: {e}", f.name)))?;
    }
    std::fs::write(work.join("SHA512SUMS"), fetched.sums())
        .map_err(|e| TaskError::Refused(format!("cannot write SHA512SUMS: {e}")))?;
    let name = format!("agent-{}-{}", preset.name, std::process::id());
    let spec = VmSpec {
        name,
        image: settings.image.clone(),
        share: Some(work.clone()),
        share_is_berths: true,
        memory_mib: settings.memory_mib.max(1024),
        cpus: settings.cpus,
        accel: settings.accel,
        extra_kernel_args: Vec::new(),
        network: false,
        root: Some(base),
        cache: None,
        tcg_cache_mib: None,
        private_boot_files: false,
    };
    let mut session = VmSession::boot(hv, &spec, &settings.boot)
        .map_err(|e| TaskError::Refused(format!("the setup VM did not boot: {e}")))?;
    let mut io = crate::env::StepOutput::new(progress);
    let status = session.agent.exec(
        ExecRequest {
            argv: vec!["sh".into(), "-c".into(), install_script(preset, fetched)],
            env: Vec::new(),
            cwd: Some("/work".into()),
            user: Some("root".into()),
            pty: None,
        },
        &mut io,
    );
    io.flush();
    let failed = match status {
        Ok(s) if s.shell_code() == 0 => None,
        Ok(s) => Some(format!("exited {}", s.shell_code())),
        Err(e) => Some(e.to_string()),
    };
    let tail = io.tail.clone();
    if let Some(how) = failed {
        session.kill();
        return Err(TaskError::Refused(format!(
            "installing {} failed ({how}); its last output:\n{}",
            preset.label,
            tail.join("\n")
        )));
    }
    session
        .shutdown_keeping_disk(&staging.join("root.qcow2"))
        .map_err(|e| TaskError::Refused(format!("the setup VM's disk: {e}")))?;
    let _ = std::fs::remove_dir_all(&work);
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(
        staging.join("root.qcow2"),
        std::fs::Permissions::from_mode(0o444),
    );
    Ok(tail
        .last()
        .map(|l| l.trim().to_string())
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent_install::{FetchSpec, FetchedFile};

    fn sh(dir: &Path, cmd: &str) {
        let ok = std::process::Command::new("sh")
            .args(["-c", cmd])
            .current_dir(dir)
            .status()
            .unwrap();
        assert!(ok.success(), "{cmd}");
    }

    /// The script, run on the host under a scratch root, on a real npm-style tarball:
    /// only the listed members land, commands are linked, and a changed file stops it
    /// before anything is unpacked.
    #[test]
    fn the_install_script_checks_the_hashes_then_unpacks_only_what_the_preset_names() {
        let d = tempfile::tempdir().unwrap();
        let work = d.path().join("work");
        let pkg = d.path().join("package");
        std::fs::create_dir_all(pkg.join("bin")).unwrap();
        std::fs::write(pkg.join("bin/tool"), "#!/bin/sh\necho tool 1.0\n").unwrap();
        std::fs::write(pkg.join("bin/extra"), "not wanted").unwrap();
        std::fs::create_dir_all(work.join("files")).unwrap();
        sh(d.path(), "tar -czf work/files/tool-1.0.tgz package");
        let path = work.join("files/tool-1.0.tgz");
        let fetched = Fetched {
            spec: FetchSpec::parse("npm:tool@{version}", "1.0").unwrap(),
            files: vec![FetchedFile {
                name: "tool-1.0.tgz".into(),
                sha512: crate::agent_install::sha512_hex(&path).unwrap(),
                size: 1,
            }],
            fetched_at: 0,
            dir: work.join("files"),
        };
        let mut preset = crate::agents::agent_preset("claude").unwrap().clone();
        preset.name = "tool".into();
        preset.extract = vec!["package/bin/tool".into()];
        preset.bins = [("tool".to_string(), "package/bin/tool".to_string())].into();
        preset.validate().unwrap();
        std::fs::write(work.join("SHA512SUMS"), fetched.sums()).unwrap();
        let script = install_script(&preset, &fetched);
        let root = d.path().join("root");
        let run = || {
            std::process::Command::new("sh")
                .args(["-c", &script])
                .current_dir(&work)
                .env("BERTH_AGENT_ROOT", &root)
                .output()
                .unwrap()
        };
        let out = run();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let installed = root.join("opt/berth/agents/tool/package/bin");
        assert!(installed.join("tool").is_file());
        assert!(!installed.join("extra").exists(), "only the listed members");
        let link = std::fs::read_link(root.join("usr/local/bin/tool")).unwrap();
        assert_eq!(link, Path::new("/opt/berth/agents/tool/package/bin/tool"));
        // A byte changed after the host hashed it: nothing is unpacked.
        std::fs::remove_dir_all(root.join("opt")).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        let out = run();
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("do not match"));
        assert!(!root.join("opt/berth/agents/tool").exists());
    }

    #[test]
    fn every_presets_install_script_passes_sh_n() {
        for p in crate::agents::agent_presets() {
            let spec = FetchSpec::parse(&p.fetch, &p.version).unwrap();
            let fetched = Fetched {
                spec,
                files: vec![FetchedFile {
                    name: "x-1.tgz".into(),
                    sha512: "00".into(),
                    size: 1,
                }],
                fetched_at: 0,
                dir: PathBuf::new(),
            };
            let script = install_script(p, &fetched);
            let ok = std::process::Command::new("sh")
                .args(["-n", "-c", &script])
                .status()
                .unwrap();
            assert!(ok.success(), "{}: {script}", p.name);
        }
    }
}
