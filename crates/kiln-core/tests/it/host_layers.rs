//! Archive phases written on the host (the parent's layer directories read
//! directly) against the same phases extracted into a container, on the real
//! engine: both must give the same file system, down to the mode and owner of
//! every entry, over a base whose directories have unusual modes and owners and
//! whose paths go through symlinks.

use std::collections::BTreeMap;
use std::path::Path;

use kiln_core::engine::docker::DockerEngine;
use kiln_core::engine::{ContainerSpec, Engine};
use kiln_core::executor::{self, BuildOptions};
use kiln_core::testing::{self, TestError};

use crate::support::{Quiet, Tree, git, sha256, tree_diff, tree_of, with_habitats};

/// Writes the base habitat (busybox plus a setup that makes symlinked and
/// oddly owned directories) and the habitat on top of it, named `name`.
fn write_habitats(root: &Path, base_name: &str, name: &str) {
    let base = root.join("base");
    std::fs::create_dir_all(&base).unwrap();
    std::fs::write(
        base.join("kiln.yaml"),
        format!(
            "name: {base_name}\nbuild:\n  base: {{ image: {img} }}\n  setup:\n    commands:\n      root:\n\
             \x20       - mkdir -p /usr/lib/target /srv/data /etc/skel /run/state\n\
             \x20       - ln -s usr/lib/target /linked && ln -s /srv/data /data-link\n\
             \x20       - ln -s ../run/state /usr/state\n\
             \x20       - chmod 1777 /srv/data && chown 65534:65534 /srv/data && chmod 0750 /usr/lib/target\n\
             \x20       - echo hi > /etc/skel/.profile && mkdir /etc/skel/.config && echo x > /etc/skel/.config/x\n\
             \x20       - mkdir -p /work && chmod 0770 /work && chown 65534 /work\n",
            img = testing::BUSYBOX_IMAGE
        ),
    )
    .unwrap();
    let top = root.join(name);
    std::fs::create_dir_all(top.join("files/tree/sub")).unwrap();
    std::fs::write(top.join("files/config"), "config\n").unwrap();
    std::fs::write(top.join("files/tree/a"), "a\n").unwrap();
    std::fs::write(top.join("files/tree/sub/b"), "b\n").unwrap();
    std::os::unix::fs::symlink("a", top.join("files/tree/link")).unwrap();
    std::fs::write(top.join("tool.sh"), "#!/bin/sh\necho tool\n").unwrap();
    let tool_sha = sha256(b"#!/bin/sh\necho tool\n");
    let repo = top.join("app");
    std::fs::create_dir_all(repo.join("src")).unwrap();
    std::fs::write(repo.join("README.md"), "app\n").unwrap();
    std::fs::write(repo.join("src/main.sh"), "echo main\n").unwrap();
    git(&repo, &["init", "--quiet"]);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "--quiet", "-m", "first"]);
    std::fs::write(
        top.join("kiln.yaml"),
        format!(
            "name: {name}\nbuild:\n  base: {{ habitat: ../base }}\n\
             \x20 users:\n    - {{ name: dev, uid: 1000, groups: [staff] }}\n\
             \x20 habitat:\n    dirs: [/linked/made, /opt/new/deep, /usr/state/cache, /opt/new, /opt//new/deep/, /home/dev, /srv/data, /linked]\n    work_dir: /work\n\
             \x20 files:\n    copies:\n\
             \x20     - {{ source: files/config, dest: /data-link/config, owner: dev, mode: \"0600\" }}\n\
             \x20     - {{ source: files/tree, dest: /linked/tree, owner: dev }}\n\
             \x20     - {{ source: files/config, dest: /bin/config-in-bin }}\n\
             \x20     - {{ source: files/config, dest: /opt/pre/config }}\n\
             \x20     - {{ source: files/tree, dest: /opt/pre, owner: dev }}\n\
             \x20 repos:\n    - {{ url: ./app, path: /work/app, ref: main, owner: dev }}\n\
             \x20 tools:\n    - {{ name: tool, source: tool.sh, sha256: \"{tool_sha}\", dest: /linked/bin/tool }}\n"
        ),
    )
    .unwrap();
}

