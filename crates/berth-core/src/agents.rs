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

/// A preset as front ends list it: with whether the secret it needs is set.
#[derive(Debug, Clone, Serialize)]
pub struct AgentView {
    pub name: String,
    pub label: String,
    pub package: String,
    pub version: String,
    pub secret: String,
    pub secret_set: bool,
    pub headless: Vec<String>,
    pub interactive: Vec<String>,
}

pub fn list_agents(store: &Store) -> Result<Vec<AgentView>, TaskError> {
    let db = store.db()?;
    agent_presets()
        .iter()
        .map(|p| {
            Ok(AgentView {
                name: p.name.clone(),
                label: p.label.clone(),
                package: p.package.clone(),
                version: p.version.clone(),
                secret: p.secret.clone(),
                secret_set: db.secret(&p.secret)?.is_some(),
                headless: p.headless.clone(),
                interactive: p.interactive.clone(),
            })
        })
        .collect()
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

    #[test]
    fn a_preset_whose_secret_is_missing_says_how_to_set_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(crate::DataDir::new(dir.path().to_path_buf()));
        let e = agent_command(&store, agent_preset("claude").unwrap(), false).unwrap_err();
        assert!(e.to_string().contains("berth secret set anthropic"), "{e}");
        assert!(agent_preset("nope").is_err());
    }
}
