//! The instance commands as a user meets them after an edit (issue 10): `ps`
//! says stale before any build and says why, `up` names what changed for a
//! recreated member, warns about orphans and removes them with
//! `--remove-orphans`, refuses a taken host port before it builds, and
//! `--wait` waits until members run (healthy where the image has a
//! healthcheck). On the real engine; habitats named `kt-clit-…`.

use std::time::Duration;

use crate::instances::{habitat, instance_ids, volumes_of};
use crate::support::{self, docker, docker_output, images_of, tags_of};

fn config_of(members: &str) -> String {
    format!(
        "name: \"@NAME@\"\nbuild:\n  base: {{ image: {} }}\n  env: {{ VERSION: \"1\" }}\ninstances:\n  defaults:\n    command: [sleep, infinity]\n    persist: [/data]\n  members:\n{members}",
        support::BUSYBOX
    )
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// The `ps --json` row of `member`.
fn ps_row(h: &support::Habitat, member: &str) -> serde_json::Value {
    let ps = h.kiln(&["ps", "--json"]).run();
    ps.assert_code(0);
    support::events_of(&ps.stdout)
        .into_iter()
        .find(|r| r["member"] == member)
        .unwrap_or_else(|| panic!("no row for `{member}`:\n{}", ps.stdout))
}

#[test]
fn ps_says_stale_after_an_edit_before_any_build_and_up_names_what_changed() {
    let (_volumes, h) = habitat("clit-stale");
    let port = free_port();
    h.config(&config_of(&format!(
        "    web: {{ ports: [\"127.0.0.1:{port}:3000\"], env: {{ MODE: dev }} }}\n    worker: {{}}\n"
    )));
    h.kiln(&["up"]).run().assert_code(0);
    for m in ["web", "worker"] {
        let row = ps_row(&h, m);
        assert_eq!(row["current"], true, "{row}");
        assert_eq!(row["stale"], serde_json::Value::Null, "{row}");
    }
    let tags = tags_of(&h.name);

    // An input of the image changes: both members are stale, and `ps` built nothing.
    h.edit("VERSION: \"1\"", "VERSION: \"2\"");
    for m in ["web", "worker"] {
        let row = ps_row(&h, m);
        assert_eq!(row["current"], false, "{row}");
        let stale = row["stale"].as_str().unwrap_or_default();
        assert!(stale.starts_with("image changed: "), "{row}");
    }
    assert_eq!(tags_of(&h.name), tags, "`ps` builds nothing");
    let table = h.kiln(&["ps"]).run();
    table.assert_code(0);
    assert!(
        table.stdout.contains("(stale)")
            && table.stdout.contains("stale web: image changed: ")
            && table.stdout.contains("`kiln up` recreates it"),
        "{}",
        table.stdout
    );

    // A member's own fields change: only that member is stale, and each
    // change is named; env values are never shown.
    h.edit("VERSION: \"2\"", "VERSION: \"1\"");
    let new_port = free_port();
    h.edit(
        &format!("127.0.0.1:{port}:3000\"], env: {{ MODE: dev }}"),
        &format!("127.0.0.1:{new_port}:3000\"], env: {{ MODE: prod, EXTRA: x }}"),
    );
    let web = ps_row(&h, "web");
    assert_eq!(web["current"], false, "{web}");
    assert_eq!(
        web["stale"],
        format!(
            "env `EXTRA` added; env `MODE` changed; ports: 127.0.0.1:{port}->3000/tcp → 127.0.0.1:{new_port}->3000/tcp"
        ),
        "{web}"
    );
    assert_eq!(ps_row(&h, "worker")["current"], true);

    let before = instance_ids(&h.name);
    let up = h.kiln(&["up"]).run();
    up.assert_code(0);
    let line = up
        .stdout
        .lines()
        .find(|l| l.contains(&format!("{}-web", h.name)))
        .unwrap_or_default();
    assert!(
        line.contains(" recreated ")
            && line.ends_with(&format!(
                "(env `EXTRA` added; env `MODE` changed; ports: 127.0.0.1:{port}->3000/tcp → 127.0.0.1:{new_port}->3000/tcp)"
            )),
        "{}",
        up.stdout
    );
    assert!(!up.stdout.contains("prod"), "no env value: {}", up.stdout);
    let after = instance_ids(&h.name);
    assert_ne!(before["web"], after["web"]);
    assert_eq!(before["worker"], after["worker"]);
    assert_eq!(ps_row(&h, "web")["current"], true);
}

#[test]
fn orphans_are_warned_about_and_removed_with_remove_orphans() {
    let (_volumes, h) = habitat("clit-orphan");
    let port = free_port();
    h.config(&config_of(&format!(
        "    a: {{}}\n    old: {{ ports: [\"127.0.0.1:{port}:3000\"] }}\n"
    )));
    h.kiln(&["up"]).run().assert_code(0);
    h.kiln(&["exec", "old", "--", "sh", "-c", "echo kept > /data/f"])
        .run()
        .assert_code(0);
    h.edit(
        &format!("    old: {{ ports: [\"127.0.0.1:{port}:3000\"] }}\n"),
        "",
    );

    let up = h.kiln(&["up"]).run();
    up.assert_code(0);
    assert!(
        up.stderr.contains(
            "warning: member `old` has a container but is no longer in `kiln.yaml`\nhint: `kiln up --remove-orphans` removes it"
        ),
        "{}",
        up.stderr
    );
    assert!(instance_ids(&h.name).contains_key("old"), "left alone");
    let row = ps_row(&h, "old");
    assert_eq!(row["in_config"], false, "{row}");

    // The orphan's port is not free, and a new member wanting it is told why.
    h.edit(
        "    a: {}\n",
        &format!("    a: {{}}\n    new: {{ ports: [\"127.0.0.1:{port}:3000\"] }}\n"),
    );
    let clash = h.kiln(&["up"]).run();
    clash.assert_code(2);
    assert!(
        clash.stderr.contains(&format!(
            "member `new`: host port 127.0.0.1:{port}/tcp is held by `{}-old`, the container of member `old`, which is no longer in `kiln.yaml`\n    hint: `kiln up --remove-orphans` removes it",
            h.name
        )),
        "{}",
        clash.stderr
    );

    let removed = h.kiln(&["up", "--remove-orphans"]).run();
    removed.assert_code(0);
    assert!(
        removed.stdout.contains(&format!(
            "removed container {}-old (an orphan: its member is no longer in `kiln.yaml`; its volumes are kept)",
            h.name
        )),
        "{}",
        removed.stdout
    );
    assert!(
        !removed.stderr.contains("warning: member `old`"),
        "{}",
        removed.stderr
    );
    let ids = instance_ids(&h.name);
    assert_eq!(ids.keys().collect::<Vec<_>>(), ["a", "new"]);
    assert_eq!(volumes_of(&h.name).len(), 3, "the orphan's volume is kept");
}

#[test]
fn a_taken_host_port_is_refused_before_anything_is_built() {
    let (_volumes, h) = habitat("clit-port");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    h.config(&config_of(&format!(
        "    a: {{}}\n    b: {{ ports: [\"127.0.0.1:{port}:3000\"] }}\n"
    )));
    let up = h.kiln(&["up", "--progress", "plain"]).run();
    up.assert_code(2);
    assert!(
        up.stderr.contains(&format!(
            "member `b`: host port 127.0.0.1:{port}/tcp is in use on this host"
        )),
        "{}",
        up.stderr
    );
    assert!(!up.stderr.contains("built "), "no phase ran: {}", up.stderr);
    assert!(images_of(&h.name).is_empty(), "nothing was built");
    assert!(instance_ids(&h.name).is_empty());
    drop(taken);
    h.kiln(&["up"]).run().assert_code(0);
}

#[test]
fn wait_returns_once_members_run_and_fails_with_the_logs_of_one_that_stops() {
    let (_volumes, h) = habitat("clit-wait");
    h.config(&config_of(
        "    a: {}\n    b: { command: [sh, -c, \"echo b-is-up; sleep infinity\"] }\n",
    ));
    let up = h.kiln(&["up", "--wait"]).run();
    up.assert_code(0);
    assert_eq!(instance_ids(&h.name).len(), 2, "both run: {}", up.stdout);

    // A member that exits is a failure of `--wait`, with its last lines.
    h.edit("echo b-is-up; sleep infinity", "echo b-gives-up; exit 7");
    let up = h.kiln(&["up", "--wait", "--wait-timeout", "30s"]).run();
    up.assert_code(1);
    assert!(
        up.stderr
            .contains("error: member `b` failed to start: it exited with code 7"),
        "{}",
        up.stderr
    );
    assert!(up.stderr.contains("  | b-gives-up"), "{}", up.stderr);

    let bad = h.kiln(&["up", "--wait", "--wait-timeout", "soon"]).run();
    bad.assert_code(2);
    assert!(
        bad.stderr.contains("invalid duration `soon`"),
        "{}",
        bad.stderr
    );
}

/// A container of an image with a Docker healthcheck, made for this test
/// (labelled with `habitat` so the habitat's cleanup removes it).
fn health_container(habitat: &str, image: &str, check: &str, interval: &str) -> String {
    let from = docker(&["create", support::BUSYBOX, "true"]);
    let tag = format!("habitat-{habitat}:health-{interval}");
    docker(&[
        "commit",
        "--change",
        &format!("HEALTHCHECK --interval={interval} --timeout=2s --retries=2 CMD {check}"),
        "--change",
        &format!("LABEL dev.kiln.habitat={habitat}"),
        from.trim(),
        &tag,
    ]);
    let _ = docker_output(&["rm", from.trim()]);
    let name = format!("{habitat}-{image}");
    docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "--label",
        &format!("dev.kiln.habitat={habitat}"),
        &tag,
        "sh",
        "-c",
        "echo probe-me; sleep 1; touch /tmp/ready; sleep infinity",
    ]);
    name
}

