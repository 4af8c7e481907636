//! `include:` on disk (SPEC §2.1): diagnostics name the fragment's file and
//! show its line; a fragment's copies and local tools are read beneath its
//! own directory and may not leave it; a fragment's content keys as if it
//! were written inline.

use std::path::Path;

use kiln_core::config::{self, Habitat};
use kiln_core::keys::chain::KeyChain;
use kiln_core::keys::{BaseFact, Facts};
use kiln_core::sources::copies::{self, Withheld};
use proptest::prelude::*;

/// Writes `files` (path → text) under a fresh directory.
fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("include-")
        .tempdir()
        .expect("tempdir");
    for (path, text) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

/// The diagnostics of loading `habitat` under `dir`, the temporary
/// directory shown as `[TMP]`.
fn rendered(dir: &Path, habitat: &str) -> String {
    let root = std::fs::canonicalize(dir).unwrap();
    match config::load(&root.join(habitat)) {
        Ok(h) => panic!("expected diagnostics, loaded {:?}", h.config),
        Err(d) => d.to_string().replace(&root.display().to_string(), "[TMP]"),
    }
}

const SYSTEM: &str = "\
build:
  users:
    - { name: dev, uid: 1000, shell: /bin/bash }
  env:
    - PATH=/opt/system/bin:$PATH
  files:
    copies:
      - { source: motd, dest: /etc/motd }
";

#[test]
fn every_diagnostic_names_the_file_it_is_in() {
    let dir = tree(&[
        ("system/kiln.yaml", SYSTEM),
        ("system/motd", "welcome\n"),
        (
            "shared/kiln.yaml",
            "\
include: [../system/kiln.yaml]
build:
  files:
    copies:
      - { source: gitconfig, dest: /home/dev/.gitconfig, ownr: dev }
      - { source: ../system/motd, dest: /etc/motd.d/system }
",
        ),
        ("shared/gitconfig", "[user]\n"),
        (
            "habitats/app/kiln.yaml",
            "\
name: app
include: [../../shared/kiln.yaml, ../../missing.yaml]
build:
  base: { bootstrap: { suite: bookworm } }
  final: { user: dve }
",
        ),
    ]);
    let out = rendered(dir.path(), "habitats/app");
    insta::with_settings!({ omit_expression => true }, {
        insta::assert_snapshot!("include_diagnostics_in_their_files", out);
    });
}

#[test]
fn a_cycle_of_includes_names_the_chain() {
    let dir = tree(&[
        (
            "app/kiln.yaml",
            "name: app\ninclude: [../a/kiln.yaml]\nbuild: { base: { image: busybox } }\n",
        ),
        ("a/kiln.yaml", "include: [../b]\n"),
        (
            "b/kiln.yaml",
            "# b closes the loop\ninclude: [../a/kiln.yaml]\n",
        ),
    ]);
    let out = rendered(dir.path(), "app");
    insta::with_settings!({ omit_expression => true }, {
        insta::assert_snapshot!("include_cycle", out);
    });
}

#[test]
fn a_fragments_copies_stay_in_its_directory() {
    let outside = tree(&[("secret", "host file\n")]);
    let dir = tree(&[
        (
            "app/kiln.yaml",
            "name: app\ninclude: [../shared/kiln.yaml]\nbuild: { base: { image: busybox } }\n",
        ),
        (
            "shared/kiln.yaml",
            "build:\n  files:\n    copies:\n      - { source: ../app/kiln.yaml, dest: /a }\n      - { source: link, dest: /b }\n",
        ),
    ]);
    std::os::unix::fs::symlink(
        outside.path().join("secret"),
        dir.path().join("shared/link"),
    )
    .unwrap();
    let out = rendered(dir.path(), "app");
    assert!(
        out.contains("copy source `../app/kiln.yaml` is outside the fragment's directory"),
        "{out}"
    );
    assert!(
        out.contains("copy source `link` leads out of the fragment's directory"),
        "{out}"
    );
    assert!(out.contains("--> [TMP]/shared/kiln.yaml:4:"), "{out}");
}

