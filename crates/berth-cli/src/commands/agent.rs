//! `berth agent ls`: the coding agents Berth has presets for (`provisioning/agents.toml`),
//! and whether the secret each needs is set. `berth run|task new --agent NAME` runs one.

use std::process::ExitCode;

use anyhow::Result;
use berth_core::agent_presets;

use crate::context::Context;

#[derive(clap::Subcommand)]
pub enum AgentCommand {
    /// Each preset: its package and version pin, the secret it needs and whether it is set.
    Ls {
        #[arg(long)]
        json: bool,
    },
}

pub fn run(ctx: &Context, cmd: AgentCommand) -> Result<ExitCode> {
    let store = ctx.store();
    let db = store.db()?;
    match cmd {
        AgentCommand::Ls { json } => {
            let rows: Vec<serde_json::Value> = agent_presets()
                .iter()
                .map(|p| {
                    let set = db.secret(&p.secret).ok().flatten().is_some();
                    serde_json::json!({
                        "name": p.name, "label": p.label, "package": p.package,
                        "version": p.version, "secret": p.secret, "secret_set": set,
                        "headless": p.headless, "interactive": p.interactive,
                    })
                })
                .collect();
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{:<10}  {:<12}  {:<36}  SECRET",
                "AGENT", "LABEL", "PACKAGE"
            );
            for p in agent_presets() {
                let set = db.secret(&p.secret).ok().flatten().is_some();
                println!(
                    "{:<10}  {:<12}  {:<36}  {} ({})",
                    p.name,
                    p.label,
                    format!("{}@{}", p.package, p.version),
                    p.secret,
                    if set { "set" } else { "not set" }
                );
            }
            println!(
                "\nThe agent's CLI must be in the repo's environment ([env] in berth.toml); run one \
                 with `berth run --agent NAME --repo R -- \"the prompt\"`."
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
