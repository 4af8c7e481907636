//! The README's promise, checked end to end: `examples/quickstart` builds on
//! the real Docker Engine with the real `kiln` binary, the image holds what
//! every phase put there, and a second build changes nothing (all ten phases
//! `cached`). Needs a running engine, debootstrap, git and Debian's apt
//! mirror (what `scripts/test` installs).
//!
//! The example is copied into a temp dir under a habitat name of its own
//! (`kt-quickstart-PID`) with a cache directory of its own, so the first build
//! is cold: every phase `built`, never a hit left by an earlier run or by
//! `scripts/quickstart`. The bootstrap base image is the engine's, shared by
//! parameters, so debootstrap runs once per machine.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const LABEL_HABITAT: &str = "dev.kiln.habitat";

fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/quickstart")
}

/// The test's own habitat name.
fn habitat_name() -> String {
    format!("kt-quickstart-{}", std::process::id())
}

/// Copies `from` into `to`, recursively (the example has files and dirs only).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The example under the test's own name, in `root`, with its cache beside it.
struct Namespace {
    root: tempfile::TempDir,
}

impl Namespace {
    fn new() -> Namespace {
        let root = tempfile::Builder::new()
            .prefix("kiln-quickstart-")
            .tempdir()
            .unwrap();
        let name = habitat_name();
        let dir = root.path().join("quickstart");
        copy_tree(&example_dir(), &dir);
        let yaml = std::fs::read_to_string(dir.join("kiln.yaml")).unwrap();
        assert!(yaml.contains("\nname: quickstart\n"), "{yaml}");
        let yaml = yaml.replace("\nname: quickstart\n", &format!("\nname: {name}\n"));
        std::fs::write(dir.join("kiln.yaml"), yaml).unwrap();
        remove_images(&name);
        Namespace { root }
    }

    fn dir(&self) -> PathBuf {
        self.root.path().join("quickstart")
    }

    fn cache(&self) -> PathBuf {
        self.root.path().join("cache")
    }
}

