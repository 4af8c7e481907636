//! The executor: carries a [`Plan`] out on an [`Engine`], phase by phase,
//! committing a labelled snapshot after each and tagging it. Everything a
//! phase does to the engine is in this file's `run_*` functions; what they run
//! is decided by the pure modules (`phase_script`, `accounts`, `copy_source`).

pub mod phases;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::cache::dir as cache_dir;
use crate::cache::lock::BuildLock;
use crate::config::{self, BaseSource, Config, Habitat};
use crate::engine::{CommitSpec, ContainerSpec, Engine, EngineError, ImageConfig, Mount};
use crate::executor::phases::accounts::{Accounts, AccountsError};
use crate::executor::phases::script::{PhaseScript, SECRETS_DIR};
use crate::image::archive::{self, ParentImage};
use crate::image::labels::LABEL_VERIFIED;
use crate::image::labels::{LABEL_HABITAT, LABEL_INPUTS, LABEL_KEY, LABEL_PARENT, LABEL_PHASE};
use crate::image::layer_from_tars as host_layer;
use crate::image::layer_from_upper as layer_tar;
use crate::image::names;
use crate::image::rootfs::{self, RootFs};
use crate::image::tar::{append_dir, append_file, append_skel, first_file};
use crate::keys::cache_key::CacheKey;
use crate::keys::canonical;
use crate::keys::chain::KeyChain;
use crate::keys::{BaseFact, Facts};
use crate::phase::Phase;
use crate::plan::snapshots::Snapshots;
use crate::plan::{Action, Plan, PlanOptions};
use crate::report::{Event, PhaseStatus, Reporter};
use crate::sources::copies::Ownership;
use crate::sources::{bootstrap, copies as copy_source, repo, tool};

/// Build containers are named `kiln-build-HABITAT-…`, so a crashed or
/// interrupted build's containers can be found and removed. (Not a label: the
/// engine's commit would copy a container label into the snapshot.)
pub const BUILD_CONTAINER_PREFIX: &str = "kiln-build-";

fn build_container_name(habitat: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{BUILD_CONTAINER_PREFIX}{habitat}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// How many lines of a failed phase's output are kept for the error.
const TAIL_LINES: usize = 50;

/// A build that did not finish.
#[derive(Debug)]
pub enum BuildError {
    /// The config (or a habitat it names as base) is invalid. Exit 2.
    Config(config::Diagnostics),
    /// Bad usage that is not in the config file (e.g. a missing secret). Exit 2.
    Usage(String),
    /// The engine is unreachable or refused a request. Exit 3.
    Engine(EngineError),
    /// A phase failed. Exit 1.
    Phase(PhaseFailure),
}

/// What failed in a phase, for the user to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhaseFailure {
    pub phase: Phase,
    pub message: String,
    /// The command that failed, as the user wrote it.
    pub command: Option<String>,
    pub exit_code: Option<i64>,
    /// The last lines of the phase's output.
    pub output: Vec<String>,
}

impl BuildError {
    /// The process exit code for this error (SPEC §7).
    pub fn exit_code(&self) -> i32 {
        match self {
            BuildError::Config(_) | BuildError::Usage(_) => 2,
            BuildError::Engine(_) => 3,
            BuildError::Phase(_) => 1,
        }
    }
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::Config(d) => write!(f, "{d}"),
            BuildError::Usage(m) => write!(f, "error: {m}"),
            BuildError::Engine(e @ EngineError::Unreachable { .. }) => write!(
                f,
                // One line (SPEC §1): where kiln looked and how to start an engine.
                "error: {e}; hint: start the Docker Engine (`systemctl start docker`, or `dockerd &`), or set `DOCKER_HOST` to where it listens"
            ),
            BuildError::Engine(e) => write!(f, "error: {e}"),
            BuildError::Phase(p) => {
                writeln!(f, "error: phase `{}` failed: {}", p.phase.tag(), p.message)?;
                if let Some(cmd) = &p.command {
                    write!(f, "  command: {cmd}")?;
                    if let Some(code) = p.exit_code {
                        write!(f, "\n  exit code: {code}")?;
                    }
                    writeln!(f)?;
                }
                if !p.output.is_empty() {
                    writeln!(f, "  last {} lines of output:", p.output.len())?;
                    for l in &p.output {
                        writeln!(f, "    | {l}")?;
                    }
                }
                write!(
                    f,
                    "hint: snapshots before `{}` are kept; fix the config and build again to resume there",
                    p.phase.tag()
                )
            }
        }
    }
}

impl std::error::Error for BuildError {}

impl From<EngineError> for BuildError {
    fn from(e: EngineError) -> Self {
        BuildError::Engine(e)
    }
}

fn fail(phase: Phase, message: impl Into<String>) -> BuildError {
    BuildError::Phase(PhaseFailure {
        phase,
        message: message.into(),
        command: None,
        exit_code: None,
        output: Vec::new(),
    })
}

/// A finished build.
#[derive(Debug, Clone)]
pub struct Built {
    /// `habitat-NAME:final-KEY12`
    pub image: String,
    pub final_key: CacheKey,
    pub plan: Plan,
}

/// Options of one build.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    pub plan: PlanOptions,
    /// Where repos, tools, bootstrap and locks are cached; [`cache_dir::cache_root`] by default.
    pub cache_root: Option<PathBuf>,
    /// Extract archive phases into a container even where the parent's
    /// layers can be read on the host (how an engine elsewhere is served; tests
    /// compare the two).
    pub archive_in_container: bool,
}

impl BuildOptions {
    fn cache_root(&self) -> PathBuf {
        self.cache_root
            .clone()
            .unwrap_or_else(cache_dir::cache_root)
    }
}

/// Resolves the facts of `habitat` and plans its build, running nothing.
pub async fn plan<E: Engine>(
    engine: &E,
    habitat: &Habitat,
    opts: &BuildOptions,
) -> Result<(Plan, KeyChain, Snapshots), BuildError> {
    let (facts, snaps) = tokio::join!(
        resolve_facts(engine, habitat, opts, None),
        list_snapshots(engine, &habitat.config.name)
    );
    let (facts, snaps) = (facts?, snaps?);
    let chain = KeyChain::compute(&habitat.config, &facts);
    let plan = Plan::new(&chain, &snaps, opts.plan);
    Ok((plan, chain, snaps))
}

async fn list_snapshots<E: Engine>(engine: &E, habitat: &str) -> Result<Snapshots, BuildError> {
    let images = engine.list_images(&[(LABEL_HABITAT, habitat)]).await?;
    Ok(Snapshots::from_images(habitat, &images))
}

/// Removes the containers an earlier build of `habitat` left (crashed or
/// interrupted). Safe only while holding the habitat's build lock.
pub async fn remove_build_containers<E: Engine>(
    engine: &E,
    habitat: &str,
) -> Result<usize, EngineError> {
    remove_build_containers_but(engine, habitat, None).await
}

