//! Whose container and whose volume: persisted volumes are never shared
//! between paths, members, habitats or directories; volumes named by an older
//! kiln are moved or refused; `down --volumes` finds every volume of the
//! habitat by its labels. Real engine, real binary.

use crate::instances::{Volumes, habitat, instance_ids, volumes_of};
use crate::support;

use support::{Habitat, docker, docker_output};

/// A config of busybox members that sleep; `members` is the indented map.
fn config_of(members: &str) -> String {
    format!(
        "name: \"@NAME@\"\nbuild:\n  base: {{ image: {} }}\ninstances:\n  defaults:\n    command: [sleep, infinity]\n  members:\n{members}",
        support::BUSYBOX
    )
}

/// Removes what a habitat whose name is not its `Habitat`'s made.
struct Named(String);

impl Drop for Named {
    fn drop(&mut self) {
        support::remove_habitat(&self.0);
        drop(Volumes(self.0.clone()));
    }
}

/// Writes `text` to `path` in `member`'s container.
fn write(h: &Habitat, member: &str, path: &str, text: &str) {
    h.kiln(&[
        "exec",
        member,
        "--",
        "sh",
        "-c",
        &format!("echo {text} > {path}"),
    ])
    .run()
    .assert_code(0);
}

/// The content of `path` in `member`'s container.
fn read(h: &Habitat, member: &str, path: &str) -> String {
    let run = h.kiln(&["exec", member, "--", "cat", path]).run();
    run.assert_code(0);
    run.stdout.trim().to_string()
}

/// Makes a volume as kiln did before names were injective (`HABITAT-MEMBER-SLUG`,
/// labelled with habitat, member and path, no directory), holding `f` owned
/// by 1000:1000 with mode 0600 and a root directory owned by 1234:55.
fn old_volume(name: &str, habitat: &str, member: &str, path: &str, text: &str) {
    docker(&[
        "volume",
        "create",
        "--label",
        &format!("dev.kiln.habitat={habitat}"),
        "--label",
        &format!("dev.kiln.instance={member}"),
        "--label",
        &format!("dev.kiln.persist={path}"),
        name,
    ]);
    let script = format!(
        "echo {text} > /v/f && chown 1000:1000 /v/f && chmod 0600 /v/f && chown 1234:55 /v"
    );
    docker(&[
        "run",
        "--rm",
        "-v",
        &format!("{name}:/v"),
        support::BUSYBOX,
        "sh",
        "-c",
        &script,
    ]);
}

fn volume_exists(name: &str) -> bool {
    docker_output(&["volume", "inspect", name]).status.success()
}

#[test]
fn regression_persisted_paths_whose_old_names_collide_get_their_own_volumes() {
    let (_volumes, h) = habitat("volcoll");
    // Under `HABITAT-MEMBER-SLUG` these were two volumes, not four:
    // `/b-c` of `a` and `/c` of `a-b`; `/x/y` and `/x-y` of `m`.
    h.config(&config_of(
        "    a: { persist: [/b-c] }\n    a-b: { persist: [/c] }\n    m: { persist: [/x/y, /x-y] }\n",
    ));
    h.kiln(&["up"]).run().assert_code(0);
    assert_eq!(
        volumes_of(&h.name).len(),
        4,
        "one volume per persisted path"
    );
    let paths = [("a", "/b-c"), ("a-b", "/c"), ("m", "/x/y"), ("m", "/x-y")];
    for (member, path) in paths {
        write(&h, member, &format!("{path}/f"), &format!("{member}{path}"));
    }
    for (member, path) in paths {
        assert_eq!(
            read(&h, member, &format!("{path}/f")),
            format!("{member}{path}"),
            "`{path}` of `{member}` keeps its own file"
        );
    }
}

#[test]
fn regression_persisted_volumes_of_two_habitats_are_not_shared() {
    let (_volumes, one) = habitat("volhab");
    let other = format!("{}-b", one.name);
    let _other = Named(other.clone());
    let (_v2, two) = habitat("volhab2");
    // `ONE` member `b` at `/c-data` and `ONE-b` member `c` at `/data` were
    // both `ONE-b-c-data`; their containers (`ONE-b`, `ONE-b-c`) differ.
    one.config(&config_of("    b: { persist: [/c-data] }\n"));
    two.config(&config_of("    c: { persist: [/data] }\n").replace("@NAME@", &other));
    one.kiln(&["up"]).run().assert_code(0);
    two.kiln(&["up"]).run().assert_code(0);
    write(&one, "b", "/c-data/f", "of-one");
    let seen = two.kiln(&["exec", "c", "--", "cat", "/data/f"]).run();
    assert_ne!(
        seen.code, 0,
        "habitat `{other}` sees no file: {}",
        seen.stdout
    );
    assert_eq!(volumes_of(&one.name).len(), 1);
    assert_eq!(volumes_of(&other).len(), 1);
}

