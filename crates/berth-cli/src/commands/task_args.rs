//! The flags that shape a task, shared by `berth run` and `berth task new`.

#[derive(clap::Args)]
pub struct TaskArgs {
    /// Branch, tag or commit the attempts start from.
    #[arg(long, default_value = "HEAD")]
    pub base: String,
    /// How many attempts to run side by side.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=16))]
    pub attempts: u32,
    /// The task's title, which is also its prompt: the command sees it as $BERTH_PROMPT.
    #[arg(long)]
    pub title: Option<String>,
    /// Start from the repo's uncommitted changes too (snapshotted into a commit on the
    /// attempt's side; the repo itself is not touched).
    #[arg(long)]
    pub include_uncommitted: bool,
    /// Guest memory per attempt, MiB (default 512, or what the --agent needs, e.g. 1536 for
    /// opencode).
    #[arg(long, value_parser = clap::value_parser!(u32).range(64..=65536))]
    pub memory: Option<u32>,
    /// Bind a secret (see `berth secret`): NAME[:approve=each|task|none][:ttl=1h]
    /// [:max-requests=N]. The guest gets a token that works only at this attempt's gateway,
    /// which sets the real value on the host. Repeatable.
    #[arg(long = "secret", value_name = "SPEC")]
    pub secrets: Vec<String>,
    /// Run a coding agent from its preset (`berth agent ls`): the words after `--` are its
    /// prompt; the secret it needs is bound.
    #[arg(long, value_name = "NAME")]
    pub agent: Option<String>,
    /// With --agent: start the agent's own terminal UI instead of a headless run.
    #[arg(long, requires = "agent")]
    pub interactive: bool,
    /// Commits of the base's history each attempt's repo gets, for `git log` and `git blame`
    /// (1: the base alone; fewer when older file versions would pass 16 MiB). The guest's
    /// repo is shallow at that depth: commits further back are not in it, and nothing in it
    /// points to your repo. Default: `berth config history`, else 50.
    #[arg(long, value_name = "N")]
    pub history: Option<u32>,
    /// Disk the attempt's workspace may take on the host (e.g. 2GiB); reaching it stops the
    /// attempt, its work kept. Default: a quarter of the free disk, 1 to 50 GiB.
    #[arg(long, value_name = "SIZE", value_parser = size_arg)]
    pub max_workspace: Option<u64>,
    /// Disk the attempt's VM overlays (its root and caches) may take (default: a quarter
    /// of the free disk, 2 to 20 GiB).
    #[arg(long, value_name = "SIZE", value_parser = size_arg)]
    pub max_disk: Option<u64>,
    /// Output kept per attempt (default 64MiB; older output is dropped first).
    #[arg(long, value_name = "SIZE", value_parser = size_arg)]
    pub max_output: Option<u64>,
    /// Connections at once through the attempt's proxy, each a host process (default 128).
    #[arg(long, value_name = "N")]
    pub max_connections: Option<u32>,
}

fn size_arg(s: &str) -> Result<u64, String> {
    berth_core::parse_bytes(s)
}

impl TaskArgs {
    /// The `--max-*` flags (see `berth_core::limits`).
    pub fn limit_flags(&self) -> berth_core::limits::LimitFlags {
        berth_core::limits::LimitFlags {
            workspace: self.max_workspace,
            disk: self.max_disk,
            output: self.max_output,
            connections: self.max_connections,
        }
    }
}

/// What the attempts run: the command after `--`, or with `--agent` the preset's, whose
/// prompt (the words after `--`) becomes the task's title.
pub struct Planned {
    /// The command and its arguments.
    pub command: Vec<String>,
    pub title: Option<String>,
    pub secrets: Vec<berth_core::SecretUse>,
    pub agent: Option<berth_core::AgentPreset>,
}