#[test]
fn a_loaded_habitat_lists_its_fragments_and_copy_roots() {
    let dir = tree(&[
        ("system/kiln.yaml", SYSTEM),
        ("system/motd", "welcome\n"),
        ("shared/kiln.yaml", "include: [../system]\n"),
        (
            "habitats/app/kiln.yaml",
            "name: app\ninclude: [../../shared/kiln.yaml, local.yaml]\nbuild: { base: { image: busybox } }\n",
        ),
        ("habitats/app/local.yaml", "description: local\n"),
    ]);
    let root = std::fs::canonicalize(dir.path()).unwrap();
    let h = config::load(&root.join("habitats/app")).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(
        h.fragments,
        [
            root.join("shared/kiln.yaml"),
            root.join("system/kiln.yaml"),
            root.join("habitats/app/local.yaml"),
        ]
    );
    assert_eq!(
        h.copy_roots(),
        [
            root.join("habitats/app"),
            root.join("shared"),
            root.join("system")
        ]
    );
    let copy = &h.config.build.files.as_ref().unwrap().copies[0];
    assert_eq!(copy.source, "../../system/motd");
    assert_eq!(copy.in_root(), ("../../system", "motd"));
    assert_eq!(h.root_dir(copy.in_root().0), root.join("system"));
    assert!(h.config.include.is_empty());
}

#[test]
fn a_build_time_problem_in_a_fragment_is_located_there() {
    let dir = tree(&[
        (
            "app/kiln.yaml",
            "name: app\ninclude: [../tools/kiln.yaml]\nbuild: { base: { image: busybox } }\n",
        ),
        (
            "tools/kiln.yaml",
            "# the team's tools\nbuild:\n  tools:\n    - { name: t, source: bin/t, sha256: \"0000000000000000000000000000000000000000000000000000000000000000\" }\n",
        ),
        ("tools/bin/t", "#!/bin/sh\n"),
    ]);
    let root = std::fs::canonicalize(dir.path()).unwrap();
    let h = config::load(&root.join("app")).unwrap_or_else(|d| panic!("{d}"));
    use config::Seg::{Index, Key};
    let path = [Key("build"), Key("tools"), Index(0), Key("sha256")];
    let d = config::diagnostic_at(&h, &path, "checksum mismatch".into(), None);
    let item = &d.items()[0];
    assert_eq!(
        (item.file.as_str(), item.line),
        (root.join("tools/kiln.yaml").to_str().unwrap(), 4)
    );
    // The tool is read beneath the fragment's directory.
    assert_eq!(h.config.build.tools[0].in_root(), ("../tools", "bin/t"));
}

#[test]
fn a_base_habitats_users_are_known_without_declaring_them_again() {
    // `app` is built on `dev`, which is built on `system`: both declare users.
    let files = [
        (
            "system/kiln.yaml",
            "name: system\nbuild:\n  base: { bootstrap: { suite: bookworm } }\n  users: [{ name: ops, uid: 900 }]\n",
        ),
        (
            "dev/kiln.yaml",
            "name: dev\ninclude: [users.yaml]\nbuild:\n  base: { habitat: ../system }\n",
        ),
        (
            "dev/users.yaml",
            "build:\n  users: [{ name: dev, uid: 1000 }]\n",
        ),
        ("app/conf", "x\n"),
    ];
    let app = |body: &str| format!("name: app\nbuild:\n  base: {{ habitat: ../dev }}\n{body}");
    let ok = app(
        "  files: { copies: [{ source: conf, dest: /home/dev/conf, owner: dev, group: ops }] }\n  setup: { commands: { user: ops, scripts: [id] } }\n  repos: []\n  verify: { user: dev, commands: [id] }\n  final: { user: 'dev:ops' }\n",
    );
    let mut all = files.to_vec();
    all.push(("app/kiln.yaml", ok.as_str()));
    let dir = tree(&all);
    let root = std::fs::canonicalize(dir.path()).unwrap();
    config::load(&root.join("app")).unwrap_or_else(|d| panic!("{d}"));

    let bad = app("  final: { user: deb }\n");
    let mut all = files.to_vec();
    all.push(("app/kiln.yaml", bad.as_str()));
    let dir = tree(&all);
    let out = rendered(dir.path(), "app");
    assert!(
        out.contains("unknown user `deb` in `build.final.user`"),
        "{out}"
    );
    assert!(out.contains("hint: did you mean `dev`?"), "{out}");

    // Without the base, the same names are unknown.
    let alone = "name: app\nbuild:\n  base: { image: busybox }\n  final: { user: ops }\n";
    let dir = tree(&[("app/kiln.yaml", alone)]);
    let out = rendered(dir.path(), "app");
    assert!(
        out.contains("unknown user `ops` in `build.final.user`"),
        "{out}"
    );
}