#[test]
fn regression_down_volumes_removes_the_volumes_of_members_gone_from_the_config() {
    let (_volumes, h) = habitat("voldown");
    h.config(&config_of(
        "    a: { persist: [/data] }\n    gone: { persist: [/data, /home] }\n",
    ));
    h.kiln(&["up"]).run().assert_code(0);
    h.kiln(&["down"]).run().assert_code(0);
    assert_eq!(volumes_of(&h.name).len(), 3, "`down` keeps the data");
    h.edit("    gone: { persist: [/data, /home] }\n", "");
    let down = h.kiln(&["down", "--volumes"]).run();
    down.assert_code(0);
    assert!(
        volumes_of(&h.name).is_empty(),
        "every persisted volume of the habitat is gone: {:?}\n{}",
        volumes_of(&h.name),
        down.stdout
    );

    // A member gone from the config can also be named.
    h.config(&config_of(
        "    a: { persist: [/data] }\n    gone: { persist: [/data] }\n",
    ));
    h.kiln(&["up"]).run().assert_code(0);
    h.kiln(&["down"]).run().assert_code(0);
    h.edit("    gone: { persist: [/data] }\n", "");
    h.kiln(&["down", "--volumes", "gone"]).run().assert_code(0);
    let left = volumes_of(&h.name);
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(
        left[0].starts_with(&format!("{}-a-data-", h.name)),
        "{left:?}"
    );
}

/// A member's container as an older kiln left it: no directory label, an
/// old config hash, the old-named volume mounted.
fn old_container(habitat: &str, member: &str, volume: &str, path: &str) -> String {
    docker(&[
        "run",
        "-d",
        "--name",
        &format!("{habitat}-{member}"),
        "--label",
        &format!("dev.kiln.habitat={habitat}"),
        "--label",
        &format!("dev.kiln.instance={member}"),
        "--label",
        "dev.kiln.image-key=old",
        "--label",
        "dev.kiln.config-hash=old",
        "-v",
        &format!("{volume}:{path}"),
        support::BUSYBOX,
        "sleep",
        "1000",
    ])
    .trim()
    .to_string()
}

#[test]
fn old_named_volumes_are_moved_to_their_new_names_with_owners_and_modes() {
    let (_volumes, h) = habitat("volmove");
    let old = format!("{}-a-data", h.name);
    old_volume(&old, &h.name, "a", "/data", "kept");
    let running = old_container(&h.name, "a", &old, "/data");
    h.config(&config_of("    a: { persist: [/data] }\n"));
    let up = h.kiln(&["up"]).run();
    up.assert_code(0);
    assert!(up.stdout.contains(" recreated "), "{}", up.stdout);
    assert_ne!(instance_ids(&h.name)["a"], running[..12]);
    assert!(
        up.stderr.contains(&format!("moved volume {old} to ")),
        "{}",
        up.stderr
    );
    assert!(!volume_exists(&old), "the old volume is removed");
    let left = volumes_of(&h.name);
    assert_eq!(left.len(), 1, "{left:?}");
    assert_ne!(left[0], old);
    assert_eq!(read(&h, "a", "/data/f"), "kept");
    let owners = h
        .kiln(&[
            "exec", "a", "--", "stat", "-c", "%u:%g %a", "/data", "/data/f",
        ])
        .run();
    owners.assert_code(0);
    assert_eq!(owners.stdout.trim(), "1234:55 755\n1000:1000 600");

    // A second `up` finds everything in place.
    let again = h.kiln(&["up"]).run();
    again.assert_code(0);
    assert!(!again.stderr.contains("moved volume"), "{}", again.stderr);
}

#[test]
fn regression_an_old_volume_two_paths_shared_is_refused_not_shared() {
    let (_volumes, h) = habitat("volshared");
    // Made for `/b-c` of `a`; `/c` of `a-b` had the same old name.
    let old = format!("{}-a-b-c", h.name);
    old_volume(&old, &h.name, "a", "/b-c", "whose");
    h.config(&config_of(
        "    a: { persist: [/b-c] }\n    a-b: { persist: [/c] }\n",
    ));
    let up = h.kiln(&["up"]).run();
    up.assert_code(2);
    assert!(
        up.stderr.contains(&format!("volume `{old}`")),
        "{}",
        up.stderr
    );
    assert!(
        up.stderr.contains("cannot tell whose files"),
        "{}",
        up.stderr
    );
    assert!(up.stderr.contains("hint:"), "{}", up.stderr);
    assert!(instance_ids(&h.name).is_empty(), "nothing was created");
    assert_eq!(
        volumes_of(&h.name),
        std::slice::from_ref(&old),
        "the old volume is untouched"
    );

    // The way out the hint gives: `up` with only its maker moves it.
    h.edit("    a-b: { persist: [/c] }\n", "");
    h.kiln(&["up"]).run().assert_code(0);
    h.config(&config_of(
        "    a: { persist: [/b-c] }\n    a-b: { persist: [/c] }\n",
    ));
    h.kiln(&["up"]).run().assert_code(0);
    assert_eq!(read(&h, "a", "/b-c/f"), "whose");
    let other = h.kiln(&["exec", "a-b", "--", "cat", "/c/f"]).run();
    assert_ne!(
        other.code, 0,
        "`a-b` does not get `a`'s file: {}",
        other.stdout
    );
}

