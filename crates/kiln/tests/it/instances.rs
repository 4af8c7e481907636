//! End-to-end tests of instances against the real engine: `kiln up`, `down`,
//! `ps`, `exec` on busybox habitats. Every `kiln` run is a new process, so
//! each step also checks that kiln finds its containers again from labels.

use crate::support;

use std::collections::BTreeMap;

use support::{Habitat, docker, docker_output};

/// Removes the habitat's volumes when dropped; declared before the
/// `Habitat` so it drops after it (containers first, then their volumes).
pub(crate) struct Volumes(pub(crate) String);

impl Drop for Volumes {
    fn drop(&mut self) {
        let listed = docker(&[
            "volume",
            "ls",
            "-q",
            "--filter",
            &format!("label=dev.kiln.habitat={}", self.0),
        ]);
        for v in listed.split_whitespace() {
            let _ = docker_output(&["volume", "rm", "-f", v]);
        }
    }
}

pub(crate) fn habitat(prefix: &str) -> (Volumes, Habitat) {
    let h = Habitat::new(prefix);
    (Volumes(h.name.clone()), h)
}

/// Member → container id of the habitat's instance containers.
pub(crate) fn instance_ids(name: &str) -> BTreeMap<String, String> {
    docker(&[
        "ps",
        "-a",
        "--filter",
        &format!("label=dev.kiln.habitat={name}"),
        "--filter",
        "label=dev.kiln.instance",
        "--format",
        "{{.Label \"dev.kiln.instance\"}} {{.ID}} {{.State}}",
    ])
    .lines()
    .filter_map(|l| {
        let mut parts = l.split_whitespace();
        let member = parts.next()?.to_string();
        let id = parts.next()?.to_string();
        assert_eq!(parts.next(), Some("running"), "member `{member}` runs: {l}");
        Some((member, id))
    })
    .collect()
}

