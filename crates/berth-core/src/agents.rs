//! Agent presets (`provisioning/agents.toml`): how each coding agent runs in an attempt.
//! A preset becomes an ordinary attempt command (`sh -c`), so nothing downstream knows about
//! agents: its settings and the key/base-URL variables it reads are exported from the bound
//! secret's phantom and gateway URL, and the prompt comes from `$BERTH_PROMPT`.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::Store;
use crate::secrets::SecretUse;
use crate::task::TaskError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentPreset {
    #[serde(default)]
    pub name: String,
    pub label: String,
    pub package: String,
    pub version: String,
    pub secret: String,
    pub header: String,
    pub key_env: String,
    pub url_env: String,
    pub url_suffix: String,
    pub headless: Vec<String>,
    pub interactive: Vec<String>,
    /// The guest's renderer for its headless event stream (`berth-agent render NAME`).
    #[serde(default)]
    pub render: String,
    pub allow: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// What the host fetches to install it (see `agent_install.rs`); empty: the
    /// environment already has it.
    #[serde(default)]
    pub fetch: String,
    /// From an npm tarball, only these members (empty: all).
    #[serde(default)]
    pub extract: Vec<String>,
    /// The commands it puts on PATH: name → path under its install directory.
    #[serde(default)]
    pub bins: BTreeMap<String, String>,
    /// A command that shows it runs, run as `agent` when it is installed.
    #[serde(default)]
    pub check: Vec<String>,
    /// The oldest Node.js major version it runs on (0: no Node.js, or it brings its own).
    #[serde(default)]
    pub node_major: u32,
    /// Files written into its install directory (`/opt/berth/agents/NAME/<file>`), e.g. a
    /// settings file its `env` points at.
    #[serde(default)]
    pub files: BTreeMap<String, String>,
    /// Guest memory it needs, MiB (0: the default is enough); its attempts get at least this
    /// unless `--memory` says otherwise.
    #[serde(default)]
    pub memory: u32,
}

impl AgentPreset {
    /// Checks what a repo's `[agents.NAME]` could get wrong or aim at the host: names and
    /// variables are plain identifiers, paths stay under the install directory, and the
    /// fetch spec names a registry package and version (no file, URL or git spec, so the
    /// host's npm or pip never reads a local path for it).
    pub fn validate(&self) -> Result<(), String> {
        let ident = |s: &str| {
            !s.is_empty()
                && s.len() <= 64
                && s.chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        };
        let name_ok = |s: &str| {
            !s.is_empty()
                && s.len() <= 32
                && s.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        };
        let rel_path = |s: &str| {
            !s.is_empty()
                && s.len() <= 256
                && !s.starts_with('/')
                && s.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
                && s.chars()
                    .all(|c| c.is_ascii_graphic() && c != '\\' && c != '\'')
        };
        if !name_ok(&self.name) {
            return Err(format!(
                "'{}' is not an agent name (lowercase letters, digits, - and _)",
                self.name
            ));
        }
        if !self.secret.is_empty() && !name_ok(&self.secret) {
            return Err(format!("secret: '{}' is not a secret name", self.secret));
        }
        if self.memory > 65_536 {
            return Err(format!("memory: {} MiB is more than 65536", self.memory));
        }
        for (what, v) in [("key_env", &self.key_env), ("url_env", &self.url_env)] {
            if !v.is_empty() && (!ident(v) || v.starts_with("BERTH_")) {
                return Err(format!("{what}: '{v}' is not a variable name"));
            }
        }
        if let Some(k) = self
            .env
            .keys()
            .find(|k| !ident(k) || k.starts_with("BERTH_"))
        {
            return Err(format!("env: '{k}' is not a variable an agent may set"));
        }
        if self.headless.is_empty() || self.interactive.is_empty() {
            return Err("headless and interactive must each be a command".into());
        }
        if !self.render.is_empty() && !["claude", "codex", "gemini"].contains(&self.render.as_str())
        {
            return Err(format!(
                "render: '{}' is not one of claude, codex, gemini (or \"\")",
                self.render
            ));
        }
        let version_ok = |v: &str| {
            !v.is_empty()
                && v.len() <= 64
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+'))
        };
        if !self.fetch.is_empty() {
            if !version_ok(&self.version) {
                return Err(format!("version: '{}' is not a version", self.version));
            }
            crate::agent_install::FetchSpec::parse(&self.fetch, &self.version)?;
            if self.bins.is_empty() {
                return Err("bins: name the commands the package puts on PATH".into());
            }
        }
        for (name, path) in &self.bins {
            if !name_ok(name) || !rel_path(path) {
                return Err(format!(
                    "bins: '{name} = {path}' must be a command name and a path inside the                      package"
                ));
            }
        }
        for (name, content) in &self.files {
            let plain = !name.is_empty()
                && name.len() <= 64
                && !name.starts_with('.')
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
            if !plain || content.len() > 64 * 1024 || content.contains('\0') {
                return Err(format!(
                    "files: '{name}' must be a plain file name with at most 64 KiB of text"
                ));
            }
        }
        if let Some(m) = self.extract.iter().find(|m| !rel_path(m)) {
            return Err(format!("extract: '{m}' is not a path inside the package"));
        }
        Ok(())
    }
}

