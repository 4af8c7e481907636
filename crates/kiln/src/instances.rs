//! The instance commands (`up`, `down`, `ps`, `logs`, `exec`, `shell`,
//! `restart`): each resolves its habitat and members, calls
//! `kiln_core::instances`, and renders the result. Exit codes: 0 ok, 1 a member
//! failed, 2 bad usage / clash / unknown member / invalid config, 3 engine.

use std::path::{Path, PathBuf};

use kiln_core::config::Habitat;
use kiln_core::engine::docker::DockerEngine;
use kiln_core::engine::{Engine, Stream};
use kiln_core::executor::{self, BuildOptions};
use kiln_core::instances::reconcile::short;
use kiln_core::instances::runner::{self, InstanceError, MemberStatus, Outcome, UpOptions};

use crate::cli::InstanceCommand;
use crate::render::progress::Progress;
use crate::render::stdout::{self as stdio, err, out};

pub async fn run(command: InstanceCommand) -> i32 {
    match command {
        InstanceCommand::Up {
            args,
            habitat,
            progress,
        } => up(args, habitat, progress).await,
        InstanceCommand::Down {
            members,
            habitat,
            volumes,
        } => down(&habitat, &members, volumes).await,
        InstanceCommand::Ps { habitat, json } => ps(&habitat, json).await,
        InstanceCommand::Logs {
            member,
            habitat,
            follow,
            tail,
        } => logs(&habitat, &member, follow, tail).await,
        InstanceCommand::Exec {
            member,
            habitat,
            cmd,
        } => exec(&habitat, &member, &cmd).await,
        InstanceCommand::Shell { member, habitat } => {
            let cmd = [
                "/bin/sh",
                "-c",
                "if command -v bash >/dev/null 2>&1; then exec bash -l; else exec sh -l; fi",
            ]
            .map(String::from);
            exec(&habitat, &member, &cmd).await
        }
        InstanceCommand::Restart {
            members,
            habitat,
            all: _,
        } => restart(&habitat, &members).await,
    }
}

fn fail(e: &InstanceError) -> i32 {
    err!("{e}");
    e.exit_code()
}

async fn open(path: &Path) -> Result<(Habitat, DockerEngine), i32> {
    let habitat = crate::load(path)?;
    let engine = crate::connect().await?;
    Ok((habitat, engine))
}

/// `[PATH] MEMBER...`: the first word is the habitat when it names an existing path.
fn split_up_args(args: Vec<String>, habitat: Option<PathBuf>) -> (PathBuf, Vec<String>) {
    if let Some(h) = habitat {
        return (h, args);
    }
    match args.split_first() {
        Some((first, rest)) if Path::new(first).exists() => (PathBuf::from(first), rest.to_vec()),
        _ => (PathBuf::from("."), args),
    }
}

