//! `kiln cache status` and `kiln cache prune` (SPEC §11) on the real engine:
//! the status agrees with the engine's own listing, each level removes
//! exactly the set its status named, the next build runs exactly the phases
//! the estimate named, a prune waits for a running build (the lock), images
//! a container uses stay, nuke without `--yes` and without a terminal is
//! refused, and `cache.keep` prunes after a build. Habitats are `kt-cachet-…`.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};

use serde_json::Value;

use crate::support::{Habitat, docker, docker_output, images_of};

/// A habitat of a shape real ones have: a base, env, a copy, a setup
/// command, verify and final; `VALUE` in the setup command is what an
/// edit changes. `keep` is its `cache.keep`.
fn habitat(keep: u32) -> Habitat {
    let h = Habitat::new("cachet");
    h.write("etc/motd", "welcome\n");
    h.config(&format!(
        r#"name: @NAME@
build:
  base: {{ image: "kiln-test/busybox:latest" }}
  env: [GREETING=hello]
  files:
    copies: [{{ source: etc/motd, dest: /etc/motd, mode: "0644" }}]
  setup:
    commands:
      root: ["echo VALUE-1 > /etc/value"]
  verify:
    files: [/etc/motd, /etc/value]
  final: {{ command: [sh] }}
cache: {{ keep: {keep} }}
"#
    ));
    h
}

/// Builds the habitat with `VALUE-1`, then each of `values` in turn: each
/// build leaves an older chain behind.
fn build_chains(h: &Habitat, values: &[u32]) {
    h.build_ok(&[]);
    let mut last = 1;
    for v in values {
        h.edit(&format!("VALUE-{last}"), &format!("VALUE-{v}"));
        h.build_ok(&[]);
        last = *v;
    }
}

fn status(h: &Habitat) -> Value {
    let run = h.kiln(&["cache", "status", "--json"]).run();
    run.assert_code(0);
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
}

fn habitat_status<'a>(st: &'a Value, name: &str) -> &'a Value {
    st["habitats"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["habitat"] == name)
        .unwrap_or_else(|| panic!("no `{name}` in {st}"))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

/// `6-setup` for each phase the build ran.
fn built_tags(run: &crate::support::Run) -> Vec<String> {
    run.phase_ends()
        .into_iter()
        .filter(|p| p.status == "built")
        .map(|p| format!("{}-{}", p.id, p.phase))
        .collect()
}

#[test]
fn status_agrees_with_the_engines_listing() {
    let h = habitat(0);
    build_chains(&h, &[2, 3]);
    let last = h.build_ok(&[]);
    let st = status(&h);
    let hs = habitat_status(&st, &h.name);
    let snaps = hs["snapshots"].as_array().unwrap();
    let ids: BTreeSet<String> = snaps
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, images_of(&h.name), "every snapshot, and only those");
    for s in snaps {
        let id = s["id"].as_str().unwrap();
        let tags: BTreeSet<String> = docker(&["inspect", "--format", "{{json .RepoTags}}", id])
            .trim()
            .trim_matches(['[', ']'])
            .split(',')
            .map(|t| t.trim_matches('"').to_string())
            .filter(|t| !t.is_empty())
            .collect();
        assert_eq!(
            strings(&s["tags"]).into_iter().collect::<BTreeSet<_>>(),
            tags
        );
        let labels = crate::support::labels_of(id);
        assert_eq!(s["key"], labels["dev.kiln.key"]);
        assert_eq!(s["build_ms"].to_string(), labels["dev.kiln.duration-ms"]);
    }
    // The current chain is the last build's, key for key.
    let current: BTreeSet<String> = snaps
        .iter()
        .filter(|s| s["state"] == "current")
        .map(|s| s["key"].as_str().unwrap().to_string())
        .collect();
    let built: BTreeSet<String> = last
        .phase_ends()
        .into_iter()
        // The configured phases that commit an image (verify's pass is a
        // mark on the final one).
        .filter(|p| ["base", "env", "files", "setup", "final"].contains(&p.phase.as_str()))
        .map(|p| p.key)
        .collect();
    assert_eq!(current, built);
    // Two old chains of setup and final; their own sizes add to the old total.
    let old: Vec<&Value> = snaps.iter().filter(|s| s["state"] == "old").collect();
    assert_eq!(old.len(), 4, "{hs:#}");
    let own: u64 = old.iter().map(|s| s["own_bytes"].as_u64().unwrap()).sum();
    assert_eq!(hs["totals"]["old"]["bytes"].as_u64(), Some(own));
    assert!(own > 0, "a setup layer weighs something");
    // The human table names the same things.
    let run = h.kiln(&["cache", "status"]).run();
    run.assert_code(0);
    assert!(
        run.stdout.contains(&format!("habitat `{}`", h.name)),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("current chain"), "{}", run.stdout);
    for word in ["soft", "medium", "hard", "nuke", "host cache", "digests"] {
        assert!(run.stdout.contains(word), "{word}: {}", run.stdout);
    }
}

