//! `kiln plan`'s output: a line per phase (tag, action, short key and why),
//! or with `--json` an object per phase, on stdout.

use kiln_core::image::names;
use kiln_core::plan::{Action, Plan};

use crate::render::{self, stdout::out};

/// `habitat` names the images as `build` does: each phase's snapshot tag.
pub fn plan(habitat: &str, plan: &Plan, json: bool) {
    for p in &plan.phases {
        let action = match &p.action {
            Action::Cached { .. } => "cached",
            Action::Build => "build",
            Action::Skip => "skip",
            Action::Pull { .. } | Action::Within { .. } => "pulled",
        };
        let image = names::snapshot(habitat, p.phase);
        // The words `build` shows for the same phase: a phase with nothing
        // configured is `cached (not configured)` there.
        let shown = match p.action {
            Action::Skip => "cached",
            _ => action,
        };
        if json {
            out!(
                "{}",
                serde_json::json!({
                    "id": p.phase.id().to_string(), "phase": p.phase.name(), "action": action,
                    "key": p.key.key.as_str(), "reason": p.reason, "image": image,
                    "pull": match &p.action { Action::Pull { reference } => Some(reference.as_str()), _ => None },
                })
            );
        } else {
            let reason = match (&p.action, p.reason.as_str()) {
                (_, "") => String::new(),
                (Action::Build, r) => format!("  {}", render::because(r)),
                (Action::Pull { reference }, r) => format!("  ({r}: {reference})"),
                (_, r) => format!("  ({r})"),
            };
            out!(
                "{:<10} {:<6} {}{reason}",
                p.phase.tag(),
                shown,
                p.key.key.short()
            );
        }
    }
}
