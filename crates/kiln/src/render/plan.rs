//! `kiln plan`'s output: a line per phase (tag, action, short key and why),
//! or with `--json` an object per phase, on stdout.

use kiln_core::plan::{Action, Plan};

use crate::render::stdout::out;

pub fn plan(plan: &Plan, json: bool) {
    for p in &plan.phases {
        let (action, image) = match &p.action {
            Action::Cached { image } => ("cached", image.clone()),
            Action::Build => ("build", String::new()),
            Action::Skip => ("skip", String::new()),
        };
        if json {
            out!(
                "{}",
                serde_json::json!({
                    "id": p.phase.id().to_string(), "phase": p.phase.name(), "action": action,
                    "key": p.key.key.as_str(), "reason": p.reason, "image": image,
                })
            );
        } else {
            let reason = if p.reason.is_empty() {
                String::new()
            } else {
                format!("  ({})", p.reason)
            };
            out!(
                "{:<10} {:<6} {}{reason}",
                p.phase.tag(),
                action,
                p.key.key.short()
            );
        }
    }
}
