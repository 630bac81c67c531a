//! The services' `/metrics` as the bench reads them: a parser of the Prometheus text format
//! (and OpenMetrics, which the services send: `name{label="v",...} value`, histograms as
//! `_bucket{le="..."}`, `_sum`, `_count`; `# TYPE` lines say which families a binary has), and
//! what a phase's scrapes at its start and end say: counter deltas, a gauge at the end, and
//! histogram quantiles from bucket deltas. A family the binary does not declare is `None`
//! ("n/a" in the report: an older binary), never zero.

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Its name, suffix included (`mpic_requests_total`, `…_bucket`).
    pub name: String,
    /// Its labels, in order.
    pub labels: Vec<(String, String)>,
    /// Its value.
    pub value: f64,
}

/// A parsed exposition.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metrics {
    /// The samples.
    pub samples: Vec<Sample>,
    /// The families declared by `# TYPE` lines.
    pub families: Vec<String>,
}

/// Parses a text exposition; lines it cannot read are skipped.
pub fn parse(text: &str) -> Metrics {
    let mut m = Metrics::default();
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            if let Some(name) = rest.split_whitespace().next() {
                m.families.push(name.to_owned());
            }
        } else if !line.is_empty()
            && !line.starts_with('#')
            && let Some(sample) = parse_sample(line)
        {
            m.samples.push(sample);
        }
    }
    m
}

/// The suffixes a family's samples may carry.
const SUFFIXES: [&str; 6] = ["", "_total", "_bucket", "_sum", "_count", "_created"];

impl Metrics {
    /// Whether the binary has the family of sample name `name` (counters are declared without
    /// `_total` in OpenMetrics, with it in the Prometheus format).
    pub fn declares(&self, name: &str) -> bool {
        self.families.iter().any(|f| {
            name.strip_prefix(f.as_str())
                .is_some_and(|rest| SUFFIXES.contains(&rest))
        }) || self.samples.iter().any(|s| s.name == name)
    }

    /// The sum of `name`'s samples whose labels include `filter`; `None` when the family is not
    /// declared, 0 when it is but has no such sample yet (a labelled family appears only once
    /// used).
    pub fn sum(&self, name: &str, filter: &[(&str, &str)]) -> Option<f64> {
        self.declares(name).then(|| {
            self.samples
                .iter()
                .filter(|s| s.name == name && has_labels(s, filter))
                .map(|s| s.value)
                .sum()
        })
    }

    /// Histogram `base`'s cumulative buckets `(le, count)`, summed over its other labels, in
    /// order of `le` (`+Inf` last); `None` when the family is not declared.
    pub fn buckets(&self, base: &str) -> Option<Vec<(f64, f64)>> {
        let name = format!("{base}_bucket");
        if !self.declares(&name) {
            return None;
        }
        let mut by_le: Vec<(f64, f64)> = Vec::new();
        for s in self.samples.iter().filter(|s| s.name == name) {
            let Some(le) = s
                .labels
                .iter()
                .find(|(k, _)| k == "le")
                .and_then(|(_, v)| parse_value(v))
            else {
                continue;
            };
            match by_le.iter_mut().find(|(l, _)| *l == le) {
                Some((_, n)) => *n += s.value,
                None => by_le.push((le, s.value)),
            }
        }
        by_le.sort_by(|a, b| a.0.total_cmp(&b.0));
        Some(by_le)
    }
}

/// `end − start` of a counter summed over samples matching `filter`, over several processes
/// (replicas) scraped at both ends; `None` when no process at the end declares it.
pub fn counter_delta(
    start: &[Option<Metrics>],
    end: &[Option<Metrics>],
    name: &str,
    filter: &[(&str, &str)],
) -> Option<f64> {
    let total = |scrapes: &[Option<Metrics>]| {
        scrapes
            .iter()
            .flatten()
            .filter_map(|m| m.sum(name, filter))
            .reduce(|a, b| a + b)
    };
    let end = total(end)?;
    // A process restarted between the scrapes would make this negative: report nothing then.
    Some((end - total(start).unwrap_or(0.0)).max(0.0))
}

