//! The executor's state: what one build holds while it runs ([`Executor`]),
//! what each phase gets ([`PhaseCtx`]) and what it hands on ([`Produced`]).
//! The bottom of the executor's modules: everything else builds on these.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use crate::cache::owner::Owner;

use crate::cache::MadeIndex;
use crate::config::{Config, Habitat};
use crate::engine::{ContainerSpec, Engine, EngineError, ImageConfig};
use crate::image::archive::ParentImage;
use crate::image::labels::{
    LABEL_DURATION, LABEL_HABITAT, LABEL_INPUTS, LABEL_KEY, LABEL_PARENT, LABEL_PHASE, LABEL_STEP,
    LABEL_STEP_DURATION, LABEL_STEP_INPUTS, LABEL_STEP_KEY, LABEL_VERIFIED,
};
use crate::keys::{Facts, KeyChain, canonical};
use crate::phase::Phase;
use crate::plan::{PlannedStep, Snapshots};
use crate::report::Reporter;
use crate::sources::copies;

use super::BuildOptions;
use super::error::BuildError;

/// Build containers are named `kiln-build-HABITAT-OWNER-N`, where OWNER is
/// the [`Owner`] token of the process that made them, so the containers a
/// killed or crashed build left can be found, and told from those of builds
/// still running. (Not a label: the engine's commit would copy a container
/// label into the snapshot.)
pub const BUILD_CONTAINER_PREFIX: &str = "kiln-build-";

