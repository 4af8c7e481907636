//! Step caching on the real engine (SPEC §5): inside setup each root command
//! is its own cached step, so editing the third reruns from it and keeps the
//! first two; a step that fails leaves the steps before it, and the next
//! build resumes at the failed step. Repo `commands` (SPEC §2.1) run in the
//! repo's directory as its owner after the checkout, each a step keyed with
//! the commit, and get the build's secrets as setup's commands do.
//!
//! Each command writes a fresh random uuid into the image, so a
//! step that did not run again is seen by its file (and image id) unchanged.

use serde_json::Value;

use crate::support::{Habitat, docker, image_id, sh};

const SETUP: &str = r#"name: @NAME@
build:
  base: { image: "kiln-test/busybox:latest" }
  setup:
    commands:
      root:
        - "cat /proc/sys/kernel/random/uuid > /step1"
        - "cat /proc/sys/kernel/random/uuid > /step2"
        - "THIRD"
        - "cat /proc/sys/kernel/random/uuid > /step4"
        - "test \"$(cat /run/secrets/flag)\" = go; cat /proc/sys/kernel/random/uuid > /step5"
secrets:
  - { id: flag, file: flag.txt }
"#;

fn cat(h: &Habitat, image: &str, path: &str) -> String {
    docker(&[
        "run",
        "--rm",
        "--label",
        &format!("dev.kiln.habitat={}", h.name),
        "--entrypoint",
        "/bin/cat",
        image,
        path,
    ])
    .trim()
    .to_string()
}

/// Each `step_end` of `phase` as `STEP STATUS`.
fn steps(events: &[Value], phase: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["event"] == "step_end" && e["phase"] == phase)
        .map(|e| {
            format!(
                "{} {}",
                e["step"].as_str().unwrap_or_default(),
                e["status"].as_str().unwrap_or_default()
            )
        })
        .collect()
}

#[test]
fn editing_the_third_root_command_reruns_from_it_and_a_failed_step_resumes_there() {
    let h = Habitat::new("steps");
    h.write("flag.txt", "stop");
    h.config(&SETUP.replace("THIRD", "cat /proc/sys/kernel/random/uuid > /step3"));
    let latest = format!("habitat-{}:latest", h.name);
    let step = |n: usize| format!("habitat-{}:6-setup.{n}", h.name);

    // Step 5 fails: steps 1-4 are kept, tagged, and named by the failure.
    let run = h.build(&[]);
    run.assert_code(1);
    assert_eq!(
        steps(&run.events(), "setup"),
        [
            "6-setup.1 built",
            "6-setup.2 built",
            "6-setup.3 built",
            "6-setup.4 built",
            "6-setup.5 failed"
        ]
    );
    let kept: Vec<String> = (1..=4).map(|n| image_id(&step(n))).collect();
    let first = cat(&h, &step(4), "/step1");
    let plan = h.kiln(&["plan", "."]).run();
    plan.assert_code(0);
    assert!(
        plan.stdout.contains("resumes at step 5 of 5"),
        "{}",
        plan.stdout
    );

    // Nothing in the config changed (a secret is no input): the retry
    // resumes at step 5, the steps before it as they were.
    h.write("flag.txt", "go");
    let run = h.build(&[]);
    run.assert_code(0);
    assert_eq!(
        steps(&run.events(), "setup"),
        [
            "6-setup.1 cached",
            "6-setup.2 cached",
            "6-setup.3 cached",
            "6-setup.4 cached",
            "6-setup.5 built"
        ]
    );
    assert_eq!(cat(&h, &latest, "/step1"), first);
    assert_eq!(image_id(&step(4)), kept[3]);
    // The phase's tag points at its last step.
    assert_eq!(
        image_id(&format!("habitat-{}:6-setup", h.name)),
        image_id(&step(5))
    );
    let before: Vec<String> = (1..=5)
        .map(|n| cat(&h, &latest, &format!("/step{n}")))
        .collect();

    // Editing the third command reruns steps 3-5 only.
    h.edit(
        "cat /proc/sys/kernel/random/uuid > /step3",
        "cat /proc/sys/kernel/random/uuid > /step3; echo edited > /edited",
    );
    let run = h.build(&[]);
    run.assert_code(0);
    assert_eq!(
        steps(&run.events(), "setup"),
        [
            "6-setup.1 cached",
            "6-setup.2 cached",
            "6-setup.3 built",
            "6-setup.4 built",
            "6-setup.5 built"
        ]
    );
    let reason = run.end("setup").reason;
    assert!(
        reason.contains("setup.commands.root[2]") && reason.contains("resumes at step 3 of 5"),
        "{reason}"
    );
    let after: Vec<String> = (1..=5)
        .map(|n| cat(&h, &latest, &format!("/step{n}")))
        .collect();
    assert_eq!(after[..2], before[..2], "steps 1 and 2 did not run again");
    for n in 2..5 {
        assert_ne!(after[n], before[n], "step {} ran again", n + 1);
    }
    assert_eq!(cat(&h, &latest, "/edited"), "edited");
    assert_eq!(image_id(&step(1)), kept[0]);

    // Back to the earlier config: the whole phase is a hit again.
    h.edit(
        "cat /proc/sys/kernel/random/uuid > /step3; echo edited > /edited",
        "cat /proc/sys/kernel/random/uuid > /step3",
    );
    let run = h.build(&[]);
    run.assert_code(0);
    assert_eq!(run.end("setup").status, "cached");
    assert_eq!(cat(&h, &latest, "/step3"), before[2]);

    // Steps 3 and 4 of this config are no tag's any more (the edited
    // config's are): an edit of step 5 finds them by their keys.
    assert_ne!(image_id(&step(3)), kept[2]);
    h.edit("= go; cat", "= go && cat");
    let run = h.build(&[]);
    run.assert_code(0);
    assert_eq!(
        steps(&run.events(), "setup"),
        [
            "6-setup.1 cached",
            "6-setup.2 cached",
            "6-setup.3 cached",
            "6-setup.4 cached",
            "6-setup.5 built"
        ]
    );
    assert_eq!(cat(&h, &latest, "/step3"), before[2]);
    assert_eq!(
        image_id(&step(3)),
        kept[2],
        "the step's tag follows the build"
    );
}

