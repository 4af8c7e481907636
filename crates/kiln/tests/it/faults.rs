//! Concurrency and faults, end to end: builds that run at the same time
//! (the lock, the sweeps of what builds leave), interrupts, killed builds,
//! and configs that would make a build run for ever.

use crate::support;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdout, Command, Output};
use std::time::{Duration, Instant};

use kiln_core::cache::owner::Owner;
use support::{Habitat, docker, docker_output};

/// A habitat whose setup sleeps `secs`: long enough for a second build to
/// start while the first's setup container exists.
fn sleeping(h: &Habitat, secs: u32) {
    h.config(&format!(
        r#"name: @NAME@
build:
  base: {{ image: "kiln-test/busybox:latest" }}
  setup:
    commands:
      root: ["sleep {secs}; echo slept > /setup-marker"]
  final:
    command: ["sh"]
"#
    ));
}

/// A running `kiln build --progress json`, its stdout read line by line.
struct Running {
    child: Child,
    stdout: BufReader<ChildStdout>,
    seen: String,
}

impl Running {
    fn start(test: support::Test) -> Running {
        let mut child = test.spawn();
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        Running {
            child,
            stdout,
            seen: String::new(),
        }
    }

    /// Reads events until one contains every needle.
    fn until(&mut self, needles: &[&str]) {
        loop {
            let mut line = String::new();
            let n = self.stdout.read_line(&mut line).expect("read");
            assert!(n > 0, "ended before {needles:?}:\n{}", self.seen);
            self.seen.push_str(&line);
            if needles.iter().all(|n| line.contains(n)) {
                return;
            }
        }
    }

    /// Waits for the end: the exit code and every event.
    fn finish(mut self) -> (Option<i32>, String, String) {
        let mut rest = String::new();
        self.stdout.read_to_string(&mut rest).expect("read");
        self.seen.push_str(&rest);
        let out = self.child.wait_with_output().expect("ends");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.code(), self.seen, stderr)
    }
}

