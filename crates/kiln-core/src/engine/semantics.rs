//! What a Docker-compatible engine does to the configs kiln gives it, known to
//! both the real engine and the fake: how Docker reports a config back, and
//! the check that a commit carried nothing over from the container. No Docker
//! client here, so the fake needs none.

use super::{EngineError, ImageConfig};

/// `3000` → `3000/tcp`, as Docker stores exposed ports.
pub(super) fn normalize_port(port: &str) -> String {
    if port.contains('/') {
        port.to_string()
    } else {
        format!("{port}/tcp")
    }
}

/// The config as Docker will report it back: empty entrypoint/cmd mean unset,
/// ports carry their protocol, and neither order nor duplicates of ports matter.
pub(super) fn normalize_config(config: &ImageConfig) -> ImageConfig {
    let mut ports: Vec<String> = config
        .exposed_ports
        .iter()
        .map(|p| normalize_port(p))
        .collect();
    ports.sort();
    ports.dedup();
    ImageConfig {
        user: config.user.clone().filter(|u| !u.is_empty()),
        env: config.env.clone(),
        cmd: config.cmd.clone().filter(|c| !c.is_empty()),
        entrypoint: config.entrypoint.clone().filter(|c| !c.is_empty()),
        working_dir: config.working_dir.clone().filter(|w| !w.is_empty()),
        exposed_ports: ports,
        labels: config.labels.clone(),
        healthcheck: config.healthcheck.clone(),
    }
}

pub(super) fn env_key(entry: &str) -> &str {
    entry.split_once('=').map_or(entry, |(k, _)| k)
}

/// What the engine added to a committed image's config beyond what kiln asked
/// for: keys only, never values, since a leaked value may be a secret.
pub(super) fn commit_leaks(requested: &ImageConfig, got: &ImageConfig) -> Vec<String> {
    let want = normalize_config(requested);
    let got = normalize_config(got);
    let mut leaks = Vec::new();
    for entry in &got.env {
        if !want.env.iter().any(|w| env_key(w) == env_key(entry)) {
            leaks.push(format!("env `{}`", env_key(entry)));
        }
    }
    for key in got.labels.keys() {
        if !want.labels.contains_key(key) {
            leaks.push(format!("label `{key}`"));
        }
    }
    for port in &got.exposed_ports {
        if !want.exposed_ports.contains(port) {
            leaks.push(format!("exposed port `{port}`"));
        }
    }
    if want.user.is_none() && got.user.is_some() {
        leaks.push("user".to_string());
    }
    if want.working_dir.is_none() && got.working_dir.is_some() {
        leaks.push("working dir".to_string());
    }
    if want.cmd.is_none() && got.cmd.is_some() {
        leaks.push("cmd".to_string());
    }
    if want.entrypoint.is_none() && got.entrypoint.is_some() {
        leaks.push("entrypoint".to_string());
    }
    leaks
}

/// The error for a commit whose result would not be exactly the requested config.
pub(super) fn leak_error(container: &str, leaks: &[String]) -> EngineError {
    EngineError::Refused {
        op: "commit".to_string(),
        message: format!(
            "committing container `{container}` would carry over its own {} into the image \
             (Docker's commit merges the container's config into the one given)\n\
             hint: create build containers with no env, labels, user, working dir or cmd \
             beyond what the snapshot's config sets; pass secrets as files or in the command",
            leaks.join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_leaks_name_keys_not_values() {
        let want = ImageConfig {
            env: vec!["A=1".into()],
            cmd: Some(vec!["sh".into()]),
            ..Default::default()
        };
        let got = ImageConfig {
            env: vec!["A=1".into(), "TOKEN=hunter2".into()],
            cmd: Some(vec!["sh".into()]),
            user: Some("dev".into()),
            ..Default::default()
        };
        let leaks = commit_leaks(&want, &got);
        assert_eq!(leaks, ["env `TOKEN`", "user"]);
        assert!(!leak_error("c", &leaks).to_string().contains("hunter2"));
    }
}
