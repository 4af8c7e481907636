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
        let step_action = |a: &Action| match a {
            Action::Cached { .. } => "cached",
            _ => "build",
        };
        if json {
            let mut v = serde_json::json!({
                "id": p.phase.id().to_string(), "phase": p.phase.name(), "action": action,
                "key": p.key.key.as_str(), "reason": p.reason, "image": image,
                "pull": match &p.action { Action::Pull { reference } => Some(reference.as_str()), _ => None },
            });
            // Only for a phase that builds in steps (SPEC §5).
            if !p.steps.is_empty() {
                v["steps"] = p
                    .steps
                    .iter()
                    .map(|s| {
                        serde_json::json!({
                            "step": s.key.tag(p.phase), "name": s.key.name,
                            "action": step_action(&s.action), "key": s.key.key.as_str(),
                            "reason": s.reason,
                        })
                    })
                    .collect();
            }
            out!("{v}");
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
            for s in &p.steps {
                let reason = match s.reason.as_str() {
                    "" => String::new(),
                    r => format!("  {}", render::because(r)),
                };
                out!(
                    "  {:<10} {:<6} {} {}{reason}",
                    s.key.tag(p.phase),
                    step_action(&s.action),
                    s.key.key.short(),
                    s.key.name
                );
            }
        }
    }
}