#[test]
fn a_fragments_directory_copy_leaves_out_its_files_and_what_its_kilnignore_names() {
    let dir = tree(&[
        (
            "app/kiln.yaml",
            "name: app\ninclude: [../shared/kiln.yaml]\nbuild: { base: { image: busybox } }\n",
        ),
        // The habitat's ignore file is for the habitat's own copies.
        ("app/.kilnignore", "*.log\n"),
        (
            "shared/kiln.yaml",
            "include: [more.yaml]\nbuild:\n  files: { copies: [{ source: ., dest: /etc/shared }] }\n",
        ),
        ("shared/more.yaml", "description: more\n"),
        ("shared/.kilnignore", "*.tmp\n"),
        ("shared/keep.txt", "keep\n"),
        ("shared/x.tmp", "scratch\n"),
        ("shared/y.log", "log\n"),
    ]);
    let root = std::fs::canonicalize(dir.path()).unwrap();
    let h = config::load(&root.join("app")).unwrap_or_else(|d| panic!("{d}"));
    let copy = &h.config.build.files.as_ref().unwrap().copies[0];
    let (r, below) = copy.in_root();
    let shared = h.root_dir(r);
    let withheld = Withheld::for_root(&h, &shared).unwrap_or_else(|d| panic!("{d}"));
    let keyed = copies::keyed(&shared, below, &withheld).expect("keyed");
    let own = copies::Ownership {
        uid: 0,
        gid: 0,
        file_mode: None,
    };
    let mut tar = tar::Builder::new(Vec::new());
    copies::append_to_tar(&mut tar, &shared, below, &copy.dest, own, &withheld, &keyed)
        .expect("tar");
    let bytes = tar.into_inner().unwrap();
    let mut archive = tar::Archive::new(&bytes[..]);
    let mut names: Vec<String> = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["etc/shared/", "etc/shared/keep.txt", "etc/shared/y.log"],
        "{names:?}"
    );
}

/// One piece of a config, written either in the fragment `sub/kiln.yaml`
/// or in the `kiln.yaml`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Piece {
    Copy(usize),
    Env(usize),
    Apt(usize),
    Root(usize),
    User,
}

/// The YAML of `pieces` under `build:`, with copy sources as written in `prefix`'s
/// directory (`""` for the fragment's own, `sub/` from the habitat).
fn yaml(pieces: &[Piece], prefix: &str) -> String {
    let (mut copies, mut env, mut apt, mut root, mut user) = (vec![], vec![], vec![], vec![], None);
    for p in pieces {
        match p {
            Piece::Copy(i) => copies.push(format!(
                "{{ source: {prefix}f{i}, dest: /etc/f{i}, mode: \"0640\" }}"
            )),
            Piece::Env(i) => env.push(format!("V{i}=$PATH:/{i}")),
            Piece::Apt(i) => apt.push(format!("p{i}")),
            Piece::Root(i) => root.push(format!("'echo {i}'")),
            Piece::User => user = Some("root"),
        }
    }
    let mut t = String::new();
    if !copies.is_empty() {
        t += &format!("  files: {{ copies: [{}] }}\n", copies.join(", "));
    }
    if !env.is_empty() {
        t += &format!("  env: [{}]\n", env.join(", "));
    }
    if !apt.is_empty() || !root.is_empty() {
        t += &format!(
            "  setup: {{ packages: {{ apt: [{}] }}, commands: {{ root: [{}] }} }}\n",
            apt.join(", "),
            root.join(", ")
        );
    }
    if let Some(u) = user {
        t += &format!("  final: {{ user: {u} }}\n");
    }
    t
}

