//! `.kilnignore` (SPEC §2.1) with `docker build` as the oracle: generated
//! trees and generated ignore files, each copied whole by kiln (`source: .`)
//! and by `COPY . /x` with the same text as `.dockerignore`, and the file
//! lists of the two images compared: kinds, modes, contents, link targets.
//!
//! Two Dockers answer. The classic builder as the Docker 23+ client drives
//! it (`DOCKER_BUILDKIT=0`; the client does the filtering) is the reference:
//! kiln must match it exactly. BuildKit here is the 20.10 one built into
//! Debian's client; it keeps two old behaviours that later Dockers dropped,
//! so it is compared only on cases that cannot show them (no `**`, no
//! negated class, see `quirk_free`), and allowed one difference that is its
//! own: an excluded directory it entered for an exception is sent even when
//! nothing under it comes back, so it may hold extra empty directories.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{Habitat, docker, docker_output};

/// Every image this test made with `docker`, removed when it ends.
struct Made(Vec<String>);

impl Drop for Made {
    fn drop(&mut self) {
        for image in &self.0 {
            let _ = docker_output(&["rmi", "-f", image]);
        }
    }
}

/// A `docker` client and its version's major number.
fn client(path: &str) -> Option<(String, u32)> {
    let out = Command::new(path)
        .args(["version", "--format", "{{.Client.Version}}"])
        .output()
        .ok()?;
    let version = String::from_utf8_lossy(&out.stdout);
    let major = version.trim().split('.').next()?.parse().ok()?;
    Some((path.to_string(), major))
}

/// The reference (a 23+ client, for the classic builder) and a client with
/// BuildKit built in (20.10's has it; later ones need `buildx`).
fn clients() -> (String, String) {
    let found: Vec<(String, u32)> = ["docker", "/usr/local/bin/docker", "/usr/bin/docker"]
        .iter()
        .filter_map(|p| client(p))
        .collect();
    let modern = found.iter().find(|(_, m)| *m >= 23).map(|(p, _)| p.clone());
    let buildkit = found.iter().find(|(_, m)| *m == 20).map(|(p, _)| p.clone());
    (
        modern.expect(
            "a docker client of version 23 or later (the machine has 28 in /usr/local/bin)",
        ),
        buildkit.expect("Debian's docker.io client (20.10, BuildKit built in) at /usr/bin/docker"),
    )
}

/// A small xorshift generator: the same seed gives the same cases.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

const NAMES: &[&str] = &[
    "a",
    "b",
    "src",
    "lib",
    "node_modules",
    "target",
    "x.log",
    "y.txt",
    "main.rs",
    ".env",
    "keep",
    "docs",
];

/// A generated tree: (path, what it is), parents first. Directories are
/// all 0755, since the classic builder makes the parents of what an
/// exception lets back in with that mode whatever the host's is.
fn gen_tree(rng: &mut Rng) -> Vec<(String, Node)> {
    let mut out = Vec::new();
    fn fill(rng: &mut Rng, prefix: &str, depth: usize, out: &mut Vec<(String, Node)>) {
        let mut used = BTreeSet::new();
        for _ in 0..2 + rng.below(4) {
            let name = rng.pick(NAMES);
            if !used.insert(name) {
                continue;
            }
            let path = match prefix {
                "" => name.to_string(),
                p => format!("{p}/{name}"),
            };
            let roll = rng.below(10);
            if depth < 3 && roll < 5 {
                out.push((path.clone(), Node::Dir));
                fill(rng, &path, depth + 1, out);
            } else if roll == 4 {
                let target = rng.pick(&["keep", "../a", "missing"]).to_string();
                out.push((path, Node::Link(target)));
            } else {
                let mode = [0o644, 0o600, 0o755][rng.below(3)];
                let body = format!("{path} {}\n", rng.below(1000));
                out.push((path, Node::File(mode, body)));
            }
        }
    }
    fill(rng, "", 0, &mut out);
    out
}

#[derive(Debug, Clone)]
enum Node {
    Dir,
    File(u32, String),
    Link(String),
}

