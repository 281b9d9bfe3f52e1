//! `berth agent ls`: the coding agents Berth has presets for (`provisioning/agents.toml`),
//! and whether the secret each needs is set. `berth run|task new --agent NAME` runs one.

use std::process::ExitCode;

use anyhow::Result;
use berth_core::list_agents;

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
    match cmd {
        AgentCommand::Ls { json } => {
            let agents = list_agents(&store)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&agents)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{:<10}  {:<12}  {:<36}  SECRET",
                "AGENT", "LABEL", "PACKAGE"
            );
            for a in agents {
                println!(
                    "{:<10}  {:<12}  {:<36}  {} ({})",
                    a.name,
                    a.label,
                    format!("{}@{}", a.package, a.version),
                    a.secret,
                    if a.secret_set { "set" } else { "not set" }
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
