//! What the member lifecycle commands report: `up` (a line per member on
//! stdout; failures, their last output and orphans on stderr), `down` and
//! `restart` (a line per thing changed).

use kiln_core::instances::{DownReport, Outcome, UpReport};

use crate::render::stdout::{err, out};

pub fn up(report: &UpReport, image: &str) {
    for m in &report.members {
        let detail = match &m.outcome {
            Outcome::Recreated { reason } => format!("  ({reason})"),
            Outcome::Failed { message, .. } => format!("  ({message})"),
            _ => String::new(),
        };
        out!(
            "{:<24} {:<10} {}{detail}",
            m.container,
            m.outcome.word(),
            image
        );
    }
    for v in &report.moved {
        err!(
            "moved volume {} to {} (`{}` of member `{}`: kiln's volume names are now unique)",
            v.from,
            v.to,
            v.path,
            v.member
        );
    }
    for m in &report.members {
        if let Outcome::Failed { message, logs } = &m.outcome {
            err!("error: member `{}` failed to start: {message}", m.member);
            if logs.is_empty() {
                err!("  (no output)");
            }
            for line in logs {
                err!("  | {line}");
            }
            err!("  hint: `kiln logs {}` shows all of its output", m.member);
        }
    }
    for c in &report.removed_orphans {
        out!(
            "removed container {c} (an orphan: its member is no longer in `kiln.yaml`; its volumes are kept)"
        );
    }
    for o in &report.orphans {
        err!(
            "warning: member `{o}` has a container but is no longer in `kiln.yaml`\nhint: `kiln up --remove-orphans` removes it (`kiln down {o}` does too)"
        );
    }
}

pub fn down(report: &DownReport) {
    for c in &report.containers {
        out!("removed container {c}");
    }
    for v in &report.volumes {
        out!("removed volume {v}");
    }
}

/// Returns whether every member restarted.
pub fn restart(results: &[(String, Result<(), String>)]) -> bool {
    let mut ok = true;
    for (m, r) in results {
        match r {
            Ok(()) => out!("restarted {m}"),
            Err(e) => {
                err!("error: member `{m}` did not restart: {e}");
                ok = false;
            }
        }
    }
    ok
}
