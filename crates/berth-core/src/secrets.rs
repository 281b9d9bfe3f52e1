//! Secrets: values in the OS keyring, metadata in `berth.db`, and per-attempt bindings.
//!
//! A value is written to the keyring by `set_secret` and read back only by the attempt's
//! gateway when a request needs it (see `berth_egress::gateway`). No file, log, audit event,
//! argument or environment variable of a process Berth starts carries it. What an attempt
//! holds instead is a [`SecretUse`]: the secret's name, its limits, and a random *phantom*
//! token, which the guest gets where its program expects the key, together with the
//! gateway's base URL for the secret.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use berth_db::SecretRecord;
use berth_egress::{
    GATEWAY_PREFIX, GUEST_PROXY_ADDR, GUEST_PROXY_PORT, SecretApproval, SecretBinding,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::Store;
use crate::task::TaskError;

/// Where secret values are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keyring {
    /// The desktop's Secret Service (GNOME Keyring, KWallet) on the session bus; persistent.
    SecretService,
    /// The kernel's keyutils, in the session keyring: no daemon needed, gone at logout or
    /// reboot.
    Keyutils,
}

static KEYRING: OnceLock<Keyring> = OnceLock::new();

/// Chooses the keyring for this process, once (front ends decide: a session bus means a
/// desktop with a Secret Service, else the kernel's keyring).
pub fn use_keyring(k: Keyring) {
    if KEYRING.set(k).is_ok() {
        let builder = match k {
            Keyring::SecretService => keyring::secret_service::default_credential_builder(),
            Keyring::Keyutils => keyring::keyutils::default_credential_builder(),
        };
        keyring::set_default_credential_builder(builder);
    }
}

/// The keyring a front end should use: `choice` (`$BERTH_KEYRING`: `keyutils` or
/// `secret-service`) if given, else the Secret Service when the process has a session bus
/// (a desktop), else the kernel's.
pub fn keyring_for(choice: Option<&str>, session_bus: bool) -> Keyring {
    match choice {
        Some("keyutils") => Keyring::Keyutils,
        Some("secret-service") => Keyring::SecretService,
        _ if session_bus => Keyring::SecretService,
        _ => Keyring::Keyutils,
    }
}

/// The keyring in use (keyutils unless a front end chose otherwise).
pub fn keyring_in_use() -> Keyring {
    if KEYRING.get().is_none() {
        use_keyring(Keyring::Keyutils);
    }
    *KEYRING.get().unwrap_or(&Keyring::Keyutils)
}

/// The keyring entry of `name` for this data directory (two data directories never share
/// a value).
fn entry(store: &Store, name: &str) -> Result<keyring::Entry, TaskError> {
    keyring_in_use();
    let root = Sha256::digest(store.data().root().as_os_str().as_encoded_bytes());
    let service = format!(
        "berth {}",
        root.iter()
            .take(6)
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    keyring::Entry::new(&service, name).map_err(keyring_error)
}

fn keyring_error(e: keyring::Error) -> TaskError {
    let hint = match keyring_in_use() {
        Keyring::SecretService => {
            "is a Secret Service (GNOME Keyring, KWallet) running and unlocked on the session bus?"
        }
        Keyring::Keyutils => {
            "the kernel keyring keeps values per login session: set the secret again in this \
             session (or run Berth inside `keyctl session -`)"
        }
    };
    TaskError::Refused(format!("the OS keyring: {e}; {hint}"))
}

/// What `berth secret set` asks for (the value comes separately, from stdin or a prompt).
pub struct NewSecret<'a> {
    pub name: &'a str,
    pub upstream: &'a str,
    /// `x-api-key` (the value is the whole header) or `Authorization: Bearer {}`.
    pub header: &'a str,
    pub key_env: Option<&'a str>,
    pub url_env: Option<&'a str>,
    pub ca_pem: Option<String>,
}

