//! `include:` (SPEC §2.1): the fragments a `kiln.yaml` names are merged
//! first, in order, then the including file: maps merge key by key, lists
//! append, a later scalar wins. Fragments may include others (each file is
//! merged once, where it is first reached); a cycle is an error naming the
//! chain.
//!
//! Every node keeps the id of the file it came from ([`Loc::file`]), so each
//! later diagnostic names that file and shows its line. The host paths a
//! fragment names are relative to the fragment's own directory; they are
//! rewritten here to be relative to the habitat directory (copy and tool
//! sources, local repos, a base habitat, secret files, bind-mount sources),
//! and a copy or local tool remembers the fragment's directory as its root,
//! which it must not leave. Pure: the caller's reader loads each file.

use std::path::{Component, Path, PathBuf};

use super::model::{Config, Repo};
use super::node::{self, Loc, Node, NodeKind, Seg};

/// A file the reader loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fragment {
    /// Canonical: two includes name the same fragment when these are equal.
    pub file: PathBuf,
    pub text: String,
}

/// Loads the fragment at a path (a file, or a directory holding
/// `kiln.yaml`), or says why it cannot.
pub(crate) type Read<'r> = &'r dyn Fn(&Path) -> Result<Fragment, String>;

/// One file of a habitat's config: its `kiln.yaml` (id 0) or a fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Source {
    /// How diagnostics name it: the `kiln.yaml` as the user named it, a
    /// fragment as that name's directory joined with the include's path.
    pub name: String,
    pub text: String,
    /// Canonical, when known (a `kiln.yaml` given as text has none).
    pub file: Option<PathBuf>,
    /// Its directory relative to the habitat directory, `/`-separated:
    /// empty for the habitat directory itself, `../shared` beside it.
    pub dir: String,
}

/// A problem found while including, at a node of one of the sources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    pub loc: Loc,
    pub message: String,
    pub hint: Option<String>,
}

/// The sources of a habitat's config, by file id, and their merged tree.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Included {
    pub sources: Vec<Source>,
    pub root: Node,
    pub problems: Vec<Problem>,
}

impl Included {
    /// The fragments' canonical files, in the order the includes reached them.
    pub fn fragments(&self) -> Vec<PathBuf> {
        self.sources
            .iter()
            .skip(1)
            .filter_map(|s| s.file.clone())
            .collect()
    }
}

/// Merges the fragments `main` (whose tree is `tree`) includes, then `main`.
/// `habitat_dir` is canonical and absolute; include paths of `main` are
/// relative to it, those of a fragment to the fragment's directory.
pub(crate) fn resolve(main: Source, tree: Node, habitat_dir: &Path, read: Read<'_>) -> Included {
    let mut walk = Walk {
        read,
        habitat_dir,
        sources: vec![main],
        problems: Vec::new(),
    };
    let mut stack = vec![0];
    let root = walk.visit(0, tree, habitat_dir, &mut stack);
    Included {
        sources: walk.sources,
        root,
        problems: walk.problems,
    }
}

/// Gives each copy and tool read from a fragment that fragment's directory
/// as its root. `root` is the merged tree `config` was read from.
pub(crate) fn assign_roots(config: &mut Config, root: &Node, sources: &[Source]) {
    use Seg::{Index as I, Key as K};
    let dir_of = |path: &[Seg<'_>]| {
        let node = root.get(path)?;
        let dir = &sources.get(usize::from(node.loc.file))?.dir;
        (!dir.is_empty()).then(|| dir.clone())
    };
    if let Some(files) = &mut config.build.files {
        for (i, copy) in files.copies.iter_mut().enumerate() {
            copy.root = dir_of(&[K("build"), K("files"), K("copies"), I(i)]);
        }
    }
    for (i, tool) in config.build.tools.iter_mut().enumerate() {
        tool.root = dir_of(&[K("build"), K("tools"), I(i)]);
    }
}

/// `path` (habitat-relative, as [`rewrite`] made it) split into its root
/// (`root`, habitat-relative; empty for the habitat directory) and the path
/// below that root as the fragment wrote it.
pub fn in_root<'a>(root: Option<&'a str>, path: &'a str) -> (&'a str, &'a str) {
    let Some(root) = root.filter(|r| !r.is_empty()) else {
        return ("", path);
    };
    if path == root {
        return (root, ".");
    }
    match path.strip_prefix(root).and_then(|p| p.strip_prefix('/')) {
        Some(below) => (root, below),
        // Not rewritten from this root (an absolute path): as written.
        None => (root, path),
    }
}

struct Walk<'r, 'p> {
    read: Read<'r>,
    habitat_dir: &'p Path,
    sources: Vec<Source>,
    problems: Vec<Problem>,
}

/// How many files one habitat may include, so a file id fits a [`Loc`].
const MAX_FILES: usize = u16::MAX as usize;

