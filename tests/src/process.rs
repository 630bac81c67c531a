//! Running the workspace's own binaries as processes for end-to-end tests, and the zones
//! those tests share.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::fixtures::ZoneSpec;

/// A child process killed when dropped, with its stderr in a log file.
#[derive(Debug)]
pub struct Server {
    _child: tokio::process::Child,
    log: PathBuf,
}

impl Server {
    /// Starts `binary` with `args` and `env`, logging stderr to `log`.
    pub fn start(binary: &Path, args: &[&str], env: &[(&str, &str)], log: &Path) -> Server {
        let file = std::fs::File::create(log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        let mut command = tokio::process::Command::new(binary);
        command
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(file)
            .kill_on_drop(true);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        Server {
            _child: child,
            log: log.to_owned(),
        }
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self._child.id()
    }

    /// Its resident memory in KiB (`VmRSS` of `/proc/<pid>/status`).
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// What the process logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Polls `url` with `client` until it answers 2xx (at most 10 s); panics with the log.
    pub async fn wait_healthy(&self, client: &reqwest::Client, url: &str) {
        for _ in 0..200 {
            if let Ok(r) = client.get(url).send().await
                && r.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{url} did not become healthy; log:\n{}", self.log());
    }
}

/// Polls the `/metrics` at `url` (plain HTTP) until the series `series` (name and labels as
/// rendered) reads `value`, at most 10 s; returns the whole text, or panics with it.
pub async fn wait_for_metric(url: &str, series: &str, value: u64) -> String {
    let want = format!("{series} {value}\n");
    let mut text = String::new();
    for _ in 0..200 {
        if let Ok(r) = reqwest::get(url).await {
            text = r.text().await.unwrap_or_default();
            if text.contains(&want) {
                return text;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{url}: {want} never appeared:\n{text}");
}

/// A binary of this workspace, built by `cargo test --workspace` next to the test binaries
/// (`target/<profile>/<name>`).
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    // target/<profile>/deps/<test binary> → target/<profile>/<name>
    let path = exe
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join(name))
        .unwrap_or_default();
    assert!(
        path.exists(),
        "{} is not built: run `cargo build --bin {name}` or the whole `cargo test --workspace`",
        path.display()
    );
    path
}

/// The signed zone of the end-to-end tests: permit at the apex, deny, wildcard, CNAMEs, and
/// `bogus`, whose signature is broken after signing.
pub fn mpic_test_zone() -> ZoneSpec {
    ZoneSpec::signed(
        "mpic.test",
        [
            r#"@ 60 IN CAA 0 issue "ca.example""#,
            r#"deny 60 IN CAA 0 issue "other.example""#,
            r#"wild 60 IN CAA 0 issue "ca.example""#,
            r#"wild 60 IN CAA 0 issuewild "other.example""#,
            "www 60 IN CNAME @",
            "alias 60 IN CNAME deny",
            "host 60 IN A 192.0.2.10",
            // A web host on this machine, for the HTTP and TLS-ALPN methods (loopback targets
            // are allowed only behind the perspectives' danger_ test setting).
            "web 60 IN A 127.0.0.1",
            r#"bogus 60 IN CAA 0 issue "bogus-ca.example""#,
            // One record per DNS-based DCV method (see DCV_FLEET_CASES in the coordinator's
            // end-to-end test).
            r#"_dc 60 IN TXT "dc-value""#,
            // base64url(SHA-256("tok.thumb")), RFC 8555 8.4.
            r#"_acme-challenge 60 IN TXT "sYAwVrqDtVOuJZvAHurSAYPoEt5fFV_C4bdSOOW-o5Y""#,
            // dns-account-01 label of https://ca.example/acct/1.
            r#"_55hp4m7ugx3qoywf._acme-challenge 60 IN TXT "sYAwVrqDtVOuJZvAHurSAYPoEt5fFV_C4bdSOOW-o5Y""#,
            r#"_validation-persist 60 IN TXT "ca.example; accounturi=https://ca.example/acct/1""#,
            r#"_validation-contactemail 60 IN TXT "admin@mpic.test""#,
            r#"_validation-contactphone 60 IN TXT "+1 555 0100""#,
            r#"contact 60 IN CAA 0 contactemail "admin@mpic.test""#,
            r#"contact 60 IN CAA 0 contactphone "+1 555 0100""#,
        ],
    )
    .with_tamper("bogus-ca.example", "ca.example")
}

/// An unsigned reverse zone for 192.0.2.0/24 (TEST-NET-1) with `192.0.2.10 → host.mpic.test.`.
pub fn reverse_zone() -> ZoneSpec {
    ZoneSpec::unsigned("2.0.192.in-addr.arpa", ["10 60 IN PTR host.mpic.test."])
}

/// An unsigned `test.` parent, so a CAA climb can reach the TLD with no Internet.
pub fn test_tld_zone() -> ZoneSpec {
    ZoneSpec::unsigned("test", Vec::<String>::new())
}
