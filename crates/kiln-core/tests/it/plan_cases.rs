//! Table tests of the pure planner, no engine: what the engine holds (the
//! images earlier builds left, as an `ImageSummary` listing), the config and
//! facts now, and the options in; each phase's action and reason out, compared
//! as a whole.
//!
//! `Listing` writes the labels and tags the executor writes (SPEC §4): one
//! snapshot per configured phase but verify, labelled with its key and inputs;
//! a skipped phase's tag (and verify's) on the image before it; the final
//! image marked with the verify key it passed. `executor_fake` checks that the
//! executor really leaves that behind.
//!
//! Over 600 lines: a table of planner cases, one row each.

use std::collections::BTreeMap;

use kiln_core::Phase;
use kiln_core::config;
use kiln_core::engine::ImageSummary;
use kiln_core::image::labels::{
    LABEL_HABITAT, LABEL_INPUTS, LABEL_KEY, LABEL_PARENT, LABEL_PHASE, LABEL_VERIFIED,
};
use kiln_core::image::names;
use kiln_core::keys::{BaseFact, Facts, KeyChain, canonical};
use kiln_core::plan::{Action, Plan, PlanOptions, RemoteHits, Snapshots};

const NAME: &str = "plan";

/// Every phase configured.
const FULL: &str = r#"name: plan
description: first description
build:
  base: { image: "kiln-test/busybox:latest" }
  users:
    - { name: dev, uid: 1000 }
  env:
    - GREETING=hello
  habitat:
    dirs: [/habitat/tools]
    work_dir: /work
  files:
    copies:
      - { source: files/motd, dest: /etc/motd, mode: "0644" }
  setup:
    packages:
      apt: [curl, git]
    commands:
      root: ["echo one > /setup-marker"]
  repos:
    - { url: "https://example.invalid/app.git", path: /work/app, ref: main }
  tools:
    - { name: hello, source: "https://example.invalid/hello", sha256: "0000000000000000000000000000000000000000000000000000000000000000" }
  verify:
    files: [/etc/motd]
    commands: ["test -f /work/app/README"]
  final:
    command: ["sh"]
"#;

/// Base, env, setup and final only (the CLI suite's `SPARSE`).
const SPARSE: &str = r#"name: plan
build:
  base: { image: "kiln-test/busybox:latest" }
  env: [GREETING=hello]
  setup:
    commands:
      root: ["echo built > /setup-marker"]
  final:
    command: ["sh"]
"#;

const BASE_1: &str = "sha256:b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1";
const BASE_2: &str = "sha256:b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2";
const COMMIT_1: &str = "1111111111111111111111111111111111111111";
const COMMIT_2: &str = "2222222222222222222222222222222222222222";

/// A config and the facts resolved for it: what a build of it would key.
#[derive(Debug, Clone)]
struct State {
    yaml: String,
    facts: Facts,
}

impl State {
    fn new(yaml: &str) -> State {
        let copies = if yaml.contains("copies:") {
            vec!["sha256:motd-1".to_string()]
        } else {
            Vec::new()
        };
        let repos = if yaml.contains("repos:") {
            vec![COMMIT_1.to_string()]
        } else {
            Vec::new()
        };
        State {
            yaml: yaml.to_string(),
            facts: Facts {
                base: BaseFact::Image {
                    reference: "kiln-test/busybox:latest".into(),
                    id: Some(BASE_1.into()),
                },
                copies,
                repos,
                init: None,
            },
        }
    }

    /// The same with `from` replaced by `to` in `kiln.yaml` (which must hold it).
    fn edit(&self, from: &str, to: &str) -> State {
        assert!(self.yaml.contains(from), "no `{from}` in\n{}", self.yaml);
        State {
            yaml: self.yaml.replacen(from, to, 1),
            facts: self.facts.clone(),
        }
    }

    fn facts(&self, change: impl FnOnce(&mut Facts)) -> State {
        let mut s = self.clone();
        change(&mut s.facts);
        s
    }

    fn chain(&self) -> KeyChain {
        // Parsing checks that copy sources exist; their content is a fact.
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join("files")).expect("mkdir");
        std::fs::write(dir.path().join("files/motd"), "welcome\n").expect("write");
        let config = match config::parse("kiln.yaml", &self.yaml, dir.path()) {
            Ok(c) => c,
            Err(d) => panic!("{d}\n---\n{}", self.yaml),
        };
        KeyChain::compute(&config, &self.facts)
    }
}