impl Walk<'_, '_> {
    fn problem(&mut self, loc: Loc, message: String, hint: Option<&str>) {
        self.problems.push(Problem {
            loc,
            message,
            hint: hint.map(str::to_string),
        });
    }

    /// The merge of the fragments file `id` includes, then the file itself.
    /// `dir` is the file's directory; `stack` the files being included, by id.
    fn visit(&mut self, id: u16, mut tree: Node, dir: &Path, stack: &mut Vec<u16>) -> Node {
        let includes = self.take_includes(&mut tree);
        let mut merged: Option<Node> = None;
        for (path, loc) in includes {
            let Some((fid, ftree, fdir)) = self.open(&path, loc, dir, id, stack) else {
                continue;
            };
            stack.push(fid);
            let sub = self.visit(fid, ftree, &fdir, stack);
            stack.pop();
            merged = Some(match merged {
                None => sub,
                Some(earlier) => self.merge(earlier, sub, ""),
            });
        }
        match merged {
            None => tree,
            Some(earlier) => self.merge(earlier, tree, ""),
        }
    }

    /// Takes the `include` entries out of a file's top-level mapping: the
    /// paths and where each is written.
    fn take_includes(&mut self, tree: &mut Node) -> Vec<(String, Loc)> {
        let NodeKind::Map(entries) = &mut tree.kind else {
            return Vec::new();
        };
        let (includes, rest): (Vec<_>, Vec<_>) = std::mem::take(entries)
            .into_iter()
            .partition(|(k, _)| k.as_text() == Some("include"));
        *entries = rest;
        let mut paths = Vec::new();
        for (_, value) in includes {
            let items = match value.kind {
                NodeKind::Null => continue,
                NodeKind::Seq(items) => items,
                other => {
                    let found = other.describe();
                    self.problem(
                        value.loc,
                        format!("wrong type for `include`: expected a list, found {found}"),
                        Some("write `include: [../shared/kiln.yaml]`"),
                    );
                    continue;
                }
            };
            for item in items {
                match item.as_text() {
                    Some(t) if !t.trim().is_empty() => paths.push((t.to_string(), item.loc)),
                    Some(_) => self.problem(item.loc, "empty path in `include`".into(), None),
                    None => self.problem(
                        item.loc,
                        format!(
                            "wrong type for `include` entry: expected a string, found {}",
                            item.kind.describe()
                        ),
                        Some("each entry is the path of a fragment"),
                    ),
                }
            }
        }
        paths
    }

    /// Reads the fragment `path` names from the file `from` (in `dir`): its
    /// id, tree (stamped and rewritten) and directory; `None` after saying
    /// why not, or when it was merged already.
    fn open(
        &mut self,
        path: &str,
        loc: Loc,
        dir: &Path,
        from: u16,
        stack: &[u16],
    ) -> Option<(u16, Node, PathBuf)> {
        let fragment = match (self.read)(&dir.join(path)) {
            Ok(f) => f,
            Err(why) => {
                self.problem(
                    loc,
                    format!("cannot include `{path}`: {why}"),
                    Some("an include path is relative to the directory of the file that names it"),
                );
                return None;
            }
        };
        let shown = shown_name(&self.sources[0].name, self.habitat_dir, &fragment.file);
        let same = |s: &Source| s.file.as_ref() == Some(&fragment.file);
        if let Some(at) = stack
            .iter()
            .position(|i| same(&self.sources[usize::from(*i)]))
        {
            let chain: Vec<String> = stack[at..]
                .iter()
                .chain([&stack[at]])
                .map(|i| format!("`{}`", self.sources[usize::from(*i)].name))
                .collect();
            let message = if at + 1 == stack.len() {
                format!("`{}` includes itself", self.sources[usize::from(from)].name)
            } else {
                format!("includes form a cycle: {}", chain.join(" → "))
            };
            self.problem(
                loc,
                message,
                Some("a fragment cannot include itself, directly or through others: remove one of these includes"),
            );
            return None;
        }
        if self.sources.iter().any(same) {
            // Reached a second time (two fragments share it): merged once.
            return None;
        }
        if self.sources.len() >= MAX_FILES {
            self.problem(
                loc,
                format!("cannot include `{path}`: more than {MAX_FILES} files"),
                None,
            );
            return None;
        }
        let id = u16::try_from(self.sources.len()).ok()?;
        let fdir = fragment
            .file
            .parent()
            .map_or_else(|| PathBuf::from("/"), Path::to_path_buf);
        let rel = relative(self.habitat_dir, &fdir);
        self.sources.push(Source {
            name: shown,
            text: fragment.text,
            file: Some(fragment.file),
            dir: rel.clone(),
        });
        let text = &self.sources[usize::from(id)].text;
        let mut tree = match node::parse_yaml(text) {
            Ok(tree) => tree,
            Err(err) => {
                let (message, hint) = err.worded();
                let loc = Loc {
                    file: id,
                    ..err.loc
                };
                self.problem(loc, message, hint.as_deref());
                return None;
            }
        };
        stamp(&mut tree, id);
        rewrite(&mut tree, &rel);
        Some((id, tree, fdir))
    }

