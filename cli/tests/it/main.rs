//! The `mpic` command as a user runs it: `mpic dev` serving a local fleet, `mpic caa` and
//! `mpic dcv` against it (readable output, `--json`, exit statuses), `mpic certs`, `mpic probe`
//! and `mpic config check`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use mpic_tests::dns::{DnsServer, Zone};
use mpic_tests::fixtures::free_port;
use mpic_tests::process::Server;

const KEY: &str = "cli-test-key-0123456789";

fn mpic() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mpic"))
}

struct DevFleet {
    _server: Server,
    _dns: DnsServer,
    url: String,
    _dir: std::path::PathBuf,
}

async fn dev_fleet() -> DevFleet {
    mpic_common::tls::install_crypto_provider();
    let dns = DnsServer::start(
        Zone::new()
            .caa("example.com", 0, "issue", "ca.example")
            .caa("deny.example.com", 0, "issue", "other.example")
            .a("com", "192.0.2.9".parse().unwrap()),
    )
    .await
    .unwrap();
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("mpic-cli-it-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let resolver = dns.addr().to_string();
    let listen = format!("127.0.0.1:{port}");
    let server = Server::start(
        Path::new(env!("CARGO_BIN_EXE_mpic")),
        &[
            "dev",
            "--perspectives",
            "6",
            "--resolver",
            &resolver,
            "--listen",
            &listen,
            "--api-key",
            KEY,
            "--caa-domain",
            "ca.example",
        ],
        &[],
        &dir.join("dev.log"),
    );
    let url = format!("http://{listen}");
    server
        .wait_healthy(&reqwest::Client::new(), &format!("{url}/readyz"))
        .await;
    DevFleet {
        _server: server,
        _dns: dns,
        url,
        _dir: dir,
    }
}

// Multi-threaded: the test kit's DNS server must keep answering while this thread waits
// for `mpic` processes synchronously.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caa_through_mpic_dev() {
    let f = dev_fleet().await;
    let run = |args: &[&str]| {
        let out = mpic()
            .args(args)
            .env("MPIC_URL", &f.url)
            .env("MPIC_API_KEY", KEY)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stdout, stderr) = run(&["caa", "example.com"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("VALID: 6/6 corroborated (quorum 4), attempt 1"),
        "{stdout}"
    );
    assert_eq!(stdout.matches(" passed ").count(), 6, "{stdout}");

    let (code, stdout, _) = run(&["caa", "deny.example.com"]);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.contains("NOT VALID: 0/6"), "{stdout}");

    // --json prints the API body itself.
    let (code, stdout, _) = run(&[
        "caa",
        "example.com",
        "--json",
        "--trace-identifier",
        "cli-1",
    ]);
    assert_eq!(code, Some(0));
    let body: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(body["trace_identifier"], "cli-1");
    assert_eq!(body["quorum_result"], "6/6");
    let direct: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/mpic", f.url))
        .bearer_auth(KEY)
        .json(&serde_json::json!({"check_type": "caa", "domain_or_ip_target": "example.com", "trace_identifier": "cli-1", "caa_check_parameters": {}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let strip = |mut v: serde_json::Value| {
        for p in v["perspectives"].as_array_mut().unwrap() {
            p["check_response"]["timestamp_ns"] = serde_json::Value::Null;
            p["latency_ms"] = serde_json::Value::Null;
        }
        v
    };
    assert_eq!(strip(body), strip(direct), "--json is the API body");

    // Errors exit 2: a bad key, a malformed request.
    let out = mpic()
        .args(["caa", "example.com"])
        .env("MPIC_URL", &f.url)
        .env("MPIC_API_KEY", "wrong-key-0123456789")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));
    let (code, _, stderr) = run(&["caa", "not a domain"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("domain_or_ip_target"), "{stderr}");
    let (code, _, stderr) = run(&[
        "dcv",
        "dns-change",
        "example.com",
        "--param",
        "challenge_value=abc",
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("dns_record_type"), "{stderr}");
}

#[test]
fn certs_probe_and_config_check() {
    let dir = std::env::temp_dir().join(format!("mpic-cli-certs-{}", std::process::id()));
    let out = mpic()
        .args([
            "certs",
            "--out",
            dir.to_str().unwrap(),
            "--perspective",
            "p1",
            "--perspective",
            "p2=p2.internal,10.0.0.2",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in [
        "ca.crt",
        "coordinator.crt",
        "coordinator.key",
        "p1.crt",
        "p1.key",
        "p2.crt",
        "p2.key",
    ] {
        assert!(dir.join(f).exists(), "{f}");
    }
    assert!(!dir.join("ca.key").exists(), "the CA key is never written");

    // --keep-existing keeps a set whose certificates name their perspectives, and replaces a
    // set made before perspective identity (here: p2's certificate swapped for one that
    // names nobody).
    let keep = |dir: &std::path::Path| {
        mpic()
            .args([
                "certs",
                "--keep-existing",
                "--out",
                dir.to_str().unwrap(),
                "--perspective",
                "p1",
                "--perspective",
                "p2=p2.internal,10.0.0.2",
            ])
            .output()
            .unwrap()
    };
    let ca_before = std::fs::read(dir.join("ca.crt")).unwrap();
    let out = keep(&dir);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing written"));
    assert_eq!(std::fs::read(dir.join("ca.crt")).unwrap(), ca_before);
    std::fs::copy(dir.join("coordinator.crt"), dir.join("p2.crt")).unwrap();
    let out = keep(&dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("of p2 do not name their perspective"),
        "{stdout}"
    );
    assert_ne!(std::fs::read(dir.join("ca.crt")).unwrap(), ca_before);
    let p2 = mpic_common::tls::load_certs("p2", &dir.join("p2.crt")).unwrap();
    assert_eq!(mpic_common::tls::perspective_codes(&p2[0]), ["p2"]);
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(dir.join("p1.key"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );

    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../coordinator/examples/coordinator.yaml"
    );
    let out = mpic().args(["config", "check", example]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("not in one cohort: us-east-1 and us-east-2"),
        "{stdout}"
    );
    assert!(stdout.contains("disjoint cohort(s) of 6"), "{stdout}");
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../perspective/examples/perspective.yaml"
    );
    let out = mpic().args(["config", "check", example]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, "listen: 1\n").unwrap();
    let out = mpic()
        .args(["config", "check", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));

    let out = mpic()
        .args(["probe", "http://127.0.0.1:9/healthz", "--timeout", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `mpic config check --at DATE`: the rules of another day, the next change, and whether the
/// configuration survives it (README "The dated rules").
#[test]
fn config_check_at_a_date_shows_the_rules_and_the_next_change() {
    let dir = std::env::temp_dir().join(format!("mpic-cli-rules-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../coordinator/examples/coordinator.yaml"
    ))
    .unwrap();
    // The example with one line changed, written as `name`.
    let variant = |name: &str, from: &str, to: &str| {
        let path = dir.join(name);
        std::fs::write(&path, example.replace(from, to)).unwrap();
        path
    };
    let four = variant(
        "four.yaml",
        "default_perspective_count: 6",
        "default_perspective_count: 4",
    );
    let check = |at: &str, file: &Path| {
        let out = mpic()
            .args(["config", "check", "--at", at, file.to_str().unwrap()])
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    // Valid on 2026-12-04, refused from 2026-12-15: the check says so in advance.
    let (code, stdout, stderr) = check("2026-12-04", &four);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.starts_with(&format!(
            "{}: a valid coordinator configuration on 2026-12-04\n",
            four.display()
        )),
        "{stdout}"
    );
    for line in [
        "  rules in force on 2026-12-04 (policy: enforce):",
        "    since 2026-03-15: ip-address retired (BR 3.2.2.4.8); requests for it are refused (400 retired-validation-method)",
        "    since 2026-06-15: at least 4 remote perspectives per cohort (BR 3.2.2.9); your default cohort of 4 meets it",
        "  next change on 2026-12-15 (in 11 days):",
        "    the minimum becomes 5 remote perspectives per cohort (BR 3.2.2.9); your default cohort of 4 will be refused: the coordinator will not start with it (raise default_perspective_count)",
        "  this configuration will be refused from 2026-12-15",
    ] {
        assert!(stdout.lines().any(|l| l == line), "{line:?} in\n{stdout}");
    }
    let (code, stdout, stderr) = check("2026-12-15", &four);
    assert_eq!(code, Some(2), "{stdout}");
    assert!(
        stderr.contains("default_perspective_count: 4 is below the BR 3.2.2.9 minimum of 5 remote perspectives in force on 2026-12-15"),
        "{stderr}"
    );

    // The example (six perspectives) on the day three methods retire: it still works after
    // the next change, whose retirements will refuse requests.
    let six = dir.join("six.yaml");
    std::fs::write(&six, &example).unwrap();
    let (code, stdout, stderr) = check("2027-03-15", &six);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    for line in [
        "    since 2027-03-15: contact-phone-txt retired (BR 3.2.2.4.16); requests for it are refused (400 retired-validation-method)",
        "    since 2027-03-15: reverse-address-lookup retired (BR 3.2.2.5.3); requests for it are refused (400 retired-validation-method)",
        "  next change on 2028-03-15 (in 366 days):",
        "    contact-email-caa retired (BR 3.2.2.4.13); requests for it will be refused (400 retired-validation-method)",
        "  this configuration still works after 2028-03-15",
    ] {
        assert!(stdout.lines().any(|l| l == line), "{line:?} in\n{stdout}");
    }
    // An exception changes what the retirement does to this configuration.
    let excepted = variant(
        "excepted.yaml",
        "allow_retired_methods: []",
        "allow_retired_methods: [contact-email-caa]",
    );
    let (code, stdout, _) = check("2027-03-15", &excepted);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(
        stdout.contains("contact-email-caa retired (BR 3.2.2.4.13); requests for it will be served, with a warning: rules.allow_retired_methods lists it"),
        "{stdout}"
    );

    let (code, _, stderr) = check("2027-02-29", &six);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("YYYY-MM-DD"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `mpic hold` sleeps until SIGTERM, then exits 0 at once (a namespace holder that a stop
/// does not have to kill).
#[test]
fn hold_waits_for_sigterm_and_exits_zero() {
    let mut holder = mpic().arg("hold").spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(holder.try_wait().unwrap().is_none(), "still holding");
    let killed = Command::new("kill")
        .args(["-TERM", &holder.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let status = loop {
        if let Some(status) = holder.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no exit after SIGTERM"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
}
