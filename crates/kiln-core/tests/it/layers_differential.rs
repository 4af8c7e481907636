//! A randomised differential test of the layers kiln writes on the host
//! (`image::layer_from_tars` over `image::rootfs`) against the same archive
//! phases extracted into a container (`BuildOptions::archive_in_container`),
//! on the real engine. Each case generates a three-level habitat chain:
//!
//! - `b0`: busybox plus a setup that makes a tree under `/t` (nested
//!   directories with odd modes and owners, files, symlinks to directories,
//!   chains of symlinks, dangling ones, sometimes an `/etc/skel`);
//! - `b1`: on `b0`, a setup that deletes files and directories (whiteouts),
//!   recreates directories (opaque ones), re-owns, and swaps symlinks and
//!   directories, in a layer of its own;
//! - the top habitat, built twice (once per path): users, habitat dirs,
//!   copies of generated host trees (modes, owners, symlinks) to destinations
//!   through symlinked parents, into deleted and opaque directories, onto
//!   existing links and files; sometimes a setup that deletes more, a repo and
//!   a tool placed over it.
//!
//! Both final images' file systems are compared entry by entry (kind, mode,
//! owner, content, link target). A case where one path builds and the other
//! fails is a discrepancy too. Some cases also check a few paths with
//! `verify.files` (some with a trailing `/`, `/.` or a `missing/..`), each
//! in a habitat on the top one: the host looks them up in the layers, the
//! container runs `test -e`, and both must agree.
//!
//! Every run prints its seed. `KILN_DIFF_SEED=N` replays a run,
//! `KILN_DIFF_CASES=N` runs N cases (default 4, what CI runs), e.g.
//! `KILN_DIFF_CASES=50 cargo test -p kiln-core --test it layers_differential`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use kiln_core::engine::docker::DockerEngine;
use kiln_core::executor::{self, BuildOptions};
use kiln_core::testing;

use crate::support::{
    Names, Quiet, Rng, count_from_env, git, seed_from_env, sha256, tree_diff, tree_of,
    with_habitats,
};

/// Cases run when `KILN_DIFF_CASES` is not set.
const DEFAULT_CASES: usize = 4;

/// What the generator knows of a path in the base images.
#[derive(Debug, Clone, PartialEq)]
enum Node {
    Dir,
    File,
    /// A symlink, with its target as written.
    Link(String),
}

/// The file system the base habitats' setups make, as far as the generator
/// needs it to pick destinations that exist, are missing, or go through links.
#[derive(Debug, Clone)]
struct Model {
    nodes: BTreeMap<String, Node>,
    /// Directories a setup deleted (whiteouts in its layer).
    removed: Vec<String>,
    /// Directories a setup deleted and made again (opaque in its layer).
    opaque: Vec<String>,
    /// A counter for fresh names.
    fresh: usize,
    /// Destinations given out already: the config refuses two at one path.
    used: std::collections::BTreeSet<String>,
    /// Directories (or links to one) the top habitat's earlier copies made.
    copied: Vec<String>,
}

/// Directories of the busybox image the generator may point at but never
/// deletes or changes.
const SYSTEM_DIRS: &[&str] = &["/etc", "/home", "/tmp", "/usr", "/usr/bin", "/usr/local"];

const DIR_MODES: &[u32] = &[0o755, 0o700, 0o750, 0o775, 0o1777, 0o711, 0o2755];
const FILE_MODES: &[u32] = &[0o644, 0o600, 0o755, 0o640, 0o444, 0o4755, 0o700, 0o664];
const OWNERS: &[&str] = &["0:0", "65534:65534", "1000:1000", "123:456", "0:65534"];

fn normalize(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            p => out.push(p),
        }
    }
    format!("/{}", out.join("/"))
}

fn parent_of(path: &str) -> &str {
    match path.rsplit_once('/') {
        Some(("", _)) | None => "/",
        Some((p, _)) => p,
    }
}