#[test]
fn repo_commands_run_in_the_checkout_as_its_owner_each_a_step_keyed_with_the_commit() {
    let h = Habitat::new("repocmd");
    let repo = h.root().join("app");
    std::fs::create_dir(&repo).expect("repo dir");
    sh(
        &repo,
        "git init -q -b main . && echo v1 > VERSION && git add VERSION && \
         git -c user.name=t -c user.email=t@t commit -qm one",
    );
    let yaml = r#"name: @NAME@
build:
  base: { image: "kiln-test/busybox:latest" }
  users:
    - { name: dev, uid: 1000 }
  repos:
    - url: "@ROOT@/app"
      path: /work/app
      owner: dev
      commands:
        - "cat VERSION > built.txt; pwd > where.txt; id -u > who.txt"
        - "test \"$KILN_STEPS_TOKEN\" = s3cr3t-value && echo seen > secret.txt; cat /proc/sys/kernel/random/uuid > second.txt"
secrets:
  - { id: token, env: KILN_STEPS_TOKEN }
"#;
    h.config(yaml);
    let latest = format!("habitat-{}:latest", h.name);
    let build = || {
        let run = h
            .kiln(&["build", ".", "--progress", "json"])
            .env("KILN_STEPS_TOKEN", "s3cr3t-value")
            .run();
        run.assert_code(0);
        run
    };
    let run = build();
    assert_eq!(
        steps(&run.events(), "repos"),
        ["7-repos.1 built", "7-repos.2 built", "7-repos.3 built"]
    );
    assert_eq!(cat(&h, &latest, "/work/app/built.txt"), "v1");
    assert_eq!(cat(&h, &latest, "/work/app/where.txt"), "/work/app");
    assert_eq!(cat(&h, &latest, "/work/app/who.txt"), "1000");
    assert_eq!(cat(&h, &latest, "/work/app/secret.txt"), "seen");
    let owner = docker(&[
        "run",
        "--rm",
        "--label",
        &format!("dev.kiln.habitat={}", h.name),
        "--entrypoint",
        "/bin/stat",
        &latest,
        "-c",
        "%u",
        "/work/app/built.txt",
    ]);
    assert_eq!(owner.trim(), "1000");
    // The secret is in no label, no layer's config, no output.
    let inspect = docker(&["image", "inspect", &latest]);
    assert!(!inspect.contains("s3cr3t-value"));
    assert!(!run.stdout.contains("s3cr3t-value"));
    let second = cat(&h, &latest, "/work/app/second.txt");

    // An edit of the second command reruns only it.
    h.edit(
        "cat /proc/sys/kernel/random/uuid > second.txt",
        "cat /proc/sys/kernel/random/uuid > second.txt; echo 2 > edited.txt",
    );
    let run = build();
    assert_eq!(
        steps(&run.events(), "repos"),
        ["7-repos.1 cached", "7-repos.2 cached", "7-repos.3 built"]
    );
    assert_ne!(cat(&h, &latest, "/work/app/second.txt"), second);
    assert_eq!(cat(&h, &latest, "/work/app/edited.txt"), "2");

    // A new commit reruns the checkout and every command after it.
    sh(
        &repo,
        "echo v2 > VERSION && git -c user.name=t -c user.email=t@t commit -qam two",
    );
    let run = build();
    assert_eq!(
        steps(&run.events(), "repos"),
        ["7-repos.1 built", "7-repos.2 built", "7-repos.3 built"]
    );
    assert_eq!(cat(&h, &latest, "/work/app/built.txt"), "v2");
}

