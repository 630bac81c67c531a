//! The watcher against files on disk: what is swapped in, when, and what is refused. (The
//! Kubernetes symlink swap is exercised with a real perspective in
//! `perspective/tests/it/reload.rs`, the whole fleet in `coordinator/tests/it/reload.rs`.)

use std::path::{Path, PathBuf};

use prometheus_client::registry::Registry;
use rustls::sign::CertifiedKey;

use super::*;
use crate::devcerts::{CertAndKey, DevPki};

/// A fresh directory, removed when dropped.
struct Dir(PathBuf);

impl Dir {
    fn new() -> Dir {
        let dir = crate::tls::tests::fresh_dir("reload");
        std::fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A server certificate and key valid until 1 January of `year`, from a CA of its own.
fn pair(year: i32) -> CertAndKey {
    DevPki::generate_until(&[("a".to_owned(), vec!["localhost".to_owned()])], year)
        .unwrap()
        .perspectives
        .remove(0)
        .1
}

fn write(path: &Path, contents: impl AsRef<[u8]>) {
    std::fs::write(path, contents).unwrap();
}

fn write_pair(dir: &Dir, pair: &CertAndKey) {
    write(&dir.path("tls.crt"), &pair.cert_pem);
    write(&dir.path("tls.key"), &pair.key_pem);
}

/// The end-entity certificate of `pair`, in DER.
fn der(pair: &CertAndKey) -> Vec<u8> {
    tls::certificates(pair.cert_pem.as_bytes()).unwrap().0[0].to_vec()
}

fn in_use(swap: &Swap<CertifiedKey>) -> Vec<u8> {
    swap.get().cert[0].to_vec()
}

/// A reloader with its metrics in a registry, watching the pair in `dir` as role `server`.
fn watching(dir: &Dir) -> (Reloader, Arc<Swap<CertifiedKey>>, Registry) {
    crate::tls::install_crypto_provider();
    let mut registry = Registry::with_prefix("mpic");
    let metrics = ReloadMetrics::register(&mut registry);
    let mut reloader = Reloader::new(&ReloadSettings::default(), metrics);
    let swap = reloader
        .load(Material::new(
            "server",
            "tls",
            vec![dir.path("tls.crt"), dir.path("tls.key")],
            tls::key_pair,
        ))
        .unwrap();
    (reloader, swap, registry)
}

/// The value of the series `name` in `registry`'s rendering (0 when absent).
fn value(registry: &Registry, series: &str) -> i64 {
    crate::metrics::render(registry)
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0)
}

const APPLIED: &str = r#"mpic_tls_reload_applied_total{role="server"}"#;
const REFUSED: &str = r#"mpic_tls_reload_refused_total{role="server"}"#;
const NOW: i64 = 1_800_000_000;

#[test]
fn a_change_is_swapped_in_once_two_reads_agree() {
    let dir = Dir::new();
    let (old, new) = (pair(2040), pair(2041));
    write_pair(&dir, &old);
    let (mut reloader, swap, registry) = watching(&dir);
    assert_eq!(in_use(&swap), der(&old));
    reloader.poll(NOW);
    assert_eq!(in_use(&swap), der(&old), "nothing changed");
    write_pair(&dir, &new);
    reloader.poll(NOW);
    assert_eq!(in_use(&swap), der(&old), "seen once: not yet");
    reloader.poll(NOW);
    assert_eq!(in_use(&swap), der(&new), "seen twice alike: swapped in");
    reloader.poll(NOW);
    assert_eq!(value(&registry, APPLIED), 1);
    assert_eq!(value(&registry, REFUSED), 0);
}

/// A file caught mid-write is never applied nor refused when the write completes before the
/// next read; one that stays half-written is refused once, and the old pair stays.
#[test]
fn a_partial_write_is_refused_only_once_it_stays() {
    let dir = Dir::new();
    let (old, new) = (pair(2040), pair(2041));
    write_pair(&dir, &old);
    let (mut reloader, swap, registry) = watching(&dir);
    let half = &new.cert_pem[..new.cert_pem.len() / 2];
    write(&dir.path("tls.crt"), half);
    reloader.poll(NOW);
    write_pair(&dir, &new);
    reloader.poll(NOW);
    reloader.poll(NOW);
    assert_eq!(in_use(&swap), der(&new));
    assert_eq!(
        value(&registry, REFUSED),
        0,
        "the half file was never judged"
    );

    write(&dir.path("tls.crt"), half);
    for _ in 0..5 {
        reloader.poll(NOW);
    }
    assert_eq!(in_use(&swap), der(&new), "the old pair stays");
    assert_eq!(
        value(&registry, REFUSED),
        1,
        "refused once, not at every read"
    );
    assert_eq!(value(&registry, APPLIED), 1);
}

/// Each kind of bad material is refused (the error says why), and the pair in use stays.
#[test]
fn bad_material_is_refused_and_the_pair_in_use_stays() {
    let good = pair(2040);
    let other = pair(2040);
    let expired = pair(2000);
    let mut corrupt = good.cert_pem.clone();
    // Inside the PEM armour, the DER no longer opens with a SEQUENCE.
    let at = corrupt.find('\n').unwrap() + 1;
    corrupt.replace_range(at..at + 4, "AAAA");
    struct Case {
        name: &'static str,
        cert: String,
        key: String,
        want: &'static str,
    }
    let cases = [
        Case {
            name: "a key that is not a key",
            cert: good.cert_pem.clone(),
            key: "not a key\n".to_owned(),
            want: "the private key file",
        },
        Case {
            name: "the key of another certificate",
            cert: good.cert_pem.clone(),
            key: other.key_pem.clone(),
            want: "the private key does not match the certificate",
        },
        Case {
            name: "an empty certificate file",
            cert: String::new(),
            key: good.key_pem.clone(),
            want: "the certificate file: no certificate in the file",
        },
        Case {
            name: "a corrupt certificate",
            cert: corrupt,
            key: good.key_pem.clone(),
            want: "the certificate file: certificate 1: not an X.509 certificate",
        },
        Case {
            name: "an expired certificate",
            cert: expired.cert_pem.clone(),
            key: expired.key_pem.clone(),
            want: "has expired",
        },
    ];
    let dir = Dir::new();
    write_pair(&dir, &good);
    let (mut reloader, swap, registry) = watching(&dir);
    for (i, case) in cases.iter().enumerate() {
        let built = tls::key_pair(&[case.cert.clone().into(), case.key.clone().into()]);
        let error = built.err().unwrap_or_default();
        assert!(error.contains(case.want), "{}: {error}", case.name);
        write(&dir.path("tls.crt"), &case.cert);
        write(&dir.path("tls.key"), &case.key);
        reloader.poll(NOW);
        reloader.poll(NOW);
        assert_eq!(in_use(&swap), der(&good), "{}", case.name);
        assert_eq!(value(&registry, REFUSED), i as i64 + 1, "{}", case.name);
    }
    assert_eq!(value(&registry, APPLIED), 0);
}

/// The gauge holds the notAfter of each certificate in use, the old series removed on a swap.
#[test]
fn the_not_after_gauge_follows_the_pair_in_use() {
    let dir = Dir::new();
    let (old, new) = (pair(2040), pair(2041));
    write_pair(&dir, &old);
    let (mut reloader, _swap, registry) = watching(&dir);
    let series = |pair: &CertAndKey| {
        let info = CertificateInfo::parse(&der(pair)).unwrap();
        format!(
            r#"mpic_tls_certificate_not_after_seconds{{role="server",subject="{}",serial="{}"}}"#,
            info.subject, info.serial
        )
    };
    const Y2040: i64 = 2_208_988_800;
    const Y2041: i64 = 2_240_611_200;
    assert_eq!(value(&registry, &series(&old)), Y2040);
    write_pair(&dir, &new);
    reloader.poll(NOW);
    reloader.poll(NOW);
    assert_eq!(value(&registry, &series(&new)), Y2041);
    let text = crate::metrics::render(&registry);
    assert!(!text.contains(&series(&old)), "{text}");
    assert!(
        text.contains("# UNIT mpic_tls_certificate_not_after_seconds seconds"),
        "{text}"
    );
}

/// A file that cannot be read at start-up stops the service, naming the field and the file.
#[test]
fn unreadable_material_at_start_up_names_the_field() {
    let dir = Dir::new();
    let mut reloader = Reloader::unwatched();
    let error = reloader
        .load(Material::new(
            "server",
            "tls",
            vec![dir.path("missing.crt"), dir.path("missing.key")],
            tls::key_pair,
        ))
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with("tls: (") && error.contains("missing.crt: No such file"),
        "{error}"
    );
}

#[test]
fn the_interval_is_bounded() {
    struct Case {
        yaml: &'static str,
        want: Result<u64, &'static str>,
    }
    let cases = [
        Case {
            yaml: "{}",
            want: Ok(DEFAULT_INTERVAL_MS),
        },
        Case {
            yaml: "{interval_ms: 100}",
            want: Ok(100),
        },
        Case {
            yaml: "{interval_ms: 99}",
            want: Err("must be within 100..=3600000"),
        },
        Case {
            yaml: "{interval_ms: 3600001}",
            want: Err("must be within 100..=3600000"),
        },
        Case {
            yaml: "{interval: 5}",
            want: Err("unknown field `interval`"),
        },
    ];
    for case in cases {
        let got = crate::config::parse_yaml::<ReloadSettings>(case.yaml)
            .map(|s| s.interval_ms)
            .map_err(|e| e.0);
        match (got, case.want) {
            (Ok(got), Ok(want)) => assert_eq!(got, want, "{}", case.yaml),
            (Err(got), Err(want)) => assert!(got.contains(want), "{}: {got}", case.yaml),
            (got, want) => panic!("{}: {got:?}, want {want:?}", case.yaml),
        }
    }
}
