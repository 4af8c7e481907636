//! SPEC §2.1 on the real engine, with `docker build` as the oracle where
//! Docker has the same idea: a user the base already has keeps its home,
//! shell and groups when a habitat declares it, and the missing parents of a
//! copy are owned by the copy's owner, as `COPY --chown` makes them.

use std::process::Command;

use crate::support;

use support::{BUSYBOX, Habitat, docker_output};

/// Images this test made with `docker build`, removed when it ends.
struct Built(Vec<String>);

impl Drop for Built {
    fn drop(&mut self) {
        for image in &self.0 {
            let _ = docker_output(&["rmi", "-f", image]);
        }
    }
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
    support::docker_build_classic(
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
    support::docker_build_classic(
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
    let passwd = |i: &str| support::sh_in(i, None, "grep '^dev:' /etc/passwd");
    assert_eq!(passwd(&image), passwd(&base));
    assert!(
        passwd(&base).contains(":/home/dev:/bin/ash"),
        "{}",
        passwd(&base)
    );
    let groups = support::sh_in(&image, None, "id -Gn dev");
    assert!(
        groups.contains("staff") && groups.contains("wheel"),
        "{groups}"
    );
    assert_eq!(
        support::sh_in(&image, None, "cat /home/dev/.keep"),
        "kept\n"
    );

    // Owners and modes of every parent made, and of those left alone.
    let kiln = support::sh_in(&image, None, STAT);
    assert_eq!(
        kiln,
        support::sh_in(&oracle, None, STAT),
        "kiln's image vs docker build's"
    );
    assert!(kiln.contains("1000:1000 755 /home/dev/.config\n"), "{kiln}");
    assert!(kiln.contains("1234:4321 755 /opt/x\n"), "{kiln}");
    assert!(kiln.contains("0:0 700 /srv\n"), "{kiln}");
    assert!(kiln.contains("1000:1000 750 /home/dev\n"), "{kiln}");
}

/// The sha256 of a host file, as `sha256sum` prints it.
fn sha256_of(path: &std::path::Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum runs");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("a digest")
        .to_string()
}

#[test]
fn extracted_tools_install_one_member_or_the_whole_archive() {
    let h = Habitat::new("fidtools");
    let pkg = h.root().join("pkg");
    std::fs::create_dir_all(pkg.join("hello-1.0/bin")).expect("mkdir");
    std::fs::create_dir_all(pkg.join("hello-1.0/share")).expect("mkdir");
    std::fs::write(
        pkg.join("hello-1.0/bin/hello"),
        "#!/bin/sh\necho hello from the archive\n",
    )
    .expect("write");
    std::fs::write(pkg.join("hello-1.0/share/doc"), "doc\n").expect("write");
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "chmod 0755 hello-1.0/bin/hello && chmod 0640 hello-1.0/share/doc && tar czf {} hello-1.0",
            h.dir().join("hello.tgz").display()
        ))
        .current_dir(&pkg)
        .status()
        .expect("tar runs");
    assert!(status.success());
    let sha = sha256_of(&h.dir().join("hello.tgz"));
    h.config(&format!(
        "name: @NAME@\n\
         build:\n  base: {{ image: \"{BUSYBOX}\" }}\n\
         \x20 tools:\n\
         \x20   - {{ name: hello, source: hello.tgz, sha256: \"{sha}\", extract: true, path: hello-1.0/bin/hello }}\n\
         \x20   - {{ name: pkg, source: hello.tgz, sha256: \"{sha}\", extract: true, dest: /opt/pkg }}\n"
    ));
    h.build_ok(&[]);
    let image = format!("habitat-{}:latest", h.name);
    assert_eq!(
        support::sh_in(&image, None, "hello"),
        "hello from the archive\n"
    );
    let listing = support::sh_in(
        &image,
        None,
        "stat -c '%u:%g %a %n' /usr/local/bin/hello /opt/pkg/hello-1.0/bin/hello /opt/pkg/hello-1.0/share/doc",
    );
    assert_eq!(
        listing,
        "0:0 755 /usr/local/bin/hello\n0:0 755 /opt/pkg/hello-1.0/bin/hello\n0:0 640 /opt/pkg/hello-1.0/share/doc\n"
    );

    // A path the archive does not hold fails the tools phase, naming it.
    h.edit("path: hello-1.0/bin/hello", "path: hello-1.0/bin/nope");
    let run = h.build(&[]);
    run.assert_code(1);
    assert!(
        run.stderr.contains("has no file `hello-1.0/bin/nope`"),
        "{}",
        run.stderr
    );
}
