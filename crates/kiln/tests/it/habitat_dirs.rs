//! `habitat.dirs` entries with an owner, group and mode (SPEC §2.1) on the
//! real engine, with `docker build` as the oracle: a new directory gets
//! what is named (as `mkdir -p` then `chown`/`chmod`), an existing one
//! changes only what is named, and an unnamed existing one (a user's home)
//! stays as it is. `check` refuses an unknown owner or group and a bad mode,
//! located, with exit code 2.

use crate::support::{self, BUSYBOX, Habitat, docker_output};

/// Images this test made with `docker build`, removed when it ends.
struct Built(Vec<String>);

impl Drop for Built {
    fn drop(&mut self) {
        for image in &self.0 {
            let _ = docker_output(&["rmi", "-f", image]);
        }
    }
}

const STAT: &str = "for p in /srv /srv/app /srv/app/logs /tmp /home/dev /opt /opt/shared /var/cache; do \
    stat -c '%u:%g %a %n' $p 2>&1; done";

#[test]
fn named_dirs_match_docker_build_and_existing_ones_keep_what_is_not_named() {
    let h = Habitat::new("kdirs-oracle");
    let base = format!("kiln-test/{}-base", h.name);
    let oracle = format!("kiln-test/{}-oracle", h.name);
    let _built = Built(vec![base.clone(), oracle.clone()]);
    let ctx = h.root().join("oracle");
    // The base: busybox with a user `dev` whose home is its own, mode 0750,
    // a group `staff`, and a `/var/cache` owned by nobody.
    support::docker_build_classic(
        &ctx,
        &format!(
            "FROM {BUSYBOX}\n\
             RUN echo 'dev:x:1000:1000::/home/dev:/bin/sh' >> /etc/passwd \
             && printf 'dev:x:1000:\\nstaff:x:50:\\n' >> /etc/group \
             && mkdir -p /home/dev /var/cache && chown 1000:1000 /home/dev && chmod 0750 /home/dev \
             && chown 65534:65534 /var/cache && chmod 0770 /var/cache\n"
        ),
        &base,
    );
    // What `install -d -o … -g … -m …` does, in the busybox that has no `install`.
    support::docker_build_classic(
        &ctx,
        &format!(
            "FROM {base}\n\
             RUN mkdir -p /srv/app/logs && chown dev:staff /srv/app/logs && chmod 0750 /srv/app/logs \
             && chmod 0700 /tmp \
             && mkdir -p /opt/shared && chgrp staff /opt/shared && chmod 2775 /opt/shared \
             && chown dev:dev /var/cache\n"
        ),
        &oracle,
    );
    h.config(&format!(
        "name: @NAME@\n\
         build:\n  base: {{ image: \"{base}\" }}\n\
         \x20 users:\n    - {{ name: dev, groups: [staff] }}\n\
         \x20 habitat:\n    dirs:\n\
         \x20     - {{ path: /srv/app/logs, owner: dev, group: staff, mode: \"0750\" }}\n\
         \x20     - {{ path: /tmp, mode: \"0700\" }}\n\
         \x20     - /home/dev\n\
         \x20     - {{ path: /opt/shared, group: staff, mode: 2775 }}\n\
         \x20     - {{ path: /var/cache, owner: dev }}\n"
    ));
    h.build_ok(&[]);
    let image = format!("habitat-{}:latest", h.name);
    let kiln = support::sh_in(&image, None, STAT);
    assert_eq!(
        kiln,
        support::sh_in(&oracle, None, STAT),
        "kiln's image vs docker build's"
    );
    for line in [
        "0:0 755 /srv\n",
        "1000:50 750 /srv/app/logs\n",
        // Named with a mode only: root's still, and the sticky bit gone.
        "0:0 700 /tmp\n",
        // Not named: the base user's home as it was.
        "1000:1000 750 /home/dev\n",
        "0:50 2775 /opt/shared\n",
        // An owner alone brings its group and keeps the mode.
        "1000:1000 770 /var/cache\n",
    ] {
        assert!(kiln.contains(line), "{line:?} in\n{kiln}");
    }

    // The fields are inputs of the habitat phase: a mode edit rebuilds from there.
    h.edit("mode: 2775", "mode: \"0775\"");
    let run = h.build_ok(&[]);
    assert_eq!(
        run.built().first().map(String::as_str),
        Some("habitat"),
        "{}",
        run.stdout
    );
    assert_eq!(
        support::sh_in(&image, None, "stat -c '%u:%g %a' /opt/shared"),
        "0:50 775\n"
    );
    // A plain path written as an entry naming only it is the same build.
    h.edit("      - /home/dev\n", "      - { path: /home/dev }\n");
    let run = h.build_ok(&[]);
    assert!(run.built().is_empty(), "{}", run.stdout);
}

#[test]
fn check_refuses_an_unknown_owner_or_group_and_a_bad_mode() {
    let h = Habitat::new("kdirs-check");
    h.config(
        "name: @NAME@\nbuild:\n  base: { image: \"kiln-test/busybox:latest\" }\n  users: [{ name: dev }]\n  habitat:\n    dirs:\n      - { path: /a, owner: dve }\n      - { path: /b, group: wheel }\n      - { path: /c, mode: \"0779\" }\n",
    );
    let run = h.kiln(&["check", "."]).run();
    run.assert_code(2);
    for wanted in [
        "kiln.yaml:7:28",
        "unknown user `dve` in `build.habitat.dirs[0].owner`",
        "did you mean `dev`?",
        "kiln.yaml:8:28",
        "unknown group `wheel` in `build.habitat.dirs[1].group`",
        "kiln.yaml:9:27",
        "invalid mode `0779` in `build.habitat.dirs[2].mode`",
    ] {
        assert!(run.stderr.contains(wanted), "{wanted:?} in {}", run.stderr);
    }
}