pub(crate) fn volumes_of(name: &str) -> Vec<String> {
    let mut v: Vec<String> = docker(&[
        "volume",
        "ls",
        "-q",
        "--filter",
        &format!("label=dev.kiln.habitat={name}"),
    ])
    .split_whitespace()
    .map(str::to_string)
    .collect();
    v.sort();
    v
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

fn config_of(members: &str) -> String {
    format!(
        "name: \"@NAME@\"\nbuild:\n  base: {{ image: {} }}\n  env: {{ VERSION: \"1\" }}\ninstances:\n  defaults:\n    command: [sleep, infinity]\n    env: {{ TZ: UTC }}\n    persist: [/data]\n  members:\n{members}",
        support::BUSYBOX
    )
}

#[test]
fn ten_members_upgrade_keep_their_data_and_only_a_changed_member_is_recreated() {
    let (_volumes, h) = habitat("inst10");
    let members: String = (0..10)
        .map(|i| format!("    m{i}: {{ env: {{ WHO: m{i} }} }}\n"))
        .collect();
    h.config(&config_of(&members));
    let up = h.kiln(&["up", "--progress", "plain"]).run();
    up.assert_code(0);
    let first = instance_ids(&h.name);
    assert_eq!(first.len(), 10, "{}", up.stdout);
    assert_eq!(up.stdout.matches(" created ").count(), 10, "{}", up.stdout);
    for i in 0..10 {
        let script = "echo data-of-$WHO > /data/f";
        h.kiln(&["exec", &format!("m{i}"), "--", "sh", "-c", script])
            .run()
            .assert_code(0);
    }

    // A second `up` (a new process) finds everything current and touches nothing.
    let again = h.kiln(&["up"]).run();
    again.assert_code(0);
    assert_eq!(
        again.stdout.matches(" unchanged ").count(),
        10,
        "{}",
        again.stdout
    );
    assert_eq!(instance_ids(&h.name), first);

    // An image upgrade recreates all ten; the persisted data is still there.
    h.edit("VERSION: \"1\"", "VERSION: \"2\"");
    let upgraded = h.kiln(&["up"]).run();
    upgraded.assert_code(0);
    assert_eq!(
        upgraded.stdout.matches(" recreated ").count(),
        10,
        "{}",
        upgraded.stdout
    );
    let second = instance_ids(&h.name);
    assert_eq!(second.len(), 10);
    for (m, id) in &second {
        assert_ne!(first[m], *id, "member `{m}` has a new container");
        let cat = h.kiln(&["exec", m, "--", "cat", "/data/f"]).run();
        cat.assert_code(0);
        assert_eq!(cat.stdout.trim(), format!("data-of-{m}"));
    }
    let ps = h.kiln(&["ps", "--json"]).run();
    ps.assert_code(0);
    let rows = support::events_of(&ps.stdout);
    assert_eq!(rows.len(), 10);
    for r in &rows {
        assert_eq!(r["state"], "running", "{r}");
        assert_eq!(r["current"], true, "{r}");
        // `HABITAT-MEMBER-data-HASH`: readable, and never another path's.
        let volume = r["volumes"]["/data"].as_str().unwrap_or_default();
        let prefix = format!(
            "{}-{}-data-",
            h.name,
            r["member"].as_str().unwrap_or_default()
        );
        assert!(volume.starts_with(&prefix), "{r}");
        assert_eq!(volume.len(), prefix.len() + 16, "{r}");
    }

    // A change to one member's env recreates that member only.
    h.edit(
        "m3: { env: { WHO: m3 } }",
        "m3: { env: { WHO: m3, EXTRA: x } }",
    );
    let one = h.kiln(&["up"]).run();
    one.assert_code(0);
    let third = instance_ids(&h.name);
    for (m, id) in &third {
        if m == "m3" {
            assert_ne!(second[m], *id, "m3 is recreated");
        } else {
            assert_eq!(second[m], *id, "member `{m}` keeps its container");
        }
    }

    // `down` keeps the data, `up` brings it back, `down --volumes` removes it.
    h.kiln(&["down"]).run().assert_code(0);
    assert!(instance_ids(&h.name).is_empty());
    assert_eq!(volumes_of(&h.name).len(), 10);
    h.kiln(&["up", ".", "m0"]).run().assert_code(0);
    let cat = h.kiln(&["exec", "m0", "--", "cat", "/data/f"]).run();
    assert_eq!(cat.stdout.trim(), "data-of-m0");
    h.kiln(&["down", "--volumes"]).run().assert_code(0);
    assert!(instance_ids(&h.name).is_empty());
    assert!(volumes_of(&h.name).is_empty());
}

#[test]
fn a_port_clash_or_a_foreign_container_changes_nothing() {
    let (_volumes, h) = habitat("instclash");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let ok_port = free_port();
    h.config(&config_of(&format!(
        "    a: {{ ports: [\"127.0.0.1:{ok_port}:3000\"] }}\n    b: {{ ports: [\"127.0.0.1:{port}:3000\"] }}\n"
    )));
    let up = h.kiln(&["up"]).run();
    up.assert_code(2);
    assert!(
        up.stderr.contains(&format!("{port}/tcp is in use")),
        "{}",
        up.stderr
    );
    assert!(instance_ids(&h.name).is_empty(), "nothing was created");
    assert!(volumes_of(&h.name).is_empty(), "no volume was created");
    drop(taken);

    // A container kiln did not make, with a member's name, is a clash too.
    let foreign = format!("{}-a", h.name);
    let id = docker(&[
        "create",
        "--name",
        &foreign,
        "--label",
        &format!("dev.kiln.habitat={}", h.name),
        support::BUSYBOX,
        "sleep",
        "1000",
    ]);
    let up = h.kiln(&["up"]).run();
    up.assert_code(2);
    assert!(up.stderr.contains("kiln did not create"), "{}", up.stderr);
    let still = docker(&["inspect", "--format", "{{.Id}}", &foreign]);
    assert_eq!(
        still.trim(),
        id.trim(),
        "the foreign container is untouched"
    );
    assert!(instance_ids(&h.name).is_empty());

    // Unknown members are bad usage.
    let up = h.kiln(&["up", ".", "zed"]).run();
    up.assert_code(2);
    assert!(up.stderr.contains("unknown member `zed`"), "{}", up.stderr);
}

#[test]
fn a_member_that_fails_is_reported_and_the_others_still_start() {
    let (_volumes, h) = habitat("instfail");
    h.config(&config_of(
        "    good: {}\n    bad: { command: [sh, -c, \"echo boom-from-bad; exit 3\"] }\n",
    ));
    let up = h.kiln(&["up"]).run();
    up.assert_code(1);
    assert!(up.stderr.contains("member `bad` failed"), "{}", up.stderr);
    assert!(up.stderr.contains("boom-from-bad"), "{}", up.stderr);
    let state = docker(&[
        "inspect",
        "--format",
        "{{.State.Status}}",
        &format!("{}-good", h.name),
    ]);
    assert_eq!(state.trim(), "running");
    let logs = h.kiln(&["logs", "bad"]).run();
    logs.assert_code(0);
    assert!(logs.stdout.contains("boom-from-bad"), "{}", logs.stdout);
}
