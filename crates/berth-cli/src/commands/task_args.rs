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
    /// Guest memory per attempt, MiB.
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u32).range(64..=65536))]
    pub memory: u32,
    /// Bind a secret (see `berth secret`): NAME[:approve=each|task|none][:ttl=1h]
    /// [:max-requests=N]. The guest gets a token that works only at this attempt's gateway,
    /// which sets the real value on the host. Repeatable.
    #[arg(long = "secret", value_name = "SPEC")]
    pub secrets: Vec<String>,
}

impl TaskArgs {
    /// The `--secret` specs, checked.
    pub fn secret_uses(&self) -> anyhow::Result<Vec<berth_core::SecretUse>> {
        Ok(self
            .secrets
            .iter()
            .map(|s| berth_core::parse_secret_spec(s))
            .collect::<Result<_, _>>()?)
    }
}
