//! `Owner`: the process that made something kiln leaves outside itself (a
//! build container, a temporary directory), written into its name so that a
//! later process can tell whether the maker still runs. Only what a dead
//! process made is ever swept: a pid alone is not enough (pids are reused),
//! so the name also holds the process's start time, and which machine and
//! pid namespace the pid is counted in (a remote engine serves several
//! machines; kiln in a container counts pids in its own namespace).

use std::sync::OnceLock;

use sha2::{Digest, Sha256};

/// A process, as named in a token `PID-START-HOSTBOOT`: its pid, its start
/// time (clock ticks after boot, `/proc/PID/stat` field 22), a hash of the
/// machine and pid namespace, and a hash of the boot it started in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub pid: u32,
    pub start: u64,
    pub host: u32,
    pub boot: u16,
}

/// Whether an owner still runs, as far as this process can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    Alive,
    /// Gone: no such process, another process under its pid, or an earlier
    /// boot of this machine.
    Dead,
    /// Another machine or pid namespace, or `/proc` cannot tell: kept.
    Unknown,
}

impl Owner {
    /// This process.
    pub fn current() -> Owner {
        static CURRENT: OnceLock<Owner> = OnceLock::new();
        *CURRENT.get_or_init(|| {
            let pid = std::process::id();
            Owner {
                pid,
                start: start_time(pid).unwrap_or(0),
                host: host_hash(),
                boot: boot_hash(),
            }
        })
    }

    /// `PID-START-HOSTBOOT`: decimal pid and start, then 12 hex digits. Only
    /// characters a container name and a file name may hold.
    pub fn token(&self) -> String {
        format!(
            "{}-{}-{:08x}{:04x}",
            self.pid, self.start, self.host, self.boot
        )
    }

    /// The owner a [`Owner::token`] names; `None` for anything else.
    pub fn parse(token: &str) -> Option<Owner> {
        let mut parts = token.split('-');
        let (pid, start, place) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || place.len() != 12 || !is_digits(pid) || !is_digits(start) {
            return None;
        }
        Some(Owner {
            pid: pid.parse().ok()?,
            start: start.parse().ok()?,
            host: u32::from_str_radix(&place[..8], 16).ok()?,
            boot: u16::from_str_radix(&place[8..], 16).ok()?,
        })
    }

    /// Whether this owner still runs, judged from this process.
    pub fn liveness(&self) -> Liveness {
        let me = Owner::current();
        if me.start == 0 || self.host != me.host {
            return Liveness::Unknown;
        }
        if self.boot != me.boot {
            return Liveness::Dead;
        }
        match std::fs::read_to_string(format!("/proc/{}/stat", self.pid)) {
            Ok(stat) => match parse_start(&stat) {
                Some(start) if start == self.start => Liveness::Alive,
                Some(_) => Liveness::Dead,
                None => Liveness::Unknown,
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Liveness::Dead,
            Err(_) => Liveness::Unknown,
        }
    }
}

/// Whether a process with `pid` runs on this machine now, whoever it is (for
/// names an older kiln made, which hold only a pid).
pub fn pid_runs(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn start_time(pid: u32) -> Option<u64> {
    parse_start(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Field 22 of `/proc/PID/stat`. The command name (field 2) is in
/// parentheses and may hold spaces and parentheses itself: count from the last `)`.
fn parse_start(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

/// The machine (its id and host name: cloned machines share an id) and the
/// pid namespace pids are counted in.
fn host_hash() -> u32 {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let machine = match read("/etc/machine-id") {
        id if !id.trim().is_empty() => id,
        _ => read("/var/lib/dbus/machine-id"),
    };
    let namespace = std::fs::read_link("/proc/self/ns/pid")
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let text = format!(
        "{}\n{}\n{namespace}",
        machine.trim(),
        read("/proc/sys/kernel/hostname").trim()
    );
    let d = Sha256::digest(text.as_bytes());
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

fn boot_hash() -> u16 {
    let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let d = Sha256::digest(id.trim().as_bytes());
    u16::from_be_bytes([d[0], d[1]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_nothing_else_parses() {
        let o = Owner {
            pid: 42,
            start: 9001,
            host: 0xdead_beef,
            boot: 0x0a0b,
        };
        assert_eq!(o.token(), "42-9001-deadbeef0a0b");
        assert_eq!(Owner::parse(&o.token()), Some(o));
        for bad in [
            "",
            "42",
            "42-0",
            "42-9001-deadbeef0a0",
            "42-9001-deadbeef0a0b-1",
            "x-9001-deadbeef0a0b",
            "42--deadbeef0a0b",
            "42-9001-deadbeefzzzz",
        ] {
            assert_eq!(Owner::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_start_time_is_read_past_a_command_name_with_parentheses() {
        let stat = "77 (a) b (c) S 1 77 77 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 123456 0 0";
        assert_eq!(parse_start(stat), Some(123456));
        assert_eq!(parse_start("garbage"), None);
    }

    #[test]
    fn this_process_is_alive_and_a_reused_pid_or_an_earlier_boot_is_dead() {
        let me = Owner::current();
        assert_ne!(me.start, 0, "/proc/self/stat is readable here");
        assert_eq!(me.liveness(), Liveness::Alive);
        let reused = Owner {
            start: me.start + 1,
            ..me
        };
        assert_eq!(reused.liveness(), Liveness::Dead);
        let earlier_boot = Owner {
            boot: me.boot ^ 1,
            ..me
        };
        assert_eq!(earlier_boot.liveness(), Liveness::Dead);
        let elsewhere = Owner {
            host: me.host ^ 1,
            pid: 1,
            ..me
        };
        assert_eq!(elsewhere.liveness(), Liveness::Unknown);
        let gone = Owner {
            pid: u32::MAX - 1,
            ..me
        };
        assert_eq!(gone.liveness(), Liveness::Dead);
    }
}