/// A generated ignore file: patterns made from the tree's own paths (so
/// they match something), bent into globs, some of them exceptions; most
/// files leave a directory out and let something under it back in.
fn gen_ignore(rng: &mut Rng, tree: &[(String, Node)], quirks: bool) -> String {
    let mut lines = Vec::new();
    let some_path = |rng: &mut Rng| match tree.is_empty() || rng.chance(15) {
        true => rng.pick(NAMES).to_string(),
        false => tree[rng.below(tree.len())].0.clone(),
    };
    for _ in 0..rng.below(3) {
        let path = some_path(rng);
        let negate = rng.chance(25);
        lines.push(line(rng, &path, 0, quirks, negate));
    }
    let deep: Vec<&String> = tree
        .iter()
        .map(|t| &t.0)
        .filter(|p| p.contains('/'))
        .collect();
    if !deep.is_empty() && rng.chance(80) {
        let path = deep[rng.below(deep.len())];
        let parts: Vec<&str> = path.split('/').collect();
        let cut = 1 + rng.below(parts.len() - 1);
        let dir = parts[..cut].join("/");
        lines.push(line(rng, &dir, 0, quirks, false));
        // The exception's text mostly starts with the directory's path, as
        // Docker needs to walk into it; sometimes not, to see that it won't.
        let from = if rng.chance(80) { cut } else { 0 };
        lines.push(line(rng, path, from, quirks, true));
    }
    for _ in 0..rng.below(2) {
        let path = some_path(rng);
        let negate = rng.chance(30);
        lines.push(line(rng, &path, 0, quirks, negate));
    }
    lines.join("\n") + "\n"
}

/// `path` as a pattern line, one of its parts from `from` on maybe bent
/// into a glob.
fn line(rng: &mut Rng, path: &str, from: usize, quirks: bool, negate: bool) -> String {
    let mut parts: Vec<String> = path.split('/').map(String::from).collect();
    let start = from.min(parts.len() - 1);
    let i = start + rng.below(parts.len() - start);
    match rng.below(8) {
        0 => parts[i] = "*".into(),
        1 => parts[i] = format!("{}*", &parts[i][..1]),
        2 => parts[i] = parts[i].replacen(|c: char| c.is_ascii_alphabetic(), "?", 1),
        3 if quirks => parts.insert(i, "**".into()),
        4 if quirks => parts.push("**".into()),
        5 => parts[i] = format!("[{}x]{}", &parts[i][..1], &parts[i][1..]),
        _ => {}
    }
    let mut line = parts.join("/");
    if rng.chance(15) {
        line = format!("/{line}");
    }
    if rng.chance(10) {
        line.push('/');
    }
    if negate {
        line = format!("!{line}");
    }
    if rng.chance(8) {
        line = format!("# a comment\n{line}");
    }
    line
}

/// Writes `tree` under `dir`.
fn write_tree(dir: &Path, tree: &[(String, Node)]) {
    use std::os::unix::fs::PermissionsExt;
    for (path, node) in tree {
        let p = dir.join(path);
        match node {
            Node::Dir => std::fs::create_dir_all(&p).expect("mkdir"),
            Node::File(mode, body) => {
                std::fs::write(&p, body).expect("write");
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(*mode))
                    .expect("chmod");
            }
            Node::Link(target) => std::os::unix::fs::symlink(target, &p).expect("symlink"),
        }
    }
}

/// Every entry under `/x` in `image`: `kind mode path [content|target]`.
fn listing(image: &str) -> BTreeSet<String> {
    let script = r#"cd /x && find . -mindepth 1 | sort | while IFS= read -r p; do
        if [ -L "$p" ]; then echo "l $p -> $(readlink "$p")";
        elif [ -d "$p" ]; then echo "d $(stat -c %a "$p") $p";
        else echo "f $(stat -c %a "$p") $p $(sha256sum < "$p" | cut -c1-16)"; fi; done"#;
    docker(&[
        "run",
        "--rm",
        "--entrypoint",
        "/bin/sh",
        image,
        "-c",
        script,
    ])
    .lines()
    // The build files Docker needs in its context (the tree never has them).
    .filter(|l| !matches!(path_of(l), "./Dockerfile" | "./.dockerignore"))
    .map(String::from)
    .collect()
}

/// The path an entry line names.
fn path_of(line: &str) -> &str {
    let mut parts = line.split(' ');
    match parts.next() {
        Some("l") => parts.next().unwrap_or(""),
        _ => parts.nth(1).unwrap_or(""),
    }
}