#[test]
fn each_level_removes_exactly_its_set_and_the_next_build_runs_what_it_named() {
    for level in ["soft", "medium", "hard", "nuke"] {
        let h = habitat(0);
        build_chains(&h, &[2, 3]);
        h.edit("VALUE-3", "VALUE-1");
        h.build_ok(&[]);
        let st = status(&h);
        let plan = habitat_status(&st, &h.name)["levels"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["level"] == level)
            .unwrap()
            .clone();
        let removes: BTreeSet<String> = strings(&plan["removes"]).into_iter().collect();
        let before = images_of(&h.name);
        assert!(removes.is_subset(&before));
        if level != "soft" {
            assert!(!removes.is_empty(), "{level} has something to take");
        }
        let run = h.kiln(&["cache", "prune", "--level", level, "--yes"]).run();
        run.assert_code(0);
        let after = images_of(&h.name);
        let want: BTreeSet<String> = before.difference(&removes).cloned().collect();
        assert_eq!(after, want, "{level}: exactly its set\n{}", run.stdout);
        assert_eq!(
            run.stdout
                .lines()
                .filter(|l| l.starts_with("removed `"))
                .count(),
            removes.len(),
            "{level}: one line per removal\n{}",
            run.stdout
        );
        // The base image kiln did not make is never touched.
        assert!(
            docker_output(&["image", "inspect", "kiln-test/busybox:latest"])
                .status
                .success()
        );
        let next = h.build_ok(&[]);
        assert_eq!(
            built_tags(&next),
            strings(&plan["rerun"]),
            "{level}: the next build runs what the estimate named"
        );
    }
}

/// Removes a container the test made (no kiln label: the habitat's own
/// clean-up does not know it).
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = docker_output(&["rm", "-f", &self.0]);
    }
}

