//! Cohorts (BR 3.2.2.9): disjoint sets of n perspectives, chosen per target deterministically
//! and unpredictably, each spanning at least two RIRs (n ≥ 3) with no two members closer than
//! 500 km or listed as too close.
//!
//! The choice is seeded by HMAC-SHA256(secret, normalised target): the same target always gets
//! the same cohorts from a given catalogue and secret (so retries walk a stable list), and
//! nobody without the secret can predict which perspectives a target will meet.

use std::collections::BTreeSet;

use hmac::{KeyInit as _, Mac as _};
use mpic_common::config::Rir;
use rand::SeedableRng as _;
use rand::rngs::ChaCha20Rng;
use rand::seq::SliceRandom as _;

/// The BR's minimum distance between two perspectives of one cohort.
pub const MIN_DISTANCE_KM: f64 = 500.0;

/// Mean Earth radius (IUGG), for the haversine distance.
const EARTH_RADIUS_KM: f64 = 6_371.008_8;

/// Upper bound on search steps per cohort, so a pathological catalogue cannot stall a request.
const MAX_SEARCH_STEPS: usize = 200_000;

/// What cohort building needs to know about a perspective.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    /// Its code.
    pub code: String,
    /// Its RIR.
    pub rir: Rir,
    /// Latitude in degrees.
    pub latitude: f64,
    /// Longitude in degrees.
    pub longitude: f64,
    /// Codes it must never share a cohort with.
    pub too_close_codes: Vec<String>,
}