/// Where the guest agent is in every guest (the image's init puts it there).
pub const GUEST_AGENT: &str = "/run/berth/berth-agent";

/// Every preset, in the file's order of names (sorted).
pub fn agent_presets() -> &'static [AgentPreset] {
    static PRESETS: OnceLock<Vec<AgentPreset>> = OnceLock::new();
    PRESETS.get_or_init(|| {
        parse_presets(include_str!("../../../provisioning/agents.toml"))
            .unwrap_or_else(|e| unreachable!("provisioning/agents.toml: {e}"))
    })
}

fn parse_presets(text: &str) -> Result<Vec<AgentPreset>, String> {
    let table: BTreeMap<String, AgentPreset> = toml::from_str(text).map_err(|e| e.to_string())?;
    Ok(table
        .into_iter()
        .map(|(name, mut p)| {
            p.name = name;
            p
        })
        .collect())
}

/// A preset as front ends list it: whether the secret it needs is set, and where its CLI
/// is installed.
#[derive(Debug, Clone, Serialize)]
pub struct AgentView {
    pub name: String,
    pub label: String,
    pub package: String,
    /// The version its attempts run (the pin, or the one installed last with --version).
    pub version: String,
    pub secret: String,
    pub secret_set: bool,
    pub headless: Vec<String>,
    pub interactive: Vec<String>,
    /// Whether its files are fetched (at `version`), and the layers it is installed in.
    pub fetched: bool,
    pub installed: Vec<InstalledView>,
    /// From the repo's berth.toml rather than Berth's presets.
    pub custom: bool,
}

/// One install of an agent: which version, on what.
#[derive(Debug, Clone, Serialize)]
pub struct InstalledView {
    pub version: String,
    pub on: String,
    pub check: String,
    pub built_at: u64,
}

/// Every preset (and, with a repo, its trusted berth.toml's custom agents).
pub fn list_agents(
    store: &Store,
    repo: Option<&std::path::Path>,
) -> Result<Vec<AgentView>, TaskError> {
    let mut names: Vec<String> = agent_presets().iter().map(|p| p.name.clone()).collect();
    if let Some(r) = repo
        && let Ok(view) = crate::trust::repo_config(store, r)
        && view.usable()
    {
        names.extend(view.config.agents.keys().cloned());
    }
    let layers = crate::agent_layer::list_agent_layers(store);
    let db = store.db()?;
    names
        .iter()
        .map(|name| {
            let p = resolve_agent(store, repo, name)?;
            Ok(AgentView {
                name: p.name.clone(),
                label: p.label.clone(),
                package: p.package.clone(),
                version: p.version.clone(),
                secret: p.secret.clone(),
                secret_set: db.secret(&p.secret)?.is_some(),
                headless: p.headless.clone(),
                interactive: p.interactive.clone(),
                fetched: p.fetch.is_empty()
                    || crate::agent_install::find_fetched(store, &p).is_some(),
                installed: layers
                    .iter()
                    .filter(|l| l.agent == p.name)
                    .map(|l| InstalledView {
                        version: l.version.clone(),
                        on: l.on.clone(),
                        check: l.check.clone(),
                        built_at: l.built_at,
                    })
                    .collect(),
                custom: agent_preset(name).is_err(),
            })
        })
        .collect()
}