/// `target` written relative to the directory `from`.
fn relative(from: &str, target: &str) -> String {
    let f: Vec<&str> = from.split('/').filter(|p| !p.is_empty()).collect();
    let t: Vec<&str> = target.split('/').filter(|p| !p.is_empty()).collect();
    let common = f.iter().zip(&t).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<&str> = vec![".."; f.len() - common];
    parts.extend(&t[common..]);
    if parts.is_empty() {
        ".".to_string()
    } else {
        parts.join("/")
    }
}

/// Where a path leads, following every symlink.
#[derive(Debug, PartialEq)]
enum Lead {
    /// To an existing entry, at this real path.
    To(String, Node),
    /// To nothing: a component and all below it are missing.
    Missing,
    /// Through a symlink whose target is missing: extraction refuses it.
    Dangling,
    /// Through a regular file, or a loop: unusable.
    Broken,
}

impl Model {
    fn new() -> Model {
        let mut nodes = BTreeMap::new();
        for d in SYSTEM_DIRS.iter().chain(&["/t"]) {
            nodes.insert(d.to_string(), Node::Dir);
        }
        Model {
            nodes,
            removed: Vec::new(),
            opaque: Vec::new(),
            fresh: 0,
            used: std::collections::BTreeSet::new(),
            copied: Vec::new(),
        }
    }

    fn fresh(&mut self, stem: &str) -> String {
        self.fresh += 1;
        format!("{stem}{}", self.fresh)
    }

    fn lead(&self, path: &str) -> Lead {
        self.lead_from("/", path, 0)
    }

    fn lead_from(&self, start: &str, path: &str, depth: usize) -> Lead {
        if depth > 8 {
            return Lead::Broken;
        }
        let mut real = if path.starts_with('/') {
            "/".to_string()
        } else {
            start.to_string()
        };
        let mut node = Node::Dir;
        for part in path.split('/').filter(|p| !p.is_empty() && *p != ".") {
            if node != Node::Dir {
                return Lead::Broken;
            }
            if part == ".." {
                real = parent_of(&real).to_string();
                continue;
            }
            let candidate = normalize(&format!("{real}/{part}"));
            match self.nodes.get(&candidate) {
                None => return Lead::Missing,
                Some(Node::Link(t)) => match self.lead_from(&real, t, depth + 1) {
                    Lead::To(r, n) => {
                        real = r;
                        node = n;
                    }
                    Lead::Missing => return Lead::Dangling,
                    other => return other,
                },
                Some(n) => {
                    real = candidate;
                    node = n.clone();
                }
            }
        }
        Lead::To(real, node)
    }

    fn dirs(&self) -> Vec<String> {
        self.with(|_, n| *n == Node::Dir)
    }

    /// Directories of `/t` (the ones setups may change).
    fn own_dirs(&self) -> Vec<String> {
        self.with(|p, n| *n == Node::Dir && p.starts_with("/t/"))
    }

    fn files(&self) -> Vec<String> {
        self.with(|_, n| *n == Node::File)
    }

    fn links(&self) -> Vec<String> {
        self.with(|_, n| matches!(n, Node::Link(_)))
    }