#[test]
fn images_a_container_uses_are_kept_at_every_level_and_named() {
    let h = habitat(0);
    h.build_ok(&[]);
    let name = format!("{}-user", h.name);
    let c = Container(name.clone());
    docker(&[
        "create",
        "--name",
        &c.0,
        &format!("habitat-{}:latest", h.name),
    ]);
    let used = crate::support::image_id(&format!("habitat-{}:latest", h.name));
    h.edit("VALUE-1", "VALUE-2");
    h.build_ok(&[]);
    let st = status(&h);
    let hs = habitat_status(&st, &h.name);
    let snap = hs["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == used.as_str())
        .unwrap();
    assert_eq!(snap["state"], "in use");
    assert!(
        snap["roots"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["kind"] == "container" && r["name"] == name.as_str()),
        "{snap:#}"
    );
    let run = h
        .kiln(&["cache", "prune", "--level", "nuke", "--yes"])
        .run();
    run.assert_code(0);
    assert!(
        run.stderr.contains(&format!("in use by container {name}")),
        "{}",
        run.stderr
    );
    // The used image and what it is built on stay; the rest went.
    let left = images_of(&h.name);
    assert!(left.contains(&used), "{left:?}");
    // Its chain (base, env, files, setup, final) stays; the other chain's
    // setup and final went.
    assert_eq!(left.len(), 5, "{left:?}");
    drop(c);
}

#[test]
fn nuke_without_yes_and_without_a_terminal_is_refused() {
    let h = habitat(0);
    h.build_ok(&[]);
    let before = images_of(&h.name);
    let run = h.kiln(&["cache", "prune", "--level", "nuke"]).run();
    run.assert_code(2);
    assert!(
        run.stderr.contains("no terminal to ask on"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("hint: pass `--yes`"), "{}", run.stderr);
    assert_eq!(images_of(&h.name), before, "nothing was removed");
    // A dry run needs no answer and removes nothing either.
    let dry = h
        .kiln(&["cache", "prune", "--level", "nuke", "--dry-run"])
        .run();
    dry.assert_code(0);
    assert!(dry.stdout.contains("would remove"), "{}", dry.stdout);
    assert_eq!(images_of(&h.name), before);
}

#[test]
fn a_prune_waits_for_a_running_build_of_the_habitat() {
    let h = habitat(0);
    h.build_ok(&[]);
    // The next build's setup takes a while, holding the lock meanwhile.
    h.edit(
        "echo VALUE-1 > /etc/value",
        "sleep 4; echo VALUE-2 > /etc/value",
    );
    let mut build = h.kiln(&["build", ".", "--progress", "json"]).spawn();
    let stdout = build.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line.contains(r#""event":"phase_start""#) && line.contains(r#""phase":"setup""#) {
            break;
        }
    }
    let prune = h.kiln(&["cache", "prune", "--level", "medium"]).run();
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    let status = build.wait().unwrap();
    assert!(status.success(), "{rest:?}");
    prune.assert_code(0);
    assert!(
        prune
            .stderr
            .contains(&format!("waiting: a build of `{}` is running", h.name)),
        "{}",
        prune.stderr
    );
    // It pruned after the build: the new chain is current and whole.
    let again = h.build_ok(&[]);
    assert!(again.built().is_empty(), "{:?}", again.built());
}

#[test]
fn cache_keep_prunes_old_chains_after_a_build_and_says_so() {
    let h = habitat(1);
    build_chains(&h, &[2]);
    let two_chains = images_of(&h.name);
    h.edit("VALUE-2", "VALUE-3");
    let run = h.build_ok(&[]);
    let pruned: Vec<Value> = run
        .events()
        .into_iter()
        .filter(|e| e["event"] == "pruned")
        .collect();
    assert_eq!(pruned.len(), 1, "{}", run.stdout);
    let removed: Vec<String> = pruned[0]["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["phase"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        removed,
        ["10-final", "6-setup"],
        "chain 1 went, chain 2 kept"
    );
    let left = images_of(&h.name);
    assert_eq!(left.len(), two_chains.len(), "one chain in, one out");
    // A no-op build prunes nothing and says nothing of it.
    let noop = h.build_ok(&[]);
    assert!(!noop.stdout.contains("pruned"), "{}", noop.stdout);
}

#[test]
fn medium_removes_the_mirrors_no_known_habitat_uses_and_keeps_the_rest() {
    let h = habitat(0);
    for name in ["app", "docs"] {
        let repo = h.root().join(name);
        std::fs::create_dir(&repo).unwrap();
        crate::support::sh(
            &repo,
            "git init -q -b main . && echo one > README && git add README && \
             git -c user.name=t -c user.email=t@t commit -qm one",
        );
    }
    h.edit(
        "  verify:",
        "  repos:\n    - { url: \"@ROOT@/app\", path: /work/app }\n    - { url: \"@ROOT@/docs\", path: /work/docs }\n  verify:",
    );
    // `edit` does not expand `@ROOT@`: write it out.
    let yaml = std::fs::read_to_string(h.dir().join("kiln.yaml")).unwrap();
    h.config(&yaml);
    h.build_ok(&[]);
    // Mirrors and their lock files (`MIRROR.lock`).
    let mirrors = |h: &Habitat| -> BTreeSet<String> {
        std::fs::read_dir(h.cache().join("repos"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    let both = mirrors(&h);
    assert_eq!(both.len(), 4, "{both:?}");
    // The habitat stops using `docs`: its mirror is unused from the next build on.
    let yaml = std::fs::read_to_string(h.dir().join("kiln.yaml")).unwrap();
    let docs_line = yaml
        .lines()
        .find(|l| l.contains("/docs\""))
        .unwrap()
        .to_string();
    h.config(&yaml.replace(&format!("{docs_line}\n"), ""));
    h.build_ok(&[]);
    let st = status(&h);
    let unused: Vec<&Value> = st["host"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "repos" && e["used_by"].as_array().unwrap().is_empty())
        .collect();
    assert_eq!(unused.len(), 1, "{st:#}");
    assert!(unused[0]["path"].as_str().unwrap().contains("docs-"));
    let soft = h.kiln(&["cache", "prune"]).run();
    soft.assert_code(0);
    assert_eq!(mirrors(&h), both, "soft leaves the host cache alone");
    let medium = h.kiln(&["cache", "prune", "--level", "medium"]).run();
    medium.assert_code(0);
    assert!(medium.stdout.contains("removed repos"), "{}", medium.stdout);
    let left = mirrors(&h);
    assert_eq!(left.len(), 2, "the mirror and its lock file");
    assert!(left.iter().all(|m| m.starts_with("app-")), "{left:?}");
    // The mirror in use still serves a build with nothing to fetch.
    assert!(h.build_ok(&[]).built().is_empty());
}

/// A habitat whose setup runs three root commands, each a step (SPEC §5);
/// `VALUE` in the third is what an edit changes. `kt-kcache2-…`.
fn stepped() -> Habitat {
    let h = Habitat::new("kcache2");
    h.config(
        r#"name: @NAME@
build:
  base: { image: "kiln-test/busybox:latest" }
  setup:
    commands:
      root:
        - "echo one > /etc/one"
        - "echo two > /etc/two"
        - "echo VALUE-1 > /etc/three"
  final: { command: [sh] }
cache: { keep: 0 }
"#,
    );
    h
}

/// `6-setup.3` for each step the build ran.
fn built_steps(run: &crate::support::Run) -> Vec<String> {
    run.events()
        .into_iter()
        .filter(|e| e["event"] == "step_end" && e["status"] == "built")
        .map(|e| e["step"].as_str().unwrap().to_string())
        .collect()
}

fn level<'a>(hs: &'a Value, name: &str) -> &'a Value {
    hs["levels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["level"] == name)
        .unwrap()
}

/// The `tag` (`6-setup`, `6-setup.2`) and state of each snapshot by id.
fn tags_and_states(hs: &Value) -> std::collections::BTreeMap<String, (String, String)> {
    hs["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["id"].as_str().unwrap().to_string(),
                (
                    s["tag"].as_str().unwrap().to_string(),
                    s["state"].as_str().unwrap().to_string(),
                ),
            )
        })
        .collect()
}

/// Removes a tag the test gave (the image stays while others hold it).
struct UserTag(String);

impl Drop for UserTag {
    fn drop(&mut self) {
        let _ = docker_output(&["rmi", &self.0]);
    }
}

/// Prunes at `level` exactly what the status named, and returns the
/// estimate's phases and steps.
fn prune_as_named(h: &Habitat, name: &str) -> (Vec<String>, Vec<String>) {
    let st = status(h);
    let plan = level(habitat_status(&st, &h.name), name).clone();
    let removes: BTreeSet<String> = strings(&plan["removes"]).into_iter().collect();
    let before = images_of(&h.name);
    assert!(removes.is_subset(&before), "{plan:#}");
    let run = h.kiln(&["cache", "prune", "--level", name]).run();
    run.assert_code(0);
    let want: BTreeSet<String> = before.difference(&removes).cloned().collect();
    assert_eq!(
        images_of(&h.name),
        want,
        "{name}: exactly its set\n{}{}",
        run.stdout,
        run.stderr
    );
    assert!(!run.stderr.contains("refused"), "{}", run.stderr);
    (strings(&plan["rerun"]), strings(&plan["rerun_steps"]))
}

#[test]
fn steps_are_listed_kept_on_the_current_chain_and_pruned_per_level() {
    let h = stepped();
    h.build_ok(&[]);
    h.edit("VALUE-1", "VALUE-2");
    h.build_ok(&[]);
    h.edit("VALUE-2", "VALUE-3");
    let last = h.build_ok(&[]);
    assert_eq!(
        built_steps(&last),
        ["6-setup.3"],
        "steps 1 and 2 were cached"
    );
    let st = status(&h);
    let hs = habitat_status(&st, &h.name);
    assert_eq!(hs["current_from"], "config", "{hs:#}");
    let snaps = tags_and_states(hs);
    let ids: BTreeSet<String> = snaps.keys().cloned().collect();
    assert_eq!(ids, images_of(&h.name), "every image kiln made, steps too");
    let of = |tag: &str, state: &str| -> BTreeSet<String> {
        snaps
            .iter()
            .filter(|(_, (t, s))| t == tag && s == state)
            .map(|(id, _)| id.clone())
            .collect()
    };
    // Steps 1 and 2 are shared by the three chains, on the current one.
    assert_eq!(of("6-setup.1", "current").len(), 1, "{hs:#}");
    assert_eq!(of("6-setup.2", "current").len(), 1, "{hs:#}");
    // Each edit left a step 3 (its setup snapshot) and a final.
    assert_eq!(of("6-setup", "old").len(), 2, "{hs:#}");
    assert_eq!(of("10-final", "old").len(), 2, "{hs:#}");
    for s in hs["snapshots"].as_array().unwrap() {
        if s["tag"] == "6-setup.1" {
            let labels = crate::support::labels_of(s["id"].as_str().unwrap());
            assert_eq!(s["key"], labels["dev.kiln.step-key"]);
            assert_eq!(
                s["step"]["ms"].to_string(),
                labels["dev.kiln.step-duration-ms"]
            );
        }
    }
    let old: BTreeSet<String> = of("6-setup", "old")
        .union(&of("10-final", "old"))
        .cloned()
        .collect();
    let soft: BTreeSet<String> = strings(&level(hs, "soft")["removes"]).into_iter().collect();
    assert_eq!(
        soft, old,
        "soft takes the old chains' tails, no current step"
    );

    // Soft removes them; the next build has nothing to run.
    let (rerun, steps) = prune_as_named(&h, "soft");
    assert!(rerun.is_empty() && steps.is_empty());
    assert!(h.build_ok(&[]).built().is_empty());

    // The third command edited, not built: its chain's tail is old now (the
    // current chain is the config's), steps 1 and 2 stay current, and setup
    // resumes at step 3.
    h.edit("VALUE-3", "VALUE-4");
    let st = status(&h);
    let snaps = tags_and_states(habitat_status(&st, &h.name));
    let states: BTreeSet<(String, String)> = snaps.values().cloned().collect();
    for want in [
        ("6-setup.1", "current"),
        ("6-setup.2", "current"),
        ("6-setup", "old"),
        ("10-final", "old"),
    ] {
        assert!(
            states.contains(&(want.0.to_string(), want.1.to_string())),
            "{want:?} in {states:?}"
        );
    }
    let (rerun, steps) = prune_as_named(&h, "soft");
    assert_eq!(rerun, ["6-setup", "10-final"]);
    assert_eq!(steps, ["6-setup.3"]);
    let next = h.build_ok(&[]);
    assert_eq!(built_tags(&next), rerun, "the phases it estimated");
    assert_eq!(built_steps(&next), steps, "the steps it estimated");

    // A chain the user tagged survives soft; medium takes it, and no step
    // of the current chain.
    let tagged = crate::support::image_id(&format!("habitat-{}:latest", h.name));
    let user = UserTag(format!("{}-user:v4", h.name));
    docker(&["tag", &tagged, &user.0]);
    h.edit("VALUE-4", "VALUE-5");
    h.build_ok(&[]);
    let (rerun, _) = prune_as_named(&h, "soft");
    assert!(rerun.is_empty());
    assert!(
        images_of(&h.name).contains(&tagged),
        "soft keeps a tagged chain"
    );
    let (rerun, steps) = prune_as_named(&h, "medium");
    assert!(rerun.is_empty() && steps.is_empty());
    let left = tags_and_states(habitat_status(&status(&h), &h.name));
    assert!(!left.contains_key(&tagged), "medium takes a tagged chain");
    assert!(left.values().all(|(_, s)| s == "current"), "{left:?}");
    assert!(h.build_ok(&[]).built().is_empty());
    drop(user);
}

#[test]
fn a_config_that_no_longer_loads_is_judged_by_its_last_build() {
    let h = stepped();
    h.build_ok(&[]);
    std::fs::write(h.dir().join("kiln.yaml"), "name: [not, a, name\n").unwrap();
    let run = h.kiln(&["cache", "status", "--all", "--json"]).run();
    run.assert_code(0);
    let st: Value = serde_json::from_str(&run.stdout).unwrap();
    let hs = habitat_status(&st, &h.name);
    assert_eq!(hs["current_from"], "last_build", "{hs:#}");
    assert!(
        hs["current_note"]
            .as_str()
            .is_some_and(|n| n.contains("does not load")),
        "{hs:#}"
    );
    let snaps = tags_and_states(hs);
    assert!(snaps.values().all(|(_, s)| s == "current"), "{snaps:?}");
}

/// A one-layer image shaped like a bootstrap base (imported, labelled with
/// a parameters' key), tagged `kt-kcache2-…-bootstrap:WHAT`; removed on drop
/// if a test leaves it. The engine's real `kiln-bootstrap/*` bases are
/// never touched.
struct FakeBase {
    id: String,
    key: String,
    tag: String,
}

impl FakeBase {
    fn new(h: &Habitat, what: &str) -> FakeBase {
        let dir = h.root().join(format!("base-{what}"));
        std::fs::create_dir_all(dir.join("etc")).unwrap();
        std::fs::write(dir.join("etc/base"), format!("{} {what}\n", h.name)).unwrap();
        let tar = h.root().join(format!("base-{what}.tar"));
        crate::support::sh(&dir, &format!("tar -cf {} etc", tar.display()));
        let key = format!(
            "{:0>64}",
            format!("{:x}", {
                use std::hash::{Hash, Hasher};
                let mut s = std::collections::hash_map::DefaultHasher::new();
                (&h.name, what).hash(&mut s);
                s.finish()
            })
        );
        let tag = format!("{}-bootstrap:{what}", h.name);
        let id = docker(&[
            "import",
            "--change",
            &format!("LABEL dev.kiln.bootstrap={key}"),
            tar.to_str().unwrap(),
            &tag,
        ])
        .trim()
        .to_string();
        FakeBase { id, key, tag }
    }

    fn exists(&self) -> bool {
        docker_output(&["image", "inspect", &self.id])
            .status
            .success()
    }
}

impl Drop for FakeBase {
    fn drop(&mut self) {
        let _ = docker_output(&["rmi", &self.tag]);
    }
}

#[test]
fn nuke_all_removes_the_bootstrap_bases_this_cache_made_and_only_those() {
    let h = stepped();
    h.build_ok(&[]);
    // `made` is recorded as this cache's making (as a bootstrap records
    // what it imports); `found` carries the same labels but is not.
    let made = FakeBase::new(&h, "made");
    let found = FakeBase::new(&h, "found");
    assert_ne!(made.id, found.id);
    let record = h.cache().join("made/+bootstrap.json");
    std::fs::write(
        &record,
        serde_json::json!({"made": {made.id.as_str(): made.key.as_str()}}).to_string(),
    )
    .unwrap();
    let shared = || -> BTreeSet<String> {
        docker(&[
            "images",
            "-q",
            "--no-trunc",
            "--filter",
            "reference=kiln-bootstrap/*",
        ])
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
    };
    let shared_before = shared();
    let dry = h
        .kiln(&["cache", "prune", "--all", "--level", "nuke", "--dry-run"])
        .run();
    dry.assert_code(0);
    assert!(
        dry.stdout.contains("would remove bootstrap base"),
        "{}",
        dry.stdout
    );
    assert!(made.exists() && found.exists(), "a dry run removes nothing");
    let run = h
        .kiln(&["cache", "prune", "--all", "--level", "nuke", "--yes"])
        .run();
    run.assert_code(0);
    assert_eq!(
        run.stdout
            .lines()
            .filter(|l| l.starts_with("removed bootstrap base"))
            .count(),
        1,
        "{}",
        run.stdout
    );
    assert!(!made.exists(), "the base this cache made went");
    assert!(found.exists(), "a base it did not make stays");
    assert!(images_of(&h.name).is_empty(), "and every snapshot");
    let index: Value = serde_json::from_str(&std::fs::read_to_string(&record).unwrap()).unwrap();
    assert_eq!(index["made"], serde_json::json!({}), "{index}");
    assert!(
        shared_before.is_subset(&shared()),
        "the engine's shared kiln-bootstrap bases stay"
    );
}