    /// `later` merged over `earlier`, at `path` (`build.env`, for messages).
    fn merge(&mut self, earlier: Node, later: Node, path: &str) -> Node {
        if later.kind == NodeKind::Null {
            return earlier;
        }
        if earlier.kind == NodeKind::Null {
            return later;
        }
        let earlier_file = earlier.loc.file;
        match (earlier.kind, later.kind) {
            (NodeKind::Map(mut entries), NodeKind::Map(more)) => {
                let before = entries.len();
                let mut merged = vec![false; before];
                for (key, value) in more {
                    let found = key.as_text().and_then(|k| {
                        (0..before).find(|i| !merged[*i] && entries[*i].0.as_text() == Some(k))
                    });
                    match found {
                        Some(i) => {
                            merged[i] = true;
                            let k = key.as_text().unwrap_or_default();
                            let inner = if path.is_empty() {
                                k.to_string()
                            } else {
                                format!("{path}.{k}")
                            };
                            let old = std::mem::replace(
                                &mut entries[i].1,
                                Node {
                                    loc: Loc::default(),
                                    kind: NodeKind::Null,
                                },
                            );
                            let value = self.merge(old, value, &inner);
                            entries[i] = (key, value);
                        }
                        // New here, or a key written twice in one file
                        // (kept, for the structure check to report).
                        None => entries.push((key, value)),
                    }
                }
                Node {
                    loc: later.loc,
                    kind: NodeKind::Map(entries),
                }
            }
            (NodeKind::Seq(mut items), NodeKind::Seq(more)) => {
                items.extend(more);
                Node {
                    loc: later.loc,
                    kind: NodeKind::Seq(items),
                }
            }
            (NodeKind::Scalar { .. }, kind @ NodeKind::Scalar { .. }) => Node {
                loc: later.loc,
                kind,
            },
            (was, kind) => {
                let name = if path.is_empty() {
                    "the config".to_string()
                } else {
                    format!("`{path}`")
                };
                let file = self.sources[usize::from(earlier_file)].name.clone();
                self.problem(
                    later.loc,
                    format!(
                        "{name} is {} here but {} in `{file}`, which this file includes: they cannot be merged",
                        kind.describe(),
                        was.describe()
                    ),
                    Some(&format!("write it as {} here too", was.describe())),
                );
                Node {
                    loc: later.loc,
                    kind,
                }
            }
        }
    }
}

/// Marks every node of a fragment's tree as in file `id`.
fn stamp(node: &mut Node, id: u16) {
    node.loc.file = id;
    match &mut node.kind {
        NodeKind::Seq(items) => items.iter_mut().for_each(|n| stamp(n, id)),
        NodeKind::Map(entries) => entries.iter_mut().for_each(|(k, v)| {
            stamp(k, id);
            stamp(v, id);
        }),
        NodeKind::Null | NodeKind::Scalar { .. } => {}
    }
}

