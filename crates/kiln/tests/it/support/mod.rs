//! The `Test` builder of the end-to-end suite: a habitat in a temp dir, the
//! real `kiln` binary run against it, and whole outputs captured for diffing.
//! Everything a test makes in the engine is removed when its `Habitat` drops,
//! also when the test fails.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;

pub const BUSYBOX: &str = "kiln-test/busybox:latest";

/// Imports the busybox base image once per test binary.
pub fn ensure_busybox() {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    let done = DONE.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async {
            let engine = kiln_core::engine::docker::DockerEngine::connect()
                .await
                .map_err(|e| e.to_string())?;
            kiln_core::testing::busybox_image(&engine)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
    });
    if let Err(e) = done {
        panic!("cannot make the busybox test image: {e}");
    }
}

/// The output of `script` run by `/bin/sh -c` in a throwaway container of
/// `image`, as the image's own user (`None`) or as `user`.
pub fn sh_in(image: &str, user: Option<&str>, script: &str) -> String {
    let mut args = vec!["run", "--rm"];
    if let Some(user) = user {
        args.extend(["--user", user]);
    }
    args.extend(["--entrypoint", "/bin/sh", image, "-c", script]);
    docker(&args)
}

/// `docker build` with the classic builder of `dockerfile`, written into
/// `dir` (made if missing), as `tag`; panics when it fails.
pub fn docker_build_classic(dir: &Path, dockerfile: &str, tag: &str) {
    std::fs::create_dir_all(dir).expect("mkdir");
    std::fs::write(dir.join("Dockerfile"), dockerfile).expect("write Dockerfile");
    let out = Command::new("docker")
        .args(["build", "-q", "-t", tag, "."])
        .env("DOCKER_BUILDKIT", "0")
        .current_dir(dir)
        .output()
        .expect("`docker build` runs");
    assert!(
        out.status.success(),
        "docker build failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `docker ARGS`, returning its output whatever the exit status.
pub fn docker_output(args: &[&str]) -> std::process::Output {
    Command::new("docker")
        .args(args)
        .output()
        .expect("`docker` runs")
}

/// Runs `docker ARGS` and returns its stdout; panics when it fails.
pub fn docker(args: &[&str]) -> String {
    let out = docker_output(args);
    assert!(
        out.status.success(),
        "`docker {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn lines(s: &str) -> Vec<String> {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// Ids of every container (running or not) labelled with habitat `name`.
pub fn containers_of(name: &str) -> Vec<String> {
    lines(&docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=dev.kiln.habitat={name}"),
    ]))
}

/// Ids of every image labelled with habitat `name`, dangling ones included.
pub fn images_of(name: &str) -> BTreeSet<String> {
    lines(&docker(&[
        "images",
        "-aq",
        "--no-trunc",
        "--filter",
        &format!("label=dev.kiln.habitat={name}"),
    ]))
    .into_iter()
    .collect()
}

/// The tags of the repository `habitat-NAME`.
pub fn tags_of(name: &str) -> BTreeSet<String> {
    lines(&docker(&[
        "images",
        &format!("habitat-{name}"),
        "--format",
        "{{.Tag}}",
    ]))
    .into_iter()
    .collect()
}

/// The labels of `image`.
pub fn labels_of(image: &str) -> BTreeMap<String, String> {
    let out = docker(&["inspect", "--format", "{{json .Config.Labels}}", image]);
    serde_json::from_str::<Option<BTreeMap<String, String>>>(out.trim())
        .expect("labels are json")
        .unwrap_or_default()
}

/// The image id a reference points at.
pub fn image_id(reference: &str) -> String {
    docker(&["inspect", "--format", "{{.Id}}", reference])
        .trim()
        .to_string()
}

/// Removes every container and image of habitat `name`; children before
/// parents, so a few passes may be needed.
pub fn remove_habitat(name: &str) {
    let containers = containers_of(name);
    if !containers.is_empty() {
        let mut args = vec!["rm", "-f"];
        args.extend(containers.iter().map(String::as_str));
        let _ = docker_output(&args);
    }
    for _ in 0..12 {
        let mut ids: BTreeSet<String> = images_of(name);
        ids.extend(lines(&docker(&[
            "images",
            "-q",
            "--no-trunc",
            &format!("habitat-{name}"),
        ])));
        if ids.is_empty() {
            return;
        }
        for id in &ids {
            let _ = docker_output(&["rmi", "-f", id]);
        }
    }
}

/// A habitat directory in a temp dir, with its own kiln cache beside it.
pub struct Habitat {
    pub name: String,
    root: tempfile::TempDir,
}

impl Habitat {
    /// A fresh habitat named `kt-PREFIX-PID-N`, unique across parallel tests.
    pub fn new(prefix: &str) -> Habitat {
        static N: AtomicU64 = AtomicU64::new(0);
        ensure_busybox();
        let name = format!(
            "kt-{prefix}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let root = tempfile::Builder::new()
            .prefix("kiln-cli-")
            .tempdir()
            .expect("temp dir");
        std::fs::create_dir(root.path().join("h")).expect("habitat dir");
        let h = Habitat { name, root };
        // Leftovers of an earlier run with the same name (a reused pid).
        remove_habitat(&h.name);
        h
    }

    /// The temp dir holding the habitat, its cache and any side files.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// The habitat directory.
    pub fn dir(&self) -> PathBuf {
        self.root.path().join("h")
    }

    pub fn cache(&self) -> PathBuf {
        self.root.path().join("cache")
    }

    /// Writes `content` to `rel` (relative to the habitat), making parents.
    pub fn write(&self, rel: &str, content: &str) -> PathBuf {
        let path = self.dir().join(rel);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
        std::fs::write(&path, content).expect("write");
        path
    }

    /// Writes `kiln.yaml`, with `@NAME@` replaced by the habitat's name and
    /// `@ROOT@` by the temp dir.
    pub fn config(&self, yaml: &str) {
        let yaml = yaml
            .replace("@NAME@", &self.name)
            .replace("@ROOT@", &self.root().display().to_string());
        self.write("kiln.yaml", &yaml);
    }

    /// `kiln ARGS`, run in the habitat directory.
    pub fn kiln(&self, args: &[&str]) -> Test {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kiln"));
        cmd.args(args)
            .current_dir(self.dir())
            .env("KILN_CACHE_DIR", self.cache())
            .env("NO_COLOR", "1")
            .env_remove("KILN_TEST_TOKEN");
        Test { cmd }
    }

    /// `kiln build . --progress json ARGS`.
    pub fn build(&self, extra: &[&str]) -> Run {
        let mut args = vec!["build", ".", "--progress", "json"];
        args.extend_from_slice(extra);
        self.kiln(&args).run()
    }

    /// A build that must succeed.
    pub fn build_ok(&self, extra: &[&str]) -> Run {
        let run = self.build(extra);
        run.assert_code(0);
        run
    }

    /// Replaces `from` with `to` in `kiln.yaml`, which must contain it.
    pub fn edit(&self, from: &str, to: &str) {
        let path = self.dir().join("kiln.yaml");
        let text = std::fs::read_to_string(&path).expect("read kiln.yaml");
        assert!(text.contains(from), "kiln.yaml has no `{from}`:\n{text}");
        std::fs::write(&path, text.replacen(from, to, 1)).expect("write kiln.yaml");
    }
}

impl Drop for Habitat {
    fn drop(&mut self) {
        remove_habitat(&self.name);
    }
}

/// One run of the binary, before it starts.
pub struct Test {
    cmd: Command,
}

impl Test {
    pub fn env(mut self, key: &str, value: &str) -> Test {
        self.cmd.env(key, value);
        self
    }

    pub fn run(mut self) -> Run {
        let out = self.cmd.output().expect("kiln runs");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Starts the binary with stdout and stderr piped.
    pub fn spawn(mut self) -> Child {
        self.cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kiln starts")
    }
}

/// What a finished run printed.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// A `phase_end` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhaseEnd {
    pub id: String,
    pub phase: String,
    pub status: String,
    pub reason: String,
    pub image: String,
    pub key: String,
}

impl Run {
    pub fn assert_code(&self, code: i32) -> &Run {
        assert_eq!(
            self.code, code,
            "unexpected exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// The json events on stdout; every line must be one.
    pub fn events(&self) -> Vec<Value> {
        events_of(&self.stdout)
    }

    pub fn phase_ends(&self) -> Vec<PhaseEnd> {
        phase_ends_of(&self.events())
    }

    /// The phases (by name) that ended `built`, in order.
    pub fn built(&self) -> Vec<String> {
        self.phase_ends()
            .into_iter()
            .filter(|p| p.status == "built")
            .map(|p| p.phase)
            .collect()
    }

    pub fn end(&self, phase: &str) -> PhaseEnd {
        self.phase_ends()
            .into_iter()
            .find(|p| p.phase == phase)
            .unwrap_or_else(|| panic!("no phase_end for `{phase}` in\n{}", self.stdout))
    }

    /// The `build_end` event.
    pub fn build_end(&self) -> Value {
        self.events()
            .into_iter()
            .find(|e| e["event"] == "build_end")
            .unwrap_or_else(|| panic!("no build_end in\n{}", self.stdout))
    }
}

pub fn events_of(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a json event: {l:?}: {e}")))
        .collect()
}

pub fn phase_ends_of(events: &[Value]) -> Vec<PhaseEnd> {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    events
        .iter()
        .filter(|e| e["event"] == "phase_end")
        .map(|e| PhaseEnd {
            id: s(&e["id"]),
            phase: s(&e["phase"]),
            status: s(&e["status"]),
            reason: s(&e["reason"]),
            image: s(&e["image"]),
            key: s(&e["key"]),
        })
        .collect()
}

/// Runs `cmd` in `dir`; panics when it fails.
pub fn sh(dir: &Path, cmd: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .current_dir(dir)
        .output()
        .expect("sh runs");
    assert!(
        out.status.success(),
        "`{cmd}` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