/// The modification time of each of `paths` in `image`.
async fn mtimes(
    engine: &DockerEngine,
    image: &str,
    scope: &str,
    paths: &[&str],
) -> Result<Vec<u64>, TestError> {
    let spec = ContainerSpec {
        image: image.to_string(),
        entrypoint: Some(vec!["/bin/sh".into()]),
        labels: BTreeMap::from([(
            kiln_core::image::labels::LABEL_HABITAT.to_string(),
            scope.to_string(),
        )]),
        ..ContainerSpec::default()
    };
    let id = engine.create_container(&spec).await?;
    let mut out = Vec::new();
    for path in paths {
        let tar = engine.get_archive(&id, path).await;
        let tar = match tar {
            Ok(Some(tar)) => tar,
            other => {
                engine.remove_container(&id).await?;
                return Err(format!("no archive of `{path}`: {other:?}").into());
            }
        };
        let mut ar = tar::Archive::new(&tar[..]);
        let first = ar.entries()?.next().ok_or("an empty archive")??;
        out.push(first.header().mtime()?);
    }
    engine.remove_container(&id).await?;
    Ok(out)
}

#[tokio::test]
async fn host_written_layers_give_the_file_system_a_container_gives() {
    let engine = DockerEngine::connect().await.expect("engine");
    testing::busybox_image(&engine).await.expect("busybox");
    let engine = &engine;
    // Every habitat's images are removed afterwards, also when an assertion fails.
    with_habitats(engine, "hostlayer", |names| async move {
        let tmp = tempfile::tempdir().unwrap();
        let base_name = names.name("base");
        let host_name = names.name("host");
        let cont_name = names.name("cont");
        write_habitats(tmp.path(), &base_name, &host_name);
        write_habitats(tmp.path(), &base_name, &cont_name);
        let mut trees = Vec::new();
        for (name, in_container) in [(&host_name, false), (&cont_name, true)] {
            let habitat = kiln_core::config::load(&tmp.path().join(name)).expect("config");
            let opts = BuildOptions {
                cache_root: Some(tmp.path().join("cache")),
                archive_in_container: in_container,
                ..BuildOptions::default()
            };
            let built = executor::build(engine, &habitat, &opts, &mut Quiet)
                .await
                .unwrap_or_else(|e| panic!("build of {name}: {e}"));
            trees.push(tree_of(engine, &built.image, name).await.unwrap());
            // A listed directory the image has keeps its time, as with `mkdir -p`.
            let existing = ["/work", "/srv/data", "/home/dev"];
            let before = format!("habitat-{name}:3-env");
            let after = format!("habitat-{name}:4-habitat");
            let before = mtimes(engine, &before, name, &existing).await.unwrap();
            let after = mtimes(engine, &after, name, &existing).await.unwrap();
            assert_eq!(after, before, "{name}: times of {existing:?}");
            assert_ne!(before[0], 0, "the base made /work at build time");
        }
        let (host, cont) = (&trees[0], &trees[1]);
        // Git's own bookkeeping names the clone's source and time, which
        // differ between the two habitats by design.
        let compared = |k: &&String| !k.starts_with("work/app/.git/");
        let keys: std::collections::BTreeSet<&String> =
            host.keys().chain(cont.keys()).filter(compared).collect();
        let differ: Vec<String> = keys
            .into_iter()
            .filter(|k| host.get(*k) != cont.get(*k))
            .map(|k| format!("{k}: host {:?} container {:?}", host.get(k), cont.get(k)))
            .collect();
        assert!(
            differ.is_empty(),
            "the two file systems differ:\n{}",
            differ.join("\n")
        );
        // And they are what the config asks for, through the base's symlinks.
        let want = [
            ("linked", "link usr/lib/target"),
            ("usr/lib/target", "Directory mode 750 owner 0:0"),
            ("usr/lib/target/made", "Directory mode 755 owner 0:0"),
            ("srv/data", "Directory mode 1777 owner 65534:65534"),
            ("run/state/cache", "Directory mode 755 owner 0:0"),
            // The habitat phase makes new directories root's 0755 (nested ones
            // listed in any order, or twice); existing ones keep what they had.
            ("work", "Directory mode 770 owner 65534:0"),
            ("opt/new", "Directory mode 755 owner 0:0"),
            ("opt/new/deep", "Directory mode 755 owner 0:0"),
            ("home/dev", "Directory mode 755 owner 1000:1000"),
            ("home/dev/.config/x", "owner 1000:1000"),
            ("usr/lib/target/bin/tool", "mode 755 owner 0:0"),
            (
                "usr/lib/target/tree/link",
                "link a mode 777 owner 1000:1000",
            ),
            ("work/app/src/main.sh", "owner 1000:1000"),
            ("work/app/.git/HEAD", "owner 1000:1000"),
            ("bin/config-in-bin", "mode 644 owner 0:0"),
            // A directory copied where a file was copied into before: the
            // directory's copy decides its owner, as extraction does.
            ("opt/pre", "owner 1000:1000"),
            ("opt/pre/config", "owner 0:0"),
            ("opt/pre/sub/b", "owner 1000:1000"),
        ];
        for (path, expected) in want {
            let got = host
                .get(path)
                .unwrap_or_else(|| panic!("`/{path}` is missing"));
            assert!(
                got.contains(expected),
                "`/{path}`: {got}, expected {expected}"
            );
        }
        let config = host.get("srv/data/config").expect("/srv/data/config");
        assert!(config.ends_with("mode 600 owner 1000:1000"), "{config}");
    })
    .await;
}