/// Stores `value` in the keyring and the metadata in the database; replaces a secret of the
/// same name. Checks everything first: bad input stores nothing.
pub fn set_secret(
    store: &Store,
    new: &NewSecret,
    value: &str,
    now: u64,
) -> Result<SecretRecord, TaskError> {
    let bad = |why: String| Err(TaskError::Refused(why));
    if !valid_name(new.name) {
        return bad(format!(
            "'{}' is no secret name: 1 to 64 of a-z, 0-9, - and _, starting with a letter",
            new.name
        ));
    }
    let upstream = new.upstream.trim_end_matches('/');
    if !upstream.starts_with("https://") || upstream.len() <= "https://".len() {
        return bad(format!(
            "the upstream must be an https:// URL (the value goes nowhere else), not '{}'",
            new.upstream
        ));
    }
    let (header, template) = match new.header.split_once(':') {
        Some((h, t)) => (h.trim(), t.trim().to_string()),
        None => (new.header.trim(), "{}".to_string()),
    };
    if header.is_empty()
        || !header
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return bad(format!("'{header}' is no header name"));
    }
    if template.matches("{}").count() != 1 {
        return bad(format!(
            "the header's value '{template}' must hold {{}} once, where the secret goes"
        ));
    }
    if value.is_empty() || value.contains(['\r', '\n', '\0']) || value.len() > 16 * 1024 {
        return bad("the value is empty, longer than 16 KiB, or holds a line break".into());
    }
    let upper = new.name.to_ascii_uppercase().replace('-', "_");
    let key_env = new
        .key_env
        .map(str::to_string)
        .unwrap_or(format!("BERTH_SECRET_{upper}"));
    let url_env = new
        .url_env
        .map(str::to_string)
        .unwrap_or(format!("BERTH_SECRET_{upper}_URL"));
    for v in [&key_env, &url_env] {
        if !valid_env_name(v) {
            return bad(format!("'{v}' is no environment variable name"));
        }
    }
    if let Some(pem) = &new.ca_pem
        && !pem.contains("-----BEGIN CERTIFICATE-----")
    {
        return bad("the CA file holds no PEM certificate".into());
    }
    // The gateway makes its TLS client from these: check them the same way now.
    let probe = SecretBinding {
        name: new.name.to_string(),
        upstream: upstream.to_string(),
        header: header.to_ascii_lowercase(),
        template: template.clone(),
        phantom: String::new(),
        expires_at: None,
        max_requests: None,
        approve: SecretApproval::None,
        extra_roots_pem: new.ca_pem.clone(),
        intercept: false,
        value: Arc::new(|| Err(String::new())),
    };
    berth_egress::gateway::Gateway::new(vec![probe], None, Arc::new(|_| {}))
        .map_err(TaskError::Refused)?;
    let record = SecretRecord {
        name: new.name.to_string(),
        upstream: upstream.to_string(),
        header: header.to_ascii_lowercase(),
        template,
        key_env,
        url_env,
        ca_pem: new.ca_pem.clone(),
        created_at: now,
        last_used_at: None,
    };
    entry(store, new.name)?
        .set_password(value)
        .map_err(keyring_error)?;
    store.db()?.put_secret(&record)?;
    Ok(record)
}

pub fn list_secrets(store: &Store) -> Result<Vec<SecretRecord>, TaskError> {
    Ok(store.db()?.secrets()?)
}

/// Removes a secret's value from the keyring and its metadata.
pub fn remove_secret(store: &Store, name: &str) -> Result<(), TaskError> {
    let known = store.db()?.secret(name)?.is_some();
    let gone = match entry(store, name)?.delete_credential() {
        Ok(()) => true,
        Err(keyring::Error::NoEntry) => false,
        Err(e) => return Err(keyring_error(e)),
    };
    if !known && !gone {
        return Err(TaskError::Refused(format!(
            "no secret '{name}' (`berth secret ls` lists them)"
        )));
    }
    store.db()?.remove_secret(name)?;
    Ok(())
}

/// A secret bound to one attempt (stored with the attempt; holds no value).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretUse {
    pub name: String,
    pub approve: SecretApproval,
    /// Seconds from the attempt's boot after which the phantom stops working.
    pub ttl_s: Option<u64>,
    pub max_requests: Option<u64>,
    /// Also intercept TLS to the upstream's host (for programs that cannot take a base
    /// URL); otherwise a CONNECT there is refused.
    #[serde(default)]
    pub intercept: bool,
    /// The token the guest presents instead of the value; random per attempt.
    pub phantom: String,
}

/// `NAME[:approve=each|task|none][:ttl=1h][:max-requests=N][:intercept]`, as `--secret`
/// takes it.
pub fn parse_secret_spec(spec: &str) -> Result<SecretUse, TaskError> {
    let bad = |why: String| TaskError::Refused(format!("--secret {spec}: {why}"));
    let mut parts = spec.split(':');
    let name = parts.next().unwrap_or_default().to_string();
    if !valid_name(&name) {
        return Err(bad("start with the secret's name".into()));
    }
    let mut use_ = SecretUse {
        name,
        approve: SecretApproval::None,
        ttl_s: None,
        max_requests: None,
        intercept: false,
        phantom: String::new(),
    };
    for part in parts {
        if part == "intercept" {
            use_.intercept = true;
            continue;
        }
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| bad(format!("'{part}' is not KEY=VALUE")))?;
        match k {
            "approve" => {
                use_.approve = match v {
                    "none" => SecretApproval::None,
                    "task" => SecretApproval::Task,
                    "each" => SecretApproval::Each,
                    _ => return Err(bad("approve is each, task or none".into())),
                }
            }
            "ttl" => use_.ttl_s = Some(parse_duration(v).map_err(bad)?),
            "max-requests" => {
                use_.max_requests = Some(
                    v.parse()
                        .map_err(|_| bad(format!("'{v}' is not a number")))?,
                )
            }
            _ => return Err(bad(format!("unknown option '{k}'"))),
        }
    }
    Ok(use_)
}