/// `docker build` of `ctx` with `client`; the image is `tag`.
fn docker_build(client: &str, buildkit: bool, ctx: &Path, tag: &str) {
    let out = Command::new(client)
        .args(["build", "-q", "-t", tag, "."])
        .env("DOCKER_BUILDKIT", if buildkit { "1" } else { "0" })
        .current_dir(ctx)
        .output()
        .expect("docker build runs");
    assert!(
        out.status.success(),
        "{client} build (BuildKit: {buildkit}) failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The base: busybox imported under this test's own name.
fn import_base(made: &mut Made) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let tar = dir.path().join("rootfs.tar");
    kiln_core::testing::write_busybox_rootfs(&tar).expect("busybox rootfs");
    let tag = format!("ignt-busybox:{}", std::process::id());
    docker(&[
        "import",
        "-c",
        &format!("ENV PATH={}", kiln_core::testing::BUSYBOX_PATH),
        &tar.display().to_string(),
        &tag,
    ]);
    made.0.push(tag.clone());
    tag
}

#[test]
fn generated_trees_and_ignore_files_copy_what_docker_build_copies() {
    let (modern, buildkit) = clients();
    let seed: u64 = std::env::var("KILN_IGNORE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x1d6e_5a3c_9b07_f421);
    let cases: usize = std::env::var("KILN_IGNORE_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    let mut made = Made(Vec::new());
    let base = import_base(&mut made);
    let mut rng = Rng(seed);
    let (mut compared_bk, mut entries_seen, mut left_out, mut let_back) = (0, 0, 0, 0);
    for case in 0..cases {
        // Every other case keeps to what Docker 20.10's BuildKit agrees on.
        let quirks = case % 2 == 1;
        let tree = gen_tree(&mut rng);
        let ignore = gen_ignore(&mut rng, &tree, quirks);
        let why = format!(
            "case {case} of seed {seed} (KILN_IGNORE_SEED), .kilnignore:\n{ignore}tree: {tree:?}"
        );

        let h = Habitat::new("ignt");
        write_tree(&h.dir(), &tree);
        h.write(".kilnignore", &ignore);
        h.config(&format!(
            "name: @NAME@\nbuild:\n  base: {{ image: \"{base}\" }}\n  files:\n    copies:\n      - {{ source: ., dest: /x }}\n"
        ));
        let run = h.build(&[]);
        assert_eq!(run.code, 0, "kiln build failed: {}\n{why}", run.stderr);
        let kiln = listing(&format!("habitat-{}:latest", h.name));

        let ctx: PathBuf = h.root().join("docker");
        std::fs::create_dir(&ctx).expect("mkdir");
        write_tree(&ctx, &tree);
        std::fs::write(ctx.join(".dockerignore"), &ignore).expect("write");
        std::fs::write(ctx.join("Dockerfile"), format!("FROM {base}\nCOPY . /x\n")).expect("write");
        let classic_tag = format!("ignt-oracle:{}-classic", h.name);
        made.0.push(classic_tag.clone());
        docker_build(&modern, false, &ctx, &classic_tag);
        let classic = listing(&classic_tag);
        assert_eq!(kiln, classic, "kiln vs the classic builder, {why}");
        entries_seen += kiln.len();
        left_out += tree.len().saturating_sub(kiln.len());
        let_back += usize::from(lets_back(&ignore, &classic));

        if quirk_free(&ignore) {
            let bk_tag = format!("ignt-oracle:{}-buildkit", h.name);
            made.0.push(bk_tag.clone());
            docker_build(&buildkit, true, &ctx, &bk_tag);
            let bk = listing(&bk_tag);
            let missing: Vec<&String> = kiln.difference(&bk).collect();
            assert!(
                missing.is_empty(),
                "BuildKit has none of {missing:?}, {why}"
            );
            // Its extras are directories holding nothing else it sent.
            for extra in bk.difference(&kiln) {
                let dir = path_of(extra);
                let under = format!("{dir}/");
                let holds = bk
                    .iter()
                    .any(|l| !l.starts_with("d ") && path_of(l).starts_with(&under));
                assert!(
                    extra.starts_with("d ") && !holds,
                    "BuildKit also has {extra}, {why}"
                );
            }
            compared_bk += 1;
        }
    }
    // The generator must keep producing cases that exercise something.
    assert!(
        compared_bk * 3 >= cases,
        "only {compared_bk} of {cases} cases went to BuildKit"
    );
    assert!(
        entries_seen > cases,
        "the trees copied almost nothing: {entries_seen} entries"
    );
    eprintln!(
        "{cases} cases: {entries_seen} entries copied, {left_out} left out, {let_back} with an exception that let something back, {compared_bk} also on BuildKit"
    );
    assert!(
        left_out > cases,
        "the ignore files left almost nothing out: {left_out} entries"
    );
    assert!(
        let_back * 4 >= cases,
        "exceptions let something back in only {let_back} of {cases} cases"
    );
}

/// Whether an ignore file avoids what Docker 20.10 decides otherwise than
/// later Dockers: a `**` (it checks a pattern against one parent only, the
/// one with as many parts as the pattern) and a negated class (which may
/// match a `/`, so reach the same).
fn quirk_free(ignore: &str) -> bool {
    !ignore.contains("**") && !ignore.contains("[^")
}

/// Whether an exception of `ignore` brought back something the copy holds:
/// the same file without its `!` lines would leave out one of `copied`.
/// (Only a measure of what the generated cases exercise.)
fn lets_back(ignore: &str, copied: &BTreeSet<String>) -> bool {
    let without: String = ignore
        .lines()
        .filter(|l| !l.starts_with('!'))
        .map(|l| format!("{l}\n"))
        .collect();
    let Ok(strict) = kiln_core::sources::kiln_ignore::KilnIgnore::parse(&without) else {
        return false;
    };
    copied
        .iter()
        .any(|l| strict.excludes(path_of(l).trim_start_matches("./")))
}

/// A real-world-shaped app directory: what `.kilnignore` names never
/// reaches the image, editing it rebuilds nothing, editing `.kilnignore`
/// so the copy takes the same files rebuilds nothing, and letting a file
/// back in rebuilds from `files`.
#[test]
fn ignored_files_stay_out_of_the_image_and_its_keys() {
    let h = Habitat::new("ignt-app");
    h.write("app/package.json", "{\"name\": \"app\"}\n");
    h.write("app/src/index.js", "console.log('hi')\n");
    h.write("app/node_modules/left-pad/index.js", "module.exports = 1\n");
    h.write("app/.env", "TOKEN=host-only\n");
    h.write("app/logs/today.log", "noise\n");
    h.write("app/logs/.keep", "");
    h.write(
        ".kilnignore",
        "# what Docker users write\n**/node_modules\napp/.env\napp/logs/*\n!app/logs/.keep\n",
    );
    h.config(
        "name: @NAME@\nbuild:\n  base: { image: \"kiln-test/busybox:latest\" }\n  files:\n    copies:\n      - { source: ., dest: /srv }\n",
    );
    h.build_ok(&[]);
    let image = format!("habitat-{}:latest", h.name);
    let found = docker(&[
        "run",
        "--rm",
        "--entrypoint",
        "/bin/sh",
        &image,
        "-c",
        "cd /srv && find . | sort",
    ]);
    let found: Vec<&str> = found.lines().collect();
    assert_eq!(
        found,
        [
            ".",
            "./app",
            "./app/logs",
            "./app/logs/.keep",
            "./app/package.json",
            "./app/src",
            "./app/src/index.js"
        ],
        "neither kiln.yaml, .kilnignore nor what it names is copied"
    );

    h.write("app/.env", "TOKEN=changed\n");
    h.write("app/node_modules/left-pad/index.js", "module.exports = 2\n");
    h.write("app/logs/today.log", "more noise\n");
    assert_eq!(
        h.build_ok(&[]).built(),
        Vec::<String>::new(),
        "an ignored file is no input"
    );

    h.write(
        ".kilnignore",
        "**/node_modules\napp/.env\napp/logs/*\n!app/logs/.keep\n# reworded\n/app/node_modules/\n",
    );
    assert_eq!(
        h.build_ok(&[]).built(),
        Vec::<String>::new(),
        "the same files, the same key"
    );

    h.write(
        ".kilnignore",
        "**/node_modules\napp/logs/*\n!app/logs/.keep\n",
    );
    let run = h.build_ok(&[]);
    assert_eq!(
        run.built().first().map(String::as_str),
        Some("files"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_bad_kilnignore_line_and_an_ignored_source_are_config_errors() {
    let h = Habitat::new("ignt-bad");
    h.write("conf/app.ini", "x\n");
    h.write(".kilnignore", "ok\n  [unclosed\n!\n");
    h.config(
        "name: @NAME@\nbuild:\n  base: { image: \"kiln-test/busybox:latest\" }\n  files:\n    copies:\n      - { source: conf/app.ini, dest: /etc/app.ini }\n",
    );
    for args in [&["check", "."][..], &["build", "."][..]] {
        let run = h.kiln(args).run();
        run.assert_code(2);
        assert!(
            run.stderr.contains(".kilnignore:2:3"),
            "{args:?}: {}",
            run.stderr
        );
        assert!(
            run.stderr.contains(".kilnignore:3:1"),
            "{args:?}: {}",
            run.stderr
        );
        assert!(run.stderr.contains("never closed"), "{}", run.stderr);
    }
    h.write(".kilnignore", "conf\n");
    let run = h.kiln(&["build", "."]).run();
    run.assert_code(2);
    assert!(
        run.stderr.contains("kiln.yaml:6:"),
        "located at the copy's source: {}",
        run.stderr
    );
    assert!(
        run.stderr.contains("line 1 of `.kilnignore`"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("!conf/app.ini"),
        "the hint names the exception: {}",
        run.stderr
    );
}