/// A gauge summed over processes at one scrape; `None` when none declares it.
pub fn gauge(scrapes: &[Option<Metrics>], name: &str, filter: &[(&str, &str)]) -> Option<f64> {
    scrapes
        .iter()
        .flatten()
        .filter_map(|m| m.sum(name, filter))
        .reduce(|a, b| a + b)
}

/// Histogram `base`'s buckets over the phase (end minus start, summed over processes).
pub fn histogram_delta(
    start: &[Option<Metrics>],
    end: &[Option<Metrics>],
    base: &str,
) -> Option<Vec<(f64, f64)>> {
    let total = |scrapes: &[Option<Metrics>]| {
        scrapes
            .iter()
            .flatten()
            .filter_map(|m| m.buckets(base))
            .reduce(|mut a, b| {
                for (le, n) in b {
                    match a.iter_mut().find(|(l, _)| *l == le) {
                        Some((_, m)) => *m += n,
                        None => a.push((le, n)),
                    }
                }
                a.sort_by(|x, y| x.0.total_cmp(&y.0));
                a
            })
    };
    let end = total(end)?;
    let start = total(start).unwrap_or_default();
    Some(
        end.into_iter()
            .map(|(le, n)| {
                let before = start
                    .iter()
                    .find(|(l, _)| *l == le)
                    .map_or(0.0, |(_, m)| *m);
                (le, (n - before).max(0.0))
            })
            .collect(),
    )
}

/// The `q` quantile of cumulative buckets, interpolated linearly within its bucket (as
/// Prometheus' `histogram_quantile` does); the highest finite bound when it falls in `+Inf`;
/// `None` without observations.
pub fn quantile(buckets: &[(f64, f64)], q: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for &(le, cumulative) in buckets {
        if cumulative >= rank {
            if le.is_infinite() {
                return Some(lower.0);
            }
            let width = cumulative - lower.1;
            let share = if width > 0.0 {
                (rank - lower.1) / width
            } else {
                1.0
            };
            return Some(lower.0 + (le - lower.0) * share);
        }
        lower = (le, cumulative);
    }
    Some(lower.0)
}

/// The services' `/metrics` at one moment: each coordinator replica's, each perspective's
/// (`None` where the scrape failed).
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    /// Per coordinator replica.
    pub coordinators: Vec<Option<Metrics>>,
    /// Per perspective, in catalogue order.
    pub perspectives: Vec<Option<Metrics>>,
}

/// A wan phase as the services' metrics and the DNS relays saw it.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct WanPhase {
    /// From the quorum-th answer to the response (`mpic_quorum_to_response_seconds`), ms.
    pub quorum_to_response_p50_ms: Option<f64>,
    /// The same, p99.
    pub quorum_to_response_p99_ms: Option<f64>,
    /// Requests in flight by Little's law: answers per second × mean latency.
    pub in_flight: f64,
    /// Perspective calls made in the phase (`mpic_perspective_calls_total`), all replicas.
    pub calls: Option<u64>,
    /// Of those, not completed (`mpic_perspective_not_completed_total`).
    pub not_completed: Option<u64>,
    /// Per perspective.
    pub perspectives: Vec<PerspectivePhase>,
}

/// One perspective in a wan phase.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct PerspectivePhase {
    /// Its code.
    pub code: String,
    /// Calls that waited for an HTTP/2 stream (`mpic_perspective_stream_waits_total`).
    pub stream_waits: Option<u64>,
    /// HTTP/2 connections to it at the phase's end (`mpic_perspective_connections`), all
    /// replicas.
    pub connections_end: Option<u64>,
    /// Its DNS queries sent again (`mpic_dns_retries_total`, its own metric).
    pub dns_retries: Option<u64>,
    /// Calls to it (all replicas).
    pub calls: Option<u64>,
    /// Of those, not completed.
    pub not_completed: Option<u64>,
    /// Datagrams its DNS relay dropped (both directions) and forwarded to the DNS.
    pub dns_dropped: Option<u64>,
    /// Queries its DNS relay passed on to the DNS.
    pub dns_forwarded: Option<u64>,
}

