//! What one client connection may hold, on every listener (architecture.md "Security model"):
//! the `connections` section of both services' configuration files.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::ConfigError;

/// Bounds on the connections of one listener. Every field has a safe default; the section
/// may be left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionLimits {
    /// Open connections. A new connection at the limit closes the connection that has been
    /// idle longest (no request in flight) and takes its place; when every connection is
    /// busy it is closed at once instead. Memory is at most about this many times
    /// (`max_header_bytes` + 16 KiB) for connections that hold unfinished heads.
    #[serde(default = "default_max_open")]
    pub max_open: usize,
    /// Open connections from one IP address. At this cap a new connection from that address
    /// closes that address's own longest-idle connection, so one address cannot push out
    /// everyone else's. Raise it when clients arrive through a proxy or NAT that makes them
    /// share an address.
    #[serde(default = "default_max_per_peer")]
    pub max_per_peer: usize,
    /// From the TLS handshake's start, or from the first byte of an HTTP/1.1 request, until
    /// its last header line, in milliseconds; a slower client is disconnected.
    #[serde(default = "default_header_read_timeout_ms")]
    pub header_read_timeout_ms: u64,
    /// A connection with no request in flight for this long is closed (HTTP/2 with GOAWAY),
    /// in milliseconds. Clients that pool connections should drop idle ones sooner.
    #[serde(default = "default_idle_timeout_ms")]
    pub idle_timeout_ms: u64,
    /// Largest request head (HTTP/1.1: request line and headers, answered 431 beyond it) or
    /// header list (HTTP/2), in bytes; also the most an HTTP/1.1 connection buffers.
    #[serde(default = "default_max_header_bytes")]
    pub max_header_bytes: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_open: default_max_open(),
            max_per_peer: default_max_per_peer(),
            header_read_timeout_ms: default_header_read_timeout_ms(),
            idle_timeout_ms: default_idle_timeout_ms(),
            max_header_bytes: default_max_header_bytes(),
        }
    }
}

impl ConnectionLimits {
    /// The limits of an operations listener (`/healthz`, `/readyz`, `/metrics`, `/configz`):
    /// the timeouts and header bound of `self`, and few connections, since only probes and
    /// scrapers call it.
    pub fn for_operations(&self) -> ConnectionLimits {
        ConnectionLimits {
            max_open: OPERATIONS_MAX_OPEN,
            max_per_peer: OPERATIONS_MAX_OPEN,
            ..*self
        }
    }

    /// [`Self::header_read_timeout_ms`] as a duration.
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.header_read_timeout_ms)
    }

    /// [`Self::idle_timeout_ms`] as a duration.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms)
    }

    /// Checks the ranges; errors name `section.field`.
    pub fn validate(&self, section: &str) -> Result<(), ConfigError> {
        let field = |f: &str| format!("{section}.{f}");
        if !(1..=MAX_OPEN).contains(&self.max_open) {
            return Err(ConfigError::field(
                &field("max_open"),
                format!("must be between 1 and {MAX_OPEN}"),
            ));
        }
        if !(1..=self.max_open).contains(&self.max_per_peer) {
            return Err(ConfigError::field(
                &field("max_per_peer"),
                "must be between 1 and max_open",
            ));
        }
        if !(MIN_TIMEOUT_MS..=MAX_TIMEOUT_MS).contains(&self.header_read_timeout_ms) {
            return Err(ConfigError::field(
                &field("header_read_timeout_ms"),
                format!("must be between {MIN_TIMEOUT_MS} and {MAX_TIMEOUT_MS}"),
            ));
        }
        if !(MIN_TIMEOUT_MS..=MAX_TIMEOUT_MS).contains(&self.idle_timeout_ms) {
            return Err(ConfigError::field(
                &field("idle_timeout_ms"),
                format!("must be between {MIN_TIMEOUT_MS} and {MAX_TIMEOUT_MS}"),
            ));
        }
        if !(MIN_HEADER_BYTES..=MAX_HEADER_BYTES).contains(&self.max_header_bytes) {
            return Err(ConfigError::field(
                &field("max_header_bytes"),
                format!("must be between {MIN_HEADER_BYTES} and {MAX_HEADER_BYTES}"),
            ));
        }
        Ok(())
    }
}