async fn up(args: Vec<String>, habitat: Option<PathBuf>, progress: Progress) -> i32 {
    let (path, members) = split_up_args(args, habitat);
    let (habitat, engine) = match open(&path).await {
        Ok(x) => x,
        Err(code) => return code,
    };
    // Unknown members are a usage error before anything is built.
    let known = runner::known_members(&habitat);
    if let Some(unknown) = members.iter().find(|m| !known.contains(m)) {
        let err = InstanceError::Usage(format!(
            "unknown member `{unknown}` of habitat `{}`\nhint: the members are: {}",
            habitat.config.name,
            if known.is_empty() {
                "none (add `instances.members` to `kiln.yaml`)".to_string()
            } else {
                known.join(", ")
            }
        ));
        return fail(&err);
    }
    let mut reporter = progress.reporter();
    let build_opts = BuildOptions::default();
    let fut = executor::build(&engine, &habitat, &build_opts, reporter.as_mut());
    let built = match crate::interruptible(&engine, &habitat.config.name, fut).await {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => return crate::report(&e),
        Err(code) => return code,
    };
    drop(reporter);
    let opts = UpOptions {
        members,
        ..UpOptions::default()
    };
    let report = match runner::up(
        &engine,
        &habitat,
        &built.image,
        built.final_key.as_str(),
        &opts,
    )
    .await
    {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
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
            built.image
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
    for o in &report.orphans {
        err!(
            "warning: member `{o}` has a container but is not in `kiln.yaml`; `kiln down {o}` removes it"
        );
    }
    if report.failed() { 1 } else { 0 }
}

async fn down(path: &Path, members: &[String], volumes: bool) -> i32 {
    let (habitat, engine) = match open(path).await {
        Ok(x) => x,
        Err(code) => return code,
    };
    let known = runner::known_members(&habitat);
    match runner::down(&engine, &habitat.config.name, &known, members, volumes).await {
        Ok(report) => {
            for c in &report.containers {
                out!("removed container {c}");
            }
            for v in &report.volumes {
                out!("removed volume {v}");
            }
            0
        }
        Err(e) => fail(&e),
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

async fn ps(path: &Path, json: bool) -> i32 {
    let (habitat, engine) = match open(path).await {
        Ok(x) => x,
        Err(code) => return code,
    };
    let name = &habitat.config.name;
    let current = match runner::current_image_key(&engine, name).await {
        Ok(k) => k,
        Err(e) => return fail(&InstanceError::Engine(e)),
    };
    let known = runner::known_members(&habitat);
    let rows = match runner::status(&engine, name, &known, current.as_deref()).await {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    if json {
        for r in &rows {
            let volumes: serde_json::Map<String, serde_json::Value> = r
                .volumes
                .iter()
                .map(|(p, v)| (p.clone(), serde_json::Value::String(v.clone())))
                .collect();
            out!(
                "{}",
                serde_json::json!({
                    "member": r.member, "container": r.container, "state": r.state,
                    "image_key": r.image_key, "current": r.current,
                    "ports": r.ports.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "uptime_s": r.uptime, "volumes": volumes, "in_config": r.in_config,
                })
            );
        }
        return 0;
    }
    out!(
        "{:<16} {:<10} {:<24} {:<28} {:<8} VOLUMES",
        "MEMBER",
        "STATE",
        "IMAGE",
        "PORTS",
        "UPTIME"
    );
    for r in &rows {
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
    0
}

async fn logs(path: &Path, member: &str, follow: bool, tail: Option<usize>) -> i32 {
    let (habitat, engine) = match open(path).await {
        Ok(x) => x,
        Err(code) => return code,
    };
    let c = match runner::container_of(&engine, &habitat.config.name, member).await {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let mut print = |stream: Stream, line: &str| stdio::stream_line(stream, line);
    match engine.container_logs(&c.id, follow, tail, &mut print).await {
        Ok(()) => 0,
        Err(e) => fail(&InstanceError::Engine(e)),
    }
}

async fn exec(path: &Path, member: &str, cmd: &[String]) -> i32 {
    let (habitat, engine) = match open(path).await {
        Ok(x) => x,
        Err(code) => return code,
    };
    let c = match runner::container_of(&engine, &habitat.config.name, member).await {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    if c.state != "running" {
        return fail(&InstanceError::Usage(format!(
            "member `{member}` is not running (it is `{}`)\nhint: `kiln up . {member}` starts it",
            c.state
        )));
    }
    match engine.exec_interactive(&c.id, cmd).await {
        Ok(code) => i32::try_from(code).unwrap_or(1),
        Err(e) => fail(&InstanceError::Engine(e)),
    }
}

async fn restart(path: &Path, members: &[String]) -> i32 {
    let (habitat, engine) = match open(path).await {
        Ok(x) => x,
        Err(code) => return code,
    };
    match runner::restart(&engine, &habitat.config.name, members).await {
        Ok(results) => {
            let mut code = 0;
            for (m, r) in results {
                match r {
                    Ok(()) => out!("restarted {m}"),
                    Err(e) => {
                        err!("error: member `{m}` did not restart: {e}");
                        code = 1;
                    }
                }
            }
            code
        }
        Err(e) => fail(&e),
    }
}
