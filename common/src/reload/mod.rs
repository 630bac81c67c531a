//! Reloading without a restart (architecture.md "Operations: Reload"): certificates, keys,
//! CA bundles and secret files are read again every `reload.interval_ms`; a change is built
//! into new material and swapped in whole for what comes next (the next TLS handshake, the
//! next request). Material that cannot be built — a file that does not parse, a key that does
//! not match its certificate, a certificate already expired — is refused with an error log and
//! `mpic_tls_reload_refused_total{role}`, and the old material stays in use.
//!
//! **Why polling the contents, not inotify.** Kubernetes updates a mounted Secret by writing
//! a new timestamped directory and renaming the `..data` symlink onto it; the paths a
//! configuration names (`tls.crt → ..data/tls.crt`) never change, so a watch on them sees
//! nothing, and a watch on the directory sees a burst of events for half-made states. Reading
//! a handful of small files every few seconds costs microseconds, resolves the symlinks afresh
//! each time, works alike on every file system (tmpfs, overlay, NFS) and needs no dependency.
//!
//! **Why a change waits for a second read.** A change is acted on once two consecutive reads
//! agree, so a file caught mid-write, or a certificate read just before its key was replaced,
//! is neither applied nor refused: a change takes effect one to two intervals after the files
//! settle.
//!
//! **Expiry.** Every loaded certificate's notAfter is exported as
//! `mpic_tls_certificate_not_after_seconds{role,subject,serial}`; from 14 days before it the
//! log says so at warn once a day, and at error once a day after it (see [`expiry`]).

pub mod expiry;
pub mod tls;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::config::ConfigError;
pub use expiry::CertificateInfo;

/// `reload:` in both services' configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReloadSettings {
    /// How often the watched files are read, in milliseconds
    /// ([`MIN_INTERVAL_MS`]..=[`MAX_INTERVAL_MS`]).
    #[serde(
        default = "default_interval_ms",
        deserialize_with = "deserialize_interval_ms"
    )]
    pub interval_ms: u64,
}

impl Default for ReloadSettings {
    fn default() -> Self {
        ReloadSettings {
            interval_ms: default_interval_ms(),
        }
    }
}

impl ReloadSettings {
    /// The interval.
    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.interval_ms)
    }
}

/// A value replaced whole: a reader gets the old or the new one, never a mix, and holds it
/// (an `Arc`) for as long as it needs, whatever replaces it meanwhile.
pub struct Swap<T: ?Sized> {
    current: RwLock<Arc<T>>,
}

impl<T: ?Sized> Swap<T> {
    /// Holding `value`.
    pub fn new(value: Arc<T>) -> Swap<T> {
        Swap {
            current: RwLock::new(value),
        }
    }

    /// The value now.
    pub fn get(&self) -> Arc<T> {
        // The lock guards one pointer assignment, which cannot leave it half done: a
        // poisoned lock still holds a whole value.
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the value.
    pub fn set(&self, value: Arc<T>) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = value;
    }
}

impl<T: ?Sized> std::fmt::Debug for Swap<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the value: it may be a key or a secret.
        f.write_str("Swap(..)")
    }
}

/// A counter that moves each time some material is swapped, for holders of long-lived state
/// built from it: the coordinator's connections to perspectives are dialled again once it
/// moves.
#[derive(Debug, Clone, Default)]
pub struct Generation(Arc<AtomicU64>);

impl Generation {
    /// The count now.
    pub fn current(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }

    /// Moves it on.
    pub fn advance(&self) {
        self.0.fetch_add(1, Ordering::AcqRel);
    }
}

/// Material built from the files' contents, and the certificates it holds (none for a
/// secret).
#[derive(Debug)]
pub struct Built<T: ?Sized> {
    /// What is swapped in.
    pub value: Arc<T>,
    /// Its certificates, for the expiry metric and warnings.
    pub certificates: Vec<CertificateInfo>,
}

/// Builds material from the files' contents, in the order the files were given; an `Err`
/// says why the material is refused.
pub type Build<T> = Box<dyn Fn(&[Vec<u8>]) -> Result<Built<T>, String> + Send>;