/// Like [`remove_build_containers`], sparing those of process `spare` (this
/// build's own, which may be created while the sweep runs).
async fn remove_build_containers_but<E: Engine>(
    engine: &E,
    habitat: &str,
    spare: Option<u32>,
) -> Result<usize, EngineError> {
    let prefix = format!("{BUILD_CONTAINER_PREFIX}{habitat}-");
    let own = spare.map(|pid| format!("{prefix}{pid}-"));
    let mut removed = 0;
    for c in engine.list_containers(LABEL_HABITAT, habitat).await? {
        let name = c.name.trim_start_matches('/');
        if name.starts_with(&prefix) && !own.as_ref().is_some_and(|o| name.starts_with(o)) {
            engine.remove_container(&c.id).await?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Builds `habitat`: resolves facts, plans, and runs every phase that is not cached.
pub async fn build<E: Engine>(
    engine: &E,
    habitat: &Habitat,
    opts: &BuildOptions,
    reporter: &mut dyn Reporter,
) -> Result<Built, BuildError> {
    build_boxed(engine, habitat, opts, reporter).await
}

/// Boxed so a habitat whose base is another habitat can build that one first.
fn build_boxed<'a, E: Engine>(
    engine: &'a E,
    habitat: &'a Habitat,
    opts: &'a BuildOptions,
    reporter: &'a mut dyn Reporter,
) -> Pin<Box<dyn Future<Output = Result<Built, BuildError>> + Send + 'a>> {
    Box::pin(async move {
        let started = Instant::now();
        let name = habitat.config.name.clone();
        reporter.report(Event::BuildStart {
            habitat: name.clone(),
        });
        let result = build_locked(engine, habitat, opts, reporter).await;
        reporter.report(Event::BuildEnd {
            ok: result.is_ok(),
            duration: started.elapsed(),
            image: result.as_ref().ok().map(|b| b.image.clone()),
        });
        result
    })
}

async fn build_locked<E: Engine>(
    engine: &E,
    habitat: &Habitat,
    opts: &BuildOptions,
    reporter: &mut dyn Reporter,
) -> Result<Built, BuildError> {
    let name = habitat.config.name.clone();
    let lock_dir = opts.cache_root().join("locks");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let lock_name = name.clone();
    let lock = tokio::task::spawn_blocking(move || {
        BuildLock::acquire(&lock_dir, &lock_name, |holder| {
            let _ = tx.send(holder.to_string());
        })
    });
    // The waiting notice must reach the user while the lock blocks.
    let mut lock = lock;
    let lock = loop {
        tokio::select! {
            res = &mut lock => break res,
            _ = tokio::time::sleep(Duration::from_millis(50)) => {
                if let Ok(holder) = rx.try_recv() {
                    reporter.report(Event::Waiting { habitat: name.clone(), holder });
                }
            }
        }
    };
    let _lock = lock
        .map_err(|e| BuildError::Usage(format!("build lock task failed: {e}")))?
        .map_err(|e| BuildError::Usage(format!("cannot take the build lock of `{name}`: {e}")))?;
    if let Ok(holder) = rx.try_recv() {
        reporter.report(Event::Waiting {
            habitat: name.clone(),
            holder,
        });
    }

    // The facts and the snapshot listing are independent: one wait for both.
    let (facts, snaps) = tokio::join!(
        resolve_facts(engine, habitat, opts, Some(&mut *reporter)),
        list_snapshots(engine, &name)
    );
    let (facts, snaps) = (facts?, snaps?);
    let chain = KeyChain::compute(&habitat.config, &facts);
    let plan = Plan::new(&chain, &snaps, opts.plan);
    // Containers a crashed build left are removed while this one builds (a
    // no-op build skips the listing: it leaves nothing to clean up after).
    let sweep = async {
        match plan.all_cached() {
            true => Ok(0),
            false => remove_build_containers_but(engine, &name, Some(std::process::id())).await,
        }
    };
    let mut exec = Executor {
        engine,
        habitat,
        opts,
        chain: &chain,
        snaps: &snaps,
        facts: &facts,
        reporter,
        secrets: Vec::new(),
        tags: Vec::new(),
    };
    let (ran, swept) = tokio::join!(exec.run(&plan), sweep);
    ran?;
    swept?;
    let final_key = chain.final_key().clone();
    Ok(Built {
        image: names::final_image(&name, final_key.as_str()),
        final_key,
        plan,
    })
}

/// Reads everything outside the config that keys depend on. With a reporter
/// (a build), a habitat base is built first; without (a plan), only planned.
async fn resolve_facts<E: Engine>(
    engine: &E,
    habitat: &Habitat,
    opts: &BuildOptions,
    reporter: Option<&mut dyn Reporter>,
) -> Result<Facts, BuildError> {
    let c = &habitat.config;
    let base = match c.build.base.source() {
        Some(BaseSource::Image(r)) => BaseFact::Image {
            reference: r.to_string(),
            id: engine.image_inspect(r).await?.map(|i| i.id),
        },
        Some(BaseSource::Bootstrap(b)) => BaseFact::Bootstrap {
            key: bootstrap::bootstrap_key(b),
        },
        Some(BaseSource::Habitat(path)) => {
            let other = load_base_habitat(habitat, path)?;
            let final_key = match reporter {
                Some(r) => {
                    r.report(Event::Note {
                        message: format!("building base habitat `{}`", other.config.name),
                    });
                    build_boxed(engine, &other, opts, r).await?.final_key
                }
                None => {
                    let inner = Box::pin(resolve_facts(engine, &other, opts, None)).await?;
                    KeyChain::compute(&other.config, &inner).final_key().clone()
                }
            };
            BaseFact::Habitat {
                final_key: final_key.to_string(),
            }
        }
        None => {
            return Err(BuildError::Usage(
                "`build.base` must set exactly one of `image`, `habitat`, `bootstrap`".into(),
            ));
        }
    };
    let digests_path = opts
        .cache_root()
        .join("digests")
        .join(format!("{}.json", c.name));
    let mut digests = copy_source::DigestCache::load(&digests_path);
    let mut copies = Vec::new();
    for copy in c.build.files.iter().flat_map(|f| &f.copies) {
        let src = habitat.dir.join(&copy.source);
        copies.push(
            digests
                .digest(&src)
                .map_err(|e| fail(Phase::Files, e.to_string()))?,
        );
    }
    // A cache that cannot be written only costs time next build.
    let _ = digests.save(&digests_path);
    let repos_cache = repo::RepoCache::new(opts.cache_root().join("repos"));
    let mut repos = Vec::new();
    for r in &c.build.repos {
        let commit = repos_cache
            .resolve(&r.url, r.git_ref.as_deref(), &habitat.dir)
            .map_err(|e| fail(Phase::Repos, e.to_string()))?;
        repos.push(commit);
    }
    Ok(Facts {
        base,
        copies,
        repos,
    })
}

fn load_base_habitat(habitat: &Habitat, path: &str) -> Result<Habitat, BuildError> {
    let other = config::load(&habitat.dir.join(path)).map_err(BuildError::Config)?;
    if other.dir == habitat.dir {
        return Err(BuildError::Usage(format!(
            "habitat `{}` names itself as its base",
            habitat.config.name
        )));
    }
    Ok(other)
}

struct Executor<'a, E: Engine> {
    engine: &'a E,
    habitat: &'a Habitat,
    opts: &'a BuildOptions,
    chain: &'a KeyChain,
    snaps: &'a Snapshots,
    facts: &'a Facts,
    reporter: &'a mut dyn Reporter,
    /// Secret values, redacted from every line of output shown.
    secrets: Vec<String>,
    /// The references the phase being built tags its image with: its own, those
    /// of the skipped phases after it, and the final ones when nothing follows.
    /// A load applies them all in the same request.
    tags: Vec<String>,
}