/// Great-circle distance in km (haversine).
pub fn distance_km(a: &Member, b: &Member) -> f64 {
    let (la1, lo1, la2, lo2) = (
        a.latitude.to_radians(),
        a.longitude.to_radians(),
        b.latitude.to_radians(),
        b.longitude.to_radians(),
    );
    let h = ((la2 - la1) / 2.0).sin().powi(2)
        + la1.cos() * la2.cos() * ((lo2 - lo1) / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * h.sqrt().min(1.0).asin()
}

/// Whether two perspectives may sit in one cohort.
pub fn compatible(a: &Member, b: &Member) -> bool {
    distance_km(a, b) >= MIN_DISTANCE_KM
        && !a.too_close_codes.contains(&b.code)
        && !b.too_close_codes.contains(&a.code)
}

/// Every pair of `members` closer than the BR allows, or listed as too close.
pub fn incompatible_pairs(members: &[Member]) -> Vec<(String, String, f64)> {
    let mut out = Vec::new();
    for (i, a) in members.iter().enumerate() {
        for b in &members[i + 1..] {
            if !compatible(a, b) {
                out.push((a.code.clone(), b.code.clone(), distance_km(a, b)));
            }
        }
    }
    out
}

/// The seed of a target's cohorts.
pub fn seed(secret: &[u8], target: &str) -> [u8; 32] {
    // HMAC accepts keys of any length; an error here is impossible.
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(target.as_bytes());
    mac.finalize().into_bytes().into()
}

/// The disjoint cohorts of size `n` for a seed, as indices into `catalogue`, in the order
/// retries walk them. Empty when not even one cohort can be built.
pub fn cohorts(catalogue: &[Member], n: usize, seed: [u8; 32]) -> Vec<Vec<usize>> {
    if n == 0 || n > catalogue.len() {
        return Vec::new();
    }
    let mut order: Vec<usize> = (0..catalogue.len()).collect();
    order.shuffle(&mut ChaCha20Rng::from_seed(seed));
    let mut out = Vec::new();
    let mut remaining = order;
    while remaining.len() >= n {
        let mut chosen = Vec::with_capacity(n);
        let mut steps = 0;
        if !search(catalogue, &remaining, 0, n, &mut chosen, &mut steps) {
            break;
        }
        remaining.retain(|i| !chosen.contains(i));
        out.push(chosen);
    }
    out
}

/// Depth-first search, in the shuffled order, for `n` mutually compatible members spanning
/// two RIRs when n ≥ 3.
fn search(
    catalogue: &[Member],
    pool: &[usize],
    start: usize,
    n: usize,
    chosen: &mut Vec<usize>,
    steps: &mut usize,
) -> bool {
    if chosen.len() == n {
        let rirs: BTreeSet<Rir> = chosen.iter().map(|&i| catalogue[i].rir).collect();
        return n < 3 || rirs.len() >= 2;
    }
    for (pos, &candidate) in pool.iter().enumerate().skip(start) {
        *steps += 1;
        if *steps > MAX_SEARCH_STEPS {
            return false;
        }
        if pool.len() - pos < n - chosen.len() {
            return false;
        }
        if chosen
            .iter()
            .all(|&c| compatible(&catalogue[c], &catalogue[candidate]))
        {
            chosen.push(candidate);
            if search(catalogue, pool, pos + 1, n, chosen, steps) {
                return true;
            }
            chosen.pop();
        }
    }
    false
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn m(code: &str, rir: Rir, lat: f64, lon: f64) -> Member {
        Member {
            code: code.to_owned(),
            rir,
            latitude: lat,
            longitude: lon,
            too_close_codes: Vec::new(),
        }
    }

    #[test]
    fn haversine_against_known_distances() {
        let paris = m("p", Rir::RipeNcc, 48.8566, 2.3522);
        let london = m("l", Rir::RipeNcc, 51.5074, -0.1278);
        let ny = m("n", Rir::Arin, 40.7128, -74.0060);
        for (a, b, want) in [
            (&paris, &london, 343.5),
            (&london, &ny, 5_570.2),
            (&paris, &paris, 0.0),
        ] {
            assert!(
                (distance_km(a, b) - want).abs() < 2.0,
                "{} {} {}",
                a.code,
                b.code,
                distance_km(a, b)
            );
        }
        assert!(!compatible(&paris, &london));
        assert!(compatible(&london, &ny));
        let mut listed = ny.clone();
        listed.too_close_codes = vec!["l".into()];
        assert!(!compatible(&london, &listed), "too_close_codes is a veto");
    }

    /// A small xorshift so property tests need no extra dependency.
    struct Xs(u64);
    impl Xs {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn f(&mut self, lo: f64, hi: f64) -> f64 {
            lo + (hi - lo) * ((self.next() % 1_000_000) as f64 / 1_000_000.0)
        }
    }

    fn random_catalogue(rng: &mut Xs, size: usize) -> Vec<Member> {
        (0..size)
            .map(|i| {
                let rir = Rir::ALL[(rng.next() % 5) as usize];
                m(
                    &format!("p{i}"),
                    rir,
                    rng.f(-60.0, 70.0),
                    rng.f(-180.0, 180.0),
                )
            })
            .collect()
    }

    #[test]
    fn cohort_properties_over_random_catalogues() {
        let mut rng = Xs(0x9e37_79b9_7f4a_7c15);
        let mut built = 0;
        for round in 0..300 {
            let size = 2 + (rng.next() % 20) as usize;
            let catalogue = random_catalogue(&mut rng, size);
            let n = 2 + (rng.next() % 5) as usize;
            let target = format!("t{round}.example.com");
            let s = seed(b"secret-one", &target);
            let list = cohorts(&catalogue, n, s);
            built += list.len();
            let mut seen = BTreeSet::new();
            for cohort in &list {
                assert_eq!(cohort.len(), n, "size");
                for &i in cohort {
                    assert!(seen.insert(i), "disjoint");
                }
                let members: Vec<Member> = cohort.iter().map(|&i| catalogue[i].clone()).collect();
                assert!(incompatible_pairs(&members).is_empty(), "distance");
                let rirs: BTreeSet<Rir> = members.iter().map(|x| x.rir).collect();
                assert!(n < 3 || rirs.len() >= 2, "RIR spread");
            }
            // Deterministic per target.
            assert_eq!(list, cohorts(&catalogue, n, s), "determinism");
            // If any valid cohort exists, the first is found (exhaustive search on the pool).
            if list.is_empty() {
                assert!(
                    !exists_any(&catalogue, n),
                    "round {round}: a cohort existed but none was built"
                );
            }
        }
        assert!(
            built > 100,
            "the random catalogues produced cohorts ({built})"
        );
    }

    fn exists_any(catalogue: &[Member], n: usize) -> bool {
        let pool: Vec<usize> = (0..catalogue.len()).collect();
        let mut steps = 0;
        search(catalogue, &pool, 0, n, &mut Vec::new(), &mut steps)
    }

    #[test]
    fn secrets_and_targets_change_the_choice() {
        let mut rng = Xs(42);
        let catalogue: Vec<Member> = (0..12)
            .map(|i| {
                m(
                    &format!("p{i}"),
                    Rir::ALL[i % 5],
                    -50.0 + 9.0 * i as f64,
                    -170.0 + 29.0 * i as f64,
                )
            })
            .collect();
        let _ = rng.next();
        let a: Vec<_> = (0..20)
            .map(|i| cohorts(&catalogue, 3, seed(b"one", &format!("t{i}.example"))))
            .collect();
        let b: Vec<_> = (0..20)
            .map(|i| cohorts(&catalogue, 3, seed(b"two", &format!("t{i}.example"))))
            .collect();
        assert_ne!(a, b, "a different secret gives different cohorts");
        let distinct: BTreeSet<_> = a.iter().map(|c| c[0].clone()).collect();
        assert!(
            distinct.len() > 5,
            "targets spread over cohorts ({})",
            distinct.len()
        );
    }

    #[test]
    fn impossible_catalogues_give_no_cohort() {
        // All in one RIR: no cohort of 3.
        let same: Vec<Member> = (0..6)
            .map(|i| m(&format!("p{i}"), Rir::Arin, 10.0 * i as f64, 0.0))
            .collect();
        assert!(cohorts(&same, 3, [0; 32]).is_empty());
        assert_eq!(
            cohorts(&same, 2, [0; 32]).len(),
            3,
            "n = 2 needs no RIR spread"
        );
        // All within 500 km: no cohort of 2.
        let close: Vec<Member> = (0..4)
            .map(|i| {
                m(
                    &format!("p{i}"),
                    Rir::ALL[i],
                    50.0,
                    f64::from(i as u8) * 0.5,
                )
            })
            .collect();
        assert!(cohorts(&close, 2, [0; 32]).is_empty());
    }
}