/// What to load and watch: some files, read together and built into one value.
pub struct Material<T: ?Sized> {
    role: &'static str,
    field: &'static str,
    files: Vec<PathBuf>,
    build: Build<T>,
    then: Option<Box<dyn Fn() + Send>>,
    caution: Option<&'static str>,
}

impl<T: ?Sized> std::fmt::Debug for Material<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Material")
            .field("role", &self.role)
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl<T: ?Sized> Material<T> {
    /// `files` built by `build`, as `role` in metrics and logs, and `field` of the
    /// configuration in errors.
    pub fn new(
        role: &'static str,
        field: &'static str,
        files: Vec<PathBuf>,
        build: impl Fn(&[Vec<u8>]) -> Result<Built<T>, String> + Send + 'static,
    ) -> Material<T> {
        Material {
            role,
            field,
            files,
            build: Box::new(build),
            then: None,
            caution: None,
        }
    }

    /// Also runs `then` after each swap (not after the first load).
    pub fn on_swap(mut self, then: impl Fn() + Send + 'static) -> Material<T> {
        self.then = Some(Box::new(then));
        self
    }

    /// Logs each swap at warn with `caution` (what the change does), instead of at info.
    pub fn caution(mut self, caution: &'static str) -> Material<T> {
        self.caution = Some(caution);
        self
    }
}

/// Labels of the expiry gauge.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CertificateLabels {
    /// What the certificate is for: `server` (a perspective's), `client` (the coordinator's
    /// towards perspectives), `api` (the coordinator's API), `client_ca` (a perspective's
    /// bundle for the coordinator), `server_ca` (the coordinator's bundle for perspectives).
    pub role: String,
    /// The certificate's subject.
    pub subject: String,
    /// Its serial number, in hex (two CAs of a rotation often share a subject).
    pub serial: String,
}

/// Labels of the reload counters.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RoleLabels {
    /// A [`CertificateLabels::role`], or `api_keys`, `hash_secret`.
    pub role: String,
}

/// The reload metrics of a service, registered in its registry.
#[derive(Debug, Clone, Default)]
pub struct ReloadMetrics {
    /// `…_tls_certificate_not_after_seconds`.
    pub not_after: Family<CertificateLabels, Gauge>,
    /// `…_tls_reload_applied_total`.
    pub applied: Family<RoleLabels, Counter>,
    /// `…_tls_reload_refused_total`.
    pub refused: Family<RoleLabels, Counter>,
}

impl ReloadMetrics {
    /// Registers the metrics in `registry`.
    pub fn register(registry: &mut Registry) -> ReloadMetrics {
        let metrics = ReloadMetrics::default();
        registry.register_with_unit(
            "tls_certificate_not_after",
            "The notAfter of each certificate in use (chains and CA bundles included), as Unix time",
            Unit::Seconds,
            metrics.not_after.clone(),
        );
        registry.register(
            "tls_reload_applied",
            "Changed certificates, keys, CA bundles or secret files swapped in, by role",
            metrics.applied.clone(),
        );
        registry.register(
            "tls_reload_refused",
            "Changed certificates, keys, CA bundles or secret files refused (the old stay in use), by role",
            metrics.refused.clone(),
        );
        metrics
    }

    fn role(role: &str) -> RoleLabels {
        RoleLabels {
            role: role.to_owned(),
        }
    }
}