/// An image the build holds for the next phase to build on.
struct Produced {
    image: String,
    /// Known for an image this build made; read with one inspect otherwise.
    state: Option<ImageState>,
    /// References the engine already points at `image` (its load set them).
    tagged: Vec<String>,
}

impl Produced {
    fn listed(image: String) -> Produced {
        Produced {
            image,
            state: None,
            tagged: Vec::new(),
        }
    }
}

/// What a child image needs of its parent: its layers and its config.
#[derive(Clone)]
struct ImageState {
    layers: ParentImage,
    config: ImageConfig,
    /// The layers' directories on the host, when an inspect said (the
    /// engine names them; an image this build loaded is inspected for them
    /// only if a phase reads its files).
    layer_dirs: Option<Vec<String>>,
}

/// The image a phase builds on.
struct Parent {
    id: String,
    layers: ParentImage,
    layer_dirs: Option<Vec<String>>,
}

impl<E: Engine> Executor<'_, E> {
    fn name(&self) -> &str {
        &self.habitat.config.name
    }

    fn config(&self) -> &Config {
        &self.habitat.config
    }

    async fn run(&mut self, plan: &Plan) -> Result<(), BuildError> {
        // The image each phase's successor builds on, and its config once known.
        let mut current: Option<Produced> = None;
        for (index, planned) in plan.phases.iter().enumerate() {
            let phase = planned.phase;
            let started = Instant::now();
            let key = planned.key.key.clone();
            let produced = match &planned.action {
                Action::Cached { image } => Produced::listed(image.clone()),
                Action::Skip => match current.take() {
                    Some(p) => p,
                    None => return Err(fail(phase, "the base phase produced no image")),
                },
                Action::Build => {
                    self.reporter.report(Event::PhaseStart { phase });
                    self.tags = self.tags_from(plan, index);
                    let parent = current.take();
                    match self.build_phase(phase, parent).await {
                        Ok(p) => p,
                        Err(e) => {
                            self.reporter.report(Event::PhaseEnd {
                                phase,
                                status: PhaseStatus::Failed,
                                duration: started.elapsed(),
                                image: String::new(),
                                key: key.to_string(),
                                reason: planned.reason.clone(),
                            });
                            return Err(e);
                        }
                    }
                }
            };
            let tag = names::snapshot(self.name(), phase);
            self.tag(&produced, &tag).await?;
            let status = match planned.action {
                Action::Build => PhaseStatus::Built,
                _ => PhaseStatus::Cached,
            };
            self.reporter.report(Event::PhaseEnd {
                phase,
                status,
                duration: started.elapsed(),
                image: tag,
                key: key.to_string(),
                reason: planned.reason.clone(),
            });
            current = Some(produced);
        }
        let last = current.ok_or_else(|| fail(Phase::Final, "no final image"))?;
        for reference in self.final_tags() {
            self.tag(&last, &reference).await?;
        }
        Ok(())
    }

    /// `habitat-NAME:final-KEY12` and `habitat-NAME:latest`.
    fn final_tags(&self) -> [String; 2] {
        let repo = names::repository(self.name());
        let key = self.chain.final_key();
        [
            format!("{repo}:{}", names::final_tag(key.as_str())),
            format!("{repo}:latest"),
        ]
    }

    /// The references the image of `plan.phases[index]` gets: its own tag,
    /// the tags of the skipped phases after it (they point at the same
    /// image), and the final tags when only skipped phases follow.
    fn tags_from(&self, plan: &Plan, index: usize) -> Vec<String> {
        let rest = &plan.phases[index..];
        let own = rest
            .iter()
            .enumerate()
            .take_while(|(i, p)| *i == 0 || p.action == Action::Skip)
            .count();
        let mut tags: Vec<String> = rest[..own]
            .iter()
            .map(|p| names::snapshot(self.name(), p.phase))
            .collect();
        if own == rest.len() {
            tags.extend(self.final_tags());
        }
        tags
    }

    /// Tags `image` as `reference` unless its load or the listing already did.
    async fn tag(&self, image: &Produced, reference: &str) -> Result<(), BuildError> {
        if image.tagged.iter().any(|t| t == reference)
            || self.snaps.tag_target(reference) == Some(image.image.as_str())
        {
            return Ok(());
        }
        let (repo, tag) = reference.rsplit_once(':').unwrap_or((reference, "latest"));
        self.engine.tag(&image.image, repo, tag).await?;
        Ok(())
    }

    /// The layers and config of an image the build did not make itself.
    async fn image_state(&self, image: &str) -> Result<ImageState, BuildError> {
        let info = self
            .engine
            .image_inspect(image)
            .await?
            .ok_or_else(|| BuildError::Engine(EngineError::NoSuchImage(image.to_string())))?;
        Ok(ImageState {
            layers: ParentImage {
                layers: info.layers,
                architecture: info.architecture,
                os: info.os,
                created: info.created,
            },
            config: info.config,
            layer_dirs: Some(info.layer_dirs),
        })
    }

    async fn build_phase(
        &mut self,
        phase: Phase,
        parent: Option<Produced>,
    ) -> Result<Produced, BuildError> {
        if phase == Phase::Base {
            let id = self.resolve_base().await?;
            let state = self.image_state(&id).await?;
            let parent = Parent {
                id,
                layers: state.layers,
                layer_dirs: state.layer_dirs,
            };
            return self.load_phase(phase, &parent, state.config).await;
        }
        let parent = parent.ok_or_else(|| fail(phase, "no parent image"))?;
        let state = match parent.state {
            Some(s) => s,
            None => self.image_state(&parent.image).await?,
        };
        let parent_config = state.config.clone();
        let image = Parent {
            id: parent.image,
            layers: state.layers.clone(),
            layer_dirs: state.layer_dirs.clone(),
        };
        match phase {
            Phase::Base => unreachable_phase(phase),
            Phase::Users => self.run_users(&image, parent_config).await,
            Phase::Env => {
                let mut config = parent_config;
                let vars = self.config().build.env.to_map();
                config
                    .env
                    .retain(|kv| !vars.contains_key(kv.split('=').next().unwrap_or("")));
                config
                    .env
                    .extend(vars.iter().map(|(k, v)| format!("{k}={v}")));
                self.load_phase(phase, &image, config).await
            }
            Phase::Habitat => self.run_habitat(&image, parent_config).await,
            Phase::Files => self.run_files(&image, parent_config).await,
            Phase::Setup => self.run_script(phase, &image, parent_config).await,
            Phase::Repos => self.run_repos(&image, parent_config).await,
            Phase::Tools => self.run_tools(&image, parent_config).await,
            Phase::Verify => {
                self.run_verify(&image, &parent_config).await?;
                Ok(Produced {
                    image: image.id,
                    state: Some(state),
                    tagged: parent.tagged,
                })
            }
            Phase::Final => {
                let mut config = parent_config;
                let f = self.config().build.final_.clone().unwrap_or_default();
                if f.user.is_some() {
                    config.user = f.user;
                }
                if f.workdir.is_some() {
                    config.working_dir = f.workdir;
                }
                if f.command.is_some() {
                    config.cmd = f.command;
                }
                if f.entrypoint.is_some() {
                    config.entrypoint = f.entrypoint;
                }
                for p in &f.expose {
                    if !config.exposed_ports.contains(&p.docker()) {
                        config.exposed_ports.push(p.docker());
                    }
                }
                config.labels.extend(f.labels);
                let verify_key = self.chain.get(Phase::Verify).key.to_string();
                config.labels.insert(LABEL_VERIFIED.to_string(), verify_key);
                self.load_phase(phase, &image, config).await
            }
        }
    }

    async fn resolve_base(&mut self) -> Result<String, BuildError> {
        let config = self.config().clone();
        match config.build.base.source() {
            Some(BaseSource::Image(r)) => {
                if let Some(info) = self.engine.image_inspect(r).await? {
                    return Ok(info.id);
                }
                self.reporter.report(Event::Note {
                    message: format!("pulling `{r}`"),
                });
                self.engine.pull(r).await.map_err(|e| match e {
                    EngineError::Unreachable { .. } => BuildError::Engine(e),
                    other => fail(Phase::Base, format!("cannot pull base image `{r}`: {other}\nhint: check the name, or make the image locally (`docker import`, or use `base: {{ bootstrap: ... }}`)")),
                })?;
                match self.engine.image_inspect(r).await? {
                    Some(info) => Ok(info.id),
                    None => Err(fail(
                        Phase::Base,
                        format!("base image `{r}` is missing after its pull"),
                    )),
                }
            }
            Some(BaseSource::Bootstrap(b)) => {
                let reporter = &mut *self.reporter;
                let mut on_line = |line: &str| {
                    reporter.report(Event::PhaseLog {
                        phase: Phase::Base,
                        stream: "stdout",
                        line: line.to_string(),
                    });
                };
                bootstrap::ensure_image_in(
                    self.engine,
                    b,
                    &self.opts.cache_root().join("bootstrap"),
                    &mut on_line,
                )
                .await
                .map_err(|e| fail(Phase::Base, e.to_string()))
            }
            Some(BaseSource::Habitat(path)) => {
                let BaseFact::Habitat { final_key } = &self.facts.base else {
                    return Err(fail(Phase::Base, "base habitat was not resolved"));
                };
                let other = load_base_habitat(self.habitat, path)?;
                Ok(names::final_image(&other.config.name, final_key))
            }
            None => Err(fail(Phase::Base, "no base")),
        }
    }

    /// The labels every snapshot carries (SPEC §4), on top of `config`'s own.
    fn snapshot_config(&self, phase: Phase, mut config: ImageConfig) -> ImageConfig {
        let pk = self.chain.get(phase);
        let parent = phase
            .previous()
            .map(|p| self.chain.get(p).key.to_string())
            .unwrap_or_default();
        if phase != Phase::Final {
            config.labels.remove(LABEL_VERIFIED);
        }
        config
            .labels
            .insert(LABEL_HABITAT.into(), self.name().to_string());
        config.labels.insert(LABEL_PHASE.into(), phase.tag());
        config.labels.insert(LABEL_KEY.into(), pk.key.to_string());
        config.labels.insert(LABEL_PARENT.into(), parent);
        config
            .labels
            .insert(LABEL_INPUTS.into(), canonical::to_string(&pk.inputs));
        config
    }

    fn container_spec(&self, image: &str) -> ContainerSpec {
        let mut labels = BTreeMap::new();
        labels.insert(LABEL_HABITAT.to_string(), self.name().to_string());
        ContainerSpec {
            image: image.to_string(),
            name: Some(build_container_name(self.name())),
            // Never started; a command is still needed where the image has none.
            entrypoint: Some(vec!["/bin/sh".into()]),
            labels,
            network_host: true,
            ..Default::default()
        }
    }

    /// A phase that changes only image config: one `docker load` of an archive
    /// reusing the parent's layers; no container, no commit.
    async fn load_phase(
        &mut self,
        phase: Phase,
        parent: &Parent,
        config: ImageConfig,
    ) -> Result<Produced, BuildError> {
        let config = self.snapshot_config(phase, config);
        self.load_config_only(phase, &parent.layers, config).await
    }

    async fn load_config_only(
        &self,
        phase: Phase,
        layers: &ParentImage,
        config: ImageConfig,
    ) -> Result<Produced, BuildError> {
        let archive = archive::config_only(
            layers,
            &config,
            &format!("kiln {}", phase.tag()),
            &self.tags,
        );
        self.engine.load(Bytes::from(archive.tar)).await?;
        Ok(Produced {
            image: archive.image_id,
            state: Some(ImageState {
                layers: layers.clone(),
                config,
                layer_dirs: None,
            }),
            tagged: self.tags.clone(),
        })
    }

    /// An archive phase (users, habitat, files, repos, tools): tars made on
    /// the host that become the phase's layer. Where the parent's layer
    /// directories can be read here, the layer is written on the host against
    /// them ([`host_layer`]); otherwise the tars are extracted into a created
    /// (never started) container of `image`, which becomes the snapshot.
    /// `make` gets what `needs` asks of the image (its accounts, to resolve
    /// owners; `/etc/skel`); it returns the tars and log lines.
    async fn archive_phase<F>(
        &mut self,
        phase: Phase,
        image: &Parent,
        config: ImageConfig,
        needs: Needs,
        make: F,
    ) -> Result<Produced, BuildError>
    where
        F: FnOnce(&ImageFacts) -> Result<Uploads, BuildError>,
    {
        if let Some(rootfs) = self.host_rootfs(image).await? {
            let facts = self.image_facts(FileSource::Host(&rootfs), needs).await?;
            let mut uploads = make(&facts)?;
            self.report_log(phase, std::mem::take(&mut uploads.log));
            return self.host_layer(phase, image, config, rootfs, uploads).await;
        }
        let spec = self.container_spec(&image.id);
        let id = self.engine.create_container(&spec).await?;
        let filled = async {
            let facts = self.image_facts(FileSource::Container(&id), needs).await?;
            let mut uploads = make(&facts)?;
            self.report_log(phase, std::mem::take(&mut uploads.log));
            for tar in uploads.tars {
                self.engine.put_archive(&id, "/", tar).await?;
            }
            for file in &uploads.files {
                self.engine
                    .put_archive_file(&id, "/", file.to_path_buf())
                    .await?;
            }
            for produce in uploads.streams {
                let file = tokio::task::spawn_blocking(move || {
                    let mut file = tempfile::NamedTempFile::new()?;
                    produce(&mut std::io::BufWriter::new(file.as_file_mut()))?;
                    Ok::<_, std::io::Error>(file.into_temp_path())
                })
                .await
                .map_err(|e| BuildError::Usage(format!("archive task failed: {e}")))?
                .map_err(|e| fail(phase, e.to_string()))?;
                self.engine
                    .put_archive_file(&id, "/", file.to_path_buf())
                    .await?;
            }
            Ok(())
        }
        .await;
        self.snapshot_or_discard(phase, &id, image, config, filled)
            .await
    }

    fn report_log(&mut self, phase: Phase, lines: Vec<String>) {
        for line in lines {
            self.reporter.report(Event::PhaseLog {
                phase,
                stream: "stdout",
                line,
            });
        }
    }

    /// The parent's file system on the host, when its storage driver keeps
    /// layers as directories this process can read.
    async fn host_rootfs(&self, image: &Parent) -> Result<Option<RootFs>, BuildError> {
        if self.opts.archive_in_container {
            return Ok(None);
        }
        let dirs = match &image.layer_dirs {
            Some(dirs) => dirs.clone(),
            None => self
                .image_state(&image.id)
                .await?
                .layer_dirs
                .unwrap_or_default(),
        };
        let dirs: Vec<PathBuf> = dirs.into_iter().map(PathBuf::from).collect();
        if !dirs.iter().all(|d| rootfs::owners_are_real(d)) {
            return Ok(None);
        }
        Ok(RootFs::open(dirs))
    }

    /// Writes the layer of `uploads` over `rootfs` on the host and loads it
    /// as the phase's snapshot.
    async fn host_layer(
        &self,
        phase: Phase,
        parent: &Parent,
        config: ImageConfig,
        rootfs: RootFs,
        uploads: Uploads,
    ) -> Result<Produced, BuildError> {
        let config = self.snapshot_config(phase, config);
        let layers = parent.layers.clone();
        let image_config = config.clone();
        let comment = format!("kiln {}", phase.tag());
        let tags = self.tags.clone();
        let written = tokio::task::spawn_blocking(move || {
            let Uploads {
                tars,
                files,
                streams,
                ..
            } = uploads;
            let sources: Vec<host_layer::Source> = tars
                .iter()
                .map(|t| host_layer::Source::Bytes(t))
                .chain(files.iter().map(|f| host_layer::Source::File(f)))
                .chain(streams.into_iter().map(host_layer::Source::Stream))
                .collect();
            write_layer_archive(&layers, &image_config, &comment, &tags, |out| {
                host_layer::write_layer(&rootfs, sources, out)
            })
        })
        .await
        .map_err(|e| BuildError::Usage(format!("layer task failed: {e}")))?
        .map_err(|e| fail(phase, format!("cannot write the layer: {e}")))?;
        match written {
            WrittenLayer::Layer {
                _dir,
                archive,
                image,
                layers,
            } => {
                self.engine.load_file(archive).await?;
                Ok(Produced {
                    image,
                    state: Some(ImageState {
                        layers,
                        config,
                        layer_dirs: None,
                    }),
                    tagged: self.tags.clone(),
                })
            }
            WrittenLayer::Empty => self.load_config_only(phase, &parent.layers, config).await,
        }
    }

    /// Snapshots container `id` when `ready` (the phase's work in it
    /// succeeded); removes the container either way.
    async fn snapshot_or_discard(
        &self,
        phase: Phase,
        id: &str,
        parent: &Parent,
        config: ImageConfig,
        ready: Result<(), BuildError>,
    ) -> Result<Produced, BuildError> {
        match ready {
            Ok(()) => self.snapshot(phase, id, parent, config).await,
            Err(e) => {
                // The phase's own error says more than a failed clean-up would.
                let _ = self.engine.remove_container(id).await;
                Err(e)
            }
        }
    }

    /// Makes the snapshot image of a phase from its container, and removes the
    /// container: the container's writable layer read from the host as a new
    /// layer on the parent's, then one `docker load` (while the container is
    /// removed); or, when the engine's layer dir cannot be read (a remote
    /// engine, another storage driver), `docker commit`.
    async fn snapshot(
        &self,
        phase: Phase,
        container: &str,
        parent: &Parent,
        config: ImageConfig,
    ) -> Result<Produced, BuildError> {
        let config = self.snapshot_config(phase, config);
        let comment = format!("kiln {}", phase.tag());
        let layered = match self
            .write_upper_dir(container, parent, &config, &comment)
            .await
        {
            Ok(layered) => layered,
            Err(e) => {
                let _ = self.engine.remove_container(container).await;
                return Err(e);
            }
        };
        match layered {
            Some(WrittenLayer::Layer {
                _dir,
                archive,
                image,
                layers,
            }) => {
                // The layer is in the archive: the container is not needed
                // any more, and removing it costs the load nothing.
                let (loaded, removed) = tokio::join!(
                    self.engine.load_file(archive),
                    self.engine.remove_container(container)
                );
                loaded?;
                removed?;
                Ok(Produced {
                    image,
                    state: Some(ImageState {
                        layers,
                        config,
                        layer_dirs: None,
                    }),
                    tagged: self.tags.clone(),
                })
            }
            Some(WrittenLayer::Empty) => {
                // Nothing changed in the container: a config-only image, as
                // Docker makes for an instruction that changes no file.
                let (loaded, removed) = tokio::join!(
                    self.load_config_only(phase, &parent.layers, config),
                    self.engine.remove_container(container)
                );
                removed?;
                loaded
            }
            None => {
                let committed = self
                    .engine
                    .commit(&CommitSpec {
                        container: container.to_string(),
                        config: config.clone(),
                        comment: Some(comment),
                    })
                    .await;
                self.engine.remove_container(container).await?;
                // A commit's layers are the engine's to say: read when needed.
                Ok(Produced {
                    image: committed?,
                    state: None,
                    tagged: Vec::new(),
                })
            }
        }
    }

    /// The archive of the container's writable layer over the parent's
    /// layers; `Ok(None)` when the upper dir is not readable here (commit
    /// instead).
    async fn write_upper_dir(
        &self,
        container: &str,
        parent: &Parent,
        config: &ImageConfig,
        comment: &str,
    ) -> Result<Option<WrittenLayer>, BuildError> {
        let Some(upper) = self
            .engine
            .inspect_container(container)
            .await?
            .and_then(|c| c.upper_dir)
        else {
            return Ok(None);
        };
        let upper = PathBuf::from(upper);
        if std::fs::read_dir(&upper).is_err() || !rootfs::owners_are_real(&upper) {
            return Ok(None);
        }
        let layers = parent.layers.clone();
        let config = config.clone();
        let comment = comment.to_string();
        let tags = self.tags.clone();
        // Reading the upper dir and writing the archive is blocking file work.
        let written = tokio::task::spawn_blocking(move || {
            write_layer_archive(&layers, &config, &comment, &tags, |out| {
                layer_tar::write_layer(&upper, out)
            })
        })
        .await
        .map_err(|e| BuildError::Usage(format!("layer task failed: {e}")))?;
        // An unreadable upper dir is not an error: commit does the same work.
        Ok(written.ok())
    }

    /// A regular file of the parent image and its mode.
    async fn image_file(
        &self,
        source: FileSource<'_>,
        path: &str,
    ) -> Result<Option<(Vec<u8>, u32)>, BuildError> {
        match source {
            FileSource::Host(rootfs) => rootfs
                .read_file(path)
                .map_err(|e| BuildError::Usage(format!("cannot read `{path}` of the image: {e}"))),
            FileSource::Container(id) => Ok(self
                .engine
                .get_archive(id, path)
                .await?
                .and_then(|tar| first_file(&tar))),
        }
    }

    /// What an archive phase needs to know of its parent image.
    async fn image_facts(
        &self,
        source: FileSource<'_>,
        needs: Needs,
    ) -> Result<ImageFacts, BuildError> {
        let mut facts = ImageFacts::default();
        if needs.accounts {
            let mut files = BTreeMap::new();
            for path in ["/etc/passwd", "/etc/group", "/etc/shadow"] {
                if let Some((content, mode)) = self.image_file(source, path).await? {
                    files.insert(path, content);
                    facts.modes.insert(path.to_string(), mode);
                }
            }
            let text = |p: &str| {
                files
                    .get(p)
                    .map(|b| String::from_utf8_lossy(b).into_owned())
            };
            facts.accounts = Accounts {
                passwd: text("/etc/passwd").unwrap_or_default(),
                group: text("/etc/group").unwrap_or_default(),
                shadow: text("/etc/shadow"),
            };
        }
        if needs.skel {
            facts.skel = match source {
                FileSource::Host(rootfs) => {
                    host_layer::archive_of(rootfs, "/etc/skel").map_err(|e| {
                        BuildError::Usage(format!("cannot read `/etc/skel` of the image: {e}"))
                    })?
                }
                FileSource::Container(id) => self
                    .engine
                    .get_archive(id, "/etc/skel")
                    .await?
                    .map(|b| b.to_vec()),
            };
        }
        Ok(facts)
    }

    async fn run_users(
        &mut self,
        image: &Parent,
        config: ImageConfig,
    ) -> Result<Produced, BuildError> {
        let phase = Phase::Users;
        let users = self.config().build.users.clone();
        let needs = Needs {
            accounts: true,
            skel: true,
        };
        self.archive_phase(phase, image, config, needs, |facts| {
            let mut accounts = facts.accounts.clone();
            let modes = &facts.modes;
            let created = accounts
                .add_users(&users)
                .map_err(|e: AccountsError| fail(phase, e.to_string()))?;
            let mut tar = tar::Builder::new(Vec::new());
            let shadow_gid = accounts.resolve_group("shadow").unwrap_or(0);
            let mut put = |path: &str, content: &str, mode: u32, gid: u32| {
                append_file(&mut tar, path, content.as_bytes(), mode, 0, gid).map_err(archive_error)
            };
            put(
                "etc/passwd",
                &accounts.passwd,
                *modes.get("/etc/passwd").unwrap_or(&0o644),
                0,
            )?;
            put(
                "etc/group",
                &accounts.group,
                *modes.get("/etc/group").unwrap_or(&0o644),
                0,
            )?;
            if let Some(shadow) = &accounts.shadow {
                put(
                    "etc/shadow",
                    shadow,
                    *modes.get("/etc/shadow").unwrap_or(&0o640),
                    shadow_gid,
                )?;
            }
            for u in &created {
                append_dir(
                    &mut tar,
                    u.home.trim_start_matches('/'),
                    0o755,
                    u.uid,
                    u.gid,
                )
                .map_err(archive_error)?;
                if let Some(skel) = &facts.skel {
                    append_skel(&mut tar, skel, u.home.trim_start_matches('/'), u.uid, u.gid)
                        .map_err(archive_error)?;
                }
            }
            let bytes = tar
                .into_inner()
                .map_err(|e| fail(phase, format!("cannot build archive: {e}")))?;
            Ok(Uploads {
                tars: vec![Bytes::from(bytes)],
                ..Uploads::default()
            })
        })
        .await
    }

    async fn run_habitat(
        &mut self,
        image: &Parent,
        mut config: ImageConfig,
    ) -> Result<Produced, BuildError> {
        let phase = Phase::Habitat;
        let h = self.config().build.habitat.clone().unwrap_or_default();
        if let Some(w) = &h.work_dir {
            config.working_dir = Some(w.clone());
        }
        self.archive_phase(phase, image, config, Needs::default(), |_| {
            let mut tar = tar::Builder::new(Vec::new());
            // Only the listed directories: the engine creates missing parents
            // (root, 0755) and existing parents keep their modes.
            for dir in h.dirs.iter().chain(h.work_dir.iter()) {
                append_dir(&mut tar, dir.trim_start_matches('/'), 0o755, 0, 0)
                    .map_err(archive_error)?;
            }
            let bytes = tar.into_inner().map_err(archive_error)?;
            Ok(Uploads {
                tars: vec![Bytes::from(bytes)],
                ..Uploads::default()
            })
        })
        .await
    }

    async fn run_files(
        &mut self,
        image: &Parent,
        config: ImageConfig,
    ) -> Result<Produced, BuildError> {
        let phase = Phase::Files;
        let copies = self.config().build.files.clone().unwrap_or_default().copies;
        let dir = self.habitat.dir.clone();
        let needs_accounts = copies
            .iter()
            .any(|c| names_an_account(c.owner.as_deref()) || names_an_account(c.group.as_deref()));
        let needs = Needs {
            accounts: needs_accounts,
            skel: false,
        };
        self.archive_phase(phase, image, config, needs, |facts| {
            let accounts = &facts.accounts;
            // Every owner and mode is resolved before a byte is written.
            let mut placed = Vec::new();
            for c in &copies {
                let in_copy = |e: AccountsError| fail(phase, format!("copy to `{}`: {e}", c.dest));
                let (uid, mut gid) = accounts
                    .resolve_owner(c.owner.as_deref())
                    .map_err(in_copy)?;
                if let Some(g) = &c.group {
                    gid = accounts.resolve_group(g).map_err(in_copy)?;
                }
                let file_mode = match &c.mode {
                    Some(m) => Some(
                        u32::from_str_radix(m, 8)
                            .map_err(|_| fail(phase, format!("invalid mode `{m}`")))?,
                    ),
                    None => None,
                };
                let own = Ownership {
                    uid,
                    gid,
                    file_mode,
                };
                placed.push((dir.join(&c.source), c.dest.clone(), own));
            }
            let produce: host_layer::Producer = Box::new(move |out| {
                let mut tar = tar::Builder::new(std::io::BufWriter::with_capacity(256 * 1024, out));
                for (source, dest, own) in &placed {
                    copy_source::append_to_tar(&mut tar, source, dest, *own)
                        .map_err(std::io::Error::other)?;
                }
                std::io::Write::flush(&mut tar.into_inner()?)
            });
            Ok(Uploads {
                streams: vec![produce],
                ..Uploads::default()
            })
        })
        .await
    }

    async fn run_repos(
        &mut self,
        image: &Parent,
        config: ImageConfig,
    ) -> Result<Produced, BuildError> {
        let phase = Phase::Repos;
        let repos = self.config().build.repos.clone();
        let commits = self.facts.repos.clone();
        let dir = self.habitat.dir.clone();
        let cache = repo::RepoCache::new(self.opts.cache_root().join("repos"));
        let needs_accounts = repos.iter().any(|r| names_an_account(r.owner.as_deref()));
        let needs = Needs {
            accounts: needs_accounts,
            skel: false,
        };
        self.archive_phase(phase, image, config, needs, |facts| {
            let accounts = &facts.accounts;
            let mut uploads = Uploads::default();
            for (r, commit) in repos.iter().zip(&commits) {
                let (uid, gid) = accounts
                    .resolve_owner(r.owner.as_deref())
                    .map_err(|e| fail(phase, format!("repo `{}`: {e}", r.url)))?;
                let tar = cache
                    .archive(&r.url, commit, &dir, &r.path, uid, gid)
                    .map_err(|e| fail(phase, e.to_string()))?;
                uploads.log.push(format!(
                    "{} @ {} -> {}",
                    r.url,
                    &commit[..commit.len().min(12)],
                    r.path
                ));
                uploads.files.push(tar.into_temp_path());
            }
            Ok(uploads)
        })
        .await
    }

    async fn run_tools(
        &mut self,
        image: &Parent,
        config: ImageConfig,
    ) -> Result<Produced, BuildError> {
        let phase = Phase::Tools;
        let tools = self.config().build.tools.clone();
        let cache = self.opts.cache_root().join("tools");
        let mut uploads = Uploads::default();
        // Every checksum is checked before the container is even created.
        for t in &tools {
            let path = tool::fetch_tool(t, &self.habitat.dir, &cache)
                .map_err(|e| fail(phase, e.to_string()))?;
            let tar =
                tool::tool_archive(&path, &t.dest()).map_err(|e| fail(phase, e.to_string()))?;
            uploads.log.push(format!("{} -> {}", t.name, t.dest()));
            uploads.tars.push(Bytes::from(tar));
        }
        self.archive_phase(phase, image, config, Needs::default(), |_| Ok(uploads))
            .await
    }

    /// Reads each declared secret on the host into a private directory that is
    /// mounted read-only for the setup container only.
    fn secrets_dir(&mut self) -> Result<Option<tempfile::TempDir>, BuildError> {
        let secrets = self.config().secrets.clone();
        if secrets.is_empty() {
            return Ok(None);
        }
        let dir = tempfile::Builder::new()
            .prefix("kiln-secrets-")
            .tempdir()
            .map_err(|e| {
                BuildError::Usage(format!("cannot create a directory for secrets: {e}"))
            })?;
        for s in &secrets {
            let value = match (&s.env, &s.file) {
                (Some(env), _) => std::env::var(env).map_err(|_| {
                    BuildError::Usage(format!(
                        "secret `{}` reads the environment variable `{env}`, which is not set\nhint: `export {env}=...` before building",
                        s.id
                    ))
                })?,
                (None, Some(file)) => std::fs::read_to_string(self.habitat.dir.join(file)).map_err(|e| {
                    BuildError::Usage(format!("secret `{}` cannot be read from `{file}`: {e}", s.id))
                })?,
                (None, None) => return Err(BuildError::Usage(format!("secret `{}` has no `env` or `file`", s.id))),
            };
            let path = dir.path().join(&s.id);
            std::fs::write(&path, &value)
                .map_err(|e| BuildError::Usage(format!("cannot write secret `{}`: {e}", s.id)))?;
            set_mode(&path, 0o444);
            if !value.trim().is_empty() {
                self.secrets.push(value.trim().to_string());
            }
        }
        set_mode(dir.path(), 0o755);
        Ok(Some(dir))
    }

    fn redact(&self, line: &str) -> String {
        let mut out = line.to_string();
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), "***");
            }
        }
        out
    }

    /// Runs a phase script in a started container; on success commits it.
    async fn run_script(
        &mut self,
        phase: Phase,
        image: &Parent,
        config: ImageConfig,
    ) -> Result<Produced, BuildError> {
        let id = self.start_script(phase, &image.id, &config).await?;
        self.snapshot(phase, &id, image, config).await
    }

    async fn run_verify(&mut self, image: &Parent, config: &ImageConfig) -> Result<(), BuildError> {
        // A verify of files alone is a lookup in the image's layers: no
        // container to start, where they can be read here.
        let script = PhaseScript::verify(self.config());
        let verify = self.config().build.verify.clone().unwrap_or_default();
        if verify.commands.is_empty()
            && !verify.files.iter().any(|f| engine_provided(f))
            && let Some(rootfs) = self.host_rootfs(image).await?
        {
            for (file, step) in verify.files.iter().zip(&script.steps) {
                // `test -e` follows symlinks; a dangling one, or a path through
                // a file, does not exist.
                let missing = match rootfs.follow(file) {
                    Ok(Some(_)) => continue,
                    Ok(None) => format!("`{file}` does not exist in the image"),
                    Err(e) => format!("`{file}` is not in the image: {e}"),
                };
                return Err(BuildError::Phase(PhaseFailure {
                    phase: Phase::Verify,
                    message: "a command failed".to_string(),
                    command: Some(step.command.clone()),
                    exit_code: Some(1),
                    output: vec![missing],
                }));
            }
            return Ok(());
        }
        let id = self.start_script(Phase::Verify, &image.id, config).await?;
        self.engine.remove_container(&id).await?;
        Ok(())
    }

    /// Creates the phase's container, uploads its script, runs it to the end
    /// and returns the container (exited 0) for the caller to commit and remove.
    async fn start_script(
        &mut self,
        phase: Phase,
        image: &str,
        config: &ImageConfig,
    ) -> Result<String, BuildError> {
        let script = match phase {
            Phase::Setup => PhaseScript::setup(self.config()),
            _ => PhaseScript::verify(self.config()),
        };
        let secrets = if phase == Phase::Setup {
            self.secrets_dir()?
        } else {
            None
        };
        let mut spec = self.container_spec(image);
        spec.entrypoint = Some(vec!["/bin/sh".into(), "-c".into(), script.script()]);
        // Steps start as root. Set only when the image names another user: a
        // user set here would otherwise be merged into the committed config.
        if config.user.as_deref().is_some_and(|u| !u.is_empty()) {
            spec.user = Some("0:0".into());
        }
        if let Some(dir) = &secrets {
            spec.mounts.push(Mount {
                source: dir.path().display().to_string(),
                target: SECRETS_DIR.into(),
                readonly: true,
            });
        }
        let id = self.engine.create_container(&spec).await?;
        let result = self.run_steps(phase, &id, &script).await;
        drop(secrets);
        if let Err(e) = result {
            self.engine.remove_container(&id).await?;
            return Err(e);
        }
        Ok(id)
    }

    async fn run_steps(
        &mut self,
        phase: Phase,
        id: &str,
        script: &PhaseScript,
    ) -> Result<(), BuildError> {
        let mut tail: std::collections::VecDeque<String> = std::collections::VecDeque::new();
        let mut failed: Option<(usize, i64)> = None;
        let (tx, mut rx) =
            tokio::sync::mpsc::unbounded_channel::<(crate::engine::Stream, String)>();
        let mut on_line = move |stream: crate::engine::Stream, line: &str| {
            let _ = tx.send((stream, line.to_string()));
        };
        let run = self.engine.run_container(id, &mut on_line);
        tokio::pin!(run);
        let code = loop {
            tokio::select! {
                biased;
                Some((stream, line)) = rx.recv() => self.on_output(phase, stream, &line, &mut tail, &mut failed),
                code = &mut run => break code?,
            }
        };
        while let Ok((stream, line)) = rx.try_recv() {
            self.on_output(phase, stream, &line, &mut tail, &mut failed);
        }
        if code == 0 {
            return Ok(());
        }
        let (command, exit_code) = match failed {
            Some((i, c)) => (script.steps.get(i).map(|s| s.command.clone()), c),
            None => (None, code),
        };
        Err(BuildError::Phase(PhaseFailure {
            phase,
            message: match &command {
                Some(_) => "a command failed".to_string(),
                None => format!("the phase's container exited with code {code}"),
            },
            command: command.map(|c| self.redact(&c)),
            exit_code: Some(exit_code),
            output: tail.into_iter().collect(),
        }))
    }

    fn on_output(
        &mut self,
        phase: Phase,
        stream: crate::engine::Stream,
        line: &str,
        tail: &mut std::collections::VecDeque<String>,
        failed: &mut Option<(usize, i64)>,
    ) {
        if let Some(f) = PhaseScript::parse_failure(line) {
            *failed = Some(f);
            return;
        }
        let line = self.redact(line);
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line.clone());
        self.reporter.report(Event::PhaseLog {
            phase,
            stream: stream.as_str(),
            line,
        });
    }
}

