//! Habitat: the listed directories and the work dir, as one layer, and the
//! work dir in the image config. An entry's owner, group and mode are
//! resolved against the image's accounts (SPEC §2.1): a new directory gets
//! them (root's `0755` where unnamed), an existing one only what is named.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::config::{HabitatDirs, canonical_mode};
use crate::engine::{DirStat, Engine};
use crate::image::tar::append_dir_at;

use crate::executor::context::{Executor, PhaseCtx, Produced};
use crate::executor::error::{BuildError, archive_error, fail};
use crate::executor::snapshot::{Needs, Uploads};

use super::accounts::{Accounts, AccountsError, names_an_account};

/// What the entries for one directory name, each at most once (`check`
/// refuses two entries that name one attribute otherwise).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Named {
    owner: Option<String>,
    group: Option<String>,
    /// Canonical octal (`0750`).
    mode: Option<String>,
}

impl Named {
    fn any(&self) -> bool {
        *self != Named::default()
    }
}

/// A directory entry's metadata: `uid`, `gid`, permission bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Attrs {
    uid: u64,
    gid: u64,
    mode: u32,
}

impl<E: Engine> Executor<'_, E> {
    pub(in crate::executor) async fn run_habitat(
        &mut self,
        mut ctx: PhaseCtx,
    ) -> Result<Produced, BuildError> {
        let phase = ctx.phase;
        let h = self.config().build.habitat.clone().unwrap_or_default();
        if let Some(w) = &h.work_dir {
            ctx.config.working_dir = Some(w.clone());
        }
        let dirs = dirs_to_make(&h);
        let paths: Vec<String> = dirs.keys().cloned().collect();
        let named: Vec<String> = dirs
            .iter()
            .filter(|(_, n)| n.any())
            .map(|(p, _)| p.clone())
            .collect();
        let needs = Needs {
            accounts: dirs.values().any(|n| {
                names_an_account(n.owner.as_deref()) || names_an_account(n.group.as_deref())
            }),
            skel: false,
        };
        self.archive_phase_statting(ctx, needs, &paths, &named, |facts| {
            let mut tar = tar::Builder::new(Vec::new());
            for (dir, n) in &dirs {
                let in_dir = |e: AccountsError| fail(phase, format!("directory `{dir}`: {e}"));
                let existing = match facts.dirs.contains(dir) {
                    false => None,
                    true if !n.any() => continue,
                    true => match facts.dir_stats.get(dir) {
                        Some(stat) => Some(stat),
                        None => {
                            return Err(fail(
                                phase,
                                format!(
                                    "directory `{dir}`: the image has something there that is no directory"
                                ),
                            ));
                        }
                    },
                };
                let Some((path, attrs, mtime)) =
                    entry_for(dir, n, existing, &facts.accounts).map_err(in_dir)?
                else {
                    continue;
                };
                append_dir_at(&mut tar, path.trim_start_matches('/'), attrs.mode, attrs.uid, attrs.gid, mtime)
                    .map_err(archive_error)?;
            }
            let bytes = tar.into_inner().map_err(archive_error)?;
            Ok(Uploads {
                tars: vec![Bytes::from(bytes)],
                ..Uploads::default()
            })
        })
        .await
    }
}

/// The entry the layer carries for `dir`: where, with what metadata and
/// time; `None` when the image's directory already is as named.
///
/// As `mkdir -p`, then `chown`/`chmod` of what is named: a new directory is
/// root's `0755` unless named otherwise (its missing parents are root's
/// `0755`, as the engine makes them); an existing one (`existing`, symlinks
/// followed) keeps its time and whatever is not named. A named owner
/// brings its primary group unless a group is named too, as
/// `COPY --chown=user` does.
fn entry_for(
    dir: &str,
    n: &Named,
    existing: Option<&DirStat>,
    accounts: &Accounts,
) -> Result<Option<(String, Attrs, u64)>, AccountsError> {
    let (mut attrs, path, mtime) = match existing {
        Some(s) => (
            Attrs {
                uid: s.uid,
                gid: s.gid,
                mode: s.mode,
            },
            s.path.clone(),
            s.mtime,
        ),
        None => (
            Attrs {
                uid: 0,
                gid: 0,
                mode: 0o755,
            },
            dir.to_string(),
            0,
        ),
    };
    let before = attrs;
    if let Some(owner) = &n.owner {
        let (uid, gid) = accounts.resolve_owner(Some(owner))?;
        attrs.uid = u64::from(uid);
        attrs.gid = u64::from(gid);
    }
    if let Some(group) = &n.group {
        attrs.gid = u64::from(accounts.resolve_group(group)?);
    }
    if let Some(mode) = n
        .mode
        .as_deref()
        .and_then(|m| u32::from_str_radix(m, 8).ok())
    {
        attrs.mode = mode;
    }
    if existing.is_some() && attrs == before {
        return Ok(None);
    }
    Ok(Some((path, attrs, mtime)))
}