/// Starts a first build and returns once its setup container exists.
fn first_build_in_setup(h: &Habitat) -> Running {
    let mut first = Running::start(h.kiln(&["build", ".", "--progress", "json"]));
    first.until(&["\"phase_start\"", "\"setup\""]);
    while support::containers_of(&h.name).is_empty() {
        assert!(
            first.child.try_wait().expect("wait").is_none(),
            "the first build ended early: {}",
            first.seen
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    first
}

fn assert_built_setup(run: (Option<i32>, String, String)) {
    let (code, events, stderr) = run;
    assert_eq!(code, Some(0), "the first build failed:\n{events}\n{stderr}");
    let setup_built = events
        .lines()
        .any(|l| l.contains("\"phase_end\"") && l.contains("\"setup\"") && l.contains("\"built\""));
    assert!(setup_built, "{events}");
}

/// Bug: Ctrl-C on a build waiting for the lock removed the running build's
/// container (the interrupt swept every build container of the habitat), so
/// the build it waited for failed. An interrupt removes only its own.
#[test]
fn regression_ctrl_c_while_waiting_for_the_lock_spares_the_running_build() {
    let h = Habitat::new("wait-intr");
    sleeping(&h, 6);
    let first = first_build_in_setup(&h);
    let mut second = Running::start(h.kiln(&["build", ".", "--progress", "json"]));
    second.until(&["\"waiting\""]);
    let status = Command::new("kill")
        .args(["-INT", &second.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let (code, _, stderr) = second.finish();
    assert_eq!(code, Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert_built_setup(first.finish());
}

/// Bug: a build with another `KILN_CACHE_DIR` or `$HOME` took another lock
/// (the lock lived in the cache directory), so it did not wait, and its
/// sweep removed the running build's container. Builds of one habitat on one
/// engine wait for each other whatever their cache directory.
#[test]
fn regression_a_build_with_another_cache_dir_waits_and_spares_the_running_build() {
    let h = Habitat::new("wait-cache");
    sleeping(&h, 6);
    let first = first_build_in_setup(&h);
    let other = h.root().join("other");
    let second = h
        .kiln(&["build", ".", "--progress", "json"])
        .env("KILN_CACHE_DIR", &other.join("cache").display().to_string())
        .env("HOME", &other.join("home").display().to_string())
        .env("XDG_CACHE_HOME", &other.join("xdg").display().to_string())
        .env("TMPDIR", &h.root().display().to_string())
        .run();
    assert_built_setup(first.finish());
    second.assert_code(0);
    assert!(
        second.events().iter().any(|e| e["event"] == "waiting"),
        "the second build did not wait:\n{}",
        second.stdout
    );
    // It waited, so it found the first build's snapshots.
    assert_eq!(second.built(), Vec::<String>::new(), "{}", second.stdout);
}

/// Bug: a build's sweep removed every build container of its habitat but
/// its own, a running build's included. It removes only the containers of
/// builds whose process is gone: here one whose pid now names another
/// process (this test's pid with another start time), and not one of a
/// process that runs (this test).
#[test]
fn regression_a_build_removes_only_the_containers_of_builds_that_are_gone() {
    let h = Habitat::new("sweep");
    sleeping(&h, 0);
    let me = Owner::current();
    let dead = Owner {
        start: me.start + 1,
        ..me
    };
    let create = |owner: &Owner| {
        let name = format!("kiln-build-{}-{}-0", h.name, owner.token());
        let label = format!("dev.kiln.habitat={}", h.name);
        docker(&[
            "create",
            "--name",
            &name,
            "--label",
            &label,
            "kiln-test/busybox:latest",
            "sh",
        ]);
        name
    };
    let (dead_one, live_one) = (create(&dead), create(&me));
    h.build_ok(&[]);
    let exists = |name: &str| docker_output(&["inspect", name]).status.success();
    assert!(!exists(&dead_one), "a dead build's container was kept");
    assert!(exists(&live_one), "a running build's container was removed");
}

/// Waits for `child`; a child still running after `limit` is killed and the
/// test fails (a hang guard, not a timing assertion: the bugs it catches
/// never end at all).
fn wait_or_kill(mut child: Child, limit: Duration, what: &str) -> Output {
    let started = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().expect("killed");
            panic!(
                "{what} did not end within {limit:?}\n--- stderr\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("ends")
}

/// Bug: with `a`'s base habitat `b` and `b`'s `a`, `check` said ok, `plan`
/// overflowed its stack and `build` waited for its own lock for ever. The
/// cycle is an error of the config: located at `base.habitat`, exit 2.
#[test]
fn regression_a_cycle_of_base_habitats_is_a_config_error() {
    let h = Habitat::new("cycle");
    h.config("name: @NAME@\nbuild:\n  base:\n    habitat: ../b\n");
    let b = h.root().join("b");
    std::fs::create_dir(&b).expect("mkdir b");
    std::fs::write(
        b.join("kiln.yaml"),
        format!("name: {}-b\nbuild:\n  base: {{ habitat: ../h }}\n", h.name),
    )
    .expect("write b");
    let cycle = format!(
        "base habitats form a cycle: `{0}` → `{0}-b` → `{0}`",
        h.name
    );
    for args in [
        &["check"][..],
        &["plan"],
        &["build", ".", "--progress", "plain"],
    ] {
        let child = h.kiln(args).spawn();
        let out = wait_or_kill(child, Duration::from_secs(120), &format!("kiln {args:?}"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "kiln {args:?}: {stderr}");
        assert!(stderr.contains(&cycle), "kiln {args:?}: {stderr}");
        assert!(stderr.contains("kiln.yaml:4:"), "kiln {args:?}: {stderr}");
    }
    // The other way round, from `b`.
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["check"])
        .arg(&b)
        .output()
        .expect("kiln check b");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("kiln.yaml:3:"), "{stderr}");
    support::remove_habitat(&format!("{}-b", h.name));
}

/// A habitat that copies `size` bytes into the image (a layer written in
/// TMPDIR).
fn copying(h: &Habitat, size: usize) {
    h.write("big.bin", &"k".repeat(size));
    h.config(
        r#"name: @NAME@
build:
  base: { image: "kiln-test/busybox:latest" }
  files:
    copies:
      - { source: big.bin, dest: /big.bin }
  final:
    command: ["sh"]
"#,
    );
}

/// Bug: a SIGKILLed build left its `kiln-layer-*` directory (as large as
/// the copy) in TMPDIR for ever. Temporary files are named by their owner,
/// and a build removes those whose owner is gone, and no others.
#[test]
fn regression_a_killed_builds_temporary_files_are_swept() {
    let h = Habitat::new("tmp-sweep");
    copying(&h, 1000);
    let tmp = h.root().join("tmp");
    std::fs::create_dir(&tmp).expect("mkdir tmp");
    let me = Owner::current();
    let dead = Owner {
        start: me.start + 1,
        ..me
    };
    let mut left = Vec::new();
    for prefix in ["kiln-layer-", "kiln-secrets-"] {
        let dir = tmp.join(format!("{prefix}{}.AbCdEf", dead.token()));
        std::fs::create_dir(&dir).expect("mkdir");
        std::fs::write(dir.join("image.tar"), "big").expect("write");
        left.push(dir);
    }
    let stream = tmp.join(format!("kiln-stream-{}.AbCdEf", dead.token()));
    std::fs::write(&stream, "big").expect("write");
    left.push(stream);
    let running = tmp.join(format!("kiln-layer-{}.GhIjKl", me.token()));
    std::fs::create_dir(&running).expect("mkdir");
    let older = tmp.join("kiln-layer-MnOpQr");
    std::fs::create_dir(&older).expect("mkdir");

    h.kiln(&["build", ".", "--progress", "json"])
        .env("TMPDIR", &tmp.display().to_string())
        .run()
        .assert_code(0);
    for path in &left {
        assert!(!path.exists(), "{} was left", path.display());
    }
    assert!(running.exists(), "a running process's directory was swept");
    assert!(older.exists(), "a directory of unknown owner was swept");
}

/// A tmpfs of `size` mounted at `dir` for the length of a test.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    /// `None` when this process may not mount (not root).
    fn mount(dir: &std::path::Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).expect("mkdir");
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Bug: a full TMPDIR under a large copy was reported as "Broken pipe" (the
/// copy's write into the layer's pipe, not the layer's write to the disk).
/// It is reported as no space, names the file, and says what to do; nothing
/// is left in TMPDIR.
#[test]
fn regression_a_full_tmpdir_is_reported_as_no_space_not_a_broken_pipe() {
    let h = Habitat::new("enospc");
    copying(&h, 4 << 20);
    let tmp = h.root().join("small");
    let Some(_tmpfs) = Tmpfs::mount(&tmp, "1m") else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    let run = h
        .kiln(&["build", ".", "--progress", "plain"])
        .env("TMPDIR", &tmp.display().to_string())
        .run();
    run.assert_code(1);
    assert!(
        run.stderr.contains("No space left on device"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("Broken pipe"), "{}", run.stderr);
    assert!(
        run.stderr.contains("set TMPDIR to a larger disk"),
        "{}",
        run.stderr
    );
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .expect("list tmp")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert!(left.is_empty(), "left in TMPDIR: {left:?}");
}
