//! `kiln services`: the boot graph of `services:` (SPEC §9), stage by stage,
//! with each service's probe, stop and restart policy; runs nothing.

use std::path::Path;

use kiln_core::config::services::init_spec;
use kiln_init::spec::{self, Restart};
use kiln_init::supervise::duration;

use super::Outcome;
use crate::exit::ExitStatus;
use crate::render::stdout::{err, out};

pub fn run(path: &Path) -> Outcome {
    let h = super::load(path)?;
    let Some(spec) = init_spec(&h.config) else {
        err!("`{}` has no `services:`", h.file.display());
        return Ok(ExitStatus::Success);
    };
    // `check` (inside `load`) has refused cycles and unknown names.
    let stages = spec::boot_order(&spec.services).unwrap_or_default();
    out!("boot order of `{}`:", h.config.name);
    for (n, stage) in stages.iter().enumerate() {
        for &i in stage {
            let s = &spec.services[i];
            let mut parts = vec![if s.oneshot { "oneshot" } else { "service" }.to_string()];
            if !s.after.is_empty() {
                parts.push(format!("after {}", s.after.join(", ")));
            }
            if let Some(path) = &s.creates {
                parts.push(format!("skipped when {path} exists"));
            }
            if let Some(p) = &s.ready {
                parts.push(format!(
                    "ready: {} every {}, within {}",
                    p.check,
                    duration(p.interval_ms),
                    duration(p.timeout_ms)
                ));
            }
            if !s.oneshot {
                parts.push(format!(
                    "stop: {}, grace {}",
                    s.stop.signal,
                    duration(s.stop.grace_ms)
                ));
            }
            match s.restart {
                Restart::No => {}
                Restart::OnFailure => {
                    parts.push(format!("restart on-failure, {} a minute", s.max_restarts))
                }
                Restart::Always => {
                    parts.push(format!("restart always, {} a minute", s.max_restarts))
                }
            }
            out!("{}. {:<12} {}", n + 1, s.name, parts.join("; "));
        }
    }
    let command = h
        .config
        .build
        .final_
        .as_ref()
        .and_then(|f| f.command.clone());
    match command {
        Some(cmd) => out!(
            "then the main process: {} (as {})",
            cmd.join(" "),
            spec.main.user.as_deref().unwrap_or("root")
        ),
        None => out!("no main process: the container runs until it is stopped"),
    }
    Ok(ExitStatus::Success)
}