/// The key of every phase of `h`, its copies digested where a build reads them.
fn keys(h: &Habitat) -> Vec<String> {
    let copies = h
        .config
        .build
        .files
        .iter()
        .flat_map(|f| &f.copies)
        .map(|c| {
            let (root, below) = c.in_root();
            copies::digest(&h.root_dir(root), below, &Withheld::default()).expect("digest")
        })
        .collect();
    let facts = Facts {
        base: BaseFact::Image {
            reference: "busybox".into(),
            id: Some("sha256:aaaa".into()),
        },
        copies,
        repos: vec![],
        init: None,
    };
    KeyChain::compute(&h.config, &facts)
        .0
        .iter()
        .map(|p| p.key.to_string())
        .collect()
}

fn pieces() -> impl Strategy<Value = Vec<(Piece, bool)>> {
    let piece = prop_oneof![
        (0usize..3).prop_map(Piece::Copy),
        (0usize..3).prop_map(Piece::Env),
        (0usize..3).prop_map(Piece::Apt),
        (0usize..3).prop_map(Piece::Root),
        Just(Piece::User),
    ];
    // Each piece once: a copy written twice would be two at one `dest`.
    proptest::collection::vec((piece, any::<bool>()), 1..8).prop_map(|mut v| {
        let mut seen = Vec::new();
        v.retain(|(p, _)| {
            !seen.contains(p) && {
                seen.push(*p);
                true
            }
        });
        v
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// A fragment's content is a key input as if written inline: the same
    /// pieces, split between a fragment and the `kiln.yaml` or written in
    /// the `kiln.yaml` alone (the fragment's first, as they merge), give
    /// every phase the same key.
    #[test]
    fn included_content_keys_as_if_written_inline(split in pieces()) {
        let in_fragment: Vec<Piece> = split.iter().filter(|(_, f)| *f).map(|(p, _)| *p).collect();
        let in_main: Vec<Piece> = split.iter().filter(|(_, f)| !*f).map(|(p, _)| *p).collect();
        let head = "name: app\nbuild:\n  base: { image: busybox }\n";
        let files = [
            ("sub/f0", "zero\n"),
            ("sub/f1", "one\n"),
            ("sub/f2", "two\n"),
        ];
        let mut merged_pieces = in_fragment.clone();
        merged_pieces.extend(&in_main);
        let included = format!("include: [sub/kiln.yaml]\n{head}{}", yaml(&in_main, "sub/"));
        let inline = format!("{head}{}", yaml(&merged_pieces, "sub/"));
        let fragment = format!("build:\n{}", yaml(&in_fragment, ""));
        let mut a = files.to_vec();
        a.extend([("kiln.yaml", included.as_str()), ("sub/kiln.yaml", fragment.as_str())]);
        let mut b = files.to_vec();
        b.push(("kiln.yaml", inline.as_str()));
        let (a, b) = (tree(&a), tree(&b));
        let load = |d: &Path| config::load(d).map_err(|e| TestCaseError::fail(e.to_string()));
        let (ha, hb) = (load(a.path())?, load(b.path())?);
        prop_assert_eq!(keys(&ha), keys(&hb), "{}\n---\n{}\n---\n{}", included, fragment, inline);
    }
}
