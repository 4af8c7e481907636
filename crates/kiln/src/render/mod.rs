//! Every byte the terminal sees: build progress, the data of `plan`, `up`,
//! `ps` and the other commands, and error messages. All of it goes through
//! the two writers in `stdout`.

pub mod cache;
pub mod error;
pub mod log_line;
pub mod plan;
pub mod progress;
pub mod ps;
pub mod push;
pub mod registry;
pub mod stdout;
pub mod tty;
pub mod up;

/// A rebuild's reason as a clause of the line it ends: `because no snapshot
/// yet`, but `after env rebuilt` and `forced by --rebuild 6` as they are.
pub fn because(reason: &str) -> String {
    if reason.starts_with("after ") || reason.starts_with("forced by ") {
        reason.to_string()
    } else {
        format!("because {reason}")
    }
}

/// The line the automatic soft prune after a build gets: what it removed
/// (phase and key) and what that freed.
pub fn pruned(habitat: &str, removed: &[(String, String)], freed: u64) -> String {
    let list: Vec<String> = removed
        .iter()
        .map(|(t, k)| format!("{t} {}", &k[..k.len().min(12)]))
        .collect();
    let n = removed.len();
    format!(
        "pruned {n} old snapshot{} of `{habitat}` (cache.keep), {} freed: {}",
        if n == 1 { "" } else { "s" },
        bytes(freed),
        list.join(", ")
    )
}

/// Bytes for a person: `0 B`, `512 B`, `1.5 kB`, `12 MB`, `3.4 GB` (SI, as
/// `docker images` shows sizes).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    match unit {
        0 => format!("{n} B"),
        _ if v < 10.0 => format!("{v:.1} {}", UNITS[unit]),
        _ => format!("{v:.0} {}", UNITS[unit]),
    }
}

/// A duration in milliseconds for a person: `850 ms`, `4.2s`, `3m05s`.
pub fn millis(ms: u64) -> String {
    match ms {
        0..1000 => format!("{ms} ms"),
        1000..60_000 => format!("{:.1}s", ms as f64 / 1000.0),
        _ => format!("{}m{:02}s", ms / 60_000, (ms % 60_000) / 1000),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_and_durations_read_as_docker_shows_them() {
        let b: Vec<String> = [0, 999, 1000, 1_500, 12_345_678, 3_400_000_000]
            .into_iter()
            .map(super::bytes)
            .collect();
        assert_eq!(b, ["0 B", "999 B", "1.0 kB", "1.5 kB", "12 MB", "3.4 GB"]);
        let t: Vec<String> = [850, 4_200, 185_000]
            .into_iter()
            .map(super::millis)
            .collect();
        assert_eq!(t, ["850 ms", "4.2s", "3m05s"]);
    }
}