#[test]
fn regression_a_container_name_another_habitats_member_has_is_a_clash_naming_it() {
    let (_volumes, one) = habitat("volname");
    let other = format!("{}-b", one.name);
    let _other = Named(other.clone());
    let (_v2, two) = habitat("volname2");
    // `ONE` member `b-c` and `ONE-b` member `c` are both `ONE-b-c`.
    one.config(&config_of("    b-c: {}\n"));
    two.config(&config_of("    c: {}\n").replace("@NAME@", &other));
    one.kiln(&["up"]).run().assert_code(0);
    let before = instance_ids(&one.name);
    let up = two.kiln(&["up"]).run();
    up.assert_code(2);
    assert!(
        up.stderr.contains(&format!(
            "container `{}-b-c` is member `b-c` of habitat `{}`",
            one.name, one.name
        )),
        "{}",
        up.stderr
    );
    assert!(!up.stderr.contains("docker rm"), "{}", up.stderr);
    assert_eq!(
        instance_ids(&one.name),
        before,
        "the other member is untouched"
    );
    two.kiln(&["down"]).run().assert_code(0);
    assert_eq!(instance_ids(&one.name), before);
}

#[test]
fn regression_a_copy_of_a_habitat_in_another_directory_does_not_take_its_members() {
    let (_volumes, one) = habitat("voldir");
    let (_v2, copy) = habitat("voldir2");
    let yaml = config_of("    a: { persist: [/data] }\n").replace("@NAME@", &one.name);
    one.config(&yaml);
    copy.config(&yaml);
    one.kiln(&["up"]).run().assert_code(0);
    write(&one, "a", "/data/f", "of-one");
    let before = instance_ids(&one.name);

    let up = copy.kiln(&["up"]).run();
    up.assert_code(2);
    let dir = |h: &Habitat| {
        std::fs::canonicalize(h.dir())
            .expect("dir")
            .display()
            .to_string()
    };
    assert!(
        up.stderr.contains(&format!("`{}`", dir(&one))),
        "{}",
        up.stderr
    );
    assert!(
        up.stderr.contains(&format!("`{}`", dir(&copy))),
        "{}",
        up.stderr
    );
    // Its other commands do not act on the first directory's member either.
    let exec = copy.kiln(&["exec", "a", "--", "cat", "/data/f"]).run();
    exec.assert_code(2);
    copy.kiln(&["down", "--volumes"]).run().assert_code(0);
    assert_eq!(instance_ids(&one.name), before, "the member still runs");
    assert_eq!(read(&one, "a", "/data/f"), "of-one");

    // Once the first is down, the copy gets a volume of its own.
    one.kiln(&["down"]).run().assert_code(0);
    copy.kiln(&["up"]).run().assert_code(0);
    let seen = copy.kiln(&["exec", "a", "--", "cat", "/data/f"]).run();
    assert_ne!(seen.code, 0, "the copy sees no file: {}", seen.stdout);
    assert_eq!(volumes_of(&one.name).len(), 2);
}

#[test]
fn an_old_volume_another_container_uses_is_not_moved() {
    let (_volumes, h) = habitat("volbusy");
    let old = format!("{}-a-data", h.name);
    old_volume(&old, &h.name, "a", "/data", "busy");
    // Something else mounts it: it may be shared, so it stays where it is.
    let user = docker(&[
        "run",
        "-d",
        "--label",
        &format!("dev.kiln.habitat={}", h.name),
        "-v",
        &format!("{old}:/x"),
        support::BUSYBOX,
        "sleep",
        "1000",
    ]);
    h.config(&config_of("    a: { persist: [/data] }\n"));
    let up = h.kiln(&["up"]).run();
    up.assert_code(1);
    assert!(
        up.stderr.contains(&format!("`{old}` is in use")),
        "{}",
        up.stderr
    );
    assert_eq!(
        volumes_of(&h.name),
        std::slice::from_ref(&old),
        "the new volume was removed again"
    );
    docker(&["rm", "-f", user.trim()]);
    h.kiln(&["down"]).run().assert_code(0);
    h.kiln(&["up"]).run().assert_code(0);
    assert_eq!(read(&h, "a", "/data/f"), "busy");
    assert!(!volume_exists(&old));
}
