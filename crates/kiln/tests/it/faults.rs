//! Concurrency and faults, end to end: builds that run at the same time
//! (the lock, the sweeps of what builds leave), interrupts, killed builds,
//! and configs that would make a build run for ever.

use crate::support;

use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use support::Habitat;

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
