//! `berth secret set|ls|rm`: secrets for agents. A value goes into the OS keyring and
//! nowhere else; attempts get it only through their gateway (`--secret NAME`).

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use berth_core::{NewSecret, keyring_in_use, list_secrets, remove_secret, set_secret};

use super::ls::age;
use crate::context::{Context, now_ms};

#[derive(clap::Subcommand)]
pub enum SecretCommand {
    /// Store a secret: its value from stdin, or typed at a prompt that does not echo
    /// (never from an argument).
    Set {
        /// The secret's name (letters, digits, - and _).
        name: String,
        /// The only place the value is ever sent: https://host[:port][/base/path].
        #[arg(long)]
        upstream: String,
        /// The header that carries it: `x-api-key` (the value is the whole header) or
        /// `'Authorization: Bearer {}'`.
        #[arg(long)]
        header: String,
        /// The guest variable that gets the attempt's token (default BERTH_SECRET_<NAME>).
        #[arg(long, value_name = "VAR")]
        key_env: Option<String>,
        /// The guest variable that gets the gateway's base URL (default
        /// BERTH_SECRET_<NAME>_URL).
        #[arg(long, value_name = "VAR")]
        url_env: Option<String>,
        /// A PEM file with a CA the upstream's certificate chains to, besides the system's.
        #[arg(long, value_name = "PEM")]
        ca_file: Option<PathBuf>,
    },
    /// The secrets: names, upstreams, when added and last used; never a value.
    Ls {
        /// Machine-readable output (JSON).
        #[arg(long)]
        json: bool,
    },
    /// Remove a secret's value from the keyring and its record.
    Rm {
        /// The secret's name, as `berth secret ls` shows it.
        name: String,
    },
}

pub fn run(ctx: &Context, cmd: SecretCommand) -> Result<ExitCode> {
    let store = ctx.store();
    match cmd {
        SecretCommand::Set {
            name,
            upstream,
            header,
            key_env,
            url_env,
            ca_file,
        } => {
            let ca_pem = ca_file
                .map(|f| {
                    std::fs::read_to_string(&f)
                        .with_context(|| format!("cannot read {}", f.display()))
                })
                .transpose()?;
            let value = read_value(&name)?;
            let rec = set_secret(
                &store,
                &NewSecret {
                    name: &name,
                    upstream: &upstream,
                    header: &header,
                    key_env: key_env.as_deref(),
                    url_env: url_env.as_deref(),
                    ca_pem,
                },
                &value,
                now_ms() / 1000,
            )?;
            println!(
                "stored secret {} in the {} (sent only to {}); bind it with --secret {}",
                rec.name,
                match keyring_in_use() {
                    berth_core::Keyring::SecretService => "Secret Service",
                    berth_core::Keyring::Keyutils => "kernel keyring",
                },
                rec.upstream,
                rec.name
            );
        }
        SecretCommand::Ls { json } => {
            let all = list_secrets(&store)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else if all.is_empty() {
                println!(
                    "no secrets; add one with `berth secret set NAME --upstream URL --header H`"
                );
            } else {
                let now = now_ms() / 1000;
                println!(
                    "{:<16}  {:<40}  {:<20}  {:>5}  LAST USED",
                    "NAME", "UPSTREAM", "HEADER", "AGE"
                );
                for s in all {
                    println!(
                        "{:<16}  {:<40}  {:<20}  {:>5}  {}",
                        s.name,
                        s.upstream,
                        s.header,
                        age(now.saturating_sub(s.created_at)),
                        s.last_used_at
                            .map(|t| format!("{} ago", age(now.saturating_sub(t))))
                            .unwrap_or("never".into())
                    );
                }
            }
        }
        SecretCommand::Rm { name } => {
            remove_secret(&store, &name)?;
            println!("removed secret {name}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The value: typed without echo on a terminal, else all of stdin (one trailing newline
/// dropped).
fn read_value(name: &str) -> Result<String> {
    let stdin = std::io::stdin();
    let value = if stdin.is_terminal() {
        rpassword::prompt_password(format!("value of {name} (not shown): "))?
    } else {
        let mut v = String::new();
        stdin
            .lock()
            .take(16 * 1024 + 2)
            .read_to_string(&mut v)
            .context("cannot read the value from stdin")?;
        let v = v.strip_suffix('\n').unwrap_or(&v);
        v.strip_suffix('\r').unwrap_or(v).to_string()
    };
    if value.is_empty() {
        bail!("no value given (pipe it in, or type it at the prompt)");
    }
    Ok(value)
}