/// The agent `name` as an attempt on `repo` runs it: a built-in preset, or the repo's own
/// `[agents.NAME]` once the user trusted its `berth.toml`; at the version the user
/// installed last (`berth agent install NAME --version V`), else its pin.
pub fn resolve_agent(
    store: &Store,
    repo: Option<&std::path::Path>,
    name: &str,
) -> Result<AgentPreset, TaskError> {
    let mut preset = match agent_preset(name) {
        Ok(p) => p.clone(),
        Err(e) => {
            let Some(repo) = repo else { return Err(e) };
            let view = crate::trust::repo_config(store, repo)?;
            let Some(custom) = view.config.agents.get(name) else {
                return Err(e);
            };
            if !view.usable() {
                return Err(TaskError::Refused(format!(
                    "agent {name} comes from {}/berth.toml, which asks for more than Berth \
                     gives a guest by default:\n  {}\nRead it, then run `berth config trust \
                     --repo {}`",
                    repo.display(),
                    view.widens.join("\n  "),
                    repo.display()
                )));
            }
            custom.clone()
        }
    };
    if let Some(v) = store.db()?.setting(&version_key(name))? {
        preset.version = v;
    }
    Ok(preset)
}

/// `policy` with the agent's own allowlist added (an attempt with no network gets an
/// allowlist of just those names).
pub fn with_agent_allow(
    mut policy: berth_egress::Policy,
    preset: &AgentPreset,
) -> Result<berth_egress::Policy, TaskError> {
    if preset.allow.is_empty() {
        return Ok(policy);
    }
    for a in &preset.allow {
        let rule = berth_egress::AllowRule::parse_user(a)
            .map_err(|e| TaskError::Refused(format!("agent {}: allow: {e}", preset.name)))?;
        policy.allow.push(rule);
    }
    if policy.mode == berth_egress::Mode::Off {
        policy.mode = berth_egress::Mode::Allowlist;
    }
    Ok(policy)
}

fn version_key(name: &str) -> String {
    format!("agent.version.{name}")
}

/// Makes `version` the one `name` runs at from now on (`berth agent install --version`).
pub fn choose_agent_version(store: &Store, name: &str, version: &str) -> Result<(), TaskError> {
    Ok(store.db()?.set_setting(&version_key(name), Some(version))?)
}

pub fn agent_preset(name: &str) -> Result<&'static AgentPreset, TaskError> {
    agent_presets()
        .iter()
        .find(|p| p.name == name)
        .ok_or_else(|| {
            let known: Vec<&str> = agent_presets().iter().map(|p| p.name.as_str()).collect();
            TaskError::Refused(format!(
                "no agent preset '{name}'; Berth knows {} (`berth agent ls`)",
                known.join(", ")
            ))
        })
}

/// The attempt command for `preset` (headless, or its own terminal UI), and the secret it
/// binds. Refused before anything is made when the user has not set that secret.
pub fn agent_command(
    store: &Store,
    preset: &AgentPreset,
    interactive: bool,
) -> Result<(Vec<String>, SecretUse), TaskError> {
    let Some(secret) = store.db()?.secret(&preset.secret)? else {
        return Err(TaskError::Refused(format!(
            "{} needs your {} key: store it once with `berth secret set {} --upstream \
             https://<its API> --header '{}'` (the value is read from stdin or a prompt, and \
             stays in your OS keyring)",
            preset.label, preset.secret, preset.secret, preset.header
        )));
    };
    let key = format!("\"${}\"", secret.key_env);
    let gateway = format!("\"${}\"'{}'", secret.url_env, preset.url_suffix);
    let mut script = String::new();
    for (k, v) in &preset.env {
        script.push_str(&format!("export {k}={}; ", quote(v)));
    }
    script.push_str(&format!("export {}={key}; ", preset.key_env));
    if !preset.url_env.is_empty() {
        script.push_str(&format!("export {}={gateway}; ", preset.url_env));
    }
    let argv = if interactive {
        &preset.interactive
    } else {
        &preset.headless
    };
    let words: Vec<String> = argv.iter().map(|a| word(a, &gateway)).collect();
    if interactive || preset.render.is_empty() {
        script.push_str(&format!("exec {}", words.join(" ")));
    } else {
        // Headless: its event stream rendered for people; the agent's own exit code kept.
        script.push_str(&format!(
            "{{ {}; echo $? > /tmp/.berth-agent-rc; }} | {GUEST_AGENT} render {}; \
             exit \"$(cat /tmp/.berth-agent-rc 2>/dev/null || echo 1)\"",
            words.join(" "),
            quote(&preset.render)
        ));
    }
    let mut use_ = crate::secrets::parse_secret_spec(&preset.secret)?;
    use_.name = preset.secret.clone();
    Ok((vec!["sh".into(), "-c".into(), script], use_))
}

