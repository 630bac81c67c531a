//! The `wan` scenario's distance: six perspectives as far from a coordinator in us-east as real
//! regions are, made in user space on this machine (the kernel has no `netem`). A TCP relay in
//! the bench process stands between the coordinator and each perspective (half the round trip
//! each way, with jitter), and a DNS relay between each perspective and the authoritative DNS
//! (its own round trip, jitter and random loss per direction). The relays' paths can be set to
//! zero while the fleet runs, for the same build's loopback maximum with the relays in place.

use std::time::Duration;

use anyhow::{Context as _, bail};
use mpic_tests::dns_relay::{DnsRelay, DnsRelayCounts};
use mpic_tests::impair::Path;
use mpic_tests::relay::Relay;

use crate::fleet::Place;

/// The wan scenario's places (code, RIR, latitude, longitude): the regions whose round trips
/// from us-east make [`DEFAULT_PROFILE`].
pub const WAN_PLACES: [Place; 6] = [
    ("us-west", "ARIN", 45.8, -119.7),
    ("eu-west", "RIPE NCC", 53.3, -6.3),
    ("sa-east", "LACNIC", -23.5, -46.6),
    ("ap-northeast", "APNIC", 35.7, 139.7),
    ("ap-southeast", "APNIC", 1.3, 103.8),
    ("af-south", "AFRINIC", -33.9, 18.4),
];

/// Per place: the round trip from a coordinator in us-east (ms), and from the perspective to
/// the authoritative DNS it asks (ms). The first are typical round trips between cloud regions;
/// the second span a nearby anycast server to a far one.
pub const DEFAULT_PROFILE: [(&str, u64, u64); 6] = [
    ("us-west", 65, 20),
    ("eu-west", 80, 40),
    ("sa-east", 120, 60),
    ("ap-northeast", 160, 90),
    ("ap-southeast", 230, 120),
    ("af-south", 240, 150),
];

/// Jitter of each direction of the coordinator's paths, ms (uniform ±).
pub const DEFAULT_JITTER_MS: u64 = 3;
/// Jitter of each direction of the DNS paths, ms (uniform ±).
pub const DEFAULT_DNS_JITTER_MS: u64 = 2;
/// UDP datagrams lost, each direction on its own (so about 2 % of queries go unanswered).
pub const DEFAULT_DNS_LOSS: f64 = 0.01;

/// One perspective's distance.
#[derive(Debug, Clone, PartialEq)]
pub struct WanPath {
    /// Its code.
    pub code: String,
    /// Round trip coordinator ↔ perspective, ms.
    pub rtt_ms: u64,
    /// Round trip perspective ↔ authoritative DNS, ms.
    pub dns_rtt_ms: u64,
}

impl WanPath {
    /// A check's simulated path: one round trip to the perspective and one to the DNS (the
    /// CAA climb asks every level at once).
    pub fn total_ms(&self) -> u64 {
        self.rtt_ms + self.dns_rtt_ms
    }
}

/// Every figure of the wan scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// Per perspective, in [`WAN_PLACES`] order.
    pub paths: Vec<WanPath>,
    /// Jitter each way on the coordinator's paths, ms.
    pub jitter_ms: u64,
    /// Bandwidth each way on the coordinator's paths, bytes per second.
    pub bandwidth: Option<u64>,
    /// Jitter each way on the DNS paths, ms.
    pub dns_jitter_ms: u64,
    /// Loss each way on the DNS paths (0..=1).
    pub dns_loss: f64,
    /// Seed of the relays' jitter and losses.
    pub seed: Option<u64>,
}

/// The flags that make a profile (see `--wan-rtt` and the others in main.rs).
#[derive(Debug, Clone, Default)]
pub struct ProfileFlags<'a> {
    /// `CODE=MS` overrides of the round trips to the perspectives.
    pub rtt: &'a [String],
    /// `CODE=MS` overrides of the DNS round trips.
    pub dns_rtt: &'a [String],
    /// Jitter, bandwidth, loss, seed.
    pub jitter_ms: u64,
    pub bandwidth: Option<u64>,
    pub dns_jitter_ms: u64,
    pub dns_loss: f64,
    pub seed: Option<u64>,
    /// Everything zero: the loopback maximum with the relays in place.
    pub zero: bool,
}

