//! Between kiln's engine types and bollard's: the image configs, port maps,
//! restart policies and references Docker's API speaks, and the Dockerfile
//! `changes` an import takes.

use super::super::{ImageConfig, PortBinding};

/// An image's layer directories, top first, from its graph driver data:
/// overlay-style drivers name the top layer `UpperDir` and the others, top
/// first, in `LowerDir` (`:`-separated).
pub(super) fn layer_dirs(driver: &bollard::models::DriverData) -> Vec<String> {
    let Some(upper) = driver.data.get("UpperDir").filter(|d| !d.is_empty()) else {
        return Vec::new();
    };
    let mut dirs = vec![upper.clone()];
    if let Some(lower) = driver.data.get("LowerDir") {
        dirs.extend(
            lower
                .split(':')
                .filter(|d| !d.is_empty())
                .map(str::to_string),
        );
    }
    dirs
}

pub(super) fn image_config_from_docker(c: Option<bollard::models::ImageConfig>) -> ImageConfig {
    let Some(c) = c else {
        return ImageConfig::default();
    };
    let mut ports = c.exposed_ports.unwrap_or_default();
    ports.sort();
    ImageConfig {
        user: c.user.filter(|u| !u.is_empty()),
        env: c.env.unwrap_or_default(),
        cmd: c.cmd.filter(|v| !v.is_empty()),
        entrypoint: c.entrypoint.filter(|v| !v.is_empty()),
        working_dir: c.working_dir.filter(|w| !w.is_empty()),
        exposed_ports: ports,
        labels: c.labels.unwrap_or_default().into_iter().collect(),
    }
}

/// Dockerfile instructions that give an imported image `config`. JSON form
/// keeps arguments with spaces intact.
pub fn import_changes(config: &ImageConfig) -> Vec<String> {
    let json = |v: &[String]| serde_json::to_string(v).unwrap_or_default();
    let mut changes = Vec::new();
    for entry in &config.env {
        if let Some((k, v)) = entry.split_once('=') {
            changes.push(format!("ENV {k}={}", dockerfile_quote(v)));
        }
    }
    if let Some(user) = &config.user {
        changes.push(format!("USER {user}"));
    }
    if let Some(dir) = &config.working_dir {
        changes.push(format!("WORKDIR {dir}"));
    }
    if let Some(entrypoint) = &config.entrypoint {
        changes.push(format!("ENTRYPOINT {}", json(entrypoint)));
    }
    if let Some(cmd) = &config.cmd {
        changes.push(format!("CMD {}", json(cmd)));
    }
    for port in &config.exposed_ports {
        changes.push(format!("EXPOSE {port}"));
    }
    for (k, v) in &config.labels {
        changes.push(format!(
            "LABEL {}={}",
            dockerfile_quote(k),
            dockerfile_quote(v)
        ));
    }
    changes
}

/// A double-quoted Dockerfile word: `\\`, `"` and `$` escaped, so values are
/// taken literally (no variable expansion).
fn dockerfile_quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for ch in value.chars() {
        if matches!(ch, '\\' | '"' | '$') {
            out.push('\\');
        }
        out.push(ch);
    }
    out.push('"');
    out
}

/// Splits a reference into what the pull API wants: without a tag Docker
/// would pull every tag of the repository, so `latest` is made explicit.
pub(super) fn split_reference(reference: &str) -> (String, Option<String>) {
    if reference.contains('@') {
        return (reference.to_string(), None);
    }
    let name_start = reference.rfind('/').map_or(0, |i| i + 1);
    match reference[name_start..].rfind(':') {
        Some(i) => (
            reference[..name_start + i].to_string(),
            Some(reference[name_start + i + 1..].to_string()),
        ),
        None => (reference.to_string(), Some("latest".to_string())),
    }
}

pub(super) fn restart_policy(name: &str) -> bollard::models::RestartPolicy {
    use bollard::models::RestartPolicyNameEnum as N;
    let name = match name {
        "always" => N::ALWAYS,
        "unless-stopped" => N::UNLESS_STOPPED,
        "on-failure" => N::ON_FAILURE,
        _ => N::NO,
    };
    bollard::models::RestartPolicy {
        name: Some(name),
        maximum_retry_count: None,
    }
}

/// The configured port bindings of a container (known even while it is stopped).
pub(super) fn ports_from_docker(map: Option<bollard::models::PortMap>) -> Vec<PortBinding> {
    let mut out = Vec::new();
    for (key, bindings) in map.unwrap_or_default() {
        let (port, protocol) = key.split_once('/').unwrap_or((key.as_str(), "tcp"));
        let Ok(container_port) = port.parse::<u16>() else {
            continue;
        };
        for b in bindings.unwrap_or_default() {
            let Some(host_port) = b.host_port.and_then(|p| p.parse::<u16>().ok()) else {
                continue;
            };
            out.push(PortBinding {
                host_ip: b
                    .host_ip
                    .filter(|ip| !ip.is_empty())
                    .unwrap_or_else(|| "0.0.0.0".to_string()),
                host_port,
                container_port,
                protocol: protocol.to_string(),
            });
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn references_get_an_explicit_tag() {
        let cases = [
            ("debian", ("debian", Some("latest"))),
            ("debian:bookworm", ("debian", Some("bookworm"))),
            ("localhost:5000/a/b", ("localhost:5000/a/b", Some("latest"))),
            ("localhost:5000/a/b:1", ("localhost:5000/a/b", Some("1"))),
            ("a@sha256:00", ("a@sha256:00", None)),
        ];
        for (input, (name, tag)) in cases {
            let (n, t) = split_reference(input);
            assert_eq!((n.as_str(), t.as_deref()), (name, tag), "{input}");
        }
    }

    #[test]
    fn import_changes_quote_values() {
        let config = ImageConfig {
            env: vec!["PATH=/bin:/usr/bin".into(), "A=b c $X".into()],
            cmd: Some(vec!["sh".into(), "-c".into(), "echo hi".into()]),
            exposed_ports: vec!["3000/tcp".into()],
            labels: BTreeMap::from([("k".into(), "v w".into())]),
            ..Default::default()
        };
        assert_eq!(
            import_changes(&config),
            [
                r#"ENV PATH="/bin:/usr/bin""#,
                r#"ENV A="b c \$X""#,
                r#"CMD ["sh","-c","echo hi"]"#,
                "EXPOSE 3000/tcp",
                r#"LABEL "k"="v w""#,
            ]
        );
    }
}