/// The images of habitat `plan` that a sequence of successful builds leaves
/// in the engine, the way the executor labels and tags them.
#[derive(Debug, Default)]
struct Listing {
    /// Image id → labels, in the order the builds made them.
    images: Vec<(String, BTreeMap<String, String>)>,
    /// Tag (without the repository) → image id.
    tags: BTreeMap<String, String>,
}

impl Listing {
    /// After building each state in turn; `generation` names its new images
    /// (`v1-6-setup`), so a cached action says which build made its image.
    fn after(builds: &[(&str, &State)]) -> Listing {
        let mut listing = Listing::default();
        for (generation, state) in builds {
            listing.build(generation, state);
        }
        listing
    }

    fn build(&mut self, generation: &str, state: &State) {
        let chain = state.chain();
        let mut current: Option<String> = None;
        for pk in &chain.0 {
            let phase = pk.phase;
            // A skipped phase, and verify (it commits nothing), tag the image before.
            if pk.present() && phase != Phase::Verify {
                let key = pk.key.as_str();
                let existing = self
                    .images
                    .iter()
                    .find(|(_, l)| l.get(LABEL_KEY).map(String::as_str) == Some(key));
                let id = match existing {
                    Some((id, _)) => id.clone(),
                    None => {
                        let id = format!("{generation}-{}", phase.tag());
                        let parent = phase
                            .previous()
                            .map(|p| chain.get(p).key.to_string())
                            .unwrap_or_default();
                        let mut labels = BTreeMap::from([
                            (LABEL_HABITAT.to_string(), NAME.to_string()),
                            (LABEL_PHASE.to_string(), phase.tag()),
                            (LABEL_KEY.to_string(), key.to_string()),
                            (LABEL_PARENT.to_string(), parent),
                            (LABEL_INPUTS.to_string(), canonical::to_string(&pk.inputs)),
                        ]);
                        if phase == Phase::Final {
                            labels.insert(
                                LABEL_VERIFIED.to_string(),
                                chain.get(Phase::Verify).key.to_string(),
                            );
                        }
                        self.images.push((id.clone(), labels));
                        id
                    }
                };
                current = Some(id);
            }
            let id = current.clone().expect("the base phase makes an image");
            self.tags.insert(phase.tag(), id);
        }
        let last = current.expect("a final image");
        self.tags
            .insert(names::final_tag(chain.final_key().as_str()), last.clone());
        self.tags.insert("latest".to_string(), last);
    }

    /// The engine's listing: each image with the tags that point at it now.
    fn summaries(&self) -> Vec<ImageSummary> {
        let repo = names::repository(NAME);
        self.images
            .iter()
            .map(|(id, labels)| ImageSummary {
                id: id.clone(),
                repo_tags: self
                    .tags
                    .iter()
                    .filter(|(_, i)| *i == id)
                    .map(|(t, _)| format!("{repo}:{t}"))
                    .collect(),
                labels: labels.clone(),
            })
            .collect()
    }
}

/// The plan of `now` against `listing`, one line per phase:
/// `6-setup: build (config changed: setup.commands.root[0])`.
fn plan(listing: &Listing, now: &State, opts: PlanOptions) -> String {
    let snaps = Snapshots::from_images(NAME, &listing.summaries());
    render(&Plan::new(&now.chain(), &snaps, opts))
}

/// The plan of `now` against `listing` when the registry holds the
/// `cache-KEY` snapshots of the phases `remote` (of `now`'s chain, or of
/// another state's: a key that is not `now`'s matches nothing).
fn plan_remote(
    listing: &Listing,
    now: &State,
    opts: PlanOptions,
    remote: &[(&State, Phase)],
) -> String {
    let snaps = Snapshots::from_images(NAME, &listing.summaries());
    let hits: RemoteHits = remote
        .iter()
        .map(|(state, phase)| {
            let key = state.chain().get(*phase).key.to_string();
            let reference = format!("reg/app@{}", phase.tag());
            (key, reference)
        })
        .collect();
    let chain = now.chain();
    let plan = Plan::with_remote(&chain, &snaps, opts, &hits);
    // What the registry could replace is what the local plan builds, deepest first.
    let local = Plan::new(&chain, &snaps, opts);
    let candidates = local.remote_candidates(opts);
    assert!(
        candidates.windows(2).all(|w| w[0].0 > w[1].0),
        "{candidates:?}"
    );
    render(&plan)
}

