//! The chain of base habitats (`build.base.habitat`, then that habitat's,
//! and so on), followed when a habitat is parsed, so a cycle is an error of
//! the config, located at the `base.habitat` that starts it, rather than a
//! `plan` that recurses until its stack overflows and a `build` that waits
//! for its own lock. The walk also gathers the users the bases declare,
//! which the habitat may name without declaring them again (SPEC §2.1).
//! Pure: the caller reads the files.

use std::path::{Path, PathBuf};

use super::diagnostic::Sink;
use super::node::{Node, NodeKind, Seg};

use Seg::Key as K;

/// A base habitat's config, as [`check`]'s reader gives it.
pub(crate) struct BaseFile {
    /// The habitat directory, canonical (habitats are the same when these are).
    pub dir: PathBuf,
    /// Its YAML tree, the fragments it includes merged in; `None` when it
    /// is not YAML.
    pub tree: Option<Node>,
}

/// Follows the base habitats of the habitat in `dir` (canonical), named
/// `name`, whose YAML tree is `root`, and reports a cycle on `sink`. `read`
/// loads the habitat at a path (its directory or its `kiln.yaml`); `None`
/// ends the walk quietly: a base that cannot be read is the build's to report.
/// The names of the users the bases declare, nearest base first.
pub(crate) fn check(
    dir: &Path,
    name: &str,
    root: &Node,
    sink: &mut Sink<'_>,
    read: impl Fn(&Path) -> Option<BaseFile>,
) -> Vec<String> {
    let mut users = Vec::new();
    let path = [K("build"), K("base"), K("habitat")];
    let Some(first) = root.get(&path).and_then(Node::as_text) else {
        return users;
    };
    let mut chain: Vec<(PathBuf, String)> = vec![(dir.to_path_buf(), name.to_string())];
    let mut next = first.to_string();
    loop {
        let at = &chain.last().expect("the chain starts with this habitat").0;
        let Some(base) = read(&at.join(&next)) else {
            return users;
        };
        let tree = base.tree;
        let text_at = |p: &[Seg<'_>]| {
            tree.as_ref()
                .and_then(|t| t.get(p))
                .and_then(Node::as_text)
                .map(str::to_string)
        };
        let base_name = text_at(&[K("name")]).unwrap_or_else(|| base.dir.display().to_string());
        if let Some(start) = chain.iter().position(|(d, _)| *d == base.dir) {
            let loc = root.get(&path).map_or(root.loc, |n| n.loc);
            let message = if chain.len() == 1 {
                format!("habitat `{name}` names itself as its base")
            } else {
                let names: Vec<String> = chain[start..]
                    .iter()
                    .map(|(_, n)| format!("`{n}`"))
                    .chain([format!("`{base_name}`")])
                    .collect();
                let through = match start {
                    0 => String::new(),
                    _ => format!(" (reached through `{}`)", chain[start - 1].1),
                };
                format!("base habitats form a cycle: {}{through}", names.join(" → "))
            };
            sink.error_hint(
                loc,
                message,
                "a habitat cannot be built on itself, directly or through its bases; base one of them on an `image` or a `bootstrap`",
            );
            return users;
        }
        if let Some(NodeKind::Seq(declared)) = tree
            .as_ref()
            .and_then(|t| t.get(&[K("build"), K("users")]))
            .map(|n| &n.kind)
        {
            let names = declared
                .iter()
                .filter_map(|u| u.get(&[K("name")]).and_then(Node::as_text));
            for n in names {
                if !users.iter().any(|u| u == n) {
                    users.push(n.to_string());
                }
            }
        }
        let Some(after) = text_at(&path) else {
            return users;
        };
        chain.push((base.dir, base_name));
        next = after;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::node;
    use std::collections::BTreeMap;

    /// Habitats as `dir → kiln.yaml`, read as the real reader would: a path
    /// names the habitat whose directory it is.
    fn run(files: &[(&str, &str)], start: &str) -> Vec<(usize, String)> {
        let files: BTreeMap<PathBuf, String> = files
            .iter()
            .map(|(d, t)| (PathBuf::from(d), t.to_string()))
            .collect();
        let read = |p: &Path| {
            let mut dir = PathBuf::new();
            for c in p.components() {
                match c {
                    std::path::Component::ParentDir => {
                        dir.pop();
                    }
                    other => dir.push(other),
                }
            }
            let tree = node::parse_yaml(files.get(&dir)?).ok();
            Some(BaseFile { dir, tree })
        };
        let text = &files[Path::new(start)];
        let root = node::parse_yaml(text).unwrap();
        let name = root.get(&[K("name")]).and_then(Node::as_text).unwrap();
        let mut sink = Sink::new("kiln.yaml", text);
        check(Path::new(start), name, &root, &mut sink, read);
        sink.finish()
            .iter()
            .map(|d| (d.line(), d.message().to_string()))
            .collect()
    }

    const A: &str = "name: a\nbuild:\n  base:\n    habitat: ../b\n";
    const B_TO_A: &str = "name: b\nbuild:\n  base: { habitat: ../a }\n";
    const B_TO_C: &str = "name: b\nbuild:\n  base: { habitat: ../c }\n";
    const C_TO_B: &str = "name: c\nbuild:\n  base: { habitat: ../b }\n";
    const C_IMAGE: &str = "name: c\nbuild:\n  base: { image: busybox }\n";

    #[test]
    fn the_users_of_every_base_are_gathered_nearest_first() {
        let files: BTreeMap<PathBuf, String> = [
            ("/h/a", A),
            ("/h/b", "name: b\nbuild:\n  base: { habitat: ../c }\n  users: [{ name: dev }, { name: ops }]\n"),
            ("/h/c", "name: c\nbuild:\n  base: { image: busybox }\n  users: [{ name: ops }, { name: svc }]\n"),
        ]
        .iter()
        .map(|(d, t)| (PathBuf::from(d), t.to_string()))
        .collect();
        let read = |p: &Path| {
            let dir = PathBuf::from(format!("/h/{}", p.file_name()?.to_str()?));
            let tree = node::parse_yaml(files.get(&dir)?).ok();
            Some(BaseFile { dir, tree })
        };
        let root = node::parse_yaml(A).unwrap();
        let mut sink = Sink::new("kiln.yaml", A);
        let users = check(Path::new("/h/a"), "a", &root, &mut sink, read);
        assert!(sink.is_empty());
        assert_eq!(users, ["dev", "ops", "svc"]);
    }

    #[test]
    fn base_chains_are_followed_and_cycles_reported_at_base_habitat() {
        type Files<'a> = &'a [(&'a str, &'a str)];
        let cases: &[(Files<'_>, Vec<(usize, &str)>)] = &[
            // a → b → a
            (
                &[("/h/a", A), ("/h/b", B_TO_A)],
                vec![(4, "base habitats form a cycle: `a` → `b` → `a`")],
            ),
            // a → b → c → b: the cycle a reaches
            (
                &[("/h/a", A), ("/h/b", B_TO_C), ("/h/c", C_TO_B)],
                vec![(
                    4,
                    "base habitats form a cycle: `b` → `c` → `b` (reached through `a`)",
                )],
            ),
            // a → itself
            (
                &[("/h/a", "name: a\nbuild:\n  base:\n    habitat: .\n")],
                vec![(4, "habitat `a` names itself as its base")],
            ),
            // a → b → c, which is based on an image: no cycle
            (&[("/h/a", A), ("/h/b", B_TO_C), ("/h/c", C_IMAGE)], vec![]),
            // a → b, which does not exist: the build reports it
            (&[("/h/a", A)], vec![]),
            // b's file is not YAML: the walk ends
            (&[("/h/a", A), ("/h/b", "name: [b\n")], vec![]),
        ];
        for (files, expected) in cases {
            let got = run(files, "/h/a");
            let expected: Vec<(usize, String)> =
                expected.iter().map(|(l, m)| (*l, m.to_string())).collect();
            assert_eq!(got, expected, "{files:?}");
        }
    }
}