/// One step of a pattern over the tree: a key, or every item or value.
#[derive(Clone, Copy)]
enum Step {
    Key(&'static str),
    Any,
}

/// Whether a host-path field's value is a path to rewrite.
type Applies<'a> = &'a dyn Fn(&str) -> bool;

/// The host paths of a tree, relative to its file's directory, rewritten to
/// be relative to the habitat directory, which is `rel` away from it.
fn rewrite(tree: &mut Node, rel: &str) {
    use Step::{Any, Key as K};
    if rel.is_empty() {
        return;
    }
    let local = |p: &str| !p.starts_with('/');
    let all = |_: &str| true;
    let path_like = |p: &str| p.starts_with('.') || p.contains('/');
    let fields: [(&[Step], Applies<'_>); 6] = [
        (
            &[K("build"), K("files"), K("copies"), Any, K("source")],
            &all,
        ),
        (
            &[K("build"), K("files"), K("volumes"), Any, K("source")],
            &path_like,
        ),
        (&[K("build"), K("repos"), Any, K("url")], &|u: &str| {
            !Repo::is_remote_url(u)
        }),
        (&[K("build"), K("tools"), Any, K("source")], &|s: &str| {
            !s.contains("://")
        }),
        (&[K("build"), K("base"), K("habitat")], &all),
        (&[K("secrets"), Any, K("file")], &all),
    ];
    for (pattern, applies) in fields {
        each_scalar(tree, pattern, &mut |text| {
            if local(text) && applies(text) {
                *text = join(rel, text);
            }
        });
    }
    // `SOURCE:DEST[:ro]`, whose source is a host path when it looks like one.
    let volume = &mut |text: &mut String| {
        let Some((source, rest)) = text.split_once(':') else {
            return;
        };
        if local(source) && path_like(source) {
            *text = format!("{}:{rest}", join(rel, source));
        }
    };
    each_scalar(
        tree,
        &[K("instances"), K("defaults"), K("volumes"), Any],
        volume,
    );
    each_scalar(
        tree,
        &[K("instances"), K("members"), Any, K("volumes"), Any],
        volume,
    );
}

/// Calls `f` on the text of every scalar at `pattern` below `node`.
fn each_scalar(node: &mut Node, pattern: &[Step], f: &mut dyn FnMut(&mut String)) {
    let Some((first, rest)) = pattern.split_first() else {
        if let NodeKind::Scalar { text, .. } = &mut node.kind {
            f(text);
        }
        return;
    };
    match (&mut node.kind, first) {
        (NodeKind::Map(entries), Step::Key(k)) => {
            for (key, value) in entries.iter_mut() {
                if key.as_text() == Some(k) {
                    each_scalar(value, rest, f);
                }
            }
        }
        (NodeKind::Map(entries), Step::Any) => {
            for (_, value) in entries.iter_mut() {
                each_scalar(value, rest, f);
            }
        }
        (NodeKind::Seq(items), Step::Any) => {
            for item in items.iter_mut() {
                each_scalar(item, rest, f);
            }
        }
        _ => {}
    }
}

/// `path` (relative to a fragment's directory) relative to the habitat
/// directory, which is `rel` away from that: `../shared` and `gitconfig`
/// make `../shared/gitconfig`.
fn join(rel: &str, path: &str) -> String {
    let mut p = path;
    while let Some(rest) = p.strip_prefix("./") {
        p = rest.trim_start_matches('/');
    }
    if p.is_empty() || p == "." {
        rel.to_string()
    } else {
        format!("{rel}/{p}")
    }
}

/// The path from directory `from` to directory `to`, both absolute and
/// canonical, `/`-separated; empty when they are the same.
pub(crate) fn relative(from: &Path, to: &Path) -> String {
    let names = |p: &Path| -> Vec<String> {
        p.components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n.to_string_lossy().into_owned()),
                _ => None,
            })
            .collect()
    };
    let (from, to) = (names(from), names(to));
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let ups = std::iter::repeat_n("..".to_string(), from.len() - common);
    ups.chain(to[common..].iter().cloned())
        .collect::<Vec<_>>()
        .join("/")
}

