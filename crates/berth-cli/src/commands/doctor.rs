//! `berth doctor`: what is installed, which accelerator, is an image built; how to fix gaps.

use std::path::Path;
use std::process::{Command, ExitCode};

use anyhow::Result;
use berth_core::host::accel;
use berth_core::host::qemu::Sandbox;
use berth_core::host::qemu::virtiofsd::UNSANDBOXED_OPT_IN;
use berth_core::host::rundir::RunDir;

use crate::context::{Context, find_agent, find_tool, find_virtiofsd, host_cpu};

#[derive(clap::Args)]
pub struct Args {
    /// Machine-readable output: each check, whether it passed, and what it found.
    #[arg(long)]
    json: bool,
}

pub fn run(ctx: &Context, args: Args) -> Result<ExitCode> {
    let mut ok = true;
    let mut checks = Vec::new();
    let mut line = |good: bool, what: &str, detail: String| {
        ok &= good;
        if args.json {
            checks.push(serde_json::json!({"check": what, "ok": good, "detail": detail}));
        } else {
            println!("{} {what:<13} {detail}", if good { "ok  " } else { "FAIL" });
        }
    };

    let choice = accel::choose(&host_cpu(), None);
    line(true, "accelerator", choice.reason);

    let qemu = find_tool("BERTH_QEMU", &["qemu-system-x86_64"], &[]);
    match &qemu {
        Some(p) => line(true, "qemu", version(p)),
        None => line(
            false,
            "qemu",
            "not found: apt install qemu-system-x86".into(),
        ),
    }
    let qemu_img = find_tool("BERTH_QEMU_IMG", &["qemu-img"], &[]);
    match &qemu_img {
        Some(p) => line(true, "qemu-img", version(p)),
        None => line(
            false,
            "qemu-img",
            "not found: apt install qemu-utils".into(),
        ),
    }
    if let (Some(q), Some(i)) = (&qemu, &qemu_img)
        && let Some(why) =
            berth_core::host::qemu::version::mismatch(&version_output(q), &version_output(i))
    {
        line(false, "qemu versions", why);
    }
    match find_virtiofsd() {
        Ok(p) => {
            line(true, "virtiofsd", version(&p));
            let allow_none = ctx
                .qemu_config()
                .map(|c| c.allow_unsandboxed_share)
                .unwrap_or(false);
            match share_sandbox(&ctx.data.run(), &p, allow_none) {
                Ok(Sandbox::None) => line(
                    true,
                    "share sandbox",
                    format!(
                        "none (allowed by {UNSANDBOXED_OPT_IN}=1): virtiofsd's own checks only"
                    ),
                ),
                Ok(s) => line(true, "share sandbox", s.as_str().into()),
                Err(e) => line(false, "share sandbox", e),
            }
        }
        Err(e) => line(false, "virtiofsd", e.to_string()),
    }
    for (tool, pkg) in [("mmdebstrap", "mmdebstrap"), ("busybox", "busybox-static")] {
        let extra = [
            Path::new("/bin").join(tool),
            Path::new("/usr/sbin").join(tool),
        ];
        match find_tool("", &[tool], &extra) {
            Some(p) => line(true, tool, p.display().to_string()),
            None => line(
                false,
                tool,
                format!("not found (needed by `berth image build`): apt install {pkg}"),
            ),
        }
    }
    match find_agent(None, &ctx.exe) {
        Ok(p) => line(true, "guest agent", p.display().to_string()),
        Err(e) => line(false, "guest agent", e.to_string()),
    }
    match ctx.image() {
        Ok(img) => line(
            true,
            "image",
            format!("{} (kernel {})", img.id(), img.manifest.kernel_version),
        ),
        Err(e) => line(false, "image", e.to_string()),
    }
    // The walls around the VM's host processes: informational, never a failure.
    let walls = berth_core::host_walls();
    if !args.json {
        for w in &walls {
            println!(
                "{} {:<13} {}",
                if w.available { "wall" } else { "--  " },
                w.name,
                w.detail
            );
        }
    }
    if args.json {
        let out = serde_json::json!({
            "ok": ok,
            "checks": checks,
            "walls": walls,
            "data_dir": ctx.data.root(),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!("     {:<13} {}", "data dir", ctx.data.root().display());
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The sandbox virtiofsd gets on this host: serves a scratch folder for a moment.
fn share_sandbox(run: &Path, virtiofsd: &Path, allow_none: bool) -> Result<Sandbox, String> {
    let name = format!("doctor-{}", std::process::id());
    let dir = RunDir::create(run, &name).map_err(|e| e.to_string())?;
    let share = dir.path().join("share");
    let result = std::fs::create_dir(&share)
        .map_err(|e| e.to_string())
        .and_then(|_| {
            berth_core::host::qemu::virtiofsd::spawn(virtiofsd, &share, &dir, allow_none, None)
                .map_err(|e| e.to_string())
        })
        .map(|(mut child, sandbox)| {
            let _ = child.kill();
            let _ = child.wait();
            sandbox
        });
    let _ = std::fs::remove_dir_all(dir.path());
    result
}

/// What `PROGRAM --version` prints (empty when it cannot run).
fn version_output(p: &Path) -> String {
    Command::new(p)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .unwrap_or_default()
}

/// The first line of `PROGRAM --version`, and the path.
fn version(p: &Path) -> String {
    let out = version_output(p);
    let first = out.lines().next().unwrap_or_default();
    format!("{} ({})", first.trim(), p.display())
}