impl Profile {
    /// The default profile with the flags' overrides.
    pub fn from_flags(flags: &ProfileFlags<'_>) -> anyhow::Result<Profile> {
        if !(0.0..=1.0).contains(&flags.dns_loss) {
            bail!("--dns-loss {}: must be within 0..=1", flags.dns_loss);
        }
        let mut paths: Vec<WanPath> = DEFAULT_PROFILE
            .iter()
            .map(|&(code, rtt_ms, dns_rtt_ms)| WanPath {
                code: code.to_owned(),
                rtt_ms,
                dns_rtt_ms,
            })
            .collect();
        let apply =
            |paths: &mut Vec<WanPath>, list: &[String], flag: &str, set: fn(&mut WanPath, u64)| {
                for (code, ms) in parse_code_ms(list, flag)? {
                    let path = paths.iter_mut().find(|p| p.code == code).with_context(|| {
                        format!(
                            "{flag} {code}={ms}: no such place (the wan places are {})",
                            codes()
                        )
                    })?;
                    set(path, ms);
                }
                anyhow::Ok(())
            };
        apply(&mut paths, flags.rtt, "--wan-rtt", |p, ms| p.rtt_ms = ms)?;
        apply(&mut paths, flags.dns_rtt, "--dns-rtt", |p, ms| {
            p.dns_rtt_ms = ms
        })?;
        let mut profile = Profile {
            paths,
            jitter_ms: flags.jitter_ms,
            bandwidth: flags.bandwidth,
            dns_jitter_ms: flags.dns_jitter_ms,
            dns_loss: flags.dns_loss,
            seed: flags.seed,
        };
        if flags.zero {
            profile = profile.zero();
        }
        Ok(profile)
    }

    /// The same relays with nothing in the way.
    pub fn zero(&self) -> Profile {
        Profile {
            paths: self
                .paths
                .iter()
                .map(|p| WanPath {
                    rtt_ms: 0,
                    dns_rtt_ms: 0,
                    ..p.clone()
                })
                .collect(),
            jitter_ms: 0,
            bandwidth: None,
            dns_jitter_ms: 0,
            dns_loss: 0.0,
            seed: self.seed,
        }
    }

    /// The coordinator's path to perspective `i`.
    pub fn perspective_path(&self, i: usize) -> Path {
        let rtt = self.paths.get(i).map_or(0, |p| p.rtt_ms);
        let mut path = Path::round_trip(
            Duration::from_millis(rtt),
            Duration::from_millis(self.jitter_ms),
            0.0,
        );
        path.to_server.bandwidth = self.bandwidth;
        path.to_client.bandwidth = self.bandwidth;
        path
    }

    /// Perspective `i`'s path to the DNS.
    pub fn dns_path(&self, i: usize) -> Path {
        let rtt = self.paths.get(i).map_or(0, |p| p.dns_rtt_ms);
        Path::round_trip(
            Duration::from_millis(rtt),
            Duration::from_millis(self.dns_jitter_ms),
            self.dns_loss,
        )
    }

    /// The p99 a phase at half the maximum should stay under: the slowest cohort member's
    /// path, and the quorum-th fastest path plus the straggler grace (the coordinator answers
    /// at whichever comes first), each plus `slack_ms`. Returns `(slowest, quorum-th + grace)`.
    pub fn p99_limits_ms(&self, quorum: usize, grace_ms: u64, slack_ms: u64) -> (u64, u64) {
        let mut totals: Vec<u64> = self.paths.iter().map(WanPath::total_ms).collect();
        totals.sort_unstable();
        let slowest = totals.last().copied().unwrap_or(0);
        let quorum_th = totals
            .get(quorum.saturating_sub(1))
            .copied()
            .unwrap_or(slowest);
        (slowest + slack_ms, quorum_th + grace_ms + slack_ms)
    }

    /// One line per place, for the report.
    pub fn describe(&self) -> String {
        let each: Vec<String> = self
            .paths
            .iter()
            .map(|p| format!("{} {}+{}", p.code, p.rtt_ms, p.dns_rtt_ms))
            .collect();
        format!(
            "wan profile (RTT to perspective + RTT to DNS, ms): {}; jitter ±{} ms each way, bandwidth {}, DNS jitter ±{} ms, DNS loss {} % each direction",
            each.join(", "),
            self.jitter_ms,
            self.bandwidth
                .map_or_else(|| "unlimited".to_owned(), |b| format!("{b} B/s each way")),
            self.dns_jitter_ms,
            self.dns_loss * 100.0
        )
    }
}

/// The relays of a wan fleet, one of each per perspective (in [`WAN_PLACES`] order).
#[derive(Debug)]
pub struct WanRelays {
    /// The profile they run.
    pub profile: Profile,
    /// Coordinator → perspective.
    pub tcp: Vec<Relay>,
    /// Perspective → DNS.
    pub dns: Vec<DnsRelay>,
}

impl WanRelays {
    /// Sets every relay to `profile`'s paths (e.g. [`Profile::zero`] for a baseline).
    pub fn apply(&self, profile: &Profile) {
        for (i, r) in self.tcp.iter().enumerate() {
            r.set_path(profile.perspective_path(i));
        }
        for (i, r) in self.dns.iter().enumerate() {
            r.set_path(profile.dns_path(i));
        }
    }

    /// Each DNS relay's counters now, by perspective code.
    pub fn dns_counts(&self) -> Vec<(String, DnsRelayCounts)> {
        self.profile
            .paths
            .iter()
            .zip(&self.dns)
            .map(|(p, r)| (p.code.clone(), r.counts()))
            .collect()
    }
}