/// `90`, `90s`, `30m`, `1h`, `2d`.
pub(crate) fn parse_duration(v: &str) -> Result<u64, String> {
    let (n, unit) = v.split_at(v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len()));
    let n: u64 = n.parse().map_err(|_| format!("'{v}' is not a duration"))?;
    let mul = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(format!("'{v}' is not a duration (s, m, h, d)")),
    };
    n.checked_mul(mul)
        .filter(|&s| s > 0)
        .ok_or_else(|| format!("'{v}' is not a duration"))
}

/// The secrets a new task binds: the repo's `[secrets] bind` (only once the user trusted
/// its `berth.toml`; untrusted, the file is refused), then the front end's own on top (a
/// name in both takes the front end's options).
pub fn task_secret_uses(
    store: &Store,
    repo: &std::path::Path,
    flags: &[SecretUse],
) -> Result<Vec<SecretUse>, TaskError> {
    let view = crate::trust::repo_config(store, repo)?;
    let from_repo = view
        .config
        .secrets
        .as_ref()
        .map(|s| s.uses())
        .unwrap_or_default();
    if !from_repo.is_empty() && !view.usable() {
        return Err(TaskError::Refused(format!(
            "{}/berth.toml asks to bind your secrets ({}); read it, then run `berth config              trust --repo {}`",
            repo.display(),
            from_repo
                .iter()
                .map(|u| u.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            repo.display()
        )));
    }
    let mut uses: Vec<SecretUse> = from_repo
        .into_iter()
        .filter(|u| !flags.iter().any(|f| f.name == u.name))
        .collect();
    uses.extend(flags.iter().cloned());
    Ok(uses)
}

/// Checks that every secret exists (metadata and a value in the keyring) and gives each a
/// fresh phantom.
pub fn bind_secrets(store: &Store, uses: &[SecretUse]) -> Result<Vec<SecretUse>, TaskError> {
    let db = store.db()?;
    let mut out: Vec<SecretUse> = Vec::new();
    for u in uses {
        if out.iter().any(|o| o.name == u.name) {
            return Err(TaskError::Refused(format!(
                "secret {} is bound twice",
                u.name
            )));
        }
        if db.secret(&u.name)?.is_none() {
            return Err(TaskError::Refused(format!(
                "no secret '{}'; add it with `berth secret set {} --upstream URL --header H`",
                u.name, u.name
            )));
        }
        match entry(store, &u.name)?.get_password() {
            Ok(_) => {}
            Err(keyring::Error::NoEntry) => {
                return Err(TaskError::Refused(format!(
                    "secret '{}' has no value in the OS keyring; set it again with `berth \
                     secret set {}`",
                    u.name, u.name
                )));
            }
            Err(e) => return Err(keyring_error(e)),
        }
        let mut bound = u.clone();
        bound.phantom = phantom()?;
        out.push(bound);
    }
    Ok(out)
}

fn phantom() -> Result<String, TaskError> {
    let mut bytes = [0u8; 24];
    getrandom::getrandom(&mut bytes)
        .map_err(|e| TaskError::Refused(format!("no randomness for a token: {e}")))?;
    Ok(format!(
        "berth-phantom-{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ))
}

/// The attempt's bound secrets (its `secrets` column).
pub fn attempt_secrets(json: &str) -> Vec<SecretUse> {
    if json.is_empty() {
        return Vec::new();
    }
    serde_json::from_str(json).unwrap_or_default()
}

/// The base URL of `name` on the attempt's gateway, as the guest reaches it.
pub fn gateway_url(name: &str) -> String {
    format!("http://{GUEST_PROXY_ADDR}:{GUEST_PROXY_PORT}{GATEWAY_PREFIX}{name}")
}

/// Where the guest keeps the attempt's interception CA, when it has one.
pub const GUEST_CA_FILE: &str = "/usr/local/share/ca-certificates/berth-attempt.crt";

/// The guest's variables for the bound secrets: the phantom where the program expects its
/// key, and the gateway's base URL; with interception, the proxy (for every program, even
/// when the network is off: the proxy then lets only the intercepted hosts through) and the
/// attempt's CA for the TLS stacks that do not read the system store.
pub fn secret_env(store: &Store, uses: &[SecretUse]) -> Vec<(String, String)> {
    let Ok(db) = store.db() else {
        return Vec::new();
    };
    let mut env = Vec::new();
    if uses.iter().any(|u| u.intercept) {
        let proxy = format!("http://{GUEST_PROXY_ADDR}:{GUEST_PROXY_PORT}");
        for k in ["https_proxy", "HTTPS_PROXY"] {
            env.push((k.to_string(), proxy.clone()));
        }
        let bundle = "/etc/ssl/certs/ca-certificates.crt".to_string();
        env.push(("NODE_EXTRA_CA_CERTS".into(), GUEST_CA_FILE.into()));
        env.push(("SSL_CERT_FILE".into(), bundle.clone()));
        env.push(("REQUESTS_CA_BUNDLE".into(), bundle));
    }
    env.extend(
        uses.iter()
            .filter_map(|u| {
                let meta = db.secret(&u.name).ok()??;
                Some([
                    (meta.key_env, u.phantom.clone()),
                    (meta.url_env, gateway_url(&u.name)),
                ])
            })
            .flatten(),
    );
    env
}

/// Makes the guest trust the attempt's interception CA: written to the system store, as
/// root, before the attempt's command starts (the certificate is public; its key stays in
/// the proxy process).
pub(crate) fn install_guest_ca(
    agent: &mut berth_vm::agent::AgentClient,
    pem: &str,
) -> Result<(), TaskError> {
    struct Tail(String);
    impl berth_vm::agent::ExecIo for Tail {
        fn stdout(&mut self, d: &[u8]) {
            self.0.push_str(&String::from_utf8_lossy(d));
        }
        fn stderr(&mut self, d: &[u8]) {
            self.0.push_str(&String::from_utf8_lossy(d));
        }
        fn error(&mut self, m: &str) {
            self.0.push_str(m);
        }
    }
    let script = format!(
        "mkdir -p /usr/local/share/ca-certificates && printf '%s\\n' \"$BERTH_CA\" > {GUEST_CA_FILE} \
         && update-ca-certificates >/dev/null"
    );
    let mut out = Tail(String::new());
    let status = agent
        .exec(
            berth_proto::ExecRequest {
                argv: vec!["sh".into(), "-c".into(), script],
                env: vec![("BERTH_CA".into(), pem.to_string())],
                cwd: Some("/".into()),
                user: Some("root".into()),
                pty: None,
            },
            &mut out,
        )
        .map_err(|e| TaskError::Refused(format!("cannot give the guest the attempt's CA: {e}")))?;
    if status.shell_code() != 0 {
        return Err(TaskError::Refused(format!(
            "cannot give the guest the attempt's CA: {}",
            out.0.trim()
        )));
    }
    Ok(())
}

/// What the attempt's gateway needs for its bound secrets; each value is read from the
/// keyring only when the gateway first needs it. The TTLs count from now.
pub fn gateway_bindings(
    store: &Store,
    uses: &[SecretUse],
) -> Result<Vec<SecretBinding>, TaskError> {
    let db = store.db()?;
    let now = Instant::now();
    uses.iter()
        .map(|u| {
            let meta = db
                .secret(&u.name)?
                .ok_or_else(|| TaskError::Refused(format!("secret '{}' was removed", u.name)))?;
            let entry = entry(store, &u.name)?;
            let value: berth_egress::SecretValue = Arc::new(move || {
                entry
                    .get_password()
                    .map_err(|e| keyring_error(e).to_string())
            });
            Ok(SecretBinding {
                name: u.name.clone(),
                upstream: meta.upstream,
                header: meta.header,
                template: meta.template,
                phantom: u.phantom.clone(),
                expires_at: u.ttl_s.map(|s| now + Duration::from_secs(s)),
                max_requests: u.max_requests,
                approve: u.approve,
                extra_roots_pem: meta.ca_pem,
                intercept: u.intercept,
                value,
            })
        })
        .collect()
}

/// Marks `name` used now (the audit writer calls it for each use).
pub(crate) fn mark_used(db: &mut berth_db::Db, name: &str, now: u64) {
    let _ = db.secret_used(name, now);
}

fn valid_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn valid_env_name(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_specs_read_their_options() {
        let u = parse_secret_spec("anthropic:approve=each:ttl=1h:max-requests=5").unwrap();
        assert_eq!(u.name, "anthropic");
        assert_eq!(u.approve, SecretApproval::Each);
        assert_eq!(u.ttl_s, Some(3600));
        assert_eq!(u.max_requests, Some(5));
        assert_eq!(
            parse_secret_spec("x").unwrap().approve,
            SecretApproval::None
        );
        for bad in [
            "",
            "Bad",
            "x:ttl=0",
            "x:ttl=1y",
            "x:approve=maybe",
            "x:foo=1",
            "x:ttl",
        ] {
            assert!(parse_secret_spec(bad).is_err(), "{bad}");
        }
        assert_eq!(gateway_url("a"), "http://10.0.2.100:3128/gateway/a");
        let p = phantom().unwrap();
        assert!(p.starts_with("berth-phantom-") && p.len() == 14 + 48);
        assert_ne!(p, phantom().unwrap());
    }
}