/// Removes every image of habitat `name` (its snapshots and final tags).
fn remove_images(name: &str) {
    let out = Command::new("docker")
        .args([
            "images",
            "-q",
            "--filter",
            &format!("label={LABEL_HABITAT}={name}"),
        ])
        .stdin(Stdio::null())
        .output()
        .expect("docker runs");
    let mut ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect();
    ids.sort();
    ids.dedup();
    if !ids.is_empty() {
        let _ = Command::new("docker")
            .args(["rmi", "-f"])
            .args(&ids)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Containers of this habitat, by id (kiln's build containers and ours).
fn habitat_containers() -> Vec<String> {
    Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            &format!("label={LABEL_HABITAT}={}", habitat_name()),
        ])
        .stdin(Stdio::null())
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Removes whatever containers and images of the habitat are left, even when
/// the test panics, so a failure leaves nothing behind.
struct Cleanup;

impl Drop for Cleanup {
    fn drop(&mut self) {
        remove_images(&habitat_name());
        let ids = habitat_containers();
        if !ids.is_empty() {
            let _ = Command::new("docker")
                .args(["rm", "-f"])
                .args(&ids)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// `kiln build DIR --progress json` in the namespace: the events, parsed.
fn build(ns: &Namespace) -> Vec<Value> {
    let out = run(Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args([
            "build".as_ref(),
            ns.dir().as_os_str(),
            "--progress".as_ref(),
            "json".as_ref(),
        ])
        .env("KILN_CACHE_DIR", ns.cache()));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// `(id, phase, status)` of every `phase_end`, in order.
fn phase_ends(events: &[Value]) -> Vec<(String, String, String)> {
    events
        .iter()
        .filter(|e| e["event"] == "phase_end")
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            (s("id"), s("phase"), s("status"))
        })
        .collect()
}

fn final_image(events: &[Value]) -> String {
    let end = events
        .iter()
        .find(|e| e["event"] == "build_end")
        .expect("a build_end event");
    assert_eq!(end["status"], "ok", "build_end: {end}");
    end["image"].as_str().expect("build_end.image").to_string()
}

/// Runs `script` with `sh -c` in a throwaway container of `image`, as the
/// image's own user and workdir, and returns its stdout.
fn in_image(image: &str, script: &str) -> String {
    let out = run(Command::new("docker").args([
        "run",
        "--rm",
        "--label",
        &format!("{LABEL_HABITAT}={}", habitat_name()),
        "--network",
        "none",
        image,
        "sh",
        "-c",
        script,
    ]));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn quickstart_builds_every_phase_then_is_fully_cached() {
    let _cleanup = Cleanup;
    let ns = Namespace::new();
    let phases: Vec<(String, String)> = [
        "base", "users", "env", "habitat", "files", "setup", "repos", "tools", "verify", "final",
    ]
    .iter()
    .enumerate()
    .map(|(i, p)| ((i + 1).to_string(), p.to_string()))
    .collect();

    let first = build(&ns);
    let ends = phase_ends(&first);
    let ids = |ends: &[(String, String, String)]| -> Vec<(String, String)> {
        ends.iter()
            .map(|(i, p, _)| (i.clone(), p.clone()))
            .collect()
    };
    assert_eq!(ids(&ends), phases, "one phase_end per phase, in order");
    // A cold build in its own namespace: every phase is built.
    for (id, phase, status) in &ends {
        assert_eq!(status, "built", "{id}-{phase} on the first build");
    }
    let image = final_image(&first);

    // What the phases put in the image, read as the image's own user.
    let bundle = example_dir().join("app.bundle").canonicalize().unwrap();
    let heads = run(Command::new("git")
        .arg("ls-remote")
        .arg(&bundle)
        .arg("refs/heads/main"));
    let commit = String::from_utf8_lossy(&heads.stdout)
        .split_whitespace()
        .next()
        .expect("the bundle has refs/heads/main")
        .to_string();
    let facts = in_image(
        &image,
        "echo \"whoami=$(id -un) $(id -u) $(id -nG)\"
         echo \"pwd=$(pwd)\"
         echo \"env=$APP_ENV\"
         echo \"dirs=\"$(stat -c '%n %U %a' /habitat/shared/tools/bin /work)
         echo \"gitconfig=$(stat -c '%U:%G %a' /home/dev/.gitconfig)\"
         echo \"ready=$(cat /home/dev/.ready)\"
         echo \"repo=$(stat -c '%U' /work/app) $(test -d /work/app/.git && echo .git) $(git -C /work/app rev-parse HEAD)\"
         echo \"tool=$(stat -c '%U:%G %a' /usr/local/bin/hello)\"
         echo \"hello=$(hello)\"",
    );
    assert_eq!(
        facts,
        format!(
            "whoami=dev 1000 dev sudo users\n\
             pwd=/work/app\n\
             env=development\n\
             dirs=/habitat/shared/tools/bin root 755 /work root 755\n\
             gitconfig=dev:dev 644\n\
             ready=ready\n\
             repo=dev .git {commit}\n\
             tool=root:root 755\n\
             hello=hello from kiln's quickstart habitat, dev\n"
        )
    );
    let gitconfig = std::fs::read_to_string(example_dir().join("files/gitconfig")).unwrap();
    assert_eq!(in_image(&image, "cat /home/dev/.gitconfig"), gitconfig);

    // Nothing changed, so nothing rebuilds and the final image is the same.
    let second = build(&ns);
    let ends = phase_ends(&second);
    assert_eq!(ids(&ends), phases, "one phase_end per phase, in order");
    for (id, phase, status) in &ends {
        assert_eq!(status, "cached", "{id}-{phase} on the second build");
    }
    assert_eq!(final_image(&second), image);

    assert_eq!(
        habitat_containers(),
        Vec::<String>::new(),
        "kiln and this test leave no containers behind"
    );
}
