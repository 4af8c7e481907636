//! Between kiln's engine types and bollard's: the requests kiln sends (a
//! container's create body, a commit's config, listing filters, pull
//! references, an import's Dockerfile `changes`) and what it keeps of the
//! answers (image and container inspections and listings, port maps).

use std::collections::HashMap;

use bollard::models::{ContainerConfig, ContainerCreateBody, HostConfig};

use super::super::semantics::normalize_port;
use super::super::{
    ContainerInfo, ContainerSpec, ContainerSummary, Healthcheck, ImageConfig, ImageInfo,
    ImageSummary, LayerState, PortBinding, PullProgress,
};

/// An image's layer directories, top first, from its graph driver data:
/// overlay-style drivers name the top layer `UpperDir` and the others, top
/// first, in `LowerDir` (`:`-separated).
fn layer_dirs(driver: &bollard::models::DriverData) -> Vec<String> {
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

fn image_config_from_docker(c: Option<bollard::models::ImageConfig>) -> ImageConfig {
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
        healthcheck: c.healthcheck.and_then(healthcheck_from_docker),
    }
}

fn healthcheck_from_docker(h: bollard::models::HealthConfig) -> Option<Healthcheck> {
    let n = |v: Option<i64>| v.and_then(|v| u64::try_from(v).ok()).unwrap_or(0);
    Some(Healthcheck {
        test: h.test.filter(|t| !t.is_empty())?,
        interval_ns: n(h.interval),
        timeout_ns: n(h.timeout),
        start_period_ns: n(h.start_period),
        retries: n(h.retries),
    })
}

