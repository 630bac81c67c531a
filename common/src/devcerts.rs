//! Development certificates for mutual TLS between the coordinator and its perspectives: a
//! private CA, one client certificate for the coordinator and one server certificate per
//! perspective (rcgen). Used by `mpic certs`, `mpic dev`, compose and the tests; production
//! points the configs at the operator's own PEM files.
//!
//! The CA's private key is never written: to add a perspective, generate a new set.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};

/// A generated set, in PEM.
#[derive(Debug, Clone)]
pub struct DevPki {
    /// The CA certificate both sides trust.
    pub ca_pem: String,
    /// The coordinator's client certificate and key.
    pub coordinator: CertAndKey,
    /// Each perspective's server certificate and key, by code.
    pub perspectives: Vec<(String, CertAndKey)>,
}

/// One certificate and its private key, in PEM.
#[derive(Debug, Clone)]
pub struct CertAndKey {
    /// The certificate.
    pub cert_pem: String,
    /// The PKCS#8 private key.
    pub key_pem: String,
}

/// Paths of a written set (see [`DevPki::write`]).
#[derive(Debug, Clone)]
pub struct DevPkiFiles {
    /// `ca.crt`.
    pub ca: PathBuf,
    /// `coordinator.crt`.
    pub coordinator_cert: PathBuf,
    /// `coordinator.key`.
    pub coordinator_key: PathBuf,
    /// `<code>.crt` and `<code>.key` per perspective.
    pub perspectives: Vec<(String, PathBuf, PathBuf)>,
}

impl DevPki {
    /// Generates a CA, a coordinator client certificate, and for each `(code, names)` a
    /// server certificate whose subjectAltNames are `names` (DNS names or IP literals) and
    /// the URI `urn:mpic:perspective:<code>` that names the perspective.
    pub fn generate(perspectives: &[(String, Vec<String>)]) -> Result<DevPki, rcgen::Error> {
        DevPki::generate_with(perspectives, None)
    }

    /// [`DevPki::generate`] with every certificate valid until 1 January of `year` (tests of
    /// expiry and rotation; otherwise rcgen's default, the year 4096).
    pub fn generate_until(
        perspectives: &[(String, Vec<String>)],
        year: i32,
    ) -> Result<DevPki, rcgen::Error> {
        DevPki::generate_with(perspectives, Some(year))
    }

    fn generate_with(
        perspectives: &[(String, Vec<String>)],
        until: Option<i32>,
    ) -> Result<DevPki, rcgen::Error> {
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        if let Some(year) = until {
            ca_params.not_after = rcgen::date_time_ymd(year, 1, 1);
        }
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "MPIC development CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;

        let coordinator = leaf(
            &ca,
            "mpic-coordinator",
            &["mpic-coordinator".to_owned()],
            ExtendedKeyUsagePurpose::ClientAuth,
            until,
        )?;
        let perspectives = perspectives
            .iter()
            .map(|(code, names)| {
                // Each perspective's certificate names its code, which the coordinator
                // checks (crate::tls::perspective_uri).
                let mut names = names.clone();
                names.push(crate::tls::perspective_uri(code));
                leaf(
                    &ca,
                    code,
                    &names,
                    ExtendedKeyUsagePurpose::ServerAuth,
                    until,
                )
                .map(|c| (code.clone(), c))
            })
            .collect::<Result<_, _>>()?;
        Ok(DevPki {
            ca_pem: ca.pem(),
            coordinator,
            perspectives,
        })
    }

    /// Writes `ca.crt`, `coordinator.crt`/`.key` and `<code>.crt`/`.key` into `dir` (created
    /// if needed); keys are readable by the owner only.
    pub fn write(&self, dir: &Path) -> std::io::Result<DevPkiFiles> {
        std::fs::create_dir_all(dir)?;
        let ca = dir.join("ca.crt");
        std::fs::write(&ca, &self.ca_pem)?;
        let (coordinator_cert, coordinator_key) =
            write_pair(dir, "coordinator", &self.coordinator)?;
        let perspectives = self
            .perspectives
            .iter()
            .map(|(code, pair)| write_pair(dir, code, pair).map(|(c, k)| (code.clone(), c, k)))
            .collect::<std::io::Result<_>>()?;
        Ok(DevPkiFiles {
            ca,
            coordinator_cert,
            coordinator_key,
            perspectives,
        })
    }
}

fn leaf(
    ca: &CertifiedIssuer<'_, KeyPair>,
    common_name: &str,
    names: &[String],
    usage: ExtendedKeyUsagePurpose,
    until: Option<i32>,
) -> Result<CertAndKey, rcgen::Error> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    if let Some(year) = until {
        params.not_after = rcgen::date_time_ymd(year, 1, 1);
    }
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.subject_alt_names = names
        .iter()
        .map(|n| match n.parse::<std::net::IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) if n.starts_with("urn:") => n.clone().try_into().map(SanType::URI),
            Err(_) => n.clone().try_into().map(SanType::DnsName),
        })
        .collect::<Result<_, _>>()?;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    params.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, ca)?;
    Ok(CertAndKey {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

fn write_pair(dir: &Path, stem: &str, pair: &CertAndKey) -> std::io::Result<(PathBuf, PathBuf)> {
    let cert = dir.join(format!("{stem}.crt"));
    let key = dir.join(format!("{stem}.key"));
    std::fs::write(&cert, &pair.cert_pem)?;
    write_private(&key, &pair.key_pem)?;
    Ok((cert, key))
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}
