//! Copy sources read on the host: a source that `check` accepted but that
//! was swapped for a symlink out of the habitat before the build read it
//! (while a base habitat built, or while the build waited for its lock) is
//! refused when it is read, and nothing of the host reaches an image.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use kiln_core::config;
use kiln_core::engine::fake::{FakeEngine, FakeFileKind};
use kiln_core::executor::{self, BuildOptions};
use kiln_core::report::Recorder;
use kiln_core::sources::copies::{self, CopyError, Ownership, Withheld};
use kiln_core::testing;

const HOST_SECRET: &str = "host secret: root:$6$hash\n";

const YAML: &str = r#"name: swap
build:
  base: { image: "kiln-test/busybox:latest" }
  files:
    copies:
      - { source: files/motd, dest: /etc/motd }
      - { source: files/conf, dest: /etc/app }
"#;

/// `ROOT/h` is the habitat (canonical); `ROOT/host` holds what must never
/// reach an image: a file `secret` and a directory `etc` with one inside.
fn habitat() -> (tempfile::TempDir, PathBuf) {
    let root = tempfile::tempdir().expect("temp dir");
    let dir = root.path().canonicalize().expect("canonical").join("h");
    std::fs::create_dir_all(dir.join("files/conf")).expect("mkdir");
    std::fs::write(dir.join("files/motd"), "welcome\n").expect("write");
    std::fs::write(dir.join("files/conf/app.ini"), "a=1\n").expect("write");
    std::fs::write(dir.join("kiln.yaml"), YAML).expect("write");
    let host = root.path().join("host");
    std::fs::create_dir_all(host.join("etc")).expect("mkdir");
    std::fs::write(host.join("secret"), HOST_SECRET).expect("write");
    std::fs::write(host.join("etc/motd"), HOST_SECRET).expect("write");
    std::fs::write(host.join("etc/app.ini"), HOST_SECRET).expect("write");
    (root, dir)
}

/// Replaces `path` (a file or a directory) with a symlink to `target`.
fn swap(path: &Path, target: &Path) {
    if path.is_dir() {
        std::fs::remove_dir_all(path).expect("remove dir");
    } else {
        std::fs::remove_file(path).expect("remove file");
    }
    symlink(target, path).expect("symlink");
}

/// Every file in every image the fake holds that carries the host's bytes.
fn host_bytes_in_images(engine: &FakeEngine) -> Vec<String> {
    let mut found = Vec::new();
    for id in engine.image_ids() {
        for (path, file) in engine.image_files(&id).unwrap_or_default() {
            if let FakeFileKind::File(bytes) = &file.kind
                && bytes == HOST_SECRET.as_bytes()
            {
                found.push(format!("{id}:{path}"));
            }
        }
    }
    found
}

/// Makes the swap in the habitat `dir`, towards the host dir.
type Swap = fn(&Path, &Path);

#[tokio::test]
async fn regression_a_copy_source_swapped_for_a_symlink_after_load_bakes_no_host_file() {
    // Each way a checked source can be made to lead out of the habitat
    // between the load and the read: the file itself, a directory source,
    // and a directory on the way to the source.
    let cases: [(&str, Swap); 3] = [
        ("the file", |dir, host| {
            swap(&dir.join("files/motd"), &host.join("secret"))
        }),
        ("a directory source", |dir, host| {
            swap(&dir.join("files/conf"), &host.join("etc"))
        }),
        ("a directory on the way", |dir, host| {
            swap(&dir.join("files"), &host.join("etc"))
        }),
    ];
    for (what, make_swap) in cases {
        let (root, dir) = habitat();
        let engine = FakeEngine::new();
        testing::busybox_image(&engine).await.expect("base image");
        let loaded = config::load(&dir).unwrap_or_else(|d| panic!("{d}"));
        make_swap(&dir, &root.path().join("host"));
        let opts = BuildOptions {
            cache_root: Some(root.path().join("cache")),
            ..BuildOptions::default()
        };
        let mut reporter = Recorder::default();
        let result = executor::build(&engine, &loaded, &opts, &mut reporter).await;
        let err = result.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            err.contains("leads out of") && err.contains("is a symlink to"),
            "{what}: the build was not refused: {err:?}"
        );
        assert_eq!(
            host_bytes_in_images(&engine),
            Vec::<String>::new(),
            "{what}: host content reached an image"
        );
    }
}

