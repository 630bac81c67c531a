//! What `/proc` says about the fleet's processes and sockets: resident memory (`VmRSS`, and the
//! peak `VmHWM`, which `clear_refs` can reset so each phase gets its own peak) and the TCP
//! connections on loopback (`/proc/net/tcp`, `/proc/net/tcp6`), which show whether the
//! coordinator reuses its connections to the perspectives or sets one up per request.

use std::collections::BTreeSet;

/// Resident memory of one process, in KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Memory {
    /// `VmRSS`: resident now.
    pub rss_kib: u64,
    /// `VmHWM`: the peak since start or since the last reset.
    pub hwm_kib: u64,
}

/// Reads `/proc/<pid>/status`; `None` when the process is gone.
pub fn memory(pid: u32) -> Option<Memory> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status(&text)
}

/// Resets the peak (`VmHWM`) of `pid` to its current RSS (Linux ≥ 4.0: writing 5 to
/// `clear_refs`). Only meant for the processes the bench started itself. Returns whether it
/// worked; when it did not, the peak since start is reported instead.
pub fn reset_peak(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// `VmRSS` and `VmHWM` of a `/proc/<pid>/status` text.
pub fn parse_status(text: &str) -> Option<Memory> {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.trim().strip_suffix("kB"))
            .and_then(|n| n.trim().parse::<u64>().ok())
    };
    Some(Memory {
        rss_kib: field("VmRSS:")?,
        hwm_kib: field("VmHWM:")?,
    })
}

/// Clock ticks per second of `/proc/<pid>/stat` (USER_HZ, 100 on every Linux the bench runs on).
pub const TICKS_PER_S: u64 = 100;

/// CPU time (user + system) `pid` has used, with all its descendants' when `with_children`
/// (NSD answers from a forked grandchild), in ticks; `None` when the process is gone.
pub fn cpu_ticks(pid: u32, with_children: bool) -> Option<u64> {
    let own = parse_stat_ticks(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)?;
    if !with_children {
        return Some(own);
    }
    let mut total = own;
    let mut frontier = vec![pid];
    // NSD's tree is three deep; the bound keeps a strange tree from looping.
    for _ in 0..MAX_DESCENDANT_DEPTH {
        let children: Vec<u32> = frontier
            .iter()
            .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/task/{p}/children")).ok())
            .flat_map(|t| {
                t.split_whitespace()
                    .filter_map(|c| c.parse().ok())
                    .collect::<Vec<u32>>()
            })
            .collect();
        total += children
            .iter()
            .filter_map(|c| std::fs::read_to_string(format!("/proc/{c}/stat")).ok())
            .filter_map(|t| parse_stat_ticks(&t))
            .sum::<u64>();
        frontier = children;
    }
    Some(total)
}

/// How many generations of descendants [`cpu_ticks`] follows.
const MAX_DESCENDANT_DEPTH: usize = 4;

/// `utime + stime` of a `/proc/<pid>/stat` line (fields 14 and 15; the command name in
/// parentheses may hold spaces, so fields are counted after its closing parenthesis).
pub fn parse_stat_ticks(line: &str) -> Option<u64> {
    let (_, rest) = line.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ")": state is field 3, so utime (14) and stime (15) are at 11 and 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Entries in the kernel's connection-tracking table and its size, when netfilter is loaded.
/// Every DNS query from a fresh source port is an entry for 30 s (UDP); a full table makes
/// `sendmsg` fail with EPERM ("Operation not permitted").
pub fn conntrack() -> Option<(u64, u64)> {
    let read = |f: &str| {
        std::fs::read_to_string(format!("/proc/sys/net/netfilter/{f}"))
            .ok()?
            .trim()
            .parse::<u64>()
            .ok()
    };
    Some((read("nf_conntrack_count")?, read("nf_conntrack_max")?))
}

/// TCP state `LISTEN` in `/proc/net/tcp`.
const TCP_LISTEN: u8 = 0x0A;
/// TCP state `ESTABLISHED`.
pub const TCP_ESTABLISHED: u8 = 0x01;

/// One TCP socket of `/proc/net/tcp{,6}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Socket {
    /// Local port.
    pub local_port: u16,
    /// Remote port.
    pub remote_port: u16,
    /// The kernel's state number (1 established, 6 time-wait, 0x0A listen, ...).
    pub state: u8,
}