fn render(plan: &Plan) -> String {
    let lines: Vec<String> = plan
        .phases
        .iter()
        .map(|p| {
            let action = match &p.action {
                Action::Cached { image } => {
                    assert_eq!(p.reason, "", "a cached phase gives no reason: {p:?}");
                    format!("cached {image}")
                }
                Action::Build => format!("build ({})", p.reason),
                Action::Skip => format!("skip ({})", p.reason),
                Action::Pull { reference } => format!("pull {reference} ({})", p.reason),
                Action::Within { phase, pulled } => {
                    let how = if *pulled { "pulled" } else { "here" };
                    format!("within {} {how} ({})", phase.tag(), p.reason)
                }
            };
            format!("{}: {action}", p.phase.tag())
        })
        .collect();
    assert_eq!(
        plan.all_cached(),
        !plan
            .phases
            .iter()
            .any(|p| matches!(p.action, Action::Build | Action::Pull { .. }))
    );
    assert!(
        plan.phases
            .iter()
            .filter(|p| matches!(p.action, Action::Pull { .. }))
            .count()
            <= 1
    );
    lines.join("\n")
}

/// Runs one row of the table: `builds` already made, then the plan of `now`.
fn case(builds: &[(&str, &State)], now: &State, opts: PlanOptions, expected: &[&str]) {
    let listing = Listing::after(builds);
    assert_eq!(plan(&listing, now, opts), expected.join("\n"));
}

fn no_options() -> PlanOptions {
    PlanOptions::default()
}

fn rebuild(phase: Phase) -> PlanOptions {
    PlanOptions {
        rebuild_from: Some(phase),
        no_cache: false,
    }
}

/// The plan of an unchanged `FULL` after build `v1`: every phase cached on its images.
const ALL_CACHED_V1: [&str; 10] = [
    "1-base: cached v1-1-base",
    "2-users: cached v1-2-users",
    "3-env: cached v1-3-env",
    "4-habitat: cached v1-4-habitat",
    "5-files: cached v1-5-files",
    "6-setup: cached v1-6-setup",
    "7-repos: cached v1-7-repos",
    "8-tools: cached v1-8-tools",
    // Verify's snapshot is the image it checked: the one before it.
    "9-verify: cached v1-8-tools",
    "10-final: cached v1-10-final",
];

#[test]
fn no_snapshot_yet_builds_every_configured_phase() {
    let full = State::new(FULL);
    case(
        &[],
        &full,
        no_options(),
        &[
            "1-base: build (no snapshot yet)",
            "2-users: build (no snapshot yet)",
            "3-env: build (no snapshot yet)",
            "4-habitat: build (no snapshot yet)",
            "5-files: build (no snapshot yet)",
            "6-setup: build (no snapshot yet)",
            "7-repos: build (no snapshot yet)",
            "8-tools: build (no snapshot yet)",
            "9-verify: build (no snapshot yet)",
            "10-final: build (no snapshot yet)",
        ],
    );
}

#[test]
fn absent_phases_skip_whatever_the_cache_or_the_options_say() {
    let sparse = State::new(SPARSE);
    let cold = [
        "1-base: build (no snapshot yet)",
        "2-users: skip (not configured)",
        "3-env: build (no snapshot yet)",
        "4-habitat: skip (not configured)",
        "5-files: skip (not configured)",
        "6-setup: build (no snapshot yet)",
        "7-repos: skip (not configured)",
        "8-tools: skip (not configured)",
        "9-verify: skip (not configured)",
        "10-final: build (no snapshot yet)",
    ];
    case(&[], &sparse, no_options(), &cold);
    case(
        &[("v1", &sparse)],
        &sparse,
        no_options(),
        &[
            "1-base: cached v1-1-base",
            "2-users: skip (not configured)",
            "3-env: cached v1-3-env",
            "4-habitat: skip (not configured)",
            "5-files: skip (not configured)",
            "6-setup: cached v1-6-setup",
            "7-repos: skip (not configured)",
            "8-tools: skip (not configured)",
            "9-verify: skip (not configured)",
            "10-final: cached v1-10-final",
        ],
    );
    case(
        &[("v1", &sparse)],
        &sparse,
        PlanOptions {
            rebuild_from: None,
            no_cache: true,
        },
        &[
            "1-base: build (forced by --no-cache)",
            "2-users: skip (not configured)",
            "3-env: build (forced by --no-cache)",
            "4-habitat: skip (not configured)",
            "5-files: skip (not configured)",
            "6-setup: build (forced by --no-cache)",
            "7-repos: skip (not configured)",
            "8-tools: skip (not configured)",
            "9-verify: skip (not configured)",
            "10-final: build (forced by --no-cache)",
        ],
    );
}

