//! SPEC §2.1 on the real engine, with `docker build` as the oracle where
//! Docker has the same idea: a user the base already has keeps its home,
//! shell and groups when a habitat declares it, and the missing parents of a
//! copy are owned by the copy's owner, as `COPY --chown` makes them.

use std::process::Command;

use crate::support;

use support::{BUSYBOX, Habitat, docker, docker_output};

/// Images this test made with `docker build`, removed when it ends.
struct Built(Vec<String>);

impl Drop for Built {
    fn drop(&mut self) {
        for image in &self.0 {
            let _ = docker_output(&["rmi", "-f", image]);
        }
    }
}

/// `docker build` (the classic builder) of `dockerfile` in `dir` as `tag`.
fn docker_build(dir: &std::path::Path, dockerfile: &str, tag: &str) {
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

/// The output of `script` run by `sh` in a container of `image`.
fn in_image(image: &str, script: &str) -> String {
    docker(&[
        "run",
        "--rm",
        "--entrypoint",
        "/bin/sh",
        image,
        "-c",
        script,
    ])
}

/// `uid:gid mode path` of each path, as `stat` prints them.
const STAT: &str = "for p in /home/dev /home /home/dev/.keep /home/dev/.config /home/dev/.config/app \
    /home/dev/.config/app/f /opt /opt/x /opt/x/y /opt/x/y/f /srv /srv/tree /srv/tree/sub /srv/tree/sub/g; do \
    stat -c '%u:%g %a %n' $p 2>&1; done";

#[test]
fn a_base_user_keeps_its_home_and_copy_parents_are_owned_as_copy_chown_makes_them() {
    let h = Habitat::new("fidfiles");
    let base = format!("kiln-test/{}-base", h.name);
    let oracle = format!("kiln-test/{}-oracle", h.name);
    let _built = Built(vec![base.clone(), oracle.clone()]);
    let ctx = h.root().join("oracle");
    std::fs::create_dir_all(ctx.join("tree/sub")).expect("mkdir");
    std::fs::write(ctx.join("f"), "f\n").expect("write");
    std::fs::write(ctx.join("tree/sub/g"), "g\n").expect("write");
    // The base: busybox with a user `dev` whose home (mode 0750) holds a
    // file, with its own shell and gecos, in a group `staff`.
    docker_build(
        &ctx,
        &format!(
            "FROM {BUSYBOX}\n\
             RUN echo 'dev:x:1000:1000:Dev User,,,:/home/dev:/bin/ash' >> /etc/passwd \
             && printf 'dev:x:1000:\\nstaff:x:50:dev\\n' >> /etc/group \
             && mkdir -p /home/dev && echo kept > /home/dev/.keep \
             && chown -R 1000:1000 /home/dev && chmod 0750 /home/dev && mkdir -m 0700 /srv\n"
        ),
        &base,
    );
    docker_build(
        &ctx,
        &format!(
            "FROM {base}\n\
             COPY --chown=dev:dev f /home/dev/.config/app/f\n\
             COPY --chown=1234:4321 f /opt/x/y/f\n\
             COPY --chown=dev tree /srv/tree\n"
        ),
        &oracle,
    );
    h.write("f", "f\n");
    h.write("tree/sub/g", "g\n");
    h.config(&format!(
        "name: @NAME@\n\
         build:\n  base: {{ image: \"{base}\" }}\n\
         \x20 users:\n    - {{ name: dev, groups: [wheel] }}\n\
         \x20 files:\n    copies:\n\
         \x20     - {{ source: f, dest: /home/dev/.config/app/f, owner: dev, group: dev }}\n\
         \x20     - {{ source: f, dest: /opt/x/y/f, owner: \"1234\", group: \"4321\" }}\n\
         \x20     - {{ source: tree, dest: /srv/tree, owner: dev }}\n"
    ));
    h.build_ok(&[]);
    let image = format!("habitat-{}:latest", h.name);

    // The user the base has: its line is the base's but for the group added.
    let passwd = |i: &str| in_image(i, "grep '^dev:' /etc/passwd");
    assert_eq!(passwd(&image), passwd(&base));
    assert!(
        passwd(&base).contains(":/home/dev:/bin/ash"),
        "{}",
        passwd(&base)
    );
    let groups = in_image(&image, "id -Gn dev");
    assert!(
        groups.contains("staff") && groups.contains("wheel"),
        "{groups}"
    );
    assert_eq!(in_image(&image, "cat /home/dev/.keep"), "kept\n");

    // Owners and modes of every parent made, and of those left alone.
    let kiln = in_image(&image, STAT);
    assert_eq!(
        kiln,
        in_image(&oracle, STAT),
        "kiln's image vs docker build's"
    );
    assert!(kiln.contains("1000:1000 755 /home/dev/.config\n"), "{kiln}");
    assert!(kiln.contains("1234:4321 755 /opt/x\n"), "{kiln}");
    assert!(kiln.contains("0:0 700 /srv\n"), "{kiln}");
    assert!(kiln.contains("1000:1000 750 /home/dev\n"), "{kiln}");
}