fn healthcheck_to_docker(h: &Healthcheck) -> bollard::models::HealthConfig {
    let n = |v: u64| (v != 0).then(|| i64::try_from(v).unwrap_or(i64::MAX));
    bollard::models::HealthConfig {
        test: Some(h.test.clone()),
        interval: n(h.interval_ns),
        timeout: n(h.timeout_ns),
        start_period: n(h.start_period_ns),
        retries: n(h.retries),
        start_interval: None,
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
    if let Some(h) = &config.healthcheck {
        changes.push(healthcheck_instruction(h));
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

/// `HEALTHCHECK [--interval=Ns ...] CMD [...]` for an import's changes; the
/// durations in whole milliseconds, which every kiln healthcheck is.
fn healthcheck_instruction(h: &Healthcheck) -> String {
    let mut out = String::from("HEALTHCHECK");
    for (flag, ns) in [
        ("interval", h.interval_ns),
        ("timeout", h.timeout_ns),
        ("start-period", h.start_period_ns),
    ] {
        if ns != 0 {
            out.push_str(&format!(" --{flag}={}ms", ns / 1_000_000));
        }
    }
    if h.retries != 0 {
        out.push_str(&format!(" --retries={}", h.retries));
    }
    match h.test.split_first() {
        Some((kind, argv)) if kind == "CMD" => {
            out.push_str(&format!(
                " CMD {}",
                serde_json::to_string(argv).unwrap_or_default()
            ));
        }
        Some((kind, script)) if kind == "CMD-SHELL" => {
            out.push_str(&format!(" CMD {}", script.join(" ")));
        }
        _ => out.push_str(" NONE"),
    }
    out
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

/// The layer record one line of a pull's stream is, if it is about a
/// layer: Docker gives the layer's short id and a status, and byte counts
/// only while downloading or extracting.
pub(super) fn pull_progress_from_docker(
    info: &bollard::models::CreateImageInfo,
) -> Option<PullProgress> {
    let state = LayerState::from_docker_status(info.status.as_deref()?)?;
    let layer = info.id.clone().filter(|id| !id.is_empty())?;
    let detail = info.progress_detail.as_ref();
    let count = |n: Option<i64>| n.and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
    Some(PullProgress {
        layer,
        state,
        current: count(detail.and_then(|d| d.current)),
        total: count(detail.and_then(|d| d.total)),
    })
}

fn restart_policy(name: &str) -> bollard::models::RestartPolicy {
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
fn ports_from_docker(map: Option<bollard::models::PortMap>) -> Vec<PortBinding> {
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

/// What kiln keeps of an image inspection.
pub(super) fn image_info_from_docker(i: bollard::models::ImageInspect) -> ImageInfo {
    ImageInfo {
        layer_dirs: i.graph_driver.as_ref().map(layer_dirs).unwrap_or_default(),
        id: i.id.unwrap_or_default(),
        repo_tags: i.repo_tags.unwrap_or_default(),
        repo_digests: i.repo_digests.unwrap_or_default(),
        config: image_config_from_docker(i.config),
        layers: i.root_fs.and_then(|r| r.layers).unwrap_or_default(),
        architecture: i.architecture.unwrap_or_default(),
        os: i.os.unwrap_or_default(),
        created: i.created.map(|c| c.to_string()).unwrap_or_default(),
        size: i.size.map_or(0, |s| u64::try_from(s).unwrap_or(0)),
    }
}

/// A listing filter for everything carrying all of `labels` (`key=value`).
pub(super) fn label_filters(labels: &[(&str, &str)]) -> HashMap<String, Vec<String>> {
    HashMap::from([(
        "label".to_string(),
        labels.iter().map(|(k, v)| format!("{k}={v}")).collect(),
    )])
}

/// One row of an image listing.
pub(super) fn image_summary_from_docker(i: bollard::models::ImageSummary) -> ImageSummary {
    ImageSummary {
        id: i.id,
        // Docker lists an untagged image as `<none>:<none>`.
        repo_tags: i
            .repo_tags
            .into_iter()
            .filter(|t| t != "<none>:<none>")
            .collect(),
        labels: i.labels.into_iter().collect(),
    }
}

/// The create request for `spec`: its config, host config and published ports.
pub(super) fn container_body(spec: &ContainerSpec) -> ContainerCreateBody {
    // Bind strings take both absolute host paths and volume names
    // (`name:/dst`), so one form serves both kinds of mount.
    let binds: Vec<String> = spec
        .mounts
        .iter()
        .map(|m| {
            let mut bind = format!("{}:{}", m.source, m.target);
            if m.readonly {
                bind.push_str(":ro");
            }
            bind
        })
        .collect();
    let mut port_bindings: HashMap<String, Option<Vec<bollard::models::PortBinding>>> =
        HashMap::new();
    for p in &spec.ports {
        port_bindings
            .entry(p.container_key())
            .or_default()
            .get_or_insert_with(Vec::new)
            .push(bollard::models::PortBinding {
                host_ip: Some(p.host_ip.clone()),
                host_port: Some(p.host_port.to_string()),
            });
    }
    let exposed: Vec<String> = port_bindings.keys().cloned().collect();
    let host_config = HostConfig {
        binds: (!binds.is_empty()).then_some(binds),
        network_mode: spec.network_host.then(|| "host".to_string()),
        auto_remove: Some(spec.auto_remove),
        port_bindings: (!port_bindings.is_empty()).then_some(port_bindings),
        restart_policy: spec.restart.as_deref().map(restart_policy),
        init: spec.init.then_some(true),
        ..Default::default()
    };
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        cmd: spec.cmd.clone(),
        entrypoint: spec.entrypoint.clone(),
        env: (!spec.env.is_empty()).then(|| spec.env.clone()),
        user: spec.user.clone(),
        working_dir: spec.working_dir.clone(),
        stop_timeout: spec
            .stop_timeout
            .map(|t| i64::try_from(t.as_secs()).unwrap_or(i64::MAX)),
        labels: Some(
            spec.labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        tty: Some(spec.interactive),
        open_stdin: Some(spec.interactive),
        stdin_once: Some(spec.interactive),
        attach_stdin: Some(spec.interactive),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        host_config: Some(host_config),
        exposed_ports: (!exposed.is_empty()).then_some(exposed),
        hostname: spec.hostname.clone(),
        ..Default::default()
    }
}

/// The config a commit sends: every field explicit (see `DockerEngine::commit`
/// for why), with `Entrypoint: []` when there is none.
pub(super) fn commit_config(c: &ImageConfig) -> ContainerConfig {
    ContainerConfig {
        user: Some(c.user.clone().unwrap_or_default()),
        env: Some(c.env.clone()),
        cmd: Some(c.cmd.clone().unwrap_or_default()),
        entrypoint: Some(c.entrypoint.clone().unwrap_or_default()),
        working_dir: Some(c.working_dir.clone().unwrap_or_default()),
        exposed_ports: Some(c.exposed_ports.iter().map(|p| normalize_port(p)).collect()),
        labels: Some(
            c.labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        healthcheck: c.healthcheck.as_ref().map(healthcheck_to_docker),
        ..Default::default()
    }
}

/// What kiln keeps of a container inspection.
pub(super) fn container_info_from_docker(
    info: bollard::models::ContainerInspectResponse,
) -> ContainerInfo {
    let state = info.state.unwrap_or_default();
    let status = state.status.map(|s| s.to_string()).unwrap_or_default();
    let started_at = state
        .started_at
        .filter(|t| !t.is_empty() && !t.starts_with("0001-"));
    let exit_code = (status == "exited" || status == "dead")
        .then_some(state.exit_code)
        .flatten();
    let health = state.health.unwrap_or_default();
    let health_output = health
        .log
        .and_then(|log| log.into_iter().last())
        .and_then(|r| r.output)
        .map(|o| o.trim_end().to_string());
    // `none` (or empty) is Docker's word for "no healthcheck".
    let health = health
        .status
        .map(|s| s.to_string())
        .filter(|s| !s.is_empty() && s != "none");
    ContainerInfo {
        id: info.id.unwrap_or_default(),
        name: info
            .name
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_string(),
        state: status,
        started_at,
        image: info.image.unwrap_or_default(),
        labels: info
            .config
            .and_then(|c| c.labels)
            .map(|l| l.into_iter().collect())
            .unwrap_or_default(),
        ports: ports_from_docker(info.host_config.and_then(|h| h.port_bindings)),
        restart_count: info.restart_count.unwrap_or(0),
        exit_code,
        health,
        health_output,
        upper_dir: info
            .graph_driver
            .and_then(|g| g.data.get("UpperDir").cloned())
            .filter(|d| !d.is_empty()),
    }
}

/// One row of a container listing; `None` for a row without an id.
pub(super) fn container_summary_from_docker(
    c: bollard::models::ContainerSummary,
) -> Option<ContainerSummary> {
    Some(ContainerSummary {
        id: c.id?,
        name: c
            .names
            .and_then(|n| n.into_iter().next())
            .map(|n| n.trim_start_matches('/').to_string())
            .unwrap_or_default(),
        image: c.image.unwrap_or_default(),
        state: c.state.map(|s| s.to_string()).unwrap_or_default(),
        labels: c
            .labels
            .map(|l| l.into_iter().collect())
            .unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn pull_lines_about_layers_become_progress_records() {
        use bollard::models::{CreateImageInfo, ProgressDetail};
        let line = |id: Option<&str>, status: &str, detail: Option<(i64, i64)>| CreateImageInfo {
            id: id.map(str::to_string),
            status: Some(status.to_string()),
            progress_detail: detail.map(|(c, t)| ProgressDetail {
                current: Some(c),
                total: Some(t),
            }),
            ..Default::default()
        };
        let record = |state, current, total| {
            Some(PullProgress {
                layer: "0123456789ab".to_string(),
                state,
                current,
                total,
            })
        };
        let l = Some("0123456789ab");
        let cases = [
            (line(Some("cache-k"), "Pulling from team/app", None), None),
            (
                line(l, "Pulling fs layer", None),
                record(LayerState::Queued, 0, 0),
            ),
            (
                line(l, "Downloading", Some((4096, 10_000))),
                record(LayerState::Downloading, 4096, 10_000),
            ),
            (
                line(l, "Download complete", None),
                record(LayerState::Downloaded, 0, 0),
            ),
            (
                line(l, "Extracting", Some((10_000, 10_000))),
                record(LayerState::Extracting, 10_000, 10_000),
            ),
            (
                line(l, "Pull complete", None),
                record(LayerState::Done, 0, 0),
            ),
            (
                line(l, "Already exists", None),
                record(LayerState::Present, 0, 0),
            ),
            (line(None, "Digest: sha256:abc", None), None),
            (line(None, "Status: Downloaded newer image", None), None),
            (
                line(l, "Downloading", Some((-1, -1))),
                record(LayerState::Downloading, 0, 0),
            ),
        ];
        for (info, want) in cases {
            assert_eq!(pull_progress_from_docker(&info), want, "{info:?}");
        }
    }

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