#[test]
fn regression_a_copy_source_swapped_after_its_digest_is_refused_when_archived() {
    let (root, dir) = habitat();
    let motd =
        copies::keyed(&dir, "files/motd", &Withheld::default()).expect("key before the swap");
    let conf =
        copies::keyed(&dir, "files/conf", &Withheld::default()).expect("key before the swap");
    swap(&dir.join("files/motd"), &root.path().join("host/secret"));
    swap(&dir.join("files/conf"), &root.path().join("host/etc"));
    let own = Ownership {
        uid: 0,
        gid: 0,
        file_mode: None,
    };
    let none = Withheld::default();
    for source in ["files/motd", "files/conf", "./files/../files/motd"] {
        let mut tar = tar::Builder::new(Vec::new());
        let keyed = if source.contains("conf") {
            &conf
        } else {
            &motd
        };
        let err = copies::append_to_tar(&mut tar, &dir, source, "/etc/x", own, &none, keyed)
            .expect_err("a swapped source is archived");
        assert!(matches!(err, CopyError::Outside(_)), "{source}: {err:?}");
        let bytes = tar.into_inner().expect("tar");
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(HOST_SECRET.trim()), "{source}: {text}");
    }
}

#[test]
fn links_that_stay_inside_are_followed_and_links_below_a_source_are_copied_as_links() {
    let (_root, dir) = habitat();
    symlink("files/motd", dir.join("motd-link")).expect("symlink");
    symlink(dir.join("files/conf"), dir.join("conf-abs")).expect("symlink");
    symlink("/etc/passwd", dir.join("files/conf/passwd")).expect("symlink");
    let own = Ownership {
        uid: 0,
        gid: 0,
        file_mode: None,
    };
    let none = Withheld::default();
    let mut tar = tar::Builder::new(Vec::new());
    let keyed = |source: &str| copies::keyed(&dir, source, &none).expect("key");
    copies::append_to_tar(
        &mut tar,
        &dir,
        "motd-link",
        "/etc/motd",
        own,
        &none,
        &keyed("motd-link"),
    )
    .expect("inside link");
    copies::append_to_tar(
        &mut tar,
        &dir,
        "conf-abs",
        "/etc/app",
        own,
        &none,
        &keyed("conf-abs"),
    )
    .expect("absolute link");
    let bytes = tar.into_inner().expect("tar");
    let mut archive = tar::Archive::new(bytes.as_slice());
    let mut seen = Vec::new();
    for entry in archive.entries().expect("entries") {
        let entry = entry.expect("entry");
        let link = entry
            .link_name()
            .expect("link")
            .map(|l| l.display().to_string());
        seen.push((entry.path().expect("path").display().to_string(), link));
    }
    assert!(seen.contains(&("etc/motd".into(), None)), "{seen:?}");
    assert!(seen.contains(&("etc/app/app.ini".into(), None)), "{seen:?}");
    assert!(
        seen.contains(&("etc/app/passwd".into(), Some("/etc/passwd".into()))),
        "a link below the source stays a link: {seen:?}"
    );
}