fn build_container_name(habitat: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    HABITATS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(habitat.to_string());
    format!(
        "{BUILD_CONTAINER_PREFIX}{habitat}-{}-{}",
        Owner::current().token(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The history comment of the snapshot images of `phase`: part of their
/// config, so [`crate::image::archive::is_kiln_image`] needs it to rebuild one.
pub(super) fn snapshot_comment(phase: Phase) -> String {
    format!("kiln {}", phase.tag())
}

/// The habitats this process has named build containers for. An interrupt
/// drops the build futures, and with them what they knew; the sweep after it
/// must still find the containers of a base habitat built first.
static HABITATS: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

pub(super) fn habitats_with_containers() -> Vec<String> {
    HABITATS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .cloned()
        .collect()
}

/// Who made a build container, as its name says.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Maker {
    Owner(Owner),
    /// A name an older kiln made: `kiln-build-HABITAT-PID-N`.
    Pid(u32),
}

/// The maker of the build container `name` of `habitat`; `None` when it is
/// not a build container's name.
pub(super) fn container_maker(habitat: &str, name: &str) -> Option<Maker> {
    let rest = name
        .trim_start_matches('/')
        .strip_prefix(BUILD_CONTAINER_PREFIX)?
        .strip_prefix(habitat)?
        .strip_prefix('-')?;
    let (maker, n) = rest.rsplit_once('-')?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match Owner::parse(maker) {
        Some(owner) => Some(Maker::Owner(owner)),
        None => maker.parse().ok().map(Maker::Pid),
    }
}

/// One build of one habitat, for the length of its run.
pub(super) struct Executor<'a, E: Engine> {
    pub(super) engine: &'a E,
    pub(super) habitat: &'a Habitat,
    pub(super) opts: &'a BuildOptions,
    pub(super) chain: &'a KeyChain,
    pub(super) snaps: &'a Snapshots,
    pub(super) facts: &'a Facts,
    /// What each copy's key was computed from, for the files phase to check
    /// it streams the same.
    pub(super) copies: &'a [copies::Keyed],
    /// What the copies' keys left out (secrets, kiln's own files,
    /// `.kilnignore`): the files phase streams what was keyed.
    pub(super) withheld: &'a std::collections::BTreeMap<std::path::PathBuf, copies::Withheld>,
    /// The images kiln made for this habitat; each snapshot the build makes
    /// is recorded in it.
    pub(super) made: &'a mut MadeIndex,
    /// When the phase being built started: its snapshot records the time
    /// to here as its build time (SPEC §11).
    pub(super) phase_started: std::time::Instant,
    pub(super) reporter: &'a mut dyn Reporter,
    /// Secret values, redacted from every line of output shown.
    pub(super) secrets: super::secrets::Redactor,
    /// The config with its path fields expanded against the environment
    /// after the env phase, once a phase after it is reached.
    pub(super) expanded: Option<Config>,
    /// A build container's writable layer directory, inspected while its
    /// script ran (container id, upper dir), so the snapshot after it needs
    /// no engine call of its own first (SPEC §5: each step at the floor).
    pub(super) upper_hint: Mutex<Option<(String, Option<String>)>>,
    /// The snapshot taken from the registry, for the plan's `Pull` phase.
    pub(super) pulled: Option<super::Pulled>,
}

/// What a phase gets: which phase it is, the image it builds on, the config
/// its image will have, and the references that image gets.
pub(super) struct PhaseCtx {
    pub(super) phase: Phase,
    pub(super) parent: ImageState,
    /// The new image's config, the parent's until the phase changes it.
    pub(super) config: ImageConfig,
    /// The references the phase's image is tagged with: its own, those of the
    /// skipped phases after it, and the final ones when nothing follows. A
    /// load applies them all in the same request.
    pub(super) tags: Vec<String>,
    /// The planned steps of a phase that builds in steps (SPEC §5).
    pub(super) steps: Vec<PlannedStep>,
    /// Set while one step of such a phase is made: its image carries the
    /// step's labels, and the phase's only when it is the last step.
    pub(super) step: Option<StepMark>,
}

/// The step an image is made for, and what its labels say.
#[derive(Debug, Clone)]
pub(super) struct StepMark {
    /// `6-setup.3`
    pub(super) tag: String,
    pub(super) key: String,
    pub(super) inputs: serde_json::Value,
    /// The phase's last step: its image is the phase's snapshot too.
    pub(super) last: bool,
    pub(super) started: std::time::Instant,
}

/// An image the build holds for the next phase to build on.
pub(super) struct Produced {
    pub(super) image: String,
    /// Known for an image this build made; read with one inspect otherwise.
    pub(super) state: Option<ImageState>,
    /// References the engine already points at `image` (its load set them).
    pub(super) tagged: Vec<String>,
}

impl Produced {
    pub(super) fn listed(image: String) -> Produced {
        Produced {
            image,
            state: None,
            tagged: Vec::new(),
        }
    }

    /// An image this build made, tagged as `tags` by its load.
    pub(super) fn made(state: ImageState, tags: &[String]) -> Produced {
        Produced {
            image: state.id.clone(),
            state: Some(state),
            tagged: tags.to_vec(),
        }
    }
}

/// What a child image needs of its parent: its id, layers and config.
#[derive(Clone)]
pub(super) struct ImageState {
    pub(super) id: String,
    pub(super) layers: ParentImage,
    pub(super) config: ImageConfig,
    /// The layers' directories on the host, when an inspect said (the
    /// engine names them; an image this build loaded is inspected for them
    /// only if a phase reads its files).
    pub(super) layer_dirs: Option<Vec<String>>,
}

impl<E: Engine> Executor<'_, E> {
    pub(super) fn name(&self) -> &str {
        &self.habitat.config.name
    }

    pub(super) fn config(&self) -> &Config {
        self.expanded.as_ref().unwrap_or(&self.habitat.config)
    }

    /// Expands the path fields against `env`, the environment after the env
    /// phase (the parent's of every phase from habitat on), before the first
    /// phase that uses them runs; a path with an unset variable and no
    /// default stops the build here, naming every such field.
    pub(super) fn expand_paths(&mut self, env: &[String]) -> Result<(), BuildError> {
        if self.expanded.is_some() {
            return Ok(());
        }
        match crate::config::expand::expand_paths(&self.habitat.config, env) {
            Ok(config) => {
                self.expanded = Some(config);
                Ok(())
            }
            Err(errors) => {
                let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
                Err(BuildError::Usage(format!(
                    "a path field does not expand against the image's environment: {}\nhint: set the variable in `build.env`, or give a default: `${{NAME:-/default}}`",
                    list.join("; ")
                )))
            }
        }
    }

    /// The layers and config of an image the build did not make itself.
    pub(super) async fn image_state(&self, image: &str) -> Result<ImageState, BuildError> {
        let info = self
            .engine
            .image_inspect(image)
            .await?
            .ok_or_else(|| BuildError::Engine(EngineError::NoSuchImage(image.to_string())))?;
        Ok(ImageState {
            id: image.to_string(),
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

    /// The labels every snapshot carries (SPEC §4), on top of `config`'s own;
    /// for a step's image, the step's labels (SPEC §5), and the phase's only
    /// on its last step (an earlier step's image is no phase snapshot, and
    /// must not pass for the parent phase's whose labels it inherits).
    pub(super) fn snapshot_config(
        &self,
        phase: Phase,
        step: Option<&StepMark>,
        mut config: ImageConfig,
    ) -> ImageConfig {
        // Only the images of a step carry a step's labels. Blanked, not
        // removed: a commit merges the container's labels (the parent's)
        // back in, so a removed label would come back; an empty one reads as
        // absent everywhere kiln reads labels.
        let blank = |config: &mut ImageConfig, labels: &[&str]| {
            for label in labels {
                if let Some(v) = config.labels.get_mut(*label) {
                    v.clear();
                }
            }
        };
        blank(
            &mut config,
            &[
                LABEL_STEP,
                LABEL_STEP_KEY,
                LABEL_STEP_INPUTS,
                LABEL_STEP_DURATION,
            ],
        );
        if let Some(mark) = step {
            config
                .labels
                .insert(LABEL_HABITAT.into(), self.name().to_string());
            config.labels.insert(LABEL_STEP.into(), mark.tag.clone());
            config
                .labels
                .insert(LABEL_STEP_KEY.into(), mark.key.clone());
            config
                .labels
                .insert(LABEL_STEP_INPUTS.into(), canonical::to_string(&mark.inputs));
            // Recorded, not keyed, like the phase's time: what a prune
            // estimates a step's re-run from.
            let step_ms = mark.started.elapsed().as_millis().to_string();
            config
                .labels
                .insert(LABEL_STEP_DURATION.into(), step_ms.clone());
            if !mark.last {
                blank(
                    &mut config,
                    &[
                        LABEL_KEY,
                        LABEL_PHASE,
                        LABEL_PARENT,
                        LABEL_INPUTS,
                        LABEL_VERIFIED,
                    ],
                );
                config.labels.insert(LABEL_DURATION.into(), step_ms);
                return config;
            }
        }
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
        // Recorded, not keyed: a snapshot's id differs from run to run by it,
        // and the key (what decides a hit) never sees it.
        config.labels.insert(
            LABEL_DURATION.into(),
            self.phase_started.elapsed().as_millis().to_string(),
        );
        config
    }

    /// A build container of `image`, labelled and named so a sweep finds it.
    pub(super) fn container_spec(&self, image: &str) -> ContainerSpec {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_build_containers_name_says_who_made_it() {
        let name = build_container_name("web");
        let me = Owner::current();
        assert_eq!(container_maker("web", &name), Some(Maker::Owner(me)));
        assert_eq!(
            container_maker("web", &format!("/{name}")),
            Some(Maker::Owner(me))
        );
        assert!(habitats_with_containers().contains(&"web".to_string()));
        assert_eq!(
            container_maker("web", "kiln-build-web-4242-7"),
            Some(Maker::Pid(4242))
        );
        // Another habitat's, or not a build container's at all.
        assert_eq!(container_maker("we", &name), None);
        assert_eq!(container_maker("web", "kiln-build-web-x-7"), None);
        assert_eq!(container_maker("web", "kiln-build-web-4242-"), None);
        assert_eq!(container_maker("web", "web-1"), None);
    }
}
