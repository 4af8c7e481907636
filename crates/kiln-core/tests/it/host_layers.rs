//! Archive phases written on the host (the parent's layer directories read
//! directly) against the same phases extracted into a container, on the real
//! engine: both must give the same file system, down to the mode and owner of
//! every entry, over a base whose directories have unusual modes and owners and
//! whose paths go through symlinks.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use kiln_core::engine::docker::DockerEngine;
use kiln_core::engine::{ContainerSpec, Engine};
use kiln_core::executor::{self, BuildOptions};
use kiln_core::report::{Event, Reporter};
use kiln_core::testing::{self, TestError};

struct Quiet;

impl Reporter for Quiet {
    fn report(&mut self, _event: Event) {}
}

/// One entry of an image's file system: kind, mode, owner, size, content
/// digest or link target. No times: the two ways date directories differently.
type Tree = BTreeMap<String, String>;

fn git(dir: &Path, args: &[&str]) {
    let ok = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=kiln", "-c", "user.email=kiln@example.com"])
        .args([
            "-c",
            "init.defaultBranch=main",
            "-c",
            "commit.gpgSign=false",
        ])
        .args(args)
        .status()
        .expect("run git")
        .success();
    assert!(ok, "git {args:?}");
}

fn sha256(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

/// Writes the base habitat (busybox plus a setup that makes symlinked and
/// oddly owned directories) and the habitat on top of it, named `name`.
fn write_habitats(root: &Path, scope: &str, name: &str) {
    let base = root.join("base");
    std::fs::create_dir_all(&base).unwrap();
    std::fs::write(
        base.join("kiln.yaml"),
        format!(
            "name: {scope}-base\nbuild:\n  base: {{ image: {img} }}\n  setup:\n    commands:\n      root:\n\
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

/// The whole file system of `image`, read through a created container.
async fn tree_of(engine: &DockerEngine, image: &str, scope: &str) -> Result<Tree, TestError> {
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
    let tar = engine.get_archive(&id, "/").await;
    engine.remove_container(&id).await?;
    let tar = tar?.ok_or("no archive of /")?;
    let mut tree = Tree::new();
    let mut ar = tar::Archive::new(&tar[..]);
    for entry in ar.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.display().to_string();
        let path = path.trim_matches('/').to_string();
        // The engine's own files in every container, and busybox's applets.
        if path == ".dockerenv" || path.starts_with("etc/host") || path == "etc/resolv.conf" {
            continue;
        }
        let h = entry.header().clone();
        let kind = h.entry_type();
        let what = if kind.is_file() {
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut data)?;
            format!("file {}", sha256(&data))
        } else if kind.is_symlink() || kind.is_hard_link() {
            let target = entry.link_name()?.map(|l| l.display().to_string());
            format!("link {}", target.unwrap_or_default())
        } else {
            format!("{kind:?}")
        };
        tree.insert(
            path,
            format!(
                "{what} mode {:o} owner {}:{}",
                h.mode()? & 0o7777,
                h.uid()?,
                h.gid()?
            ),
        );
    }
    Ok(tree)
}

#[tokio::test]
async fn host_written_layers_give_the_file_system_a_container_gives() {
    let engine = DockerEngine::connect().await.expect("engine");
    testing::busybox_image(&engine).await.expect("busybox");
    let engine = &engine;
    testing::scoped(engine, "hostlayer", |scope| async move {
        let tmp = tempfile::tempdir().unwrap();
        let host_name = format!("{}-host", scope.habitat);
        let cont_name = format!("{}-cont", scope.habitat);
        write_habitats(tmp.path(), &scope.habitat, &host_name);
        write_habitats(tmp.path(), &scope.habitat, &cont_name);
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
            trees.push(tree_of(engine, &built.image, &scope.habitat).await.unwrap());
            // A listed directory the image has keeps its time, as with `mkdir -p`.
            let existing = ["/work", "/srv/data", "/home/dev"];
            let before = format!("habitat-{name}:3-env");
            let after = format!("habitat-{name}:4-habitat");
            let before = mtimes(engine, &before, &scope.habitat, &existing)
                .await
                .unwrap();
            let after = mtimes(engine, &after, &scope.habitat, &existing)
                .await
                .unwrap();
            assert_eq!(after, before, "{name}: times of {existing:?}");
            assert_ne!(before[0], 0, "the base made /work at build time");
            // Snapshots of the other habitats are this scope's to remove.
            remove_images_of(engine, name).await;
        }
        remove_images_of(engine, &format!("{}-base", scope.habitat)).await;
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

async fn remove_images_of(engine: &DockerEngine, habitat: &str) {
    for id in engine
        .images_with_labels(&[(kiln_core::image::labels::LABEL_HABITAT, habitat)])
        .await
        .unwrap_or_default()
    {
        let _ = engine.remove_image(&id).await;
    }
}