impl Planned {
    /// `policy` with the agent's own allowlist, if it has one.
    pub fn policy(&self, policy: berth_core::Policy) -> anyhow::Result<berth_core::Policy> {
        Ok(match &self.agent {
            Some(a) => berth_core::with_agent_allow(policy, a)?,
            None => policy,
        })
    }
}

/// Guest memory per attempt when neither `--memory` nor the agent says.
pub const DEFAULT_MEMORY: u32 = 512;

impl TaskArgs {
    /// Guest MiB per attempt: `--memory`, else what the repo's `[env] memory` asks (at
    /// least what the agent needs), else what the agent needs, else the default. Says so when
    /// `--memory` is below what the agent needs.
    pub fn memory(&self, agent: Option<&berth_core::AgentPreset>, env: Option<u32>) -> u32 {
        let needs = agent.map_or(0, |a| a.memory);
        if let Some(m) = self.memory
            && m < needs
        {
            eprintln!(
                "berth: note: {} needs about {needs} MiB; with --memory {m} it may crawl \
                 (swapping) or be killed",
                agent.map_or("the agent", |a| a.label.as_str())
            );
        }
        let memory = berth_core::attempt_memory(self.memory, env, needs, DEFAULT_MEMORY);
        if self.memory.is_none()
            && let Some(e) = env
        {
            eprintln!(
                "berth: {memory} MiB per attempt: the repo's berth.toml asks {e} MiB ([env] \
                 memory){}; --memory overrides it",
                if memory > e {
                    ", raised to what the agent needs"
                } else {
                    ""
                }
            );
        }
        memory
    }

    /// The history depth: `--history`, else the user's setting.
    pub fn history(&self, store: &berth_core::Store) -> anyhow::Result<u32> {
        Ok(match self.history {
            Some(n) => berth_core::check_history(n)?,
            None => berth_core::history_depth(store)?,
        })
    }

    /// The command, title and secrets, from `--agent` or the command after `--`.
    pub fn plan(
        &self,
        store: &berth_core::Store,
        repo: &std::path::Path,
        words: &[String],
    ) -> anyhow::Result<Planned> {
        let mut secrets = self.secret_uses()?;
        let Some(name) = &self.agent else {
            return Ok(Planned {
                command: words.to_vec(),
                title: self.title.clone(),
                secrets,
                agent: None,
            });
        };
        let preset = berth_core::resolve_agent(store, Some(repo), name)?;
        let (command, secret) = berth_core::agent_command(store, &preset, self.interactive)?;
        if !secrets.iter().any(|s| s.name == secret.name) {
            secrets.push(secret);
        }
        let prompt = words.join(" ");
        if prompt.trim().is_empty() && !self.interactive {
            anyhow::bail!(
                "say what {} should do after `--`, e.g. berth run --agent {name} --repo . -- \
                 \"fix the failing test\"",
                preset.label
            );
        }
        Ok(Planned {
            command,
            title: self
                .title
                .clone()
                .or(Some(prompt).filter(|p| !p.is_empty())),
            secrets,
            agent: Some(preset),
        })
    }

    /// The `--secret` specs, checked.
    pub fn secret_uses(&self) -> anyhow::Result<Vec<berth_core::SecretUse>> {
        Ok(self
            .secrets
            .iter()
            .map(|s| berth_core::parse_secret_spec(s))
            .collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        task: super::TaskArgs,
    }

    #[test]
    fn an_agent_that_needs_more_memory_gets_it_unless_memory_is_given() {
        let opencode = berth_core::agent_presets()
            .iter()
            .find(|a| a.name == "opencode")
            .unwrap();
        assert!(opencode.memory > super::DEFAULT_MEMORY);
        let plain = Cli::parse_from(["t"]).task;
        assert_eq!(plain.memory(None, None), super::DEFAULT_MEMORY);
        assert_eq!(plain.memory(Some(opencode), None), opencode.memory);
        let given = Cli::parse_from(["t", "--memory", "700"]).task;
        assert_eq!(given.memory(Some(opencode), None), 700);
    }
}