/// What a phase's scrapes at both ends, and the DNS relays' counts over it (per perspective,
/// `(dropped, queries forwarded)`), say; `codes` are the perspectives in catalogue order.
pub fn wan_phase(
    codes: &[String],
    start: &Scrape,
    end: &Scrape,
    dns: &[Option<(u64, u64)>],
    ok_per_s: f64,
    mean_latency_us: u64,
) -> WanPhase {
    let (c0, c1) = (&start.coordinators, &end.coordinators);
    let count = |v: Option<f64>| v.map(|x| x.round() as u64);
    let q = histogram_delta(c0, c1, "mpic_quorum_to_response_seconds");
    let q_ms = |p: f64| {
        q.as_deref()
            .and_then(|b| quantile(b, p))
            .map(|s| s * 1000.0)
    };
    let perspectives = codes
        .iter()
        .enumerate()
        .map(|(i, code)| {
            let by = [("perspective", code.as_str())];
            let own = |s: &Scrape| vec![s.perspectives.get(i).cloned().flatten()];
            PerspectivePhase {
                code: code.clone(),
                stream_waits: count(counter_delta(
                    c0,
                    c1,
                    "mpic_perspective_stream_waits_total",
                    &by,
                )),
                connections_end: count(gauge(c1, "mpic_perspective_connections", &by)),
                dns_retries: count(counter_delta(
                    &own(start),
                    &own(end),
                    "mpic_dns_retries_total",
                    &[],
                )),
                calls: count(counter_delta(c0, c1, "mpic_perspective_calls_total", &by)),
                not_completed: count(counter_delta(
                    c0,
                    c1,
                    "mpic_perspective_not_completed_total",
                    &by,
                )),
                dns_dropped: dns.get(i).copied().flatten().map(|d| d.0),
                dns_forwarded: dns.get(i).copied().flatten().map(|d| d.1),
            }
        })
        .collect();
    WanPhase {
        quorum_to_response_p50_ms: q_ms(0.5),
        quorum_to_response_p99_ms: q_ms(0.99),
        in_flight: ok_per_s * mean_latency_us as f64 / 1e6,
        calls: count(counter_delta(c0, c1, "mpic_perspective_calls_total", &[])),
        not_completed: count(counter_delta(
            c0,
            c1,
            "mpic_perspective_not_completed_total",
            &[],
        )),
        perspectives,
    }
}

fn has_labels(s: &Sample, filter: &[(&str, &str)]) -> bool {
    filter
        .iter()
        .all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v))
}

fn parse_sample(line: &str) -> Option<Sample> {
    let name_end = line.find(['{', ' ', '\t'])?;
    let name = &line[..name_end];
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(inner) = rest.strip_prefix('{') {
        let (parsed, after) = parse_labels(inner)?;
        labels = parsed;
        rest = after;
    }
    let value = parse_value(rest.split_whitespace().next()?)?;
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// Labels up to the closing `}`; returns them and what follows.
fn parse_labels(mut s: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    loop {
        s = s.trim_start_matches([' ', ',']);
        if let Some(after) = s.strip_prefix('}') {
            return Some((labels, after));
        }
        let eq = s.find('=')?;
        let key = s[..eq].trim().to_owned();
        s = s[eq + 1..].strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = s.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '"' => break i,
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                c => value.push(c),
            }
        };
        labels.push((key, value));
        s = &s[end + 1..];
    }
}