/// `--wait`'s health half on the real engine: kiln's images get their
/// healthcheck from `services:` (issue 11), so the images here are made by
/// `docker commit --change HEALTHCHECK`, and the library's wait is called.
#[test]
fn wait_follows_docker_health_healthy_unhealthy_and_still_starting() {
    let (_volumes, h) = habitat("clit-health");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let engine = kiln_core::engine::docker::DockerEngine::connect()
            .await
            .expect("engine");
        let wait = |name: String, secs: u64| {
            let engine = &engine;
            async move {
                kiln_core::instances::wait_ready(engine, &name, Duration::from_secs(secs)).await
            }
        };

        let healthy = health_container(&h.name, "healthy", "test -f /tmp/ready", "1s");
        assert_eq!(wait(healthy.clone(), 60).await, Ok(()));
        let state = docker(&["inspect", "--format", "{{.State.Health.Status}}", &healthy]);
        assert_eq!(state.trim(), "healthy");

        let sick = health_container(&h.name, "sick", "sh -c 'echo no-db-yet; exit 1'", "500ms");
        match wait(sick, 60).await {
            Err(kiln_core::instances::Outcome::Failed { message, logs }) => {
                assert_eq!(
                    message,
                    "its healthcheck reports it unhealthy; its last check said: no-db-yet"
                );
                assert_eq!(logs, ["probe-me"]);
            }
            other => panic!("{other:?}"),
        }

        // The first check of a one-hour interval never comes within a second.
        let slow = health_container(&h.name, "slow", "true", "1h");
        match wait(slow, 1).await {
            Err(kiln_core::instances::Outcome::Failed { message, logs }) => {
                assert_eq!(
                    message,
                    "it was not healthy within 1s (it is `running`, health `starting`)"
                );
                assert_eq!(logs, ["probe-me"]);
            }
            other => panic!("{other:?}"),
        }
    });
}