/// A secret's file inside the habitat went into the image with any copy of
/// the directory holding it (SPEC §6: a secret never enters a layer). It is
/// left out of such copies, hard links to it too, and a copy of the file
/// itself is refused.
#[tokio::test]
async fn regression_a_secret_file_in_a_copied_directory_never_reaches_an_image() {
    let (root, dir) = habitat();
    std::fs::write(dir.join("files/conf/.npmrc"), HOST_SECRET).expect("write");
    std::fs::hard_link(dir.join("files/conf/.npmrc"), dir.join("files/npmrc-link"))
        .expect("hard link");
    std::fs::write(
        dir.join("kiln.yaml"),
        format!(
            "{YAML}      - {{ source: ., dest: /work }}\nsecrets:\n  - {{ id: npm, file: files/conf/.npmrc }}\n"
        ),
    )
    .expect("write");
    let engine = FakeEngine::new();
    testing::busybox_image(&engine).await.expect("base image");
    let loaded = config::load(&dir).unwrap_or_else(|d| panic!("{d}"));
    let opts = BuildOptions {
        cache_root: Some(root.path().join("cache")),
        ..BuildOptions::default()
    };
    let mut reporter = Recorder::default();
    let built = executor::build(&engine, &loaded, &opts, &mut reporter)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(host_bytes_in_images(&engine), Vec::<String>::new());
    let files = engine.image_files(&built.image).expect("the final image");
    for copied in ["/etc/app/app.ini", "/work/files/motd"] {
        assert!(files.contains_key(copied), "{copied} was not copied");
    }
    // SPEC §2.1: the config itself is never copied, even with its directory.
    assert!(
        !files.contains_key("/work/kiln.yaml"),
        "kiln.yaml was copied"
    );

    let withheld = Withheld::secret_files(&dir, &loaded.config.secrets);
    let mut tar = tar::Builder::new(Vec::new());
    let own = Ownership {
        uid: 0,
        gid: 0,
        file_mode: None,
    };
    for source in ["files/conf/.npmrc", "files/npmrc-link"] {
        let keyed = copies::keyed(&dir, ".", &withheld).expect("key");
        let err = copies::append_to_tar(&mut tar, &dir, source, "/x", own, &withheld, &keyed)
            .expect_err("a secret copied");
        assert!(matches!(err, CopyError::Secret { .. }), "{source}: {err:?}");
    }
}

/// Every path in the fake's final image under `prefix`.
fn files_under(engine: &FakeEngine, image: &str, prefix: &str) -> Vec<String> {
    let mut out: Vec<String> = engine
        .image_files(image)
        .unwrap_or_default()
        .into_keys()
        .filter(|p| p.starts_with(prefix) && p.len() > prefix.len())
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn each_copy_root_keeps_its_own_kilnignore_and_no_root_copies_a_fragment() {
    // The habitat and an included fragment each copy their whole directory.
    // Each root's `.kilnignore` applies to its own copies only, and neither
    // copies kiln's files: the config, a fragment, a `.kilnignore`.
    let root = tempfile::tempdir().expect("temp dir");
    let top = root.path().canonicalize().expect("canonical");
    let (h, shared) = (top.join("h"), top.join("shared"));
    std::fs::create_dir_all(&h).expect("mkdir");
    std::fs::create_dir_all(&shared).expect("mkdir");
    std::fs::write(
        h.join("kiln.yaml"),
        "include: [../shared/kiln.yaml]\nname: roots\nbuild:\n  base: { image: \"kiln-test/busybox:latest\" }\n  files:\n    copies:\n      - { source: ., dest: /h }\n",
    )
    .expect("write");
    std::fs::write(h.join(".kilnignore"), "*.txt\n").expect("write");
    std::fs::write(h.join("x.txt"), "x\n").expect("write");
    std::fs::write(h.join("y.log"), "y\n").expect("write");
    std::fs::write(
        shared.join("kiln.yaml"),
        "build:\n  files:\n    copies:\n      - { source: ., dest: /shared }\n",
    )
    .expect("write");
    std::fs::write(shared.join(".kilnignore"), "*.log\n").expect("write");
    std::fs::write(shared.join("a.txt"), "a\n").expect("write");
    std::fs::write(shared.join("b.log"), "b\n").expect("write");

    let engine = FakeEngine::new();
    testing::busybox_image(&engine).await.expect("base image");
    let loaded = config::load(&h).unwrap_or_else(|d| panic!("{d}"));
    let opts = BuildOptions {
        cache_root: Some(top.join("cache")),
        ..BuildOptions::default()
    };
    let mut reporter = Recorder::default();
    let built = executor::build(&engine, &loaded, &opts, &mut reporter)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let image = built.image.clone();
    assert_eq!(files_under(&engine, &image, "/h/"), ["/h/y.log"]);
    assert_eq!(files_under(&engine, &image, "/shared/"), ["/shared/a.txt"]);
}