    fn with(&self, keep: impl Fn(&str, &Node) -> bool) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|(p, n)| keep(p, n))
            .map(|(p, _)| p.clone())
            .collect()
    }

    fn remove_tree(&mut self, path: &str) {
        let below = format!("{path}/");
        self.nodes
            .retain(|p, _| p != path && !p.starts_with(&below));
    }

    /// A directory to create something in: anywhere in `/t` or, rarely, a
    /// system directory.
    fn some_dir(&self, rng: &mut Rng) -> String {
        let own = self.own_dirs();
        if own.is_empty() || rng.chance(10) {
            return rng.pick(&["/t", "/etc", "/usr/local"]).to_string();
        }
        rng.pick(&own).clone()
    }

    /// A symlink target: a directory (absolute or relative), another link, a
    /// missing path, a file.
    fn link_target(&mut self, rng: &mut Rng, at_dir: &str) -> String {
        let dirs = self.dirs();
        let links = self.links();
        let files = self.files();
        let target = match rng.below(10) {
            0..=4 => rng.pick(&dirs).clone(),
            5 | 6 if !links.is_empty() => rng.pick(&links).clone(),
            7 | 8 => format!("{}/{}", self.some_dir(rng), self.fresh("gone")),
            9 if !files.is_empty() => rng.pick(&files).clone(),
            _ => rng.pick(&dirs).clone(),
        };
        match rng.chance(50) {
            true => relative(at_dir, &target),
            false => target,
        }
    }

    /// Shell commands that make `b0`'s tree, recorded in the model.
    fn create(&mut self, rng: &mut Rng) -> Vec<String> {
        let mut cmds = vec![format!(
            "mkdir -p /t && chmod {:o} /t",
            rng.pick(&[0o755, 0o750, 0o1777])
        )];
        for _ in 0..rng.range(3, 7) {
            let path = format!("{}/{}", self.some_dir(rng), self.fresh("d"));
            cmds.push(format!(
                "mkdir {path} && chown {} {path} && chmod {:o} {path}",
                rng.pick(OWNERS),
                rng.pick(DIR_MODES)
            ));
            self.nodes.insert(path, Node::Dir);
        }
        for _ in 0..rng.range(1, 4) {
            let path = format!("{}/{}", self.some_dir(rng), self.fresh("f"));
            cmds.push(self.make_file(rng, &path));
        }
        for _ in 0..rng.range(2, 5) {
            let dir = match rng.chance(20) {
                true => "/".to_string(),
                false => self.some_dir(rng),
            };
            let path = normalize(&format!("{dir}/{}", self.fresh("l")));
            let target = self.link_target(rng, &dir);
            cmds.push(format!("ln -s {target} {path}"));
            self.nodes.insert(path, Node::Link(target));
        }
        if rng.chance(40) {
            cmds.push(format!(
                "mkdir -p /etc/skel/.cfg && echo profile > /etc/skel/.profile && \
                 echo x > /etc/skel/.cfg/x && chmod {:o} /etc/skel/.cfg && ln -s .profile /etc/skel/.rc",
                rng.pick(DIR_MODES)
            ));
        }
        cmds
    }

    fn make_file(&mut self, rng: &mut Rng, path: &str) -> String {
        self.nodes.insert(path.to_string(), Node::File);
        format!(
            "echo {} > {path} && chown {} {path} && chmod {:o} {path}",
            rng.next_u64() % 1000,
            rng.pick(OWNERS),
            rng.pick(FILE_MODES)
        )
    }

    /// Shell commands that change the tree in a later layer: whiteouts,
    /// opaque directories, metadata changes, links and directories swapped.
    fn change(&mut self, rng: &mut Rng, ops: usize) -> Vec<String> {
        let mut cmds = Vec::new();
        for _ in 0..ops {
            let dirs = self.own_dirs();
            let files = self.files();
            let links = self.links();
            match rng.below(8) {
                0 if !files.is_empty() => {
                    let f = rng.pick(&files).clone();
                    cmds.push(format!("rm -f {f}"));
                    self.nodes.remove(&f);
                }
                1 | 2 if !dirs.is_empty() => {
                    let d = rng.pick(&dirs).clone();
                    cmds.push(format!("rm -rf {d}"));
                    self.remove_tree(&d);
                    self.removed.push(d);
                }
                3 | 4 if !dirs.is_empty() => {
                    let d = rng.pick(&dirs).clone();
                    cmds.push(format!(
                        "rm -rf {d} && mkdir {d} && chown {} {d} && chmod {:o} {d}",
                        rng.pick(OWNERS),
                        rng.pick(DIR_MODES)
                    ));
                    self.remove_tree(&d);
                    self.nodes.insert(d.clone(), Node::Dir);
                    self.opaque.push(d);
                }
                5 if !dirs.is_empty() => {
                    let d = rng.pick(&dirs).clone();
                    cmds.push(format!(
                        "chown {} {d} && chmod {:o} {d}",
                        rng.pick(OWNERS),
                        rng.pick(DIR_MODES)
                    ));
                }
                6 if !links.is_empty() => {
                    let l = rng.pick(&links).clone();
                    cmds.push(format!("rm -f {l} && mkdir {l}"));
                    self.nodes.insert(l, Node::Dir);
                }
                7 if !dirs.is_empty() => {
                    let d = rng.pick(&dirs).clone();
                    let target = self.link_target(rng, parent_of(&d));
                    cmds.push(format!("rm -rf {d} && ln -s {target} {d}"));
                    self.remove_tree(&d);
                    self.nodes.insert(d.clone(), Node::Link(target));
                    self.removed.push(d);
                }
                _ => {
                    let path = format!("{}/{}", self.some_dir(rng), self.fresh("f"));
                    cmds.push(self.make_file(rng, &path));
                }
            }
        }
        cmds
    }

    /// A path to place something at or under: an existing directory, a link
    /// to one, a path through a link, a deleted or opaque directory, a
    /// dangling link, or a new path.
    fn anchor(&mut self, rng: &mut Rng) -> String {
        // Into a tree an earlier copy placed: through its symlinks, onto its
        // files and directories (the generator does not know which).
        if !self.copied.is_empty() && rng.chance(25) {
            let inside = rng.pick(&self.copied).clone();
            if !self.used.contains(&inside) {
                return inside;
            }
        }
        for _ in 0..20 {
            let candidate = match rng.below(10) {
                0..=2 => rng.pick(&self.dirs()).clone(),
                3 | 4 => {
                    let links = self.links();
                    if links.is_empty() {
                        continue;
                    }
                    let l = rng.pick(&links).clone();
                    match self.lead(&l) {
                        Lead::To(real, Node::Dir) if rng.chance(50) => {
                            // Deeper, through the link.
                            let below: Vec<String> = self
                                .dirs()
                                .into_iter()
                                .filter_map(|d| {
                                    d.strip_prefix(&format!("{real}/")).map(str::to_string)
                                })
                                .collect();
                            match below.is_empty() {
                                true => l,
                                false => format!("{l}/{}", rng.pick(&below)),
                            }
                        }
                        _ => l,
                    }
                }
                5 if !self.removed.is_empty() => rng.pick(&self.removed).clone(),
                6 if !self.opaque.is_empty() => rng.pick(&self.opaque).clone(),
                7 => format!("{}/{}", self.some_dir(rng), self.fresh("n")),
                _ => self.some_dir(rng),
            };
            // Nothing is placed through a file or a loop, and seldom through
            // a dangling link: both ways refuse those, which proves little.
            let usable = match self.lead(&candidate) {
                Lead::To(_, Node::Dir) | Lead::Missing => true,
                Lead::Dangling => rng.chance(10),
                _ => false,
            };
            if usable && !self.used.contains(&candidate) {
                return candidate;
            }
        }
        "/t".to_string()
    }

    /// Where a copy, dir, repo or tool goes: mostly a new name under an
    /// anchor, sometimes the anchor itself (replacing what is there).
    fn dest(&mut self, rng: &mut Rng, stem: &str, replace: bool) -> String {
        let anchor = self.anchor(rng);
        let own = anchor.starts_with("/t/") || self.links().contains(&anchor);
        let files: Vec<String> = self
            .files()
            .into_iter()
            .filter(|f| !self.used.contains(f))
            .collect();
        let dest = if replace && own && rng.chance(30) {
            anchor
        } else if replace && !files.is_empty() && rng.chance(10) {
            rng.pick(&files).clone()
        } else {
            let leaf = self.fresh(stem);
            normalize(&format!("{anchor}/{leaf}"))
        };
        self.used.insert(dest.clone());
        dest
    }
}