/// Where an archive phase reads its parent image's files.
#[derive(Clone, Copy)]
enum FileSource<'a> {
    /// The parent's layer directories, on the host.
    Host(&'a RootFs),
    /// A created (never started) container of the parent.
    Container(&'a str),
}

/// What an archive phase asks of its parent image.
#[derive(Debug, Clone, Copy, Default)]
struct Needs {
    /// `/etc/passwd`, `/etc/group` and `/etc/shadow`, to resolve owners.
    accounts: bool,
    /// `/etc/skel`, for new users' homes.
    skel: bool,
}

#[derive(Default)]
struct ImageFacts {
    accounts: Accounts,
    /// The modes of the accounts files.
    modes: BTreeMap<String, u32>,
    /// `/etc/skel` as an archive of the engine's form.
    skel: Option<Vec<u8>>,
}

/// A phase's new layer, in a loadable archive over its parent's layers.
enum WrittenLayer {
    Layer {
        /// Holds `archive`; removed when dropped.
        _dir: tempfile::TempDir,
        archive: PathBuf,
        image: String,
        layers: ParentImage,
    },
    /// The layer would be empty: the phase changed no file.
    Empty,
}

/// Writes the archive of an image with `parent`'s layers plus the one
/// `write` makes, in a temporary directory. Blocking.
fn write_layer_archive<F>(
    parent: &ParentImage,
    config: &ImageConfig,
    comment: &str,
    tags: &[String],
    write: F,
) -> std::io::Result<WrittenLayer>
where
    F: FnOnce(&mut dyn std::io::Write) -> std::io::Result<crate::image::layer::Layer>,
{
    let dir = tempfile::Builder::new().prefix("kiln-layer-").tempdir()?;
    let archive = dir.path().join("image.tar");
    let (image, layer) = archive::write_with_layer(parent, config, comment, tags, &archive, write)?;
    if layer.entries == 0 {
        return Ok(WrittenLayer::Empty);
    }
    let mut layers = parent.clone();
    layers.layers.push(layer.diff_id);
    Ok(WrittenLayer::Layer {
        _dir: dir,
        archive,
        image,
        layers,
    })
}

/// What an archive phase extracts into its container, and what it says.
#[derive(Default)]
struct Uploads {
    tars: Vec<Bytes>,
    /// Large tars, as files on the host (removed when dropped).
    files: Vec<tempfile::TempPath>,
    /// Tars written on demand: streamed into a layer written on the host, or
    /// stored in a file first for a container.
    streams: Vec<host_layer::Producer>,
    log: Vec<String>,
}

/// Paths a container has that its image does not: the engine mounts or
/// makes them in every container (`/proc`, `/etc/hosts`, ...), so only a
/// container can say whether they exist.
fn engine_provided(path: &str) -> bool {
    let p = format!("/{}", path.trim_start_matches('/'));
    ["/proc", "/sys", "/dev", "/run/secrets"]
        .iter()
        .any(|d| p == *d || p.starts_with(&format!("{d}/")))
        || [
            "/etc/hosts",
            "/etc/hostname",
            "/etc/resolv.conf",
            "/.dockerenv",
        ]
        .contains(&p.as_str())
}

/// Whether an owner or group names an account that must be looked up in the
/// image (a name other than root); numbers and `root` need no lookup.
fn names_an_account(owner: Option<&str>) -> bool {
    owner.is_some_and(|o| o != "root" && o.parse::<u32>().is_err())
}

fn unreachable_phase(phase: Phase) -> Result<Produced, BuildError> {
    Err(fail(phase, "internal error: phase dispatched twice"))
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
}

fn archive_error(e: std::io::Error) -> BuildError {
    BuildError::Usage(format!("cannot build an archive: {e}"))
}