/// How diagnostics name the fragment `file` (canonical) of the habitat in
/// `habitat_dir` whose `kiln.yaml` they name `main`: the way from the
/// `kiln.yaml` to it, after `main`'s directory, so a fragment has one name
/// however it is reached.
fn shown_name(main: &str, habitat_dir: &Path, file: &Path) -> String {
    let base = Path::new(main).parent().unwrap_or(Path::new(""));
    let dir = file.parent().unwrap_or(Path::new("/"));
    let mut joined = base.join(relative(habitat_dir, dir));
    if let Some(name) = file.file_name() {
        joined.push(name);
    }
    let mut out: Vec<Component<'_>> = Vec::new();
    for c in joined.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if matches!(out.last(), Some(Component::Normal(_))) => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    let shown: PathBuf = out.iter().collect();
    shown.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    use proptest::prelude::*;

    /// Files by path, read as the disk reader would: a directory means its
    /// `kiln.yaml`, and `..` is taken lexically (no symlinks here).
    fn reader(files: &BTreeMap<PathBuf, String>) -> impl Fn(&Path) -> Result<Fragment, String> {
        move |p: &Path| {
            let mut file = PathBuf::new();
            for c in p.components() {
                match c {
                    Component::ParentDir => {
                        file.pop();
                    }
                    Component::CurDir => {}
                    other => file.push(other),
                }
            }
            if !files.contains_key(&file) {
                file.push("kiln.yaml");
            }
            let text = files.get(&file).ok_or("no such file")?.clone();
            Ok(Fragment { file, text })
        }
    }

    const MAIN: &str = "/h/app/kiln.yaml";

    /// Parses `/h/app/kiln.yaml` of `files`: the config, or each
    /// diagnostic as `file:line: message`.
    fn load(files: &[(&str, &str)]) -> Result<Config, Vec<String>> {
        let files: BTreeMap<PathBuf, String> = files
            .iter()
            .map(|(p, t)| (PathBuf::from(p), t.to_string()))
            .collect();
        let read = reader(&files);
        let text = &files[Path::new(MAIN)];
        super::super::parse_sources(
            "kiln.yaml",
            text,
            Path::new("/h/app"),
            Some(Path::new(MAIN)),
            &read,
            super::super::Inputs::Required,
        )
        .map(|p| p.config)
        .map_err(|d| {
            d.iter()
                .map(|d| format!("{}:{}: {}", d.file, d.line, d.message))
                .collect()
        })
    }

    fn inline(text: &str) -> Config {
        load(&[(MAIN, text)]).unwrap_or_else(|d| panic!("{d:?}"))
    }

    #[test]
    fn fragments_merge_maps_by_key_append_lists_and_later_scalars_win() {
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
        let cases: &[Case<'_>] = &[
            (
                "lists append, fragment first",
                &[
                    (
                        MAIN,
                        "include: [../shared/kiln.yaml]\nname: app\nbuild:\n  base: { image: busybox }\n  setup: { packages: { apt: [git] } }\n",
                    ),
                    (
                        "/h/shared/kiln.yaml",
                        "build:\n  setup: { packages: { apt: [curl] }, commands: { root: [a] } }\n",
                    ),
                ],
                "name: app\nbuild:\n  base: { image: busybox }\n  setup: { packages: { apt: [curl, git] }, commands: { root: [a] } }\n",
            ),
            (
                "a later scalar wins; an empty value takes nothing away",
                &[
                    (
                        MAIN,
                        "include: [a.yaml, b.yaml]\nname: app\nbuild:\n  base: { image: busybox }\n  final: { user: root }\n  verify:\n",
                    ),
                    (
                        "/h/app/a.yaml",
                        "description: a\nbuild:\n  final: { user: '1', workdir: /a }\n  verify: { files: [/a] }\n",
                    ),
                    (
                        "/h/app/b.yaml",
                        "description: b\nbuild:\n  final: { workdir: /b }\n",
                    ),
                ],
                "name: app\ndescription: b\nbuild:\n  base: { image: busybox }\n  final: { user: root, workdir: /b }\n  verify: { files: [/a] }\n",
            ),
            (
                "fragments include others; a shared one is merged once, where first reached",
                &[
                    (
                        MAIN,
                        "include: [../x/kiln.yaml, ../y]\nname: app\nbuild:\n  base: { image: busybox }\n  env: [C=3]\n",
                    ),
                    (
                        "/h/x/kiln.yaml",
                        "include: [../common/kiln.yaml]\nbuild: { env: [X=1] }\n",
                    ),
                    (
                        "/h/y/kiln.yaml",
                        "include: [../common/kiln.yaml]\nbuild: { env: [Y=2] }\n",
                    ),
                    ("/h/common/kiln.yaml", "build: { env: [COMMON=0] }\n"),
                ],
                "name: app\nbuild:\n  base: { image: busybox }\n  env: [COMMON=0, X=1, Y=2, C=3]\n",
            ),
            (
                "a fragment's host paths become the habitat's",
                &[
                    (
                        MAIN,
                        "include: [../shared/kiln.yaml]\nname: app\nbuild:\n  base: { image: busybox }\n",
                    ),
                    (
                        "/h/shared/kiln.yaml",
                        "build:\n  files:\n    volumes: [{ source: ./cache, dest: /c }, { source: named, dest: /n }]\n  repos: [{ url: 'https://h/o/r', path: /s }]\nsecrets: [{ id: t, file: token }]\ninstances:\n  defaults: { volumes: ['./data:/data', 'vol:/v'] }\n",
                    ),
                ],
                "name: app\nbuild:\n  base: { image: busybox }\n  files:\n    volumes: [{ source: ../shared/cache, dest: /c }, { source: named, dest: /n }]\n  repos: [{ url: 'https://h/o/r', path: /s }]\nsecrets: [{ id: t, file: ../shared/token }]\ninstances:\n  defaults: { volumes: ['../shared/data:/data', 'vol:/v'] }\n",
            ),
        ];
        for (what, files, expected) in cases {
            let got = load(files).unwrap_or_else(|d| panic!("{what}: {d:?}"));
            assert_eq!(got, inline(expected), "{what}");
        }
    }

    #[test]
    fn include_problems_are_located_in_the_file_that_has_them() {
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str]);
        let cases: &[Case<'_>] = &[
            (
                &[(
                    MAIN,
                    "include: [gone.yaml]\nname: app\nbuild: { base: { image: busybox } }\n",
                )],
                &["kiln.yaml:1: cannot include `gone.yaml`: no such file"],
            ),
            (
                &[
                    (
                        MAIN,
                        "include: [../a/kiln.yaml]\nname: app\nbuild: { base: { image: busybox } }\n",
                    ),
                    ("/h/a/kiln.yaml", "include: [../b/kiln.yaml]\n"),
                    ("/h/b/kiln.yaml", "\ninclude: [../a/kiln.yaml]\n"),
                ],
                &[
                    "../b/kiln.yaml:2: includes form a cycle: `../a/kiln.yaml` → `../b/kiln.yaml` → `../a/kiln.yaml`",
                ],
            ),
            (
                &[
                    (
                        MAIN,
                        "include: [../a/kiln.yaml]\nname: app\nbuild: { base: { image: busybox } }\n",
                    ),
                    ("/h/a/kiln.yaml", "include: [../app/kiln.yaml]\n"),
                ],
                &[
                    "../a/kiln.yaml:1: includes form a cycle: `kiln.yaml` → `../a/kiln.yaml` → `kiln.yaml`",
                ],
            ),
            (
                &[(
                    MAIN,
                    "include: [kiln.yaml]\nname: app\nbuild: { base: { image: busybox } }\n",
                )],
                &["kiln.yaml:1: `kiln.yaml` includes itself"],
            ),
            (
                &[(
                    MAIN,
                    "include: ../a.yaml\nname: app\nbuild: { base: { image: busybox } }\n",
                )],
                &["kiln.yaml:1: wrong type for `include`: expected a list, found a scalar"],
            ),
            (
                &[
                    (
                        MAIN,
                        "include: [a.yaml]\nname: app\nbuild:\n  base: { image: busybox }\n  env: { A: '1' }\n",
                    ),
                    (
                        "/h/app/a.yaml",
                        "build:\n  env: [B=2]\n  setup: { pakages: {} }\n",
                    ),
                ],
                &[
                    "kiln.yaml:5: `build.env` is a mapping here but a list in `a.yaml`, which this file includes: they cannot be merged",
                    "a.yaml:3: unknown key `pakages` in `build.setup`",
                ],
            ),
            (
                &[
                    (
                        MAIN,
                        "include: [a.yaml]\nname: app\nbuild: { base: { image: busybox } }\n",
                    ),
                    ("/h/app/a.yaml", "build: [\n"),
                ],
                &["a.yaml:1: invalid YAML: unclosed bracket '['"],
            ),
            (
                &[
                    (
                        MAIN,
                        "include: [a.yaml]\nname: app\nbuild:\n  base: { image: busybox }\n  users: [{ name: dev }]\n",
                    ),
                    ("/h/app/a.yaml", "build:\n  users:\n    - { name: dev }\n"),
                ],
                &[
                    "kiln.yaml:5: duplicate user `dev` in `build.users` (first declared on line 3 of `a.yaml`)",
                ],
            ),
        ];
        for (files, expected) in cases {
            let got = load(files).expect_err("an error");
            let expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
            assert_eq!(got, expected, "{files:?}");
        }
    }

    #[test]
    fn a_fragments_copies_are_rooted_in_its_directory() {
        let config = load(&[
            (
                MAIN,
                "include: [../shared/kiln.yaml, sub/kiln.yaml]\nname: app\nbuild:\n  base: { image: busybox }\n  files: { copies: [{ source: app.conf, dest: /etc/app.conf }] }\n",
            ),
            (
                "/h/shared/kiln.yaml",
                "build:\n  files: { copies: [{ source: ./gitconfig, dest: /etc/gitconfig }] }\n  tools: [{ name: t, source: bin/t, sha256: '0000000000000000000000000000000000000000000000000000000000000000' }]\n",
            ),
            (
                "/h/app/sub/kiln.yaml",
                "build:\n  files: { copies: [{ source: x, dest: /x }] }\n",
            ),
        ]);
        // The sources do not exist: only the roots are looked at here.
        let errors = config.expect_err("missing sources");
        assert!(
            errors
                .iter()
                .any(|e| e
                    .starts_with("../shared/kiln.yaml:2: copy source `gitconfig` does not exist")),
            "{errors:?}"
        );
        // Split as the executor splits them.
        assert_eq!(
            in_root(Some("../shared"), "../shared/gitconfig"),
            ("../shared", "gitconfig")
        );
    }

    /// One generated file: what it sets, and the files it includes.
    #[derive(Debug, Clone)]
    struct File {
        includes: Vec<usize>,
        users: Vec<u32>,
        apt: Vec<String>,
        root: Vec<String>,
        env: Vec<String>,
        description: Option<String>,
        workdir: Option<String>,
    }

    fn path_of(i: usize) -> String {
        match i {
            0 => MAIN.to_string(),
            i if i % 2 == 0 => format!("/h/app/f{i}.yaml"),
            i => format!("/h/f{i}/kiln.yaml"),
        }
    }

    /// How file `from` names file `to`.
    fn include_path(from: usize, to: usize) -> String {
        let from_dir = Path::new(&path_of(from))
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let to_path = PathBuf::from(path_of(to));
        let rel = relative(&from_dir, to_path.parent().unwrap_or(Path::new("/")));
        let name = to_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        }
    }

    fn text_of(i: usize, f: &File) -> String {
        let mut t = String::new();
        if !f.includes.is_empty() {
            let inc: Vec<String> = f.includes.iter().map(|j| include_path(i, *j)).collect();
            t += &format!("include: [{}]\n", inc.join(", "));
        }
        if i == 0 {
            t += "name: app\n";
        }
        if let Some(d) = &f.description {
            t += &format!("description: {d}\n");
        }
        t += "build:\n";
        if i == 0 {
            t += "  base: { image: busybox }\n";
        }
        if !f.users.is_empty() {
            let users: Vec<String> = f
                .users
                .iter()
                .map(|u| format!("{{ name: u{u}, uid: {u} }}"))
                .collect();
            t += &format!("  users: [{}]\n", users.join(", "));
        }
        if !f.env.is_empty() {
            t += &format!("  env: [{}]\n", f.env.join(", "));
        }
        if !f.apt.is_empty() || !f.root.is_empty() {
            t += &format!(
                "  setup: {{ packages: {{ apt: [{}] }}, commands: {{ root: [{}] }} }}\n",
                f.apt.join(", "),
                f.root.join(", ")
            );
        }
        if let Some(w) = &f.workdir {
            t += &format!("  final: {{ workdir: {w} }}\n");
        }
        t
    }

    /// The files in the order they merge: each file's includes (depth
    /// first, each file once), then the file.
    fn merge_order(files: &[File]) -> Vec<usize> {
        fn visit(i: usize, files: &[File], seen: &mut BTreeSet<usize>, out: &mut Vec<usize>) {
            for j in &files[i].includes {
                if seen.insert(*j) {
                    visit(*j, files, seen, out);
                }
            }
            out.push(i);
        }
        let mut out = Vec::new();
        visit(0, files, &mut BTreeSet::from([0]), &mut out);
        out
    }

    /// The same config written in one file, merged by hand.
    fn by_hand(files: &[File]) -> String {
        let mut merged = File {
            includes: vec![],
            users: vec![],
            apt: vec![],
            root: vec![],
            env: vec![],
            description: None,
            workdir: None,
        };
        for i in merge_order(files) {
            let f = &files[i];
            merged.users.extend(&f.users);
            merged.apt.extend(f.apt.iter().cloned());
            merged.root.extend(f.root.iter().cloned());
            merged.env.extend(f.env.iter().cloned());
            merged.description = f.description.clone().or(merged.description);
            merged.workdir = f.workdir.clone().or(merged.workdir);
        }
        text_of(0, &merged)
    }

    /// Up to six files; file `i` includes only files after it, so there
    /// is no cycle, but files may share includes.
    fn files() -> impl Strategy<Value = Vec<File>> {
        (1usize..7).prop_flat_map(|n| {
            let file = |i: usize, n: usize| {
                (
                    proptest::sample::subsequence((i + 1..n).collect::<Vec<_>>(), 0..=(n - i - 1)),
                    any::<bool>(),
                    proptest::collection::vec(0u32..3, 0..3),
                    proptest::option::of("[a-z]{1,5}"),
                    proptest::option::of("/[a-z]{1,5}"),
                )
                    .prop_shuffle_includes()
                    .prop_map(
                        move |(includes, _, things, description, workdir)| File {
                            includes,
                            users: things
                                .iter()
                                .map(|k| 1000 + 10 * i as u32 + k)
                                .collect::<BTreeSet<_>>()
                                .into_iter()
                                .collect(),
                            apt: things.iter().map(|k| format!("p{i}-{k}")).collect(),
                            root: things.iter().map(|k| format!("'echo {i} {k}'")).collect(),
                            env: things
                                .iter()
                                .map(|k| format!("V{i}_{k}=$PATH:{k}"))
                                .collect(),
                            description,
                            workdir,
                        },
                    )
            };
            (0..n).map(move |i| file(i, n).boxed()).collect::<Vec<_>>()
        })
    }

    /// What one generated file draws: its includes (shuffled), and what it sets.
    type Drawn = (Vec<usize>, bool, Vec<u32>, Option<String>, Option<String>);

    trait ShuffleIncludes {
        fn prop_shuffle_includes(self) -> BoxedStrategy<Drawn>;
    }

    impl<S> ShuffleIncludes for S
    where
        S: Strategy<Value = Drawn> + 'static,
    {
        fn prop_shuffle_includes(self) -> BoxedStrategy<Drawn> {
            self.prop_flat_map(|(inc, rev, things, d, w)| {
                (
                    Just(inc).prop_shuffle(),
                    Just(rev),
                    Just(things),
                    Just(d),
                    Just(w),
                )
            })
            .boxed()
        }
    }

    proptest! {
        #[test]
        fn generated_fragment_trees_merge_as_the_config_merged_by_hand(files in files()) {
            let texts: Vec<(String, String)> = files.iter().enumerate().map(|(i, f)| (path_of(i), text_of(i, f))).collect();
            let refs: Vec<(&str, &str)> = texts.iter().map(|(p, t)| (p.as_str(), t.as_str())).collect();
            let merged = load(&refs).map_err(|d| TestCaseError::fail(format!("{d:?}\n{texts:#?}")))?;
            let expected = inline(&by_hand(&files));
            prop_assert_eq!(merged, expected, "{:#?}", texts);
        }

        #[test]
        fn generated_include_cycles_are_refused_naming_the_chain(n in 1usize..6, back in 0usize..6) {
            // 0 → 1 → … → n, then n includes `back` again.
            let back = back % (n + 1);
            let texts: Vec<(String, String)> = (0..=n)
                .map(|i| {
                    let next = if i == n { back } else { i + 1 };
                    let head = if i == 0 { "name: app\nbuild: { base: { image: busybox } }\n" } else { "" };
                    (path_of(i), format!("include: [{}]\n{head}", include_path(i, next)))
                })
                .collect();
            let refs: Vec<(&str, &str)> = texts.iter().map(|(p, t)| (p.as_str(), t.as_str())).collect();
            let errors = load(&refs).expect_err("a cycle");
            prop_assert_eq!(errors.len(), 1, "{:?}", errors);
            let shown = |i: usize| if i == 0 { "`kiln.yaml`".to_string() } else { format!("`{}`", include_path(0, i)) };
            let expected = if back == n {
                format!("{}:1: {} includes itself", shown(n).trim_matches('`'), shown(n))
            } else {
                let chain: Vec<String> = (back..=n).chain([back]).map(shown).collect();
                format!("{}:1: includes form a cycle: {}", shown(n).trim_matches('`'), chain.join(" → "))
            };
            prop_assert_eq!(&errors[0], &expected);
        }
    }

    #[test]
    fn relative_paths_between_directories() {
        let r = |a: &str, b: &str| relative(Path::new(a), Path::new(b));
        assert_eq!(r("/h/app", "/h/app"), "");
        assert_eq!(r("/h/app", "/h/app/sub"), "sub");
        assert_eq!(r("/h/habitats/app", "/h/shared"), "../../shared");
        assert_eq!(r("/h/app", "/"), "../..");
    }

    #[test]
    fn host_paths_are_rewritten_and_nothing_else() {
        use Seg::{Index as I, Key as K};
        let text = "build:\n  base: { habitat: ../base }\n  repos: [{ url: ./repo, path: /r }, { url: 'git@h:o/r', path: /s }, { url: /abs, path: /t }]\n  tools: [{ source: bin/t }, { source: 'https://h/t' }]\n  files: { copies: [{ source: ., dest: /d }] }\ninstances:\n  members: { a: { volumes: ['x/y:/y', 'v:/v'] } }\n";
        let mut tree = node::parse_yaml(text).unwrap();
        rewrite(&mut tree, "../s");
        let at = |path: &[Seg<'_>]| tree.get(path).and_then(Node::as_text).unwrap().to_string();
        assert_eq!(at(&[K("build"), K("base"), K("habitat")]), "../s/../base");
        assert_eq!(at(&[K("build"), K("repos"), I(0), K("url")]), "../s/repo");
        assert_eq!(at(&[K("build"), K("repos"), I(1), K("url")]), "git@h:o/r");
        assert_eq!(at(&[K("build"), K("repos"), I(2), K("url")]), "/abs");
        assert_eq!(
            at(&[K("build"), K("tools"), I(0), K("source")]),
            "../s/bin/t"
        );
        assert_eq!(
            at(&[K("build"), K("tools"), I(1), K("source")]),
            "https://h/t"
        );
        assert_eq!(
            at(&[K("build"), K("files"), K("copies"), I(0), K("source")]),
            "../s"
        );
        let v = |i| [K("instances"), K("members"), K("a"), K("volumes"), I(i)];
        assert_eq!(at(&v(0)), "../s/x/y:/y");
        assert_eq!(at(&v(1)), "v:/v");
    }

    #[test]
    fn roots_split_rewritten_paths() {
        assert_eq!(in_root(None, "a/b"), ("", "a/b"));
        assert_eq!(in_root(Some("../s"), "../s/x"), ("../s", "x"));
        assert_eq!(in_root(Some("../s"), "../s"), ("../s", "."));
        assert_eq!(in_root(Some("../s"), "/abs"), ("../s", "/abs"));
        assert_eq!(join("../s", "./x"), "../s/x");
        assert_eq!(join("../s", "."), "../s");
    }

    #[test]
    fn fragments_are_named_from_the_habitats_kiln_yaml() {
        let f = Path::new("/x/shared/kiln.yaml");
        let dir = Path::new("/x/habitats/app");
        let cases = [
            ("habitats/app/kiln.yaml", "shared/kiln.yaml"),
            ("kiln.yaml", "../../shared/kiln.yaml"),
            ("/x/habitats/app/kiln.yaml", "/x/shared/kiln.yaml"),
        ];
        for (main, shown) in cases {
            assert_eq!(shown_name(main, dir, f), shown, "{main}");
        }
        let beside = Path::new("/x/habitats/app/a.yaml");
        assert_eq!(shown_name("kiln.yaml", dir, beside), "a.yaml");
    }
}
