//! The interception fallback's certificate authority: one per attempt, made when the
//! attempt's proxy starts, for programs that cannot take a base URL. It is name-constrained
//! to the bound upstreams' hosts (a certificate it signed for any other name fails
//! verification in the guest's TLS clients), valid for a few hours, and its private key
//! exists only in the proxy process's memory. Only CONNECTs to a bound host that asked for
//! interception are answered with a certificate from it; every other tunnel stays blind.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, GeneralSubtree, IsCa, KeyPair, KeyUsagePurpose,
    NameConstraints,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// How long an attempt's CA and its certificates are valid.
const VALID_FOR: Duration = Duration::from_secs(12 * 3600);

pub struct AttemptCa {
    cert: rcgen::Certificate,
    key: KeyPair,
    hosts: Vec<String>,
    leaves: Mutex<HashMap<String, Arc<rustls::ServerConfig>>>,
}

impl AttemptCa {
    /// A new CA for `hosts` (lowercase host names).
    pub fn new(hosts: &[String]) -> Result<AttemptCa, String> {
        let key = KeyPair::generate().map_err(|e| e.to_string())?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
        params
            .distinguished_name
            .push(DnType::CommonName, "Berth attempt CA (this attempt only)");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.name_constraints = Some(NameConstraints {
            permitted_subtrees: hosts
                .iter()
                .map(|h| GeneralSubtree::DnsName(h.clone()))
                .collect(),
            excluded_subtrees: Vec::new(),
        });
        validity(&mut params);
        let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
        Ok(AttemptCa {
            cert,
            key,
            hosts: hosts.to_vec(),
            leaves: Mutex::new(HashMap::new()),
        })
    }

    /// The CA certificate the guest trusts, PEM.
    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A TLS server configuration presenting a certificate for `host`, which must be one of
    /// the CA's hosts.
    pub(crate) fn server_config(&self, host: &str) -> Result<Arc<rustls::ServerConfig>, String> {
        if !self.hosts.iter().any(|h| h == host) {
            return Err(format!("{host} is not intercepted"));
        }
        let mut leaves = self.leaves.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = leaves.get(host) {
            return Ok(c.clone());
        }
        let (chain, key) = self.sign(host)?;
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| e.to_string())?;
        let config = Arc::new(config);
        leaves.insert(host.to_string(), config.clone());
        Ok(config)
    }

    /// A leaf certificate for `name` signed by this CA (whatever the name: the constraints,
    /// not this function, keep it to the bound hosts; tests sign outside names with it).
    pub fn sign(
        &self,
        name: &str,
    ) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
        let key = KeyPair::generate().map_err(|e| e.to_string())?;
        let mut params =
            CertificateParams::new(vec![name.to_string()]).map_err(|e| e.to_string())?;
        params.distinguished_name.push(DnType::CommonName, name);
        validity(&mut params);
        let leaf = params
            .signed_by(&key, &self.cert, &self.key)
            .map_err(|e| e.to_string())?;
        Ok((
            vec![leaf.der().clone(), self.cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        ))
    }
}

fn validity(params: &mut CertificateParams) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + time::Duration::seconds(VALID_FOR.as_secs() as i64);
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::client::danger::ServerCertVerifier;

    /// Verifies `chain` for `name` against `ca` the way a client does (webpki, which
    /// enforces name constraints).
    fn verify(ca: &AttemptCa, name: &str) -> Result<(), String> {
        let (chain, _) = ca.sign(name)?;
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(ca.cert.der().clone())
            .map_err(|e| e.to_string())?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| e.to_string())?;
        let server =
            rustls::pki_types::ServerName::try_from(name.to_string()).map_err(|e| e.to_string())?;
        verifier
            .verify_server_cert(
                &chain[0],
                &chain[1..],
                &server,
                &[],
                rustls::pki_types::UnixTime::now(),
            )
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_attempt_ca_vouches_only_for_the_bound_hosts() {
        let ca = AttemptCa::new(&["api.example.test".into()]).unwrap();
        verify(&ca, "api.example.test").unwrap();
        let outside = verify(&ca, "bank.example.test").unwrap_err();
        assert!(outside.to_lowercase().contains("name"), "{outside}");
        assert!(verify(&ca, "example.test").is_err());
        assert!(ca.server_config("bank.example.test").is_err());
        assert!(ca.server_config("api.example.test").is_ok());
        assert!(ca.pem().starts_with("-----BEGIN CERTIFICATE-----"));
    }
}
