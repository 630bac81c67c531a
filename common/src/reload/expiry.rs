//! What a loaded certificate says about its expiry, and when to say so in the log: at warn
//! once a day from [`WARN_BEFORE_SECONDS`] before notAfter, at error once a day after it (and
//! at once when it passes).

use x509_parser::prelude::{FromDer as _, X509Certificate};

use super::CertificateLabels;

/// A loaded certificate, as the expiry metric and log name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateInfo {
    /// The subject, e.g. `CN=us-east-1`.
    pub subject: String,
    /// The serial number in hex.
    pub serial: String,
    /// notAfter, in Unix seconds.
    pub not_after: i64,
    /// notAfter, as a person reads it.
    pub not_after_text: String,
}

impl CertificateInfo {
    /// Reads a DER certificate; an error says what is wrong with it.
    pub fn parse(der: &[u8]) -> Result<CertificateInfo, String> {
        let (_, parsed) =
            X509Certificate::from_der(der).map_err(|e| format!("not an X.509 certificate: {e}"))?;
        let not_after = parsed.validity().not_after;
        Ok(CertificateInfo {
            subject: parsed.subject().to_string(),
            serial: parsed.raw_serial_as_string(),
            not_after: not_after.timestamp(),
            not_after_text: not_after.to_string(),
        })
    }

    /// `<subject> (serial <serial>) until <notAfter>`, for the log.
    pub fn describe(&self) -> String {
        format!(
            "{} (serial {}) until {}",
            self.subject, self.serial, self.not_after_text
        )
    }

    /// Its series of the expiry gauge, as material of `role`.
    pub fn labels(&self, role: &str) -> CertificateLabels {
        CertificateLabels {
            role: role.to_owned(),
            subject: self.subject.clone(),
            serial: self.serial.clone(),
        }
    }
}

/// What the log should say about a certificate now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// It expires within [`WARN_BEFORE_SECONDS`]: warn.
    Expiring {
        /// Whole days left.
        days_left: i64,
    },
    /// It has expired: error.
    Expired,
}

impl Notice {
    /// What to remember of having logged it at `now`.
    pub fn logged(self, now: i64) -> Logged {
        Logged {
            at: now,
            expired: self == Notice::Expired,
        }
    }
}

/// When a certificate's expiry was last logged, and whether it had expired then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Logged {
    at: i64,
    expired: bool,
}

/// What to log at `now` (Unix seconds) about a certificate valid until `not_after`, given
/// when it was `last` logged: nothing before the warning period, then once a day, and at once
/// when it passes from expiring to expired.
pub fn notice(now: i64, not_after: i64, last: Option<Logged>) -> Option<Notice> {
    if now < not_after.saturating_sub(WARN_BEFORE_SECONDS) {
        return None;
    }
    let notice = if now >= not_after {
        Notice::Expired
    } else {
        Notice::Expiring {
            days_left: (not_after - now) / DAY_SECONDS,
        }
    };
    match last {
        Some(last)
            if last.expired == (notice == Notice::Expired) && now - last.at < DAY_SECONDS =>
        {
            None
        }
        _ => Some(notice),
    }
}

/// How long before notAfter the log starts warning: two weeks leaves time for a renewal that
/// needs a person (cert-manager renews at two thirds of the lifetime, 30 days before the end of
/// a 90-day certificate, so a renewal that works never gets here).
pub const WARN_BEFORE_SECONDS: i64 = 14 * DAY_SECONDS;
/// A day.
const DAY_SECONDS: i64 = 86_400;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_logged_once_a_day_from_two_weeks_before() {
        const NOT_AFTER: i64 = 1_000 * DAY_SECONDS;
        let logged = |days_before: i64, expired: bool| {
            Some(Logged {
                at: NOT_AFTER - days_before * DAY_SECONDS,
                expired,
            })
        };
        struct Case {
            name: &'static str,
            /// Seconds before notAfter (negative: after).
            before: i64,
            last: Option<Logged>,
            want: Option<Notice>,
        }
        let cases = [
            Case {
                name: "a month before",
                before: 30 * DAY_SECONDS,
                last: None,
                want: None,
            },
            Case {
                name: "just outside the period",
                before: 14 * DAY_SECONDS + 1,
                last: None,
                want: None,
            },
            Case {
                name: "two weeks before",
                before: 14 * DAY_SECONDS,
                last: None,
                want: Some(Notice::Expiring { days_left: 14 }),
            },
            Case {
                name: "an hour after the last warning",
                before: 10 * DAY_SECONDS - 3_600,
                last: logged(10, false),
                want: None,
            },
            Case {
                name: "a day after the last warning",
                before: 9 * DAY_SECONDS,
                last: logged(10, false),
                want: Some(Notice::Expiring { days_left: 9 }),
            },
            Case {
                name: "the last hours",
                before: 3_600,
                last: logged(2, false),
                want: Some(Notice::Expiring { days_left: 0 }),
            },
            Case {
                name: "expired an hour after a warning",
                before: -1,
                last: Some(Logged {
                    at: NOT_AFTER - 3_600,
                    expired: false,
                }),
                want: Some(Notice::Expired),
            },
            Case {
                name: "expired, said an hour ago",
                before: -2 * 3_600,
                last: Some(Logged {
                    at: NOT_AFTER - 3_600,
                    expired: true,
                }),
                want: None,
            },
            Case {
                name: "expired, said a day ago",
                before: -3 * DAY_SECONDS,
                last: logged(-2, true),
                want: Some(Notice::Expired),
            },
        ];
        for case in cases {
            assert_eq!(
                notice(NOT_AFTER - case.before, NOT_AFTER, case.last),
                case.want,
                "{}",
                case.name
            );
        }
    }

    #[test]
    fn a_certificate_is_read_for_its_subject_serial_and_not_after() {
        let mut params = rcgen::CertificateParams::new(vec!["p1.example".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "p1");
        params.serial_number = Some(rcgen::SerialNumber::from(vec![0x0a, 0x0b]));
        params.not_after = rcgen::date_time_ymd(2040, 1, 1);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let info = CertificateInfo::parse(cert.der()).unwrap();
        assert_eq!(info.subject, "CN=p1");
        assert_eq!(info.serial, "0a:0b");
        assert_eq!(info.not_after, 2_208_988_800, "2040-01-01T00:00:00Z");
        assert!(info.describe().contains("2040"), "{}", info.describe());
        let error = CertificateInfo::parse(b"not a certificate").unwrap_err();
        assert!(error.starts_with("not an X.509 certificate"), "{error}");
    }
}