/// The listed directories and the work dir, each once however it is spelt
/// (`/a/`, `/a//b`), parents before what is inside them, with what their
/// entries name: a directory in a layer twice is refused by the engine,
/// and one after its own children would be made twice. `/` is never one:
/// every image has it.
fn dirs_to_make(h: &HabitatDirs) -> BTreeMap<String, Named> {
    fn normal(d: &str) -> Option<Vec<&str>> {
        let parts: Vec<&str> = d
            .split('/')
            .filter(|p| !p.is_empty() && *p != ".")
            .collect();
        (!parts.is_empty()).then_some(parts)
    }
    // Keyed by parts, so `/a/` and `/a//.` are one directory; a parent's
    // path sorts before its children's.
    let mut by_parts: BTreeMap<Vec<&str>, Named> = BTreeMap::new();
    for d in &h.dirs {
        let Some(parts) = normal(d.path()) else {
            continue;
        };
        let named = by_parts.entry(parts).or_default();
        let (owner, group, mode) = d.attributes();
        named.owner = owner.map(str::to_string).or(named.owner.take());
        named.group = group.map(str::to_string).or(named.group.take());
        named.mode = mode.map(canonical_mode).or(named.mode.take());
    }
    if let Some(parts) = h.work_dir.as_deref().and_then(normal) {
        by_parts.entry(parts).or_default();
    }
    by_parts
        .into_iter()
        .map(|(parts, named)| (format!("/{}", parts.join("/")), named))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DirSpec, HabitatDir};

    fn spec(
        path: &str,
        owner: Option<&str>,
        group: Option<&str>,
        mode: Option<&str>,
    ) -> HabitatDir {
        HabitatDir::Spec(DirSpec {
            path: path.into(),
            owner: owner.map(Into::into),
            group: group.map(Into::into),
            mode: mode.map(Into::into),
        })
    }

    #[test]
    fn dirs_come_once_each_parents_first() {
        let h = HabitatDirs {
            dirs: vec![
                "/a/b".into(),
                "/a".into(),
                "/a//b/".into(),
                "/".into(),
                "/w/x/./y".into(),
                "/a-b".into(),
            ],
            work_dir: Some("/w".into()),
        };
        let dirs: Vec<String> = dirs_to_make(&h).into_keys().collect();
        let mut want = vec!["/a", "/a/b", "/a-b", "/w", "/w/x/y"];
        want.sort();
        assert_eq!(dirs, want);
    }

    #[test]
    fn entries_for_one_directory_merge_what_they_name() {
        let h = HabitatDirs {
            dirs: vec![
                spec("/a/", Some("dev"), None, None),
                "/a".into(),
                spec("/a", None, None, Some("750")),
            ],
            work_dir: Some("/a".into()),
        };
        let dirs = dirs_to_make(&h);
        assert_eq!(
            dirs["/a"],
            Named {
                owner: Some("dev".into()),
                group: None,
                mode: Some("0750".into()),
            }
        );
    }

    fn accounts() -> Accounts {
        Accounts {
            passwd: "root:x:0:0:root:/root:/bin/bash\ndev:x:1000:1000::/home/dev:/bin/sh\n".into(),
            group: "root:x:0:\nstaff:x:50:\ndev:x:1000:\n".into(),
            shadow: None,
        }
    }

    fn named(owner: Option<&str>, group: Option<&str>, mode: Option<&str>) -> Named {
        Named {
            owner: owner.map(Into::into),
            group: group.map(Into::into),
            mode: mode.map(Into::into),
        }
    }

    /// What each combination of named fields gives a new directory and an
    /// existing one (`/tmp`, root's `1777`, reached through a link).
    #[test]
    fn named_fields_set_and_the_rest_stay() {
        let tmp = DirStat {
            path: "/var/tmp".into(),
            mode: 0o1777,
            uid: 0,
            gid: 0,
            mtime: 7,
        };
        let home = DirStat {
            path: "/home/dev".into(),
            mode: 0o750,
            uid: 1000,
            gid: 1000,
            mtime: 9,
        };
        let a = accounts();
        let at = |uid, gid, mode| Attrs { uid, gid, mode };
        type Case<'a> = (Named, Option<&'a DirStat>, Option<(&'a str, Attrs, u64)>);
        let cases: Vec<Case> = vec![
            (
                named(None, None, None),
                None,
                Some(("/x", at(0, 0, 0o755), 0)),
            ),
            (
                named(Some("dev"), None, None),
                None,
                Some(("/x", at(1000, 1000, 0o755), 0)),
            ),
            (
                named(Some("dev"), Some("staff"), Some("0700")),
                None,
                Some(("/x", at(1000, 50, 0o700), 0)),
            ),
            (
                named(None, Some("staff"), None),
                None,
                Some(("/x", at(0, 50, 0o755), 0)),
            ),
            (
                named(Some("1234"), None, None),
                None,
                Some(("/x", at(1234, 1234, 0o755), 0)),
            ),
            // Existing: mode only keeps the owner; owner only keeps the mode.
            (
                named(None, None, Some("0755")),
                Some(&tmp),
                Some(("/var/tmp", at(0, 0, 0o755), 7)),
            ),
            (
                named(Some("dev"), None, None),
                Some(&tmp),
                Some(("/var/tmp", at(1000, 1000, 0o1777), 7)),
            ),
            (
                named(None, Some("50"), None),
                Some(&home),
                Some(("/home/dev", at(1000, 50, 0o750), 9)),
            ),
            // Already as named: nothing to write.
            (named(Some("dev"), None, Some("0750")), Some(&home), None),
            (named(None, None, Some("1777")), Some(&tmp), None),
        ];
        for (n, existing, want) in cases {
            let got = entry_for("/x", &n, existing, &a).unwrap();
            let want = want.map(|(p, attrs, t)| (p.to_string(), attrs, t));
            assert_eq!(got, want, "{n:?} on {existing:?}");
        }
        assert!(matches!(
            entry_for("/x", &named(Some("nobody"), None, None), None, &a),
            Err(AccountsError::NoSuchUser(_))
        ));
        assert!(matches!(
            entry_for("/x", &named(None, Some("wheel"), None), Some(&home), &a),
            Err(AccountsError::NoSuchGroup(_))
        ));
    }
}