/// A host tree to copy: nested directories, files and symlinks with assorted
/// modes. Returns the paths below `dir` that are directories, or symlinks to
/// one (`.`), which later entries can go through.
fn write_tree(rng: &mut Rng, dir: &Path, depth: usize) -> Vec<String> {
    std::fs::create_dir_all(dir).unwrap();
    let mut through = Vec::new();
    for k in 0..rng.range(1, 4) {
        let name = format!("e{k}");
        let path = dir.join(&name);
        match rng.below(10) {
            5..=7 if depth < 2 => {
                through.push(name.clone());
                let below = write_tree(rng, &path, depth + 1);
                through.extend(below.into_iter().map(|b| format!("{name}/{b}")));
            }
            8 => {
                let target = *rng.pick(&["e0", "../x", "/etc/passwd", "missing", "."]);
                std::os::unix::fs::symlink(target, &path).unwrap();
                if target == "." {
                    through.push(name);
                }
            }
            9 => {
                std::fs::create_dir(&path).unwrap();
                let mode = *rng.pick(DIR_MODES);
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
                through.push(name);
            }
            _ => write_file(rng, &path),
        }
    }
    let mode = *rng.pick(DIR_MODES);
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).unwrap();
    through
}

fn write_file(rng: &mut Rng, path: &Path) {
    let len = rng.below(40);
    let content: String = (0..len)
        .map(|_| (b'a' + rng.below(26) as u8) as char)
        .collect();
    std::fs::write(path, content).unwrap();
    let mode = *rng.pick(FILE_MODES);
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A YAML flow sequence of strings, each JSON-quoted.
fn yaml_list(items: &[String]) -> String {
    let quoted: Vec<String> = items
        .iter()
        .map(|s| serde_json::to_string(s).unwrap())
        .collect();
    format!("[{}]", quoted.join(", "))
}

/// One generated case, written to `root`: `b0/`, `b1/` and `top/` with
/// `host.yaml` and `cont.yaml` (the same config under two names).
struct Case {
    texts: Vec<(String, String)>,
    /// Paths `verify.files` checks, each in a habitat of its own on the top
    /// habitat (`top/vN/`): on the host a lookup in the layers, in a
    /// container `test -e`.
    verify: Vec<String>,
}

fn write_case(rng: &mut Rng, root: &Path, names: &Names, case: usize) -> Case {
    let mut model = Model::new();
    let mut texts = Vec::new();
    let mut put = |rel: &str, text: String| {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &text).unwrap();
        texts.push((rel.to_string(), text));
    };

    let b0 = names.name(&format!("{case}-b0"));
    let created = model.create(rng);
    put(
        "b0/kiln.yaml",
        format!(
            "name: {b0}\nbuild:\n  base: {{ image: {} }}\n  setup:\n    commands:\n      root: {}\n",
            testing::BUSYBOX_IMAGE,
            yaml_list(&created)
        ),
    );
    let b1 = names.name(&format!("{case}-b1"));
    let ops = rng.range(2, 5);
    let changed = model.change(rng, ops);
    put(
        "b1/kiln.yaml",
        format!(
            "name: {b1}\nbuild:\n  base: {{ habitat: ../b0 }}\n  setup:\n    commands:\n      root: {}\n",
            yaml_list(&changed)
        ),
    );

    let top = root.join("top");
    let mut y = String::from("build:\n  base: { habitat: ../b1 }\n");
    let users = rng.below(3);
    let mut owners = vec!["root".to_string(), "1234".to_string(), "65534".to_string()];
    let mut groups = vec!["65534".to_string(), "0".to_string(), "777".to_string()];
    if users > 0 {
        y.push_str("  users:\n");
        for u in 0..users {
            let _ = write!(y, "    - {{ name: u{u}, uid: {}", 1000 + u * 7);
            if rng.chance(40) {
                let _ = write!(y, ", gid: {}", 1500 + u);
            }
            if rng.chance(50) {
                let _ = write!(y, ", groups: [g{u}]");
                groups.push(format!("g{u}"));
            }
            if rng.chance(30) {
                let _ = write!(y, ", home: {}", model.dest(rng, "home", false));
            }
            y.push_str(" }\n");
            owners.push(format!("u{u}"));
        }
    }
    if rng.chance(70) {
        let dirs: Vec<String> = (0..rng.range(1, 3))
            .map(|_| match rng.chance(50) {
                true => model.anchor(rng),
                false => model.dest(rng, "hd", false),
            })
            .collect();
        let _ = write!(y, "  habitat:\n    dirs: {}\n", yaml_list(&dirs));
        if rng.chance(30) {
            let _ = writeln!(y, "    work_dir: {}", model.dest(rng, "wd", false));
        }
    }
    y.push_str("  files:\n    copies:\n");
    for c in 0..rng.range(1, 3) {
        let source = format!("src/c{c}");
        let through = match rng.chance(70) {
            true => Some(write_tree(rng, &top.join(&source), 0)),
            false => {
                std::fs::create_dir_all(top.join("src")).unwrap();
                write_file(rng, &top.join(&source));
                None
            }
        };
        let dest = model.dest(rng, "c", true);
        let _ = write!(y, "      - {{ source: {source}, dest: {dest}");
        if let Some(through) = through {
            model.copied.push(dest.clone());
            model
                .copied
                .extend(through.into_iter().map(|t| format!("{dest}/{t}")));
        }
        if rng.chance(60) {
            let _ = write!(y, ", owner: \"{}\"", rng.pick(&owners));
        }
        if rng.chance(30) {
            let _ = write!(y, ", group: \"{}\"", rng.pick(&groups));
        }
        if rng.chance(30) {
            let _ = write!(
                y,
                ", mode: \"{}\"",
                rng.pick(&["0600", "0755", "0640", "4755"])
            );
        }
        y.push_str(" }\n");
    }
    if rng.chance(40) {
        let ops = rng.range(1, 3);
        let cmds: Vec<String> = model
            .change(rng, ops)
            .into_iter()
            .map(|c| format!("{c} || true"))
            .collect();
        let _ = write!(
            y,
            "  setup:\n    commands:\n      root: {}\n",
            yaml_list(&cmds)
        );
    }
    if rng.chance(50) {
        let repo = top.join("repo");
        let _ = write_tree(rng, &repo.join("tree"), 1);
        std::fs::write(repo.join("README"), format!("{}\n", rng.next_u64())).unwrap();
        git(&repo, &["init", "--quiet"]);
        git(&repo, &["add", "-A"]);
        git(&repo, &["commit", "--quiet", "-m", "generated"]);
        let _ = write!(
            y,
            "  repos:\n    - {{ url: ./repo, path: {}, ref: main",
            model.dest(rng, "repo", false)
        );
        if rng.chance(50) {
            let _ = write!(y, ", owner: \"{}\"", rng.pick(&owners));
        }
        y.push_str(" }\n");
    }
    if rng.chance(50) {
        let content = format!("#!/bin/sh\necho {}\n", rng.next_u64());
        std::fs::write(top.join("tool.sh"), &content).unwrap();
        let _ = write!(
            y,
            "  tools:\n    - {{ name: tool, source: tool.sh, sha256: \"{}\", dest: {} }}\n",
            sha256(content.as_bytes()),
            model.dest(rng, "tool", true)
        );
    }
    let host = names.name(&format!("{case}-host"));
    let cont = names.name(&format!("{case}-cont"));
    put("top/host.yaml", format!("name: {host}\n{y}"));
    put("top/cont.yaml", format!("name: {cont}\n{y}"));
    let mut verify = Vec::new();
    if rng.chance(60) {
        let mut known: Vec<String> = model.used.iter().cloned().collect();
        known.extend(model.nodes.keys().cloned());
        known.extend(model.removed.iter().cloned());
        for i in 0..rng.range(1, 2) {
            let path = rng.pick(&known).clone();
            // `test -e` sees what a trailing slash or `..` means.
            let path = match rng.below(10) {
                0 | 1 => format!("{path}/"),
                2 => format!("{path}/."),
                3 => match path.rsplit_once('/') {
                    Some((dir, last)) => format!("{dir}/missing/../{last}"),
                    None => path,
                },
                _ => path,
            };
            for (way, base) in [("h", "host"), ("c", "cont")] {
                let name = names.name(&format!("{case}-v{i}{way}"));
                put(
                    &format!("top/v{i}/{base}.yaml"),
                    format!(
                        "name: {name}\nbuild:\n  base: {{ habitat: ../{base}.yaml }}\n  verify:\n    files: [{}]\n",
                        serde_json::to_string(&path).unwrap()
                    ),
                );
            }
            verify.push(path);
        }
    }
    Case { texts, verify }
}