/// `arg` as one shell word: literal parts single-quoted, `{prompt}` as "$BERTH_PROMPT" and
/// `{gateway}` as the gateway URL variable.
fn word(arg: &str, gateway: &str) -> String {
    let mut out = String::new();
    let mut rest = arg;
    while !rest.is_empty() {
        let next = [("{prompt}", "\"$BERTH_PROMPT\""), ("{gateway}", gateway)]
            .iter()
            .filter_map(|(tok, rep)| rest.find(tok).map(|i| (i, *tok, *rep)))
            .min_by_key(|(i, _, _)| *i);
        match next {
            Some((i, tok, rep)) => {
                if i > 0 {
                    out.push_str(&quote(&rest[..i]));
                }
                out.push_str(rep);
                rest = &rest[i + tok.len()..];
            }
            None => {
                out.push_str(&quote(rest));
                rest = "";
            }
        }
    }
    if out.is_empty() { "''".into() } else { out }
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_presets_read_and_their_commands_quote_the_prompt_and_the_gateway() {
        let names: Vec<&str> = agent_presets().iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["aider", "claude", "codex", "gemini", "opencode"]);
        for p in agent_presets() {
            assert!(
                p.headless.iter().any(|a| a.contains("{prompt}")),
                "{}",
                p.name
            );
            assert!(p.package.starts_with("npm:") || p.package.starts_with("pypi:"));
            p.validate().unwrap_or_else(|e| panic!("{}: {e}", p.name));
        }
        let gw = "\"$G\"'/v1'";
        assert_eq!(word("-p", gw), "'-p'");
        assert_eq!(word("{prompt}", gw), "\"$BERTH_PROMPT\"");
        assert_eq!(
            word("openai_base_url=\"{gateway}\"", gw),
            "'openai_base_url=\"'\"$G\"'/v1''\"'"
        );
        assert_eq!(quote("it's"), "'it'\\''s'");
    }

    #[test]
    fn every_preset_makes_a_command_the_shell_accepts_with_the_key_and_url_from_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(crate::DataDir::new(dir.path().to_path_buf()));
        for p in agent_presets() {
            let upper = p.secret.to_ascii_uppercase();
            store
                .db()
                .unwrap()
                .put_secret(&berth_db::SecretRecord {
                    name: p.secret.clone(),
                    upstream: "https://api.invalid".into(),
                    header: "x-api-key".into(),
                    template: "{}".into(),
                    key_env: format!("BERTH_SECRET_{upper}"),
                    url_env: format!("BERTH_SECRET_{upper}_URL"),
                    ca_pem: None,
                    created_at: 0,
                    last_used_at: None,
                })
                .unwrap();
            for interactive in [false, true] {
                let (argv, secret) = agent_command(&store, p, interactive).unwrap();
                assert_eq!(secret.name, p.secret);
                let script = &argv[2];
                let check = std::process::Command::new("sh")
                    .args(["-n", "-c", script])
                    .status()
                    .unwrap();
                assert!(check.success(), "{}: {script}", p.name);
                assert!(
                    script.contains(&format!("export {}=\"$BERTH_SECRET_{upper}\"", p.key_env)),
                    "{script}"
                );
                assert_eq!(script.contains("BERTH_PROMPT"), !interactive, "{script}");
            }
        }
        // Headless, with a stand-in `claude` that prints its argv and exits 3, and `cat` for
        // the guest's renderer: the prompt arrives as one word, whatever it holds, the
        // output passes through the renderer, and the agent's exit code is the attempt's.
        let bin = tempfile::tempdir().unwrap();
        let fake = bin.path().join("claude");
        std::fs::write(&fake, "#!/bin/sh\nprintf '[%s]' \"$@\"; exit 3\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let (argv, _) = agent_command(&store, agent_preset("claude").unwrap(), false).unwrap();
        let script = argv[2].replace(&format!("{GUEST_AGENT} render 'claude'"), "cat");
        assert_ne!(script, argv[2], "the headless command renders its stream");
        let path = format!(
            "{}:{}",
            bin.path().display(),
            std::env::var("PATH").unwrap()
        );
        let out = std::process::Command::new("sh")
            .args(["-c", &script])
            .env("PATH", path)
            .env("BERTH_PROMPT", "it's \"quoted\" $(rm -rf /)")
            .output()
            .unwrap();
        let shown = String::from_utf8_lossy(&out.stdout);
        assert!(shown.contains("[it's \"quoted\" $(rm -rf /)]"), "{shown}");
        assert_eq!(out.status.code(), Some(3));
    }

    /// A repo's `[agents.NAME]` is the repo's word: it counts once the user trusted the
    /// file, it cannot take a built-in's name, and nothing in it reaches outside its place
    /// (a fetch spec that is a path or URL, a bin path with `..`, a variable Berth sets).
    #[test]
    fn a_repos_custom_agent_is_checked_and_counts_only_once_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        std::fs::create_dir(&repo).unwrap();
        git2::Repository::init(&repo).unwrap();
        let store = Store::new(crate::DataDir::new(dir.path().join("data")));
        let good = "[agents.mine]\nlabel = \"Mine\"\npackage = \"npm:mine\"\n\
            version = \"1.2.3\"\nsecret = \"anthropic\"\nheader = \"x-api-key\"\n\
            key_env = \"MINE_KEY\"\nurl_env = \"MINE_URL\"\nurl_suffix = \"\"\n\
            headless = [\"mine\", \"{prompt}\"]\ninteractive = [\"mine\"]\nallow = []\n\
            fetch = \"npm:mine@{version}\"\nbins = { mine = \"package/bin/mine\" }\n";
        crate::test_repo::commit_files(&repo, &[("berth.toml", good)], "c");
        let e = resolve_agent(&store, Some(&repo), "mine").unwrap_err();
        assert!(e.to_string().contains("berth config trust"), "{e}");
        crate::trust::trust_repo_config(&store, &repo, None).unwrap();
        let mine = resolve_agent(&store, Some(&repo), "mine").unwrap();
        assert_eq!(
            (mine.name.as_str(), mine.version.as_str()),
            ("mine", "1.2.3")
        );
        let listed = list_agents(&store, Some(&repo)).unwrap();
        assert!(listed.iter().any(|a| a.name == "mine" && a.custom));
        for (from, to) in [
            ("[agents.mine]", "[agents.claude]"),
            ("npm:mine@{version}", "npm:file:/home/me/.ssh@{version}"),
            ("npm:mine@{version}", "npm:https://evil.invalid/x.tgz"),
            ("package/bin/mine", "../../usr/bin/sh"),
            ("MINE_KEY", "BERTH_PROMPT"),
            ("key_env = \"MINE_KEY\"", "key_env = \"X; rm -rf /\""),
            ("[agents.mine]", "[agents.Mine]"),
        ] {
            let bad = good.replace(from, to);
            assert_ne!(bad, good, "{from}");
            assert!(crate::config::parse(&bad).is_err(), "accepted: {to}");
        }
    }

    #[test]
    fn a_preset_whose_secret_is_missing_says_how_to_set_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(crate::DataDir::new(dir.path().to_path_buf()));
        let e = agent_command(&store, agent_preset("claude").unwrap(), false).unwrap_err();
        assert!(e.to_string().contains("berth secret set anthropic"), "{e}");
        assert!(agent_preset("nope").is_err());
    }
}
