//! `berth config [KEY [VALUE]]`: user settings, shared with the app's Settings; and
//! `berth config trust [--repo R]`: trust what the repo's `berth.toml` asks for.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use berth_core::{
    EDITOR_SETTING, editor_command, repo_config, set_editor_command, trust_repo_config,
};

use crate::context::Context;

/// `berth help config`: the repo's `berth.toml`, section by section.
pub const BERTH_TOML_HELP: &str = "\
berth.toml, at a repo's top folder, travels with the repo. It is the repo's word (an agent can
write it): what in it widens a guest's reach counts only after `berth config trust --repo R`
(or the app's dialog) for that exact content; a changed file asks again.

[network]                                the attempts' network (default: none)
mode = \"allowlist\"                       off | allowlist | open
allow = [\"example.com\", \"*.example.org:443\"]
resolve = { \"svc.test\" = \"127.0.0.1\" }   the only way to reach a loopback/private address
egress_budget = \"50MiB\"

[env]                                    the attempts' environment, built once per change
suite = \"bookworm\"                       Debian release; default: the host's
packages = [\"jq\", \"cargo\"]               Debian packages, from the host's apt sources
setup = [\"cargo fetch --locked\"]         run once in a setup VM, as agent in /work
[env.network]                            the setup steps' network; same keys as [network]

[cache]                                  a cache disk per repo, warm for every attempt
presets = [\"cargo\", \"npm\", \"pip\", \"go\"]
size = \"8GiB\"

[secrets]
bind = [\"anthropic:approve=task\"]        your secrets (berth secret), bound to every attempt

[test]                                   run in each attempt after its agent (berth compare)
command = \"cargo test --offline\"         sh -c, as agent in /work, with the attempt's network
timeout = \"10m\"                          default 10m, at most 2h

[limits]                                 what each attempt may take (lower only; --max-* for more)
workspace = \"2GiB\"                       /work on the host (default: a quarter of free disk)
disk = \"4GiB\"                            its VM's root and cache overlays
output = \"64MiB\"                         output kept
connections = 64                         at once through its proxy

[agents.NAME]                            a custom agent, with the fields of Berth's presets
                                         (`berth agent ls --json` shows them)

Unknown keys are refused; a bad value names its line and key.";

#[derive(clap::Args)]
pub struct Args {
    /// The setting: `editor` (the command "Open in editor" runs; the checkout's path is
    /// appended); `history` (commits of the base's history each attempt's repo gets, default
    /// 50; `--history` overrides it for one task); `pool` (booted VMs kept waiting per kind of
    /// attempt; default: sized for this machine, 0 turns it off); `pool-memory` (MiB of guest
    /// memory waiting VMs may hold; default a quarter of this machine's); `pool-tcg-cache`
    /// (MiB of translated code a pooled VM keeps under TCG, 8-256; default 256, as an
    /// attempt's: smaller holds less while it waits but runs its attempt slower); or `trust`, which
    /// trusts the repo's berth.toml as it is now (what in it widens a guest's reach takes
    /// effect only then; a changed file asks again). Without it, every setting is shown.
    key: Option<String>,
    /// The new value; without it, the current value is shown.
    value: Option<String>,
    /// Clear the setting (back to the default).
    #[arg(long, conflicts_with = "value")]
    unset: bool,
    /// With `trust`: the repo (default: the current directory's).
    #[arg(long, default_value = ".")]
    repo: PathBuf,
    /// With `trust`: only show what the file asks for and whether it is trusted.
    #[arg(long)]
    show: bool,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

pub fn run(ctx: &Context, args: Args) -> Result<ExitCode> {
    let store = ctx.store();
    let visual = std::env::var("VISUAL").ok();
    match args.key.as_deref() {
        None => {
            println!("editor = {}", editor_command(&store, visual.as_deref())?);
            println!("history = {}", berth_core::history_depth(&store)?);
            println!("pool = {}", berth_core::pool_size(&store)?);
            println!("pool-memory = {}", berth_core::pool_budget(&store));
            println!("pool-tcg-cache = {}", berth_core::pool_tcg_cache(&store));
        }
        Some(EDITOR_SETTING) => {
            if args.unset {
                set_editor_command(&store, None, true)?;
            } else if let Some(v) = &args.value {
                set_editor_command(&store, Some(v), true)?;
            }
            println!("{}", editor_command(&store, visual.as_deref())?);
        }
        Some(berth_core::HISTORY_SETTING) => {
            if args.unset {
                berth_core::set_history_depth(&store, None)?;
            } else if let Some(v) = &args.value {
                let n: u32 = v.trim().parse().with_context(|| {
                    format!("history {v:?}: give a number of commits (1: the base alone)")
                })?;
                berth_core::set_history_depth(&store, Some(n))?;
            }
            println!("{}", berth_core::history_depth(&store)?);
        }
        Some(berth_core::POOL_SETTING) => {
            if args.unset {
                store.db()?.set_setting(berth_core::POOL_SETTING, None)?;
            } else if let Some(v) = &args.value {
                let n: u32 = v.trim().parse().with_context(|| {
                    format!("pool {v:?}: give a number of VMs per kind of attempt (0: off)")
                })?;
                berth_core::set_pool_size(&store, n)?;
                if n == 0 {
                    berth_core::drain_pool(&store)?;
                }
            }
            println!("{}", berth_core::pool_size(&store)?);
        }
        Some(berth_core::POOL_MEMORY_SETTING) => {
            if args.unset {
                berth_core::set_pool_budget(&store, None)?;
            } else if let Some(v) = &args.value {
                let n: u64 = v.trim().parse().with_context(|| {
                    format!("pool-memory {v:?}: give MiB of guest memory for waiting VMs")
                })?;
                berth_core::set_pool_budget(&store, Some(n))?;
            }
            println!("{}", berth_core::pool_budget(&store));
        }
        Some(berth_core::POOL_TCG_CACHE_SETTING) => {
            if args.unset {
                berth_core::set_pool_tcg_cache(&store, None)?;
            } else if let Some(v) = &args.value {
                let n: u32 = v.trim().parse().with_context(|| {
                    format!(
                        "pool-tcg-cache {v:?}: give MiB of translated code a pooled VM may \
                         keep under TCG"
                    )
                })?;
                berth_core::set_pool_tcg_cache(&store, Some(n))?;
            }
            println!("{}", berth_core::pool_tcg_cache(&store));
        }
        Some("trust") => return trust(ctx, &args),
        Some(other) => {
            bail!(
                "there is no setting '{other}'; the settings are: editor, history, pool, \
                 pool-memory, pool-tcg-cache, trust"
            )
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn trust(ctx: &Context, args: &Args) -> Result<ExitCode> {
    let store = ctx.store();
    let repo = berth_core::repo_root(&args.repo)
        .with_context(|| format!("cannot open the repo {}", args.repo.display()))?;
    let view = if args.show {
        repo_config(&store, &repo)?
    } else {
        trust_repo_config(&store, &repo, None)?
    };
    if args.json {
        println!("{}", serde_json::to_string(&view)?);
        return Ok(ExitCode::SUCCESS);
    }
    let file = repo.join("berth.toml");
    if !view.present {
        println!("{} has no berth.toml", repo.display());
    } else if view.widens.is_empty() {
        println!(
            "{}: nothing in it widens what a guest may reach",
            file.display()
        );
    } else {
        println!(
            "{} ({}) {}:",
            file.display(),
            &view.sha256[..12],
            if view.trusted {
                "is trusted; it asks for"
            } else {
                "is NOT trusted; it asks for"
            }
        );
        for w in &view.widens {
            println!("  {w}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
