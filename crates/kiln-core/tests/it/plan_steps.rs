//! Table tests of the planner for a phase built in steps (SPEC §5), no
//! engine: the step snapshots earlier builds left (as an `ImageSummary`
//! listing, labelled and tagged as the executor labels them) and the config
//! now in; each step's action and reason out. Steps resume only where nothing
//! before them builds; the first step without a snapshot, and every one after
//! it, builds.

use std::collections::BTreeMap;

use kiln_core::Phase;
use kiln_core::config;
use kiln_core::engine::ImageSummary;
use kiln_core::image::labels::{
    LABEL_HABITAT, LABEL_INPUTS, LABEL_KEY, LABEL_PHASE, LABEL_STEP, LABEL_STEP_INPUTS,
    LABEL_STEP_KEY,
};
use kiln_core::image::names;
use kiln_core::keys::{BaseFact, Facts, KeyChain, canonical};
use kiln_core::plan::{Action, Plan, PlanOptions, Snapshots};

const NAME: &str = "plansteps";

fn yaml(third: &str) -> String {
    format!(
        r#"name: plansteps
build:
  base: {{ image: "kiln-test/busybox:latest" }}
  setup:
    commands:
      root: ["echo 1 > /1", "echo 2 > /2", "{third}", "echo 4 > /4"]
"#
    )
}

fn chain(text: &str) -> KeyChain {
    let dir = std::env::temp_dir();
    let c = config::parse("kiln.yaml", text, &dir).unwrap_or_else(|d| panic!("{d}"));
    let facts = Facts {
        base: BaseFact::Image {
            reference: "kiln-test/busybox:latest".into(),
            id: Some("sha256:b1".into()),
        },
        copies: Vec::new(),
        repos: Vec::new(),
        init: None,
    };
    KeyChain::compute(&c, &facts)
}

/// The base's snapshot, as a build of `chain` tagged it.
fn base_image(chain: &KeyChain) -> ImageSummary {
    let pk = chain.get(Phase::Base);
    ImageSummary {
        id: "sha256:base".into(),
        repo_tags: vec![names::snapshot(NAME, Phase::Base)],
        labels: BTreeMap::from([
            (LABEL_HABITAT.to_string(), NAME.to_string()),
            (LABEL_PHASE.to_string(), Phase::Base.tag()),
            (LABEL_KEY.to_string(), pk.key.to_string()),
            (LABEL_INPUTS.to_string(), canonical::to_string(&pk.inputs)),
        ]),
    }
}

/// The images of setup's steps `numbers` of `chain`, tagged `6-setup.N`.
fn step_images(chain: &KeyChain, numbers: &[usize]) -> Vec<ImageSummary> {
    let pk = chain.get(Phase::Setup);
    numbers
        .iter()
        .map(|n| {
            let s = &pk.steps[n - 1];
            ImageSummary {
                id: format!("sha256:step{n}-{}", s.key.short()),
                repo_tags: vec![names::step(NAME, Phase::Setup, *n)],
                labels: BTreeMap::from([
                    (LABEL_HABITAT.to_string(), NAME.to_string()),
                    (LABEL_STEP.to_string(), s.tag(Phase::Setup)),
                    (LABEL_STEP_KEY.to_string(), s.key.to_string()),
                    (
                        LABEL_STEP_INPUTS.to_string(),
                        canonical::to_string(&s.inputs),
                    ),
                ]),
            }
        })
        .collect()
}

/// Setup's steps as `cached` / `build: REASON`, and setup's own reason.
fn setup_plan(
    chain: &KeyChain,
    images: &[ImageSummary],
    opts: PlanOptions,
) -> (String, Vec<String>) {
    let snaps = Snapshots::from_images(NAME, images);
    let plan = Plan::new(chain, &snaps, opts);
    let setup = plan.get(Phase::Setup);
    let steps = setup
        .steps
        .iter()
        .map(|s| match &s.action {
            Action::Cached { .. } => "cached".to_string(),
            _ => format!("build: {}", s.reason),
        })
        .collect();
    (setup.reason.clone(), steps)
}

#[test]
fn a_failure_at_step_three_resumes_there() {
    let c = chain(&yaml("false"));
    let mut images = vec![base_image(&c)];
    images.extend(step_images(&c, &[1, 2]));
    let (reason, steps) = setup_plan(&c, &images, PlanOptions::default());
    assert_eq!(
        steps,
        [
            "cached",
            "cached",
            "build: no snapshot of step 3 (`setup.commands.root[2]`) yet: it failed or never ran",
            "build: after step 3 rebuilt",
        ]
    );
    assert!(
        reason.ends_with("resumes at step 3 of 4 (`commands.root[2]`), steps 1-2 cached"),
        "{reason}"
    );
}

#[test]
fn an_edit_of_the_third_command_rebuilds_from_it_and_names_it() {
    let old = chain(&yaml("echo 3 > /3"));
    let mut images = vec![base_image(&old)];
    images.extend(step_images(&old, &[1, 2, 3, 4]));
    let now = chain(&yaml("echo three > /3"));
    let (reason, steps) = setup_plan(&now, &images, PlanOptions::default());
    assert_eq!(
        steps,
        [
            "cached",
            "cached",
            "build: config changed: setup.commands.root[2]",
            "build: after step 3 rebuilt",
        ]
    );
    assert!(
        reason.starts_with("no snapshot yet; resumes at step 3"),
        "{reason}"
    );
}

#[test]
fn every_step_builds_when_forced_or_after_an_earlier_phase() {
    let c = chain(&yaml("echo 3 > /3"));
    let mut images = vec![base_image(&c)];
    images.extend(step_images(&c, &[1, 2, 3]));
    let forced = PlanOptions {
        rebuild_from: Some(Phase::Setup),
        no_cache: false,
    };
    let (_, steps) = setup_plan(&c, &images, forced);
    assert!(steps.iter().all(|s| s.starts_with("build")), "{steps:?}");
    let (_, steps) = setup_plan(
        &c,
        &images,
        PlanOptions {
            no_cache: true,
            rebuild_from: None,
        },
    );
    assert!(steps.iter().all(|s| s.starts_with("build")), "{steps:?}");
    // No base snapshot: base builds, so its image is new and no step is reused.
    let (reason, steps) = setup_plan(&c, &step_images(&c, &[1, 2, 3]), PlanOptions::default());
    assert!(!reason.contains("resumes"), "{reason}");
    assert!(steps.iter().all(|s| s.starts_with("build")), "{steps:?}");
}

#[test]
fn every_step_cached_but_no_phase_snapshot_makes_only_the_phase_image() {
    let c = chain(&yaml("echo 3 > /3"));
    let mut images = vec![base_image(&c)];
    images.extend(step_images(&c, &[1, 2, 3, 4]));
    let (reason, steps) = setup_plan(&c, &images, PlanOptions::default());
    assert_eq!(steps, ["cached"; 4]);
    assert!(reason.ends_with("all 4 steps cached"), "{reason}");
    // A step's image whose step key is another config's is no hit.
    let other = chain(&yaml("echo other > /3"));
    let mut images = vec![base_image(&c)];
    images.extend(step_images(&other, &[1, 2, 3, 4]));
    let (_, steps) = setup_plan(&c, &images, PlanOptions::default());
    assert_eq!(&steps[..2], ["cached", "cached"]);
    assert!(steps[2].starts_with("build: config changed: setup.commands.root[2]"));
}