/// The wan places' codes, for messages.
fn codes() -> String {
    WAN_PLACES
        .iter()
        .map(|(c, ..)| *c)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `CODE=MS` arguments (each may also be a comma-separated list).
fn parse_code_ms(list: &[String], flag: &str) -> anyhow::Result<Vec<(String, u64)>> {
    list.iter()
        .flat_map(|s| s.split(','))
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            let (code, ms) = s
                .trim()
                .split_once('=')
                .with_context(|| format!("{flag} {s}: expected CODE=MS"))?;
            let ms = ms
                .parse()
                .with_context(|| format!("{flag} {s}: {ms} is not a whole number of ms"))?;
            Ok((code.to_owned(), ms))
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use mpic_tests::impair::Impairment;

    use super::*;

    /// The impairment of nothing: what a zero profile's paths are.
    const NONE: Impairment = Impairment {
        delay: Duration::ZERO,
        jitter: Duration::ZERO,
        bandwidth: None,
        loss: 0.0,
    };

    fn flags() -> ProfileFlags<'static> {
        ProfileFlags {
            jitter_ms: DEFAULT_JITTER_MS,
            dns_jitter_ms: DEFAULT_DNS_JITTER_MS,
            dns_loss: DEFAULT_DNS_LOSS,
            ..ProfileFlags::default()
        }
    }

    #[test]
    fn flags_override_the_default_profile() {
        struct Case {
            name: &'static str,
            rtt: &'static [&'static str],
            dns_rtt: &'static [&'static str],
            want: Result<(u64, u64, u64), &'static str>,
        }
        let cases = [
            Case {
                name: "default",
                rtt: &[],
                dns_rtt: &[],
                want: Ok((65, 20, 240)),
            },
            Case {
                name: "a list and a repeated flag",
                rtt: &["us-west=10,eu-west=11", "af-south=300"],
                dns_rtt: &["us-west=1"],
                want: Ok((10, 1, 300)),
            },
            Case {
                name: "unknown place",
                rtt: &["us-east=10"],
                dns_rtt: &[],
                want: Err("no such place"),
            },
            Case {
                name: "not a number",
                rtt: &["us-west=fast"],
                dns_rtt: &[],
                want: Err("not a whole number"),
            },
            Case {
                name: "no value",
                rtt: &[],
                dns_rtt: &["us-west"],
                want: Err("expected CODE=MS"),
            },
        ];
        for c in cases {
            let rtt: Vec<String> = c.rtt.iter().map(|s| (*s).to_owned()).collect();
            let dns_rtt: Vec<String> = c.dns_rtt.iter().map(|s| (*s).to_owned()).collect();
            let got = Profile::from_flags(&ProfileFlags {
                rtt: &rtt,
                dns_rtt: &dns_rtt,
                ..flags()
            });
            match (got, c.want) {
                (Ok(p), Ok((west, west_dns, af))) => {
                    assert_eq!(
                        (p.paths[0].rtt_ms, p.paths[0].dns_rtt_ms, p.paths[5].rtt_ms),
                        (west, west_dns, af),
                        "{}",
                        c.name
                    );
                }
                (Err(e), Err(want)) => assert!(e.to_string().contains(want), "{}: {e}", c.name),
                (got, want) => panic!("{}: {got:?} vs {want:?}", c.name),
            }
        }
    }

    #[test]
    fn the_places_match_the_profile_and_cover_four_rirs() {
        let codes: Vec<&str> = WAN_PLACES.iter().map(|p| p.0).collect();
        let profile: Vec<&str> = DEFAULT_PROFILE.iter().map(|p| p.0).collect();
        assert_eq!(codes, profile);
        let mut rirs: Vec<&str> = WAN_PLACES.iter().map(|p| p.1).collect();
        rirs.sort_unstable();
        rirs.dedup();
        assert_eq!(rirs, ["AFRINIC", "APNIC", "ARIN", "LACNIC", "RIPE NCC"]);
    }

    #[test]
    fn p99_limits_and_paths() {
        let p = Profile::from_flags(&flags()).unwrap();
        // Paths: 85, 120, 180, 250, 350, 390; quorum 4 of 6: 250 + grace.
        assert_eq!(p.p99_limits_ms(4, 250, 25), (415, 525));
        assert_eq!(p.p99_limits_ms(4, 100, 25), (415, 375));
        let tcp = p.perspective_path(5);
        assert_eq!(tcp.to_server.delay, Duration::from_millis(120));
        assert_eq!(tcp.to_client.jitter, Duration::from_millis(3));
        assert_eq!(tcp.to_server.loss, 0.0);
        let dns = p.dns_path(0);
        assert_eq!(dns.to_client.delay, Duration::from_millis(10));
        assert_eq!(dns.to_server.loss, 0.01);
        let zero = p.zero();
        assert_ne!(p, zero);
        assert_eq!(zero, zero.zero());
        assert_eq!(zero.dns_path(3).to_server, NONE);
        assert_eq!(zero.perspective_path(3).to_client, NONE);
        assert!(
            Profile::from_flags(&ProfileFlags {
                dns_loss: 1.5,
                ..flags()
            })
            .is_err()
        );
    }
}