/// Git's record of when a clone was checked out (its index's stat data and
/// its reflogs), which differs between any two clones by design.
fn clone_bookkeeping(path: &str) -> bool {
    path.contains("/.git/logs/") || path.ends_with("/.git/index")
}

/// The engine's storage driver, as `docker info` names it.
fn storage_driver() -> String {
    let out = std::process::Command::new("docker")
        .args(["info", "--format", "{{.Driver}}"])
        .output()
        .expect("`docker info` runs");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Forgives, in `host`, the directories that kept their set-group-id bit
/// where the container way lost it. That is fuse-overlayfs, not kiln:
/// copying a lower directory up (to add an entry to it) drops the bit (a
/// `docker run` that writes into such a directory and a `docker commit` lose
/// it the same way), while the host way writes the parent's own mode, which
/// is what the image says.
fn forgive_dropped_setgid(host: &mut crate::support::Tree, cont: &crate::support::Tree) {
    for (path, entry) in host.iter_mut() {
        let Some(theirs) = cont.get(path) else {
            continue;
        };
        let Some((mode, owner)) = theirs
            .strip_prefix("Directory mode ")
            .and_then(|r| r.split_once(" owner "))
        else {
            continue;
        };
        let Ok(mode) = u32::from_str_radix(mode, 8) else {
            continue;
        };
        if *entry == format!("Directory mode {:o} owner {owner}", mode | 0o2000) {
            *entry = theirs.clone();
        }
    }
}

/// Whether a container-only failure is the engine's extraction setting
/// directory times after the fact: it extracts every entry, then dates each
/// directory by the path its entry named, and fails when a later entry moved
/// that path (`/l/x/` made through the symlink `/l`, then `/l/` itself, a
/// directory now, replacing the link), or when a later entry replaced a
/// directory on that path with a file (a copy's tree holds `e3/e2/e1/`, a
/// later copy puts a file at `e3`: "chtimes …/e3/e2/e1: not a directory").
/// The host way writes what extraction made before that last step.
fn timed_a_moved_directory(error: &str) -> bool {
    error.contains("chtimes ")
        && (error.contains("no such file or directory") || error.contains("not a directory"))
}

/// What one side of a case gave: its final image's file system, or why it
/// failed.
type Outcome = Result<crate::support::Tree, String>;

/// Builds the habitat of `file` (under `root`) one way; its final image.
async fn build_way(
    engine: &DockerEngine,
    root: &Path,
    file: &str,
    in_container: bool,
) -> Result<String, String> {
    let habitat = kiln_core::config::load(&root.join(file)).map_err(|d| format!("config: {d}"))?;
    let opts = BuildOptions {
        cache_root: Some(root.join("cache")),
        archive_in_container: in_container,
        ..BuildOptions::default()
    };
    let built = executor::build(engine, &habitat, &opts, &mut Quiet)
        .await
        .map_err(|e| format!("build: {e}"))?;
    Ok(built.image)
}

async fn build_side(
    engine: &DockerEngine,
    root: &Path,
    file: &str,
    in_container: bool,
    habitat_label: &str,
) -> Outcome {
    let image = build_way(engine, root, &format!("top/{file}"), in_container).await?;
    tree_of(engine, &image, habitat_label)
        .await
        .map_err(|e| format!("reading the image: {e}"))
}

#[tokio::test]
async fn host_written_layers_match_container_extraction_on_generated_habitats() {
    let engine = DockerEngine::connect().await.expect("engine");
    testing::busybox_image(&engine).await.expect("busybox");
    let seed = seed_from_env("KILN_DIFF_SEED");
    let cases = count_from_env("KILN_DIFF_CASES", DEFAULT_CASES);
    eprintln!("layers_differential: KILN_DIFF_SEED={seed} KILN_DIFF_CASES={cases}");
    let drops_setgid = storage_driver() == "fuse-overlayfs";
    let engine = &engine;
    let mut rng = Rng::new(seed);
    let mut failures = Vec::new();
    let mut both_failed = 0;
    let mut engine_quirks = 0;
    for case in 0..cases {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let found = with_habitats(engine, "diff", |names| {
            let rng = &mut rng;
            async move {
                let written = write_case(rng, root, &names, case);
                let host_name = names.name(&format!("{case}-host"));
                let host = build_side(engine, root, "host.yaml", false, &host_name).await;
                let cont = build_side(engine, root, "cont.yaml", true, &host_name).await;
                let mut verified = Vec::new();
                if host.is_ok() && cont.is_ok() {
                    for (i, path) in written.verify.iter().enumerate() {
                        let (h, c) = (format!("top/v{i}/host.yaml"), format!("top/v{i}/cont.yaml"));
                        let on_host = build_way(engine, root, &h, false).await.map(|_| ());
                        let in_cont = build_way(engine, root, &c, true).await.map(|_| ());
                        verified.push((path.clone(), on_host, in_cont));
                    }
                }
                (written, host, cont, verified)
            }
        })
        .await;
        let (written, host, cont, verified) = found;
        let problem = match (&host, &cont) {
            (Ok(h), Ok(c)) => {
                let mut h = h.clone();
                if drops_setgid {
                    forgive_dropped_setgid(&mut h, c);
                }
                let differ = tree_diff(&h, c, clone_bookkeeping);
                (!differ.is_empty()).then(|| {
                    format!(
                        "the file systems differ (host vs container):\n{}",
                        differ.join("\n")
                    )
                })
            }
            (Err(h), Err(c)) => {
                eprintln!("case {case} failed on both paths:\n  host: {h}\n  container: {c}");
                both_failed += 1;
                None
            }
            (Ok(_), Err(e)) if timed_a_moved_directory(e) => {
                eprintln!("case {case}: the engine's extraction failed after the fact: {e}");
                engine_quirks += 1;
                None
            }
            (Ok(_), Err(e)) => Some(format!("only the container path failed: {e}")),
            (Err(e), Ok(_)) => Some(format!("only the host path failed: {e}")),
        };
        let problem = problem.or_else(|| {
            let differ: Vec<String> = verified
                .iter()
                .filter(|(_, h, c)| h.is_ok() != c.is_ok())
                .map(|(path, h, c)| format!("verify `{path}`: host {h:?}, container {c:?}"))
                .collect();
            (!differ.is_empty()).then(|| {
                format!(
                    "verify decided differently (a lookup in the layers vs `test -e`):\n{}",
                    differ.join("\n")
                )
            })
        });
        if let Some(problem) = problem {
            let mut report = format!("case {case}: {problem}\n");
            for (file, text) in &written.texts {
                let _ = write!(report, "--- {file}\n{text}");
            }
            failures.push(report);
        }
    }
    eprintln!(
        "layers_differential: {cases} cases, {both_failed} failed on both paths, \
         {engine_quirks} only in the engine's extraction after the fact"
    );
    assert!(
        failures.is_empty(),
        "replay with KILN_DIFF_SEED={seed} KILN_DIFF_CASES={cases}\n\n{}",
        failures.join("\n")
    );
    // A generator whose cases mostly fail proves nothing.
    assert!(
        both_failed * 2 <= cases,
        "{both_failed} of {cases} cases failed on both paths (KILN_DIFF_SEED={seed})"
    );
}