const STOPPED: &str = r#"name: @NAME@
build:
  base: { image: "kiln-test/busybox:latest" }
  setup:
    commands:
      root:
        - "cat /proc/sys/kernel/random/uuid > /step1"
        - "cat /proc/sys/kernel/random/uuid > /step2"
        - "THIRD"
        - "FOURTH"
"#;

/// Starts `kiln build` and returns it once a `step_end` of `step` is out,
/// with the events so far.
// The caller waits for the child it gets; one that ended early has exited.
#[allow(clippy::zombie_processes)]
fn build_until_step(h: &Habitat, step: &str) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = h.kiln(&["build", ".", "--progress", "json"]).spawn();
    let mut out = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        let n = out.read_line(&mut line).expect("read");
        assert!(n > 0, "the build ended before step {step}:\n{seen}");
        seen.push_str(&line);
        if line.contains("\"step_end\"") && line.contains(&format!("\"{step}\"")) {
            // The rest of stdout is not read: a full pipe would stall it.
            std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
            return (child, seen);
        }
    }
}

/// The step image ids the habitat's made index records.
fn indexed_steps(h: &Habitat) -> Vec<String> {
    let path = h.cache().join("made").join(format!("{}.json", h.name));
    let index: Value =
        serde_json::from_slice(&std::fs::read(&path).expect("the made index")).expect("json");
    index["steps"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// A step's index entry is written with its phase, not on each step's
/// path (SPEC §5: a step at the engine's floor). A build killed between
/// steps (SIGKILL: nothing saved) still resumes at its step, its images
/// found by their tags and proved kiln's by their ids; an interrupted one
/// (SIGINT) saves what it made before it exits.
#[test]
fn a_build_killed_or_interrupted_between_steps_resumes_at_its_step() {
    let h = Habitat::new("ksteps2-stop");
    let step = |n: usize| format!("habitat-{}:6-setup.{n}", h.name);
    h.config(
        &STOPPED
            .replace("THIRD", "sleep 60")
            .replace("FOURTH", "echo four > /step4"),
    );
    let (mut killed, _) = build_until_step(&h, "6-setup.2");
    killed.kill().expect("SIGKILL");
    let _ = killed.wait();
    let kept: Vec<String> = (1..=2).map(|n| image_id(&step(n))).collect();

    // Resumed at step 3, which now ends; step 4 sleeps and is interrupted.
    h.edit("sleep 60", "echo three > /step3");
    h.edit("echo four > /step4", "sleep 60");
    let (mut interrupted, seen) = build_until_step(&h, "6-setup.3");
    let seen = crate::support::events_of(&seen);
    assert_eq!(
        steps(&seen, "setup"),
        ["6-setup.1 cached", "6-setup.2 cached", "6-setup.3 built"]
    );
    let third = image_id(&step(3));
    let status = std::process::Command::new("kill")
        .args(["-INT", &interrupted.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let code = interrupted.wait().expect("ends").code();
    assert_eq!(code, Some(130));
    let indexed = indexed_steps(&h);
    for id in kept.iter().chain([&third]) {
        assert!(indexed.contains(id), "{id} not in {indexed:?}");
    }

    h.edit("sleep 60", "echo four > /step4");
    let run = h.build(&[]);
    run.assert_code(0);
    assert_eq!(
        steps(&run.events(), "setup"),
        [
            "6-setup.1 cached",
            "6-setup.2 cached",
            "6-setup.3 cached",
            "6-setup.4 built"
        ]
    );
    assert_eq!(image_id(&step(1)), kept[0]);
    assert_eq!(image_id(&step(3)), third);
    let latest = format!("habitat-{}:latest", h.name);
    assert_eq!(cat(&h, &latest, "/step3"), "three");
    assert_eq!(cat(&h, &latest, "/step4"), "four");
}

/// A step that changes no file is an image of its own (its step's labels)
/// over exactly its parent's layers; one that writes a file adds one layer.
#[test]
fn a_step_that_changes_no_file_adds_no_layer() {
    let h = Habitat::new("ksteps2-empty");
    h.config(
        r#"name: @NAME@
build:
  base: { image: "kiln-test/busybox:latest" }
  setup:
    commands:
      root: ["echo one > /one", "true", "echo three > /three"]
"#,
    );
    h.build_ok(&[]);
    let layers = |n: usize| -> Vec<String> {
        let out = docker(&[
            "image",
            "inspect",
            "-f",
            "{{json .RootFS.Layers}}",
            &format!("habitat-{}:6-setup.{n}", h.name),
        ]);
        serde_json::from_str(out.trim()).expect("layers")
    };
    let (one, two, three) = (layers(1), layers(2), layers(3));
    assert_eq!(two, one);
    assert_eq!(three.len(), one.len() + 1);
    assert_eq!(three[..one.len()], one[..]);
    let step2 = format!("habitat-{}:6-setup.2", h.name);
    assert_ne!(
        image_id(&step2),
        image_id(&format!("habitat-{}:6-setup.1", h.name))
    );
    assert_eq!(
        crate::support::labels_of(&step2)["dev.kiln.step"],
        "6-setup.2"
    );
}