/// When the build cannot be planned (here a repo that is no longer one),
/// `ps` still lists the members, warns once, and still compares each
/// member's own config.
#[test]
fn ps_without_a_plan_warns_and_still_compares_the_members_config() {
    let (_volumes, h) = habitat("clit-noplan");
    let repo = h.dir().join("app");
    std::fs::create_dir_all(&repo).expect("mkdir");
    support::sh(
        &repo,
        "git init -q && git -c user.name=k -c user.email=k@example.com commit -q --allow-empty -m first",
    );
    h.config(&format!(
        "name: \"@NAME@\"\nbuild:\n  base: {{ image: {} }}\n  repos:\n    - {{ url: ./app, path: /src/app }}\ninstances:\n  defaults: {{ command: [sleep, infinity] }}\n  members:\n    a: {{}}\n",
        support::BUSYBOX
    ));
    h.kiln(&["up"]).run().assert_code(0);
    std::fs::remove_dir_all(repo.join(".git")).expect("rm .git");

    let ps = h.kiln(&["ps", "--json"]).run();
    ps.assert_code(0);
    assert_eq!(
        ps.stderr.matches("warning: cannot tell whether members run the image a build would make now: cannot read the inputs of phase `7-repos`").count(),
        1,
        "{}",
        ps.stderr
    );
    let rows = support::events_of(&ps.stdout);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["current"], serde_json::Value::Null, "{}", rows[0]);

    h.edit("    a: {}\n", "    a: { env: { X: \"1\" } }\n");
    let row = ps_row(&h, "a");
    assert_eq!(row["current"], false, "{row}");
    assert_eq!(row["stale"], "env `X` added", "{row}");
}
