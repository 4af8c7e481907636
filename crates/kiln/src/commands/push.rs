//! `kiln push [PATH] [--tag T]...` (SPEC §10): build if needed, then push
//! the final image under every tag that renders (a tag with an unset
//! variable is skipped, and said), with `registry.cache` every snapshot as
//! `cache-KEY`, and print `REPOSITORY@sha256:DIGEST` on stdout.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use kiln_core::cache::{CacheDir, FinalBuild, MadeIndex, PushedRecord};
use kiln_core::engine::Engine;
use kiln_core::image::labels::LABEL_DURATION;
use kiln_core::registry::oci::OciRegistry;
use kiln_core::registry::push::{self, PushError};
use kiln_core::registry::tags::{self, Rendered};
use kiln_core::registry::vars;
use kiln_core::report::Event;

use super::Outcome;
use crate::cli::BuildArgs;
use crate::exit::{ExitStatus, Failure};
use crate::render::progress::Progress;
use crate::render::stdout::out;

pub async fn run(args: &BuildArgs, tag_args: &[String], progress: Progress) -> Outcome {
    let (habitat, engine) = super::open(&args.habitat()).await?;
    let Some(registry_config) = habitat.config.registry.clone() else {
        return Err(Failure::NoRegistry {
            file: habitat.file.clone(),
            command: "push",
        });
    };
    // A `--tag` that can never render is a usage error, before any build.
    for t in tag_args {
        tags::check(t).map_err(|error| Failure::BadTag {
            template: t.clone(),
            error,
        })?;
    }
    let opts = args.options();
    let mut reporter = progress.reporter();
    let built = super::build::built_reporting(&engine, &habitat, &opts, reporter.as_mut()).await?;

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let mut tag_vars = vars::tag_vars(&habitat.dir, &env);
    tag_vars.key12 = Some(built.final_key.short().to_string());
    tag_vars.date = Some(vars::date(now));
    let templates = if tag_args.is_empty() {
        &registry_config.tags
    } else {
        tag_args
    };
    let mut final_tags: Vec<String> = Vec::new();
    for t in templates {
        match tags::render(t, &tag_vars) {
            Ok(Rendered::Tag(tag)) if !final_tags.contains(&tag) => final_tags.push(tag),
            Ok(Rendered::Tag(_)) => {}
            Ok(Rendered::Skipped { variable }) => reporter.report(Event::Note {
                message: format!("tag `{t}` skipped: `{{{variable}}}` is unset"),
            }),
            // `kiln check` refused these in `registry.tags`; `--tag` was checked above.
            Err(error) => {
                return Err(Failure::BadTag {
                    template: t.clone(),
                    error,
                });
            }
        }
    }

    let cache = opts
        .cache_root
        .clone()
        .map_or_else(CacheDir::from_env, CacheDir::new);
    let mut record = PushedRecord::load(&cache.pushed(&habitat.config.name));
    let final_info = engine
        .image_inspect(&built.image)
        .await
        .map_err(|e| Failure::Push(e.into()))?
        .ok_or_else(|| Failure::Push(PushError::NoSuchImage(built.image.clone())))?;
    let final_id = final_info.id;
    // `.created` is when the final image was built, as kiln recorded it
    // when it made (or first found) the image. Kept by final key with the
    // image's build duration, which a final image made again for the same
    // key differs in: a re-push of that key makes the same config.
    let made_at = MadeIndex::load(&cache.made(&habitat.config.name)).made_at(&final_id);
    let build = record.final_build(built.final_key.as_str(), &final_id, || FinalBuild {
        created: vars::rfc3339(made_at.unwrap_or(now)),
        duration_ms: final_info.config.labels.get(LABEL_DURATION).cloned(),
    });
    // Kept before anything goes up: a push interrupted and run again makes
    // the same config, so what the first sent is not sent twice.
    let _ = record.save();
    let source = vars::source(&habitat.dir, &env);
    let mut labels = vars::oci_labels(&build.created, tag_vars.sha.as_deref(), source.as_deref());
    if let Some(d) = build.duration_ms {
        labels.insert(LABEL_DURATION.to_string(), d);
    }
    let targets = push::habitat_targets(
        &habitat.config.name,
        &built.plan,
        &built.image,
        &final_tags,
        &labels,
        registry_config.cache,
    );

    // The build's signal guard is gone, and the signal handlers it set stay
    // (tokio never restores the default): an interrupt now ends the process
    // at once. Nothing needs undoing: the blobs sent stay in the registry
    // for the next push, and the archive's temporary file is swept by it.
    let watcher = tokio::spawn(async {
        let code = interrupted().await;
        crate::render::stdout::err!(
            "\ninterrupted: the push stopped; what went up stays in the registry, and the next push sends only the rest"
        );
        std::process::exit(code);
    });
    let (host, repo) = registry_config.host_and_path();
    let registry = OciRegistry::new(host);
    let mut known = record.configs();
    // Snapshot manifests are dated by their first push from here, kept so a
    // re-push puts the same manifest.
    let mut dates = record.dates();
    let mut created_of = |id: &str| {
        dates
            .entry(id.to_string())
            .or_insert_with(|| vars::rfc3339(now))
            .clone()
    };
    let pushed = push::push(
        &engine,
        &registry,
        repo,
        &targets,
        &mut known,
        &mut created_of,
        reporter.as_mut(),
    )
    .await;
    record.set_dates(&dates);
    // What the push learned is kept even when it stopped half-way.
    record.set_configs(&known);
    let _ = record.save();
    drop(reporter);
    watcher.abort();
    let pushed = pushed.map_err(Failure::Push)?;
    if let Some(last) = pushed.last()
        && progress.resolve() != Progress::Json
    {
        out!("{}@{}", registry_config.repository, last.digest);
    }
    Ok(ExitStatus::Success)
}

/// Waits for SIGINT or SIGTERM; the exit code it means (130, 143).
async fn interrupted() -> i32 {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => tokio::select! {
            _ = tokio::signal::ctrl_c() => 130,
            _ = term.recv() => 143,
        },
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            130
        }
    }
}