/// Default of `max_open`: each connection costs tens of KiB, so this bounds what a flood
/// of connections can take.
pub const DEFAULT_MAX_OPEN: usize = 4096;

fn default_max_open() -> usize {
    DEFAULT_MAX_OPEN
}

fn default_max_per_peer() -> usize {
    1024
}

/// Ten seconds: a request head is a few hundred bytes; a client that needs longer is either
/// broken or holding the connection on purpose (slowloris).
fn default_header_read_timeout_ms() -> u64 {
    10_000
}

/// A minute: a client sending a check every few seconds keeps its connection, and idle
/// connections do not pile up. A client whose pool keeps idle connections longer simply
/// reconnects (HTTP/2 clients are told so with GOAWAY).
fn default_idle_timeout_ms() -> u64 {
    60_000
}

/// 16 KiB: an API request's head (authorization, content type, trace context) is well under
/// 1 KiB; HTTP/2 advertises the same as `SETTINGS_MAX_HEADER_LIST_SIZE` (RFC 9113 6.5.2).
fn default_max_header_bytes() -> usize {
    16 * 1024
}

/// Connections of an operations listener.
const OPERATIONS_MAX_OPEN: usize = 64;
/// Largest `max_open`.
const MAX_OPEN: usize = 1 << 20;
/// Smallest timeout.
const MIN_TIMEOUT_MS: u64 = 100;
/// Largest timeout: an hour.
const MAX_TIMEOUT_MS: u64 = 3_600_000;
/// Smallest header bound: hyper's smallest HTTP/1 buffer.
const MIN_HEADER_BYTES: usize = 8 * 1024;
/// Largest header bound.
const MAX_HEADER_BYTES: usize = 1 << 20;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid_and_bounded() {
        let limits = ConnectionLimits::default();
        assert_eq!(limits.validate("connections").ok(), Some(()));
        assert_eq!(limits.for_operations().max_open, OPERATIONS_MAX_OPEN);
        assert_eq!(
            limits.for_operations().header_read_timeout_ms,
            limits.header_read_timeout_ms
        );
    }

    #[test]
    fn each_range_error_names_its_field() {
        struct Case {
            name: &'static str,
            limits: ConnectionLimits,
            field: &'static str,
        }
        let base = ConnectionLimits::default();
        let cases = [
            Case {
                name: "no connections",
                limits: ConnectionLimits {
                    max_open: 0,
                    ..base
                },
                field: "connections.max_open",
            },
            Case {
                name: "per peer above the total",
                limits: ConnectionLimits {
                    max_per_peer: base.max_open + 1,
                    ..base
                },
                field: "connections.max_per_peer",
            },
            Case {
                name: "per peer zero",
                limits: ConnectionLimits {
                    max_per_peer: 0,
                    ..base
                },
                field: "connections.max_per_peer",
            },
            Case {
                name: "header timeout zero",
                limits: ConnectionLimits {
                    header_read_timeout_ms: 0,
                    ..base
                },
                field: "connections.header_read_timeout_ms",
            },
            Case {
                name: "idle timeout too long",
                limits: ConnectionLimits {
                    idle_timeout_ms: MAX_TIMEOUT_MS + 1,
                    ..base
                },
                field: "connections.idle_timeout_ms",
            },
            Case {
                name: "header bytes below hyper's minimum",
                limits: ConnectionLimits {
                    max_header_bytes: 4096,
                    ..base
                },
                field: "connections.max_header_bytes",
            },
        ];
        for case in cases {
            let message = case
                .limits
                .validate("connections")
                .err()
                .map(|e| e.0)
                .unwrap_or_default();
            assert!(
                message.starts_with(&format!("{}:", case.field)),
                "{}: {message}",
                case.name
            );
        }
    }
}