fn parse_value(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP mpic_perspective_calls Perspective calls, by perspective and outcome.
# TYPE mpic_perspective_calls counter
mpic_perspective_calls_total{perspective="us-west",outcome="passed"} 90
mpic_perspective_calls_total{perspective="us-west",outcome="failed"} 10
mpic_perspective_calls_total{perspective="eu-west",outcome="passed"} 100
# TYPE mpic_perspective_not_completed counter
# TYPE mpic_perspective_connections gauge
mpic_perspective_connections{perspective="us-west"} 1
mpic_perspective_connections{perspective="eu-west"} 2
# TYPE mpic_quorum_to_response_seconds histogram
mpic_quorum_to_response_seconds_sum{check_type="caa"} 1.5
mpic_quorum_to_response_seconds_count{check_type="caa"} 100
mpic_quorum_to_response_seconds_bucket{le="0.001",check_type="caa"} 50
mpic_quorum_to_response_seconds_bucket{le="0.01",check_type="caa"} 90
mpic_quorum_to_response_seconds_bucket{le="+Inf",check_type="caa"} 100
odd_label{msg="a \"quoted\", b\\c"} 3 1700000000
# EOF
"#;

    #[test]
    fn parse_reads_samples_labels_and_families() {
        let m = parse(TEXT);
        assert_eq!(m.samples.len(), 11);
        assert_eq!(
            m.samples[0],
            Sample {
                name: "mpic_perspective_calls_total".into(),
                labels: vec![
                    ("perspective".into(), "us-west".into()),
                    ("outcome".into(), "passed".into())
                ],
                value: 90.0,
            }
        );
        assert_eq!(m.samples[10].labels[0].1, r#"a "quoted", b\c"#);
        assert_eq!(m.samples[10].value, 3.0);
        assert!(m.declares("mpic_perspective_calls_total"));
        assert!(m.declares("mpic_quorum_to_response_seconds_bucket"));
        assert!(!m.declares("mpic_perspective_stream_waits_total"));
    }

    #[test]
    fn sums_tell_absent_from_zero() {
        struct Case {
            name: &'static str,
            metric: &'static str,
            filter: &'static [(&'static str, &'static str)],
            want: Option<f64>,
        }
        let cases = [
            Case {
                name: "every sample",
                metric: "mpic_perspective_calls_total",
                filter: &[],
                want: Some(200.0),
            },
            Case {
                name: "one perspective",
                metric: "mpic_perspective_calls_total",
                filter: &[("perspective", "us-west")],
                want: Some(100.0),
            },
            Case {
                name: "two labels",
                metric: "mpic_perspective_calls_total",
                filter: &[("perspective", "us-west"), ("outcome", "failed")],
                want: Some(10.0),
            },
            Case {
                name: "declared, never used: zero",
                metric: "mpic_perspective_not_completed_total",
                filter: &[],
                want: Some(0.0),
            },
            Case {
                name: "an older binary: absent",
                metric: "mpic_dns_retries_total",
                filter: &[],
                want: None,
            },
            Case {
                name: "a gauge",
                metric: "mpic_perspective_connections",
                filter: &[("perspective", "eu-west")],
                want: Some(2.0),
            },
        ];
        let m = parse(TEXT);
        for c in cases {
            assert_eq!(m.sum(c.metric, c.filter), c.want, "{}", c.name);
        }
    }

    #[test]
    fn deltas_over_replicas_and_quantiles_from_buckets() {
        let start = parse(TEXT);
        // The phase: 100 more calls passed in us-west, and 10 answers under 1 ms.
        let end = parse(
            &TEXT
                .replace(r#"outcome="passed"} 90"#, r#"outcome="passed"} 190"#)
                .replace(r#""caa"} 50"#, r#""caa"} 60"#)
                .replace(r#""caa"} 90"#, r#""caa"} 100"#)
                .replace(
                    r#""+Inf",check_type="caa"} 100"#,
                    r#""+Inf",check_type="caa"} 110"#,
                ),
        );
        let before = [Some(start.clone()), Some(start)];
        let after = [Some(end.clone()), Some(end)];
        assert_eq!(
            counter_delta(&before, &after, "mpic_perspective_calls_total", &[]),
            Some(200.0)
        );
        assert_eq!(
            counter_delta(&before, &after, "mpic_dns_retries_total", &[]),
            None
        );
        assert_eq!(
            counter_delta(&[None, None], &after, "mpic_perspective_calls_total", &[]),
            Some(2.0 * 300.0),
            "no scrape at the start counts from zero"
        );
        assert_eq!(
            gauge(&after, "mpic_perspective_connections", &[]),
            Some(6.0)
        );
        let d = histogram_delta(&before, &after, "mpic_quorum_to_response_seconds").unwrap();
        assert_eq!(d, vec![(0.001, 20.0), (0.01, 20.0), (f64::INFINITY, 20.0)]);
        assert_eq!(quantile(&d, 0.5), Some(0.0005));
        assert_eq!(
            histogram_delta(&before, &after, "mpic_absent_seconds"),
            None
        );

        struct Case {
            name: &'static str,
            buckets: &'static [(f64, f64)],
            q: f64,
            want: Option<f64>,
        }
        let cases = [
            Case {
                name: "middle of the first bucket",
                buckets: &[(0.01, 100.0), (f64::INFINITY, 100.0)],
                q: 0.5,
                want: Some(0.005),
            },
            Case {
                name: "interpolated in the second",
                buckets: &[(0.01, 50.0), (0.02, 100.0), (f64::INFINITY, 100.0)],
                q: 0.99,
                want: Some(0.0198),
            },
            Case {
                name: "in +Inf: the highest finite bound",
                buckets: &[(0.01, 50.0), (f64::INFINITY, 100.0)],
                q: 0.99,
                want: Some(0.01),
            },
            Case {
                name: "no observations",
                buckets: &[(0.01, 0.0), (f64::INFINITY, 0.0)],
                q: 0.5,
                want: None,
            },
        ];
        for c in cases {
            let got = quantile(c.buckets, c.q);
            match (got, c.want) {
                (Some(g), Some(w)) => assert!((g - w).abs() < 1e-9, "{}: {g} != {w}", c.name),
                (g, w) => assert_eq!(g, w, "{}", c.name),
            }
        }
    }

    #[test]
    fn a_wan_phase_from_scrapes_of_an_older_and_a_newer_binary() {
        let codes = vec!["us-west".to_owned(), "eu-west".to_owned()];
        let start = Scrape {
            coordinators: vec![Some(parse(TEXT))],
            perspectives: vec![Some(parse("# TYPE mpic_dns_retries counter\n")), None],
        };
        let end = Scrape {
            coordinators: vec![Some(parse(
                &TEXT.replace(r#"outcome="failed"} 10"#, r#"outcome="failed"} 15"#),
            ))],
            perspectives: vec![
                Some(parse(
                    "# TYPE mpic_dns_retries counter\nmpic_dns_retries_total 4\n",
                )),
                None,
            ],
        };
        let w = wan_phase(
            &codes,
            &start,
            &end,
            &[Some((3, 300)), None],
            1000.0,
            500_000,
        );
        assert_eq!(w.in_flight, 500.0);
        assert_eq!((w.calls, w.not_completed), (Some(5), Some(0)));
        assert_eq!(
            w.quorum_to_response_p99_ms, None,
            "no observations in the phase"
        );
        let west = &w.perspectives[0];
        assert_eq!(
            (
                west.stream_waits,
                west.connections_end,
                west.dns_retries,
                west.calls
            ),
            (None, Some(1), Some(4), Some(5))
        );
        assert_eq!((west.dns_dropped, west.dns_forwarded), (Some(3), Some(300)));
        let eu = &w.perspectives[1];
        assert_eq!(
            (eu.dns_retries, eu.calls, eu.dns_dropped),
            (None, Some(0), None)
        );
    }
}
