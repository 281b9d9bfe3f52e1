//! `berth image build|ls`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Result, anyhow};
use berth_core::host::image::{BuildOutcome, ImageStore, Recipe, build_image};
use clap::Subcommand;

use crate::context::{Context, find_agent};

#[derive(Subcommand)]
pub enum ImageCommand {
    /// Build a guest image from its recipe (a no-op when nothing changed).
    Build {
        /// Recipe name (see vm-images/).
        #[arg(long, default_value = "default")]
        recipe: String,
        /// The static guest agent binary to put in the image.
        #[arg(long, value_name = "PATH")]
        agent: Option<PathBuf>,
    },
    /// List built images.
    Ls {
        /// Machine-readable output (JSON).
        #[arg(long)]
        json: bool,
    },
}

pub fn run(ctx: &Context, cmd: ImageCommand) -> Result<ExitCode> {
    let store = ImageStore::new(ctx.data.images());
    match cmd {
        ImageCommand::Build { recipe, agent } => {
            let recipe = Recipe::by_name(&recipe)
                .ok_or_else(|| anyhow!("no recipe named '{recipe}'; available: default"))?;
            let agent = find_agent(agent, &ctx.exe)?;
            let now = now_unix();
            let host = crate::context::host_image_inputs();
            let (image, outcome) = build_image(&store, &recipe, &agent, &host, now, &mut |line| {
                eprintln!("{line}");
            })?;
            match outcome {
                BuildOutcome::UpToDate => println!("{} is up to date", image.id()),
                BuildOutcome::Built => {
                    println!(
                        "built {} (kernel {}) in {} s",
                        image.id(),
                        image.manifest.kernel_version,
                        image.manifest.build_seconds
                    );
                    // Pooled VMs booted the old image: never handed over, they go.
                    let drained = berth_core::drain_pool(&ctx.store())?;
                    if drained > 0 {
                        println!("drained {drained} pooled VM(s) of the old image");
                    }
                }
            }
        }
        ImageCommand::Ls { json } => {
            let images = store.list()?;
            if json {
                let list: Vec<_> = images
                    .iter()
                    .map(|i| {
                        serde_json::json!({
                            "id": i.id(),
                            "dir": i.dir,
                            "manifest": i.manifest,
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else if images.is_empty() {
                println!("no images built yet; run `berth image build`");
            } else {
                println!("{:<22} {:<18} {:>10}", "IMAGE", "KERNEL", "BUILT");
                let now = now_unix();
                for i in images {
                    println!(
                        "{:<22} {:<18} {:>10}",
                        i.id(),
                        i.manifest.kernel_version,
                        age(now.saturating_sub(i.manifest.built_at))
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn age(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s ago"),
        s if s < 7200 => format!("{}m ago", s / 60),
        s if s < 172_800 => format!("{}h ago", s / 3600),
        s => format!("{}d ago", s / 86_400),
    }
}