/// Loads material and then watches its files: [`Reloader::load`] at start-up, then
/// [`Reloader::run`] for as long as the service runs.
pub struct Reloader {
    interval: Duration,
    metrics: ReloadMetrics,
    watches: Vec<Watch>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader")
            .field("interval", &self.interval)
            .field(
                "watching",
                &self.watches.iter().map(|w| w.role).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Reloader {
    /// A reloader reading every `settings.interval_ms`, counting in `metrics`.
    pub fn new(settings: &ReloadSettings, metrics: ReloadMetrics) -> Reloader {
        Reloader {
            interval: settings.interval(),
            metrics,
            watches: Vec::new(),
        }
    }

    /// A reloader whose metrics nobody reads: dropped without being run, what it loaded stays
    /// as loaded (the fixed configurations of [`crate::tls`], tools); tests [`poll`] it.
    ///
    /// [`poll`]: Reloader::poll
    pub fn unwatched() -> Reloader {
        Reloader::new(&ReloadSettings::default(), ReloadMetrics::default())
    }

    /// Reads and builds `material` now (an error names its configuration field: the service
    /// cannot start without it), and watches its files from then on.
    pub fn load<T: ?Sized + Send + Sync + 'static>(
        &mut self,
        material: Material<T>,
    ) -> Result<Arc<Swap<T>>, ConfigError> {
        let Material {
            role,
            field,
            files,
            build,
            then,
            caution,
        } = material;
        let contents = read_all(&files);
        let in_use = fingerprint(&contents);
        let built = contents
            .and_then(|c| build(&c))
            .map_err(|e| ConfigError::field(field, format!("({}) {e}", describe(&files))))?;
        let swap = Arc::new(Swap::new(built.value));
        let target = swap.clone();
        let apply: Apply = Box::new(move |contents| {
            let built = build(contents)?;
            target.set(built.value);
            if let Some(then) = &then {
                then();
            }
            Ok(built.certificates)
        });
        let mut watch = Watch {
            role,
            files,
            apply,
            caution,
            in_use,
            pending: None,
            refused: None,
            certificates: Vec::new(),
        };
        watch.track(built.certificates, &self.metrics);
        // Zero until something happens, so that a rate or an alert has a series to read.
        let _ = self
            .metrics
            .applied
            .get_or_create(&ReloadMetrics::role(role));
        let _ = self
            .metrics
            .refused
            .get_or_create(&ReloadMetrics::role(role));
        self.watches.push(watch);
        Ok(swap)
    }

    /// Reads every watched file once, swaps in what changed and settled, refuses what cannot
    /// be built, and logs the certificates near or past expiry, as of `now` (Unix seconds).
    /// [`Reloader::run`] calls it every interval; tests call it directly.
    pub fn poll(&mut self, now: i64) {
        for watch in &mut self.watches {
            watch.poll(&self.metrics);
            watch.log_expiry(now);
        }
    }

    /// Polls every interval, in a blocking thread (file reads and key parsing), forever:
    /// spawn it and abort it when the service stops. Returns at once when nothing is watched.
    pub async fn run(mut self) {
        if self.watches.is_empty() {
            return;
        }
        tracing::info!(
            interval_ms = u64::try_from(self.interval.as_millis()).unwrap_or(u64::MAX),
            roles = %self.watches.iter().map(|w| w.role).collect::<Vec<_>>().join(","),
            "watching certificates, keys and secrets for change"
        );
        loop {
            let polled = tokio::task::spawn_blocking(move || {
                self.poll(unix_now());
                self
            })
            .await;
            self = match polled {
                Ok(reloader) => reloader,
                Err(e) => {
                    tracing::error!(error = %e, "the reloader stopped: changed files are no longer picked up");
                    return;
                }
            };
            tokio::time::sleep(self.interval).await;
        }
    }
}

/// Builds and swaps in changed contents, returning the new material's certificates.
type Apply = Box<dyn FnMut(&[Vec<u8>]) -> Result<Vec<CertificateInfo>, String> + Send>;

/// A SHA-256 over the files' contents (or the read error): whether anything changed, without
/// keeping a secret's bytes.
type Fingerprint = [u8; 32];

/// One material's files and where they stand.
struct Watch {
    role: &'static str,
    files: Vec<PathBuf>,
    apply: Apply,
    caution: Option<&'static str>,
    /// What the material in use was built from.
    in_use: Fingerprint,
    /// Contents seen once, waiting for a second read to agree.
    pending: Option<Fingerprint>,
    /// Contents refused, so that they are reported once, not at every read.
    refused: Option<Fingerprint>,
    /// The certificates in use, with when their expiry was last logged.
    certificates: Vec<(CertificateInfo, Option<expiry::Logged>)>,
}

impl Watch {
    fn poll(&mut self, metrics: &ReloadMetrics) {
        let contents = read_all(&self.files);
        let seen = fingerprint(&contents);
        if seen == self.in_use {
            // Unchanged, or back to what is in use: a bad file put back later is reported
            // again.
            self.pending = None;
            self.refused = None;
            return;
        }
        if self.refused == Some(seen) {
            return;
        }
        if self.pending != Some(seen) {
            self.pending = Some(seen);
            return;
        }
        self.pending = None;
        let labels = ReloadMetrics::role(self.role);
        match contents.and_then(|c| (self.apply)(&c)) {
            Ok(certificates) => {
                self.in_use = seen;
                self.refused = None;
                metrics.applied.get_or_create(&labels).inc();
                let described = certificates
                    .iter()
                    .map(CertificateInfo::describe)
                    .collect::<Vec<_>>()
                    .join("; ");
                match self.caution {
                    Some(caution) => tracing::warn!(
                        role = self.role,
                        files = %describe(&self.files),
                        "reloaded: {caution}"
                    ),
                    None => tracing::info!(
                        role = self.role,
                        files = %describe(&self.files),
                        certificates = %described,
                        "reloaded: new material in use"
                    ),
                }
                self.track(certificates, metrics);
            }
            Err(e) => {
                self.refused = Some(seen);
                metrics.refused.get_or_create(&labels).inc();
                tracing::error!(
                    role = self.role,
                    files = %describe(&self.files),
                    error = %e,
                    "reload refused: the material in use stays"
                );
            }
        }
    }