/// Builds `top` (a config without its `name:` line, on the base habitat
/// `../base` whose setup runs `base_setup`) both ways, with `files` (path,
/// content) and `links` (path, target) made next to it first and `modes`
/// set, and returns each way's file system or error.
async fn both_ways(
    engine: &DockerEngine,
    base_setup: &[&str],
    top: &str,
    files: &[(&str, &str)],
    links: &[(&str, &str)],
    modes: &[(&str, u32)],
) -> [Result<Tree, String>; 2] {
    with_habitats(engine, "hostlayer-reg", |names| async move {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("base");
        std::fs::create_dir_all(&base).unwrap();
        let setup: Vec<String> = base_setup
            .iter()
            .map(|c| serde_json::to_string(c).unwrap())
            .collect();
        std::fs::write(
            base.join("kiln.yaml"),
            format!(
                "name: {}\nbuild:\n  base: {{ image: {} }}\n  setup:\n    commands:\n      root: [{}]\n",
                names.name("base"),
                testing::BUSYBOX_IMAGE,
                setup.join(", ")
            ),
        )
        .unwrap();
        let dir = tmp.path().join("top");
        std::fs::create_dir_all(&dir).unwrap();
        for (path, content) in files {
            let path = dir.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, content).unwrap();
        }
        for (path, target) in links {
            let path = dir.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::os::unix::fs::symlink(target, path).unwrap();
        }
        for (path, mode) in modes {
            use std::os::unix::fs::PermissionsExt;
            let perm = std::fs::Permissions::from_mode(*mode);
            std::fs::set_permissions(dir.join(path), perm).unwrap();
        }
        let mut out = Vec::new();
        for (way, in_container) in [("host", false), ("cont", true)] {
            let name = names.name(way);
            std::fs::write(dir.join(format!("{way}.yaml")), format!("name: {name}\n{top}")).unwrap();
            let habitat =
                kiln_core::config::load(&dir.join(format!("{way}.yaml"))).expect("config");
            let opts = BuildOptions {
                cache_root: Some(tmp.path().join("cache")),
                archive_in_container: in_container,
                ..BuildOptions::default()
            };
            out.push(match executor::build(engine, &habitat, &opts, &mut Quiet).await {
                Ok(built) => Ok(tree_of(engine, &built.image, &name).await.unwrap()),
                Err(e) => Err(e.to_string()),
            });
        }
        let cont = out.pop().unwrap();
        [out.pop().unwrap(), cont]
    })
    .await
}

/// Both ways built, to the same file system; that file system.
fn same_tree(ways: [Result<Tree, String>; 2]) -> Tree {
    let [host, cont] = ways;
    let host = host.unwrap_or_else(|e| panic!("the host way failed: {e}"));
    let cont = cont.unwrap_or_else(|e| panic!("the container way failed: {e}"));
    let differ = tree_diff(&host, &cont, |_| false);
    assert!(
        differ.is_empty(),
        "the two file systems differ (host vs container):\n{}",
        differ.join("\n")
    );
    host
}

#[tokio::test]
async fn regression_a_path_twice_in_one_layer_is_one_entry_and_the_later_wins() {
    // `docker load` refuses a layer that names a path twice; extraction lets
    // the later entry win (a directory takes its mode and owner).
    let engine = DockerEngine::connect().await.expect("engine");
    testing::busybox_image(&engine).await.expect("busybox");
    let top = "build:\n  base: { habitat: ../base }\n\
               \x20 habitat:\n    dirs: [/work/a/b, /work, /work/a]\n    work_dir: /work\n\
               \x20 files:\n    copies:\n\
               \x20     - { source: one, dest: /opt/app, owner: \"1000\" }\n\
               \x20     - { source: two, dest: /opt/app/sub, owner: \"2000\" }\n\
               \x20     - { source: over, dest: /opt/app/same, mode: \"0600\" }\n";
    let tree = same_tree(
        both_ways(
            &engine,
            &["mkdir -m 0700 /work && chown 65534 /work"],
            top,
            &[
                ("one/same", "one\n"),
                ("one/sub/only-one", "1\n"),
                ("two/same", "two\n"),
                ("over", "over\n"),
            ],
            &[],
            &[("one/sub", 0o755), ("two", 0o700), ("one", 0o755)],
        )
        .await,
    );
    let want = [
        // An existing directory the habitat lists keeps what it had.
        ("work", "Directory mode 700 owner 65534:0"),
        ("work/a", "Directory mode 755 owner 0:0"),
        ("opt/app", "Directory mode 755 owner 1000:1000"),
        ("opt/app/sub", "Directory mode 700 owner 2000:2000"),
        ("opt/app/sub/only-one", "owner 1000:1000"),
        ("opt/app/sub/same", "owner 2000:2000"),
        (
            "opt/app/same",
            &format!("file {} mode 600 owner 0:0", sha256(b"over\n")),
        ),
    ];
    for (path, expected) in want {
        let got = tree
            .get(path)
            .unwrap_or_else(|| panic!("`/{path}` is missing"));
        assert!(
            got.contains(expected),
            "`/{path}`: {got}, expected {expected}"
        );
    }
}