#[test]
fn everything_cached_names_the_images_it_reuses() {
    let full = State::new(FULL);
    case(&[("v1", &full)], &full, no_options(), &ALL_CACHED_V1);
    // What keys ignore (the description, comments, YAML style) changes nothing.
    let restyled = full.edit("first description", "another description").edit(
        "  env:\n    - GREETING=hello\n",
        "  # a comment\n  env: [ 'GREETING=hello' ]   # style\n",
    );
    case(&[("v1", &full)], &restyled, no_options(), &ALL_CACHED_V1);
}

#[test]
fn a_config_field_change_names_its_kiln_yaml_path() {
    let full = State::new(FULL);
    let v1 = [("v1", &full)];
    // (the edit, the phase it touches, that phase's reason). Not verify: no
    // snapshot records its inputs, so it can only say they changed (see
    // `regression_verify_reason_is_not_no_snapshot_yet_on_a_rebuild`).
    let rows = [
        (
            ("uid: 1000", "uid: 1001"),
            Phase::Users,
            "config changed: users[0].uid",
        ),
        (
            ("GREETING=hello", "GREETING=hi"),
            Phase::Env,
            "config changed: env.GREETING",
        ),
        (
            ("dirs: [/habitat/tools]", "dirs: [/habitat/tools2]"),
            Phase::Habitat,
            "config changed: habitat.dirs[0]",
        ),
        (
            ("mode: \"0644\"", "mode: \"0600\""),
            Phase::Files,
            "config changed: files.copies[0].mode",
        ),
        (
            ("apt: [curl, git]", "apt: [curl, git, unzip]"),
            Phase::Setup,
            "config changed: setup.packages.apt",
        ),
        (
            ("ref: main", "ref: dev"),
            Phase::Repos,
            "config changed: repos[0].ref",
        ),
        (
            ("path: /work/app", "path: /work/app2"),
            Phase::Repos,
            "config changed: repos[0].path",
        ),
        (
            ("name: hello,", "name: hi,"),
            Phase::Tools,
            "config changed: tools[0].dest, tools[0].name",
        ),
        (
            ("command: [\"sh\"]", "command: [\"sh\"]\n    expose: [3000]"),
            Phase::Final,
            "config changed: final.expose",
        ),
    ];
    let mut wrong = Vec::new();
    for ((from, to), changed, reason) in rows {
        let expected: Vec<String> = Phase::ALL
            .iter()
            .map(|&p| match p {
                p if p < changed => ALL_CACHED_V1[p.index()].to_string(),
                p if p == changed => format!("{}: build ({reason})", p.tag()),
                p => format!("{}: build (after {changed} rebuilt)", p.tag()),
            })
            .collect();
        let got = plan(&Listing::after(&v1), &full.edit(from, to), no_options());
        if got != expected.join("\n") {
            wrong.push(format!("after editing `{from}` to `{to}`:\n{got}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
}

#[test]
fn several_changed_fields_of_one_phase_are_listed_together() {
    let full = State::new(FULL);
    let now = full
        .edit("apt: [curl, git]", "apt: [curl, git, unzip]")
        .edit("echo one", "echo two");
    let plan = plan(&Listing::after(&[("v1", &full)]), &now, no_options());
    assert_eq!(
        plan.lines().nth(5),
        Some("6-setup: build (config changed: setup.packages.apt, setup.commands.root[0])"),
        "{plan}"
    );
}

#[test]
fn an_input_file_change_names_the_file() {
    let full = State::new(FULL);
    let now = full.facts(|f| f.copies[0] = "sha256:motd-2".into());
    case(
        &[("v1", &full)],
        &now,
        no_options(),
        &[
            "1-base: cached v1-1-base",
            "2-users: cached v1-2-users",
            "3-env: cached v1-3-env",
            "4-habitat: cached v1-4-habitat",
            "5-files: build (input file changed: files/motd)",
            "6-setup: build (after files rebuilt)",
            "7-repos: build (after files rebuilt)",
            "8-tools: build (after files rebuilt)",
            "9-verify: build (after files rebuilt)",
            "10-final: build (after files rebuilt)",
        ],
    );
}

#[test]
fn a_moved_base_rebuilds_everything_and_says_from_where_to_where() {
    let full = State::new(FULL);
    let now = full.facts(|f| {
        f.base = BaseFact::Image {
            reference: "kiln-test/busybox:latest".into(),
            id: Some(BASE_2.into()),
        }
    });
    case(
        &[("v1", &full)],
        &now,
        no_options(),
        &[
            "1-base: build (the base moved (b1b1b1b1b1b1 -> b2b2b2b2b2b2))",
            "2-users: build (after base rebuilt)",
            "3-env: build (after base rebuilt)",
            "4-habitat: build (after base rebuilt)",
            "5-files: build (after base rebuilt)",
            "6-setup: build (after base rebuilt)",
            "7-repos: build (after base rebuilt)",
            "8-tools: build (after base rebuilt)",
            "9-verify: build (after base rebuilt)",
            "10-final: build (after base rebuilt)",
        ],
    );
}

#[test]
fn a_moved_repo_names_the_url_and_both_commits() {
    let full = State::new(FULL);
    let now = full.facts(|f| f.repos[0] = COMMIT_2.into());
    case(
        &[("v1", &full)],
        &now,
        no_options(),
        &[
            "1-base: cached v1-1-base",
            "2-users: cached v1-2-users",
            "3-env: cached v1-3-env",
            "4-habitat: cached v1-4-habitat",
            "5-files: cached v1-5-files",
            "6-setup: cached v1-6-setup",
            "7-repos: build (repo https://example.invalid/app.git moved from 111111111111 to 222222222222)",
            "8-tools: build (after repos rebuilt)",
            "9-verify: build (after repos rebuilt)",
            "10-final: build (after repos rebuilt)",
        ],
    );
}

#[test]
fn rebuild_forces_from_its_phase_and_later_phases_say_after_which() {
    let full = State::new(FULL);
    let from_repos = [
        "1-base: cached v1-1-base",
        "2-users: cached v1-2-users",
        "3-env: cached v1-3-env",
        "4-habitat: cached v1-4-habitat",
        "5-files: cached v1-5-files",
        "6-setup: cached v1-6-setup",
        "7-repos: build (forced by --rebuild repos)",
        "8-tools: build (after repos rebuilt)",
        "9-verify: build (after repos rebuilt)",
        "10-final: build (after repos rebuilt)",
    ];
    case(&[("v1", &full)], &full, rebuild(Phase::Repos), &from_repos);
    // Only the first phase built says it was forced: with nothing built yet
    // base builds first, and `--rebuild` changes no reason.
    assert_eq!(
        plan(&Listing::default(), &full, rebuild(Phase::Repos)),
        plan(&Listing::default(), &full, no_options())
    );
    // An earlier phase that builds on its own comes first; the forced one
    // then follows it like any later phase.
    let now = full.edit("GREETING=hello", "GREETING=hi");
    let plan = plan(
        &Listing::after(&[("v1", &full)]),
        &now,
        rebuild(Phase::Repos),
    );
    assert_eq!(
        plan.lines().skip(2).collect::<Vec<_>>(),
        [
            "3-env: build (config changed: env.GREETING)",
            "4-habitat: build (after env rebuilt)",
            "5-files: build (after env rebuilt)",
            "6-setup: build (after env rebuilt)",
            "7-repos: build (after env rebuilt)",
            "8-tools: build (after env rebuilt)",
            "9-verify: build (after env rebuilt)",
            "10-final: build (after env rebuilt)",
        ],
        "{plan}"
    );
}

#[test]
fn a_later_phase_with_its_own_change_gives_its_own_reason_after_a_rebuild() {
    let full = State::new(FULL);
    let now = full
        .edit("echo one", "echo two")
        .edit("command: [\"sh\"]", "command: [\"bash\"]");
    case(
        &[("v1", &full)],
        &now,
        no_options(),
        &[
            "1-base: cached v1-1-base",
            "2-users: cached v1-2-users",
            "3-env: cached v1-3-env",
            "4-habitat: cached v1-4-habitat",
            "5-files: cached v1-5-files",
            "6-setup: build (config changed: setup.commands.root[0])",
            "7-repos: build (after setup rebuilt)",
            "8-tools: build (after setup rebuilt)",
            "9-verify: build (after setup rebuilt)",
            "10-final: build (config changed: final.command[0])",
        ],
    );
}

#[test]
fn an_older_snapshot_whose_tag_moved_on_is_still_a_hit() {
    let full = State::new(FULL);
    let two = full.edit("echo one", "echo two");
    // v2 moved the tags from setup on; going back finds v1's untagged images.
    case(
        &[("v1", &full), ("v2", &two)],
        &full,
        no_options(),
        &ALL_CACHED_V1,
    );
    case(
        &[("v1", &full), ("v2", &two)],
        &two,
        no_options(),
        &[
            "1-base: cached v1-1-base",
            "2-users: cached v1-2-users",
            "3-env: cached v1-3-env",
            "4-habitat: cached v1-4-habitat",
            "5-files: cached v1-5-files",
            "6-setup: cached v2-6-setup",
            "7-repos: cached v2-7-repos",
            "8-tools: cached v2-8-tools",
            "9-verify: cached v2-8-tools",
            "10-final: cached v2-10-final",
        ],
    );
}

#[test]
fn a_combination_never_built_says_its_previous_phase_returned_to_an_older_config() {
    let full = State::new(FULL);
    let v2 = full
        .edit("GREETING=hello", "GREETING=hi")
        .edit("echo one", "echo two");
    // env back at v1's, setup at v2's: setup's inputs are those its tag
    // records, but on this env it never ran.
    let now = full.edit("echo one", "echo two");
    case(
        &[("v1", &full), ("v2", &v2)],
        &now,
        no_options(),
        &[
            "1-base: cached v1-1-base",
            "2-users: cached v1-2-users",
            "3-env: cached v1-3-env",
            "4-habitat: cached v1-4-habitat",
            "5-files: cached v1-5-files",
            "6-setup: build (its previous phase returned to an older config)",
            "7-repos: build (after setup rebuilt)",
            "8-tools: build (after setup rebuilt)",
            "9-verify: build (after setup rebuilt)",
            "10-final: build (after setup rebuilt)",
        ],
    );
}

/// Bug: a changed root command was reported as `setup.root[0]`, a path that
/// is not in kiln.yaml (indexed fields missed the `commands.` prefix). The
/// CLI suite's test of the same name checks it reaches `kiln build`'s events.
#[test]
fn regression_setup_reason_names_the_kiln_yaml_path_of_an_indexed_command() {
    let sparse = State::new(SPARSE);
    case(
        &[("v1", &sparse)],
        &sparse.edit("echo built", "echo rebuilt"),
        no_options(),
        &[
            "1-base: cached v1-1-base",
            "2-users: skip (not configured)",
            "3-env: cached v1-3-env",
            "4-habitat: skip (not configured)",
            "5-files: skip (not configured)",
            "6-setup: build (config changed: setup.commands.root[0])",
            "7-repos: skip (not configured)",
            "8-tools: skip (not configured)",
            "9-verify: skip (not configured)",
            "10-final: build (after setup rebuilt)",
        ],
    );
}

/// Bug: verify has no snapshot of its own, so once anything before it
/// rebuilt its reason was "no snapshot yet" instead of "after X rebuilt". The
/// CLI suite's test of the same name checks it on the labels a real build writes.
#[test]
fn regression_verify_reason_is_not_no_snapshot_yet_on_a_rebuild() {
    let v1 = State::new(&SPARSE.replace(
        "  final:",
        "  verify:\n    files: [/setup-marker]\n  final:",
    ));
    let v2 = v1.edit("GREETING=hello", "GREETING=hi");
    case(
        &[("v1", &v1)],
        &v2,
        no_options(),
        &[
            "1-base: cached v1-1-base",
            "2-users: skip (not configured)",
            "3-env: build (config changed: env.GREETING)",
            "4-habitat: skip (not configured)",
            "5-files: skip (not configured)",
            "6-setup: build (after env rebuilt)",
            "7-repos: skip (not configured)",
            "8-tools: skip (not configured)",
            "9-verify: build (after env rebuilt)",
            "10-final: build (after env rebuilt)",
        ],
    );
    let v3 = v2.edit("files: [/setup-marker]", "files: [/setup-marker, /bin/sh]");
    case(
        &[("v1", &v1), ("v2", &v2)],
        &v3,
        no_options(),
        &[
            "1-base: cached v1-1-base",
            "2-users: skip (not configured)",
            "3-env: cached v2-3-env",
            "4-habitat: skip (not configured)",
            "5-files: skip (not configured)",
            "6-setup: cached v2-6-setup",
            "7-repos: skip (not configured)",
            "8-tools: skip (not configured)",
            "9-verify: build (its inputs changed since it last passed)",
            "10-final: build (after verify rebuilt)",
        ],
    );
}

// The registry's snapshot cache (`registry.cache`): `Plan::with_remote`.

const EVERY: [Phase; 10] = Phase::ALL;

#[test]
fn an_empty_engine_whose_registry_holds_every_snapshot_pulls_the_final_one_only() {
    let full = State::new(FULL);
    let all: Vec<(&State, Phase)> = EVERY.iter().map(|p| (&full, *p)).collect();
    let within = |p: &str| format!("{p}: within 10-final pulled (within 10-final's snapshot)");
    let mut expected: Vec<String> = EVERY[..9].iter().map(|p| within(&p.tag())).collect();
    expected
        .push("10-final: pull reg/app@10-final (no snapshot yet; the registry holds it)".into());
    assert_eq!(
        plan_remote(&Listing::default(), &full, no_options(), &all),
        expected.join("\n")
    );
}

#[test]
fn a_tools_edit_pulls_repos_and_builds_tools_to_final() {
    let full = State::new(FULL);
    let edited = full.edit("hello, source", "hello2, source");
    let pushed: Vec<(&State, Phase)> = EVERY.iter().map(|p| (&full, *p)).collect();
    assert_eq!(
        plan_remote(&Listing::default(), &edited, no_options(), &pushed),
        [
            "1-base: within 7-repos pulled (within 7-repos's snapshot)",
            "2-users: within 7-repos pulled (within 7-repos's snapshot)",
            "3-env: within 7-repos pulled (within 7-repos's snapshot)",
            "4-habitat: within 7-repos pulled (within 7-repos's snapshot)",
            "5-files: within 7-repos pulled (within 7-repos's snapshot)",
            "6-setup: within 7-repos pulled (within 7-repos's snapshot)",
            "7-repos: pull reg/app@7-repos (no snapshot yet; the registry holds it)",
            "8-tools: build (no snapshot yet)",
            "9-verify: build (no snapshot yet)",
            "10-final: build (no snapshot yet)",
        ]
        .join("\n")
    );
}

#[test]
fn local_snapshots_before_the_pulled_one_stay_cached_and_a_skip_after_them_stays() {
    // SPARSE: users, habitat, files, repos, tools, verify are not configured.
    let sparse = State::new(SPARSE);
    let edited = sparse.edit("echo built", "echo rebuilt");
    let listing = Listing::after(&[("v1", &sparse)]);
    let pushed = [(&edited, Phase::Setup)];
    assert_eq!(
        plan_remote(&listing, &edited, no_options(), &pushed),
        [
            "1-base: cached v1-1-base",
            "2-users: skip (not configured)",
            "3-env: cached v1-3-env",
            "4-habitat: skip (not configured)",
            "5-files: skip (not configured)",
            "6-setup: pull reg/app@6-setup (config changed: setup.commands.root[0]; the registry holds it)",
            "7-repos: skip (not configured)",
            "8-tools: skip (not configured)",
            "9-verify: skip (not configured)",
            "10-final: build (after setup pulled)",
        ]
        .join("\n")
    );
}

#[test]
fn forced_phases_are_never_pulled_and_no_cache_ignores_the_registry() {
    let full = State::new(FULL);
    let all: Vec<(&State, Phase)> = EVERY.iter().map(|p| (&full, *p)).collect();
    let rebuilt = plan_remote(&Listing::default(), &full, rebuild(Phase::Setup), &all);
    assert!(
        rebuilt.starts_with("1-base: within 5-files pulled"),
        "{rebuilt}"
    );
    assert!(
        rebuilt.contains("5-files: pull reg/app@5-files")
            && rebuilt.contains("6-setup: build (forced by --rebuild setup)")
            && rebuilt.contains("10-final: build (no snapshot yet)"),
        "{rebuilt}"
    );
    let no_cache = PlanOptions {
        rebuild_from: None,
        no_cache: true,
    };
    assert_eq!(
        plan_remote(&Listing::default(), &full, no_cache, &all),
        plan(&Listing::default(), &full, no_cache)
    );
}

#[test]
fn keys_the_registry_holds_of_another_config_are_no_hit() {
    let full = State::new(FULL);
    let other = full.edit("GREETING=hello", "GREETING=bye");
    let theirs: Vec<(&State, Phase)> = EVERY.iter().map(|p| (&other, *p)).collect();
    let ours = Listing::after(&[("v1", &full)]);
    // From env on every key differs: only base and users could match, and they are here.
    assert_eq!(
        plan_remote(&Listing::default(), &full, no_options(), &theirs[..2]),
        [
            "1-base: within 2-users pulled (within 2-users's snapshot)",
            "2-users: pull reg/app@2-users (no snapshot yet; the registry holds it)",
            "3-env: build (no snapshot yet)",
            "4-habitat: build (no snapshot yet)",
            "5-files: build (no snapshot yet)",
            "6-setup: build (no snapshot yet)",
            "7-repos: build (no snapshot yet)",
            "8-tools: build (no snapshot yet)",
            "9-verify: build (no snapshot yet)",
            "10-final: build (no snapshot yet)",
        ]
        .join("\n")
    );
    assert_eq!(
        plan_remote(&ours, &full, no_options(), &theirs),
        ALL_CACHED_V1.join("\n")
    );
}

#[test]
fn after_a_pull_the_deep_local_snapshot_is_used_with_no_registry() {
    let full = State::new(FULL);
    // What an empty engine keeps after a build that pulled the final snapshot.
    let mut listing = Listing::after(&[("v1", &full)]);
    listing.images.retain(|(id, _)| id == "v1-10-final");
    listing.tags.retain(|_, id| id == "v1-10-final");
    let within = |p: &str| format!("{p}: within 10-final here (within 10-final's snapshot)");
    let mut expected: Vec<String> = EVERY[..9].iter().map(|p| within(&p.tag())).collect();
    expected.push("10-final: cached v1-10-final".into());
    assert_eq!(
        plan_remote(&listing, &full, no_options(), &[]),
        expected.join("\n")
    );
    // The local planner alone would rebuild everything.
    assert!(plan(&listing, &full, no_options()).starts_with("1-base: build"));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Whatever subset of the chain the registry holds, an empty engine
    /// pulls the deepest one, runs nothing before it, and builds every
    /// phase after it.
    #[test]
    fn an_empty_engine_pulls_the_deepest_snapshot_the_registry_holds(held in proptest::collection::vec(proptest::bool::ANY, 10)) {
        let full = State::new(FULL);
        let remote: Vec<(&State, Phase)> = EVERY
            .iter()
            .zip(&held)
            .filter(|(_, h)| **h)
            .map(|(p, _)| (&full, *p))
            .collect();
        let text = plan_remote(&Listing::default(), &full, no_options(), &remote);
        let lines: Vec<&str> = text.lines().collect();
        let deepest = held.iter().rposition(|h| *h);
        for (i, line) in lines.iter().enumerate() {
            let expected = match deepest {
                Some(d) if i < d => "within",
                Some(d) if i == d => "pull",
                _ => "build",
            };
            let tag = EVERY[i].tag();
            proptest::prop_assert!(line.starts_with(&format!("{tag}: {expected}")), "{}", text);
        }
    }
}
