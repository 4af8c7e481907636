//! `kiln ps`'s output: a table of members (state, image and whether it is
//! current, ports, uptime, volumes), or with `--json` an object per member.

use kiln_core::executor::BuildError;
use kiln_core::instances::MemberStatus;
use kiln_core::instances::reconcile::short;

use crate::render::stdout::{err, out};

/// Why `ps` cannot tell which image a build would make now (it then compares
/// only the members' own config): a warning, not a failure.
pub fn cannot_plan(e: &BuildError) {
    let text = e.to_string();
    let first = text.lines().next().unwrap_or_default();
    let first = first.strip_prefix("error: ").unwrap_or(first);
    err!("warning: cannot tell whether members run the image a build would make now: {first}");
}

pub fn ps(rows: &[MemberStatus], json: bool) {
    if json {
        for r in rows {
            let volumes: serde_json::Map<String, serde_json::Value> = r
                .volumes
                .iter()
                .map(|(p, v)| (p.clone(), serde_json::Value::String(v.clone())))
                .collect();
            out!(
                "{}",
                serde_json::json!({
                    "member": r.member, "container": r.container, "state": r.state,
                    "image_key": r.image_key, "current": r.current, "stale": r.stale,
                    "ports": r.ports.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "uptime_s": r.uptime, "volumes": volumes, "in_config": r.in_config,
                })
            );
        }
        return;
    }
    out!(
        "{:<16} {:<10} {:<24} {:<28} {:<8} VOLUMES",
        "MEMBER",
        "STATE",
        "IMAGE",
        "PORTS",
        "UPTIME"
    );
    for r in rows {
        let ports = if r.ports.is_empty() {
            "-".to_string()
        } else {
            r.ports
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        let volumes = if r.volumes.is_empty() {
            "-".to_string()
        } else {
            r.volumes
                .iter()
                .map(|(p, v)| format!("{v}:{p}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        let member = if r.in_config {
            r.member.clone()
        } else {
            format!("{} (orphan)", r.member)
        };
        out!(
            "{:<16} {:<10} {:<24} {:<28} {:<8} {volumes}",
            member,
            r.state,
            image_column(r),
            ports,
            uptime(r.uptime)
        );
    }
    for r in rows {
        if let Some(reason) = &r.stale {
            out!("stale {}: {reason}; `kiln up` recreates it", r.member);
        }
    }
}

fn uptime(secs: Option<u64>) -> String {
    match secs {
        None => "-".to_string(),
        Some(s) if s < 60 => format!("{s}s"),
        Some(s) if s < 3600 => format!("{}m{}s", s / 60, s % 60),
        Some(s) if s < 86_400 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        Some(s) => format!("{}d{}h", s / 86_400, (s % 86_400) / 3600),
    }
}

fn image_column(row: &MemberStatus) -> String {
    if row.image_key.is_empty() {
        return "-".to_string();
    }
    let freshness = match row.current {
        Some(true) => "current",
        Some(false) => "stale",
        None => "unknown",
    };
    format!("{} ({freshness})", short(&row.image_key))
}