#[tokio::test]
async fn regression_entries_land_through_what_their_own_layer_made() {
    // A copy onto a symlinked directory replaces the link with a directory,
    // so the copy's files go into it, not through the old link; a symlink a
    // copy made leads the entries of later copies.
    let engine = DockerEngine::connect().await.expect("engine");
    testing::busybox_image(&engine).await.expect("busybox");
    let top = "build:\n  base: { habitat: ../base }\n\
               \x20 files:\n    copies:\n\
               \x20     - { source: tree, dest: /data-link }\n\
               \x20     - { source: links, dest: /opt/links }\n\
               \x20     - { source: f, dest: /opt/links/to-srv/through }\n";
    let tree = same_tree(
        both_ways(
            &engine,
            &[
                "mkdir -p /srv/data && echo kept > /srv/data/kept",
                "ln -s /srv/data /data-link",
            ],
            top,
            &[("tree/a", "a\n"), ("f", "f\n")],
            &[("links/to-srv", "/srv")],
            &[],
        )
        .await,
    );
    assert!(
        tree["data-link"].starts_with("Directory"),
        "{}",
        tree["data-link"]
    );
    assert!(tree.contains_key("data-link/a"));
    assert!(
        !tree.contains_key("srv/data/a"),
        "the copy went through the old link"
    );
    assert!(tree.contains_key("srv/data/kept"));
    assert!(tree["opt/links/to-srv"].starts_with("link /srv"));
    assert!(
        tree.contains_key("srv/through"),
        "the later copy did not follow the new link"
    );
}

#[tokio::test]
async fn regression_a_dangling_symlink_among_the_parents_fails_both_ways() {
    // Extraction cannot create a file under a symlink that leads nowhere, so
    // the host way must not invent the missing directory either.
    let engine = DockerEngine::connect().await.expect("engine");
    testing::busybox_image(&engine).await.expect("busybox");
    let top = "build:\n  base: { habitat: ../base }\n\
               \x20 files:\n    copies:\n\
               \x20     - { source: f, dest: /nowhere/f }\n";
    let [host, cont] = both_ways(
        &engine,
        &["ln -s /gone/away /nowhere"],
        top,
        &[("f", "f\n")],
        &[],
        &[],
    )
    .await;
    let (Err(host), Err(cont)) = (&host, &cont) else {
        panic!(
            "a way built through a dangling symlink: host {}, container {}",
            host.is_ok(),
            cont.is_ok()
        );
    };
    assert!(
        host.contains("`/nowhere`") && host.contains("`/gone/away`"),
        "the error names the link and its target: {host}\n(container: {cont})"
    );
}

#[tokio::test]
async fn regression_verify_files_on_the_host_mean_what_test_e_means() {
    // On the host, verify looks the path up in the layers; in a container it
    // runs `test -e`, for which a trailing `/` or `/.` asks for a directory.
    // (A path with `..` is refused by the config check before either.)
    let engine = DockerEngine::connect().await.expect("engine");
    testing::busybox_image(&engine).await.expect("busybox");
    for (path, exists) in [
        ("/etc/passwd/", false),
        ("/etc/passwd/.", false),
        ("/etc/", true),
    ] {
        let top =
            format!("build:\n  base: {{ habitat: ../base }}\n  verify:\n    files: [\"{path}\"]\n");
        let [host, cont] = both_ways(&engine, &[], &top, &[], &[], &[]).await;
        assert_eq!(
            (host.is_ok(), cont.is_ok()),
            (exists, exists),
            "verify `{path}`: host {:?}, container {:?}",
            host.err(),
            cont.err()
        );
    }
}