/// The sockets of a `/proc/net/tcp` or `/proc/net/tcp6` text (addresses are ignored: the
/// fleet lives on loopback and is told apart by port).
pub fn parse_net_tcp(text: &str) -> Vec<Socket> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let _slot = fields.next()?;
            let local = fields.next()?;
            let remote = fields.next()?;
            let state = fields.next()?;
            Some(Socket {
                local_port: port_of(local)?,
                remote_port: port_of(remote)?,
                state: u8::from_str_radix(state, 16).ok()?,
            })
        })
        .collect()
}

fn port_of(address: &str) -> Option<u16> {
    let (_, port) = address.rsplit_once(':')?;
    u16::from_str_radix(port, 16).ok()
}

/// Every TCP socket on this machine's network namespace (IPv4 and IPv6).
pub fn tcp_sockets() -> Vec<Socket> {
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .flat_map(|t| parse_net_tcp(&t))
        .collect()
}

/// The connections to `server_ports`, as `(server port, client port)`, seen from either end and
/// in any state but `LISTEN`: a connection closed in the last minute still shows in
/// `TIME_WAIT` on the side that closed first, so two looks a phase apart see every connection
/// made in between (for phases under a minute).
pub fn accepted_connections(sockets: &[Socket], server_ports: &[u16]) -> BTreeSet<(u16, u16)> {
    sockets
        .iter()
        .filter(|s| s.state != TCP_LISTEN)
        .filter_map(|s| {
            if server_ports.contains(&s.local_port) {
                Some((s.local_port, s.remote_port))
            } else if server_ports.contains(&s.remote_port) {
                Some((s.remote_port, s.local_port))
            } else {
                None
            }
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn status_fields() {
        let text = "Name:\tmpic-perspective\nVmPeak:\t  812344 kB\nVmHWM:\t   21480 kB\nVmRSS:\t   19876 kB\nThreads:\t3\n";
        assert_eq!(
            parse_status(text),
            Some(Memory {
                rss_kib: 19_876,
                hwm_kib: 21_480
            })
        );
        assert_eq!(
            parse_status("Name:\tzombie\n"),
            None,
            "kernel threads have none"
        );
    }

    #[test]
    fn net_tcp_lines() {
        let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0\n\
   1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 20 4 30 10 -1\n\
   2: 0100007F:C350 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0 20 4 30 10 -1\n\
   3: 0100007F:1F90 0100007F:C351 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0\n\
   4: 0100007F:C352 0100007F:1F90 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0\n";
        let sockets = parse_net_tcp(text);
        assert_eq!(sockets.len(), 5);
        assert_eq!(
            sockets[1],
            Socket {
                local_port: 8080,
                remote_port: 50_000,
                state: TCP_ESTABLISHED
            }
        );
        let accepted = accepted_connections(&sockets, &[8080]);
        assert_eq!(
            accepted.into_iter().collect::<Vec<_>>(),
            vec![(8080, 50_000), (8080, 50_001), (8080, 50_002)],
            "the listener is not a connection; both ends of one are one; time-wait ones count"
        );
    }

    #[test]
    fn tcp6_addresses_parse_too() {
        let text = "header\n   0: 00000000000000000000000001000000:1F90 00000000000000000000000001000000:C350 01 0:0 0:0 0 0 0 1\n";
        assert_eq!(
            parse_net_tcp(text),
            vec![Socket {
                local_port: 8080,
                remote_port: 50_000,
                state: 1
            }]
        );
    }

    #[test]
    fn stat_ticks() {
        let line = "1234 (nsd: server 1) S 1 1234 1234 0 -1 4194560 300 0 0 0 250 75 0 0 20 0 1 0 100 60000000 1200 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(parse_stat_ticks(line), Some(325));
        assert_eq!(parse_stat_ticks("garbage"), None);
        assert!(cpu_ticks(std::process::id(), true).is_some());
    }

    #[test]
    fn this_process_has_memory() {
        let m = memory(std::process::id()).unwrap();
        assert!(m.rss_kib > 0 && m.hwm_kib >= m.rss_kib, "{m:?}");
    }
}