    /// Replaces the certificates in use, in the gauge too.
    fn track(&mut self, certificates: Vec<CertificateInfo>, metrics: &ReloadMetrics) {
        for (old, _) in &self.certificates {
            metrics.not_after.remove(&old.labels(self.role));
        }
        for new in &certificates {
            metrics
                .not_after
                .get_or_create(&new.labels(self.role))
                .set(new.not_after);
        }
        self.certificates = certificates.into_iter().map(|c| (c, None)).collect();
    }

    fn log_expiry(&mut self, now: i64) {
        for (certificate, logged) in &mut self.certificates {
            let Some(notice) = expiry::notice(now, certificate.not_after, *logged) else {
                continue;
            };
            *logged = Some(notice.logged(now));
            match notice {
                expiry::Notice::Expiring { days_left } => tracing::warn!(
                    role = self.role,
                    certificate.subject = %certificate.subject,
                    certificate.serial = %certificate.serial,
                    not_after = %certificate.not_after_text,
                    days_left,
                    "certificate expires soon: replace it"
                ),
                expiry::Notice::Expired => tracing::error!(
                    role = self.role,
                    certificate.subject = %certificate.subject,
                    certificate.serial = %certificate.serial,
                    not_after = %certificate.not_after_text,
                    "certificate expired: replace it"
                ),
            }
        }
    }
}

/// Every file's contents, or the first read error (naming the file).
fn read_all(files: &[PathBuf]) -> Result<Vec<Vec<u8>>, String> {
    files
        .iter()
        .map(|path| std::fs::read(path).map_err(|e| format!("{}: {e}", path.display())))
        .collect()
}

fn fingerprint(contents: &Result<Vec<Vec<u8>>, String>) -> Fingerprint {
    let mut hash = Sha256::new();
    match contents {
        Ok(files) => {
            for file in files {
                // Length-prefixed, so that no two lists of files hash alike.
                hash.update((file.len() as u64).to_be_bytes());
                hash.update(file);
            }
        }
        Err(e) => {
            hash.update(u64::MAX.to_be_bytes());
            hash.update(e.as_bytes());
        }
    }
    hash.finalize().into()
}

fn describe(files: &[PathBuf]) -> String {
    files
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn deserialize_interval_ms<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let ms = u64::deserialize(d)?;
    if (MIN_INTERVAL_MS..=MAX_INTERVAL_MS).contains(&ms) {
        Ok(ms)
    } else {
        Err(serde::de::Error::custom(format!(
            "must be within {MIN_INTERVAL_MS}..={MAX_INTERVAL_MS}"
        )))
    }
}

fn default_interval_ms() -> u64 {
    DEFAULT_INTERVAL_MS
}

/// The default interval: a rotated certificate is in use within ten seconds of its files
/// settling, for a few small reads every five seconds.
pub const DEFAULT_INTERVAL_MS: u64 = 5_000;
/// The shortest interval allowed (tests use it; below it the reads would be the service's
/// noticeable work).
pub const MIN_INTERVAL_MS: u64 = 100;
/// The longest interval allowed: beyond an hour, a refused or expiring file goes unnoticed
/// for too long.
pub const MAX_INTERVAL_MS: u64 = 3_600_000;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