/// `habitat.dirs` entries with an owner, group and mode (SPEC §2.1), made
/// both ways: a new directory gets what is named (root's `0755` for the
/// rest); an existing one, reached through a symlink or not, changes only
/// what is named and keeps its time; an unnamed existing one stays as it is.
#[tokio::test]
async fn named_dirs_get_what_they_name_and_existing_ones_keep_the_rest() {
    let engine = DockerEngine::connect().await.expect("engine");
    testing::busybox_image(&engine).await.expect("busybox");
    let engine = &engine;
    with_habitats(engine, "kdirs-host", |names| async move {
        let tmp = tempfile::tempdir().unwrap();
        let base_name = names.name("base");
        let base = tmp.path().join("base");
        std::fs::create_dir_all(&base).unwrap();
        std::fs::write(
            base.join("kiln.yaml"),
            format!(
                "name: {base_name}\nbuild:\n  base: {{ image: {img} }}\n  setup:\n    commands:\n      root:\n\
                 \x20       - mkdir -p /usr/lib/target /srv/data /srv/plain\n\
                 \x20       - ln -s usr/lib/target /linked\n\
                 \x20       - chmod 1777 /srv/data && chown 65534:65534 /srv/data && chmod 0750 /usr/lib/target\n\
                 \x20       - chmod 0700 /srv/plain && chown 65534:65534 /srv/plain\n\
                 \x20       - \"echo staff:x:50: >> /etc/group\"\n",
                img = testing::BUSYBOX_IMAGE
            ),
        )
        .unwrap();
        let mut trees = Vec::new();
        for (suffix, in_container) in [("host", false), ("cont", true)] {
            let name = names.name(suffix);
            let top = tmp.path().join(&name);
            std::fs::create_dir_all(&top).unwrap();
            std::fs::write(
                top.join("kiln.yaml"),
                format!(
                    "name: {name}\nbuild:\n  base: {{ habitat: ../base }}\n\
                     \x20 users:\n    - {{ name: dev, uid: 1000, groups: [staff] }}\n\
                     \x20 habitat:\n    dirs:\n\
                     \x20     - {{ path: /opt/new/deep, owner: dev, group: staff, mode: \"0750\" }}\n\
                     \x20     - {{ path: /opt/grouped, group: staff }}\n\
                     \x20     - {{ path: /srv/data, mode: \"0755\" }}\n\
                     \x20     - {{ path: /linked, owner: dev }}\n\
                     \x20     - {{ path: /home/dev, mode: 0700 }}\n\
                     \x20     - /srv/plain\n"
                ),
            )
            .unwrap();
            let habitat = kiln_core::config::load(&top).expect("config");
            let opts = BuildOptions {
                cache_root: Some(tmp.path().join("cache")),
                archive_in_container: in_container,
                ..BuildOptions::default()
            };
            let built = executor::build(engine, &habitat, &opts, &mut Quiet)
                .await
                .unwrap_or_else(|e| panic!("build of {name}: {e}"));
            trees.push(tree_of(engine, &built.image, &name).await.unwrap());
            let existing = ["/srv/data", "/usr/lib/target", "/srv/plain"];
            let before = format!("habitat-{name}:3-env");
            let after = format!("habitat-{name}:4-habitat");
            let before = mtimes(engine, &before, &name, &existing).await.unwrap();
            let after = mtimes(engine, &after, &name, &existing).await.unwrap();
            assert_eq!(after, before, "{name}: times of {existing:?}");
        }
        let (host, cont) = (&trees[0], &trees[1]);
        let differ = tree_diff(host, cont, |_| false);
        assert!(differ.is_empty(), "host vs container:\n{}", differ.join("\n"));
        // The base's own group, which the users phase adds `dev` to.
        let staff = 50;
        let want = [
            ("opt/new", "Directory mode 755 owner 0:0".to_string()),
            ("opt/new/deep", format!("Directory mode 750 owner 1000:{staff}")),
            ("opt/grouped", format!("Directory mode 755 owner 0:{staff}")),
            ("srv/data", "Directory mode 755 owner 65534:65534".to_string()),
            ("linked", "link usr/lib/target".to_string()),
            ("usr/lib/target", "Directory mode 750 owner 1000:1000".to_string()),
            ("home/dev", "Directory mode 700 owner 1000:1000".to_string()),
            ("srv/plain", "Directory mode 700 owner 65534:65534".to_string()),
        ];
        for (path, expected) in want {
            let got = host
                .get(path)
                .unwrap_or_else(|| panic!("`/{path}` is missing"));
            assert!(got.contains(&expected), "`/{path}`: {got}, expected {expected}");
        }
    })
    .await;
}
