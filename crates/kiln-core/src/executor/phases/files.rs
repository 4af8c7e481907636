//! Files: the early copies (a late one lands in tools, by the same code):
//! every copy's owner and mode resolved against the image's accounts
//! first, then the copies streamed into one layer. Missing parents of a
//! copy's `dest` are made with its owner and group, as `COPY --chown` does;
//! parents the image has are left alone.

use std::collections::BTreeSet;

use crate::engine::Engine;
use crate::image::layer_from_tars::Producer;
use crate::image::tar::append_dir;
use crate::sources::copies::{self, Ownership};

use crate::executor::context::{Executor, PhaseCtx, Produced};
use crate::executor::error::{BuildError, fail};
use crate::executor::snapshot::{Needs, Uploads};

use super::accounts::{AccountsError, names_an_account};

impl<E: Engine> Executor<'_, E> {
    /// The files phase: the early copies (SPEC §2.1; late ones land in tools).
    pub(in crate::executor) async fn run_files(
        &mut self,
        ctx: PhaseCtx,
    ) -> Result<Produced, BuildError> {
        self.copy_phase(ctx, false, Uploads::default()).await
    }

    /// Streams the copies whose `late` is `late` into the layer of `ctx`'s
    /// phase, after what `before` holds (the tools' tars, for late copies).
    pub(in crate::executor) async fn copy_phase(
        &mut self,
        ctx: PhaseCtx,
        late: bool,
        before: Uploads,
    ) -> Result<Produced, BuildError> {
        let phase = ctx.phase;
        let all = self.config().build.files.clone().unwrap_or_default().copies;
        if self.copies.len() != all.len() {
            return Err(fail(phase, "the copies were not all keyed"));
        }
        let (copies, keyed): (Vec<_>, Vec<_>) = all
            .into_iter()
            .zip(self.copies.iter().cloned())
            .filter(|(c, _)| c.late == late)
            .unzip();
        let needs_accounts = copies
            .iter()
            .any(|c| names_an_account(c.owner.as_deref()) || names_an_account(c.group.as_deref()));
        let needs = Needs {
            accounts: needs_accounts,
            skel: false,
        };
        // Each copy is read beneath its root: the habitat directory, or
        // the directory of the fragment that names it.
        let sources: Vec<(std::path::PathBuf, String)> = copies
            .iter()
            .map(|c| {
                let (root, below) = c.in_root();
                (self.habitat.root_dir(root), below.to_string())
            })
            .collect();
        // What the layer's earlier tars (the tools', for late copies) make
        // is there when the copies land: left alone like the image's own.
        let made_before = dirs_in_tars(&before.tars);
        let digests = self.opts.cache().digests(self.name());
        let dests: Vec<String> = copies.iter().map(|c| c.dest.clone()).collect();
        let probed: Vec<String> = dests.iter().flat_map(|d| ancestors(d)).collect();
        let made = self
            .archive_phase_probing(ctx, needs, &probed, |facts| {
                let accounts = &facts.accounts;
                // Every owner and mode is resolved before a byte is written.
                let mut placed = Vec::new();
                for ((c, keyed), (root, below)) in copies.iter().zip(keyed).zip(&sources) {
                    let in_copy =
                        |e: AccountsError| fail(phase, format!("copy to `{}`: {e}", c.dest));
                    let (uid, mut gid) = accounts
                        .resolve_owner(c.owner.as_deref())
                        .map_err(in_copy)?;
                    if let Some(g) = &c.group {
                        gid = accounts.resolve_group(g).map_err(in_copy)?;
                    }
                    let file_mode = match &c.mode {
                        Some(m) => Some(
                            u32::from_str_radix(m, 8)
                                .map_err(|_| fail(phase, format!("invalid mode `{m}`")))?,
                        ),
                        None => None,
                    };
                    let own = Ownership {
                        uid,
                        gid,
                        file_mode,
                    };
                    // A secret's file is never copied, even inside a copied
                    // directory; nor is what the key left out.
                    let withheld =
                        crate::executor::resolve::withheld_at(self.withheld, self.habitat, root)?;
                    placed.push((
                        root.clone(),
                        below.clone(),
                        c.dest.clone(),
                        own,
                        keyed,
                        withheld,
                    ));
                }
                let mut existing = facts.dirs.clone();
                existing.extend(made_before);
                let parents = parents_to_make(&dests, &existing);
                let produce: Producer = Box::new(move |out| {
                    let mut tar =
                        tar::Builder::new(std::io::BufWriter::with_capacity(256 * 1024, out));
                    // Each copy is checked against its key as it streams: a
                    // change since it was keyed fails the phase, and the layer
                    // is thrown away.
                    for (i, (root, source, dest, own, keyed, withheld)) in placed.iter().enumerate()
                    {
                        for dir in parents.iter().filter(|p| p.1 == i) {
                            let path = dir.0.trim_start_matches('/');
                            append_dir(&mut tar, path, 0o755, own.uid, own.gid)?;
                        }
                        copies::append_to_tar(&mut tar, root, source, dest, *own, withheld, keyed)
                            .map_err(std::io::Error::other)?;
                    }
                    std::io::Write::flush(&mut tar.into_inner()?)
                });
                let mut uploads = before;
                uploads.streams.push(produce);
                Ok(uploads)
            })
            .await;
        if made.is_err() {
            // A copy that did not stream as it was keyed may have been
            // served wrongly by the stat cache: the next build reads every
            // copy again rather than trust it.
            let mut cache = copies::DigestCache::load(&digests);
            for (root, source) in &sources {
                cache.forget(root, source);
            }
            let _ = cache.save(&digests);
        }
        made
    }
}

/// Every directory the tars make when extracted at `/`: those they name,
/// and the parents of every entry (which extraction makes when missing).
fn dirs_in_tars(tars: &[bytes::Bytes]) -> BTreeSet<String> {
    let mut dirs = BTreeSet::new();
    for tar in tars {
        let mut archive = tar::Archive::new(&tar[..]);
        let Ok(entries) = archive.entries() else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(path) = entry.path() else { continue };
            let path = format!("/{}", normalised(&path.to_string_lossy()));
            if entry.header().entry_type().is_dir() {
                dirs.insert(path.clone());
            }
            dirs.extend(ancestors(&path));
        }
    }
    dirs
}

/// The directories above `dest` (absolute), outermost first, `/` left out.
fn ancestors(dest: &str) -> Vec<String> {
    let parts: Vec<&str> = dest
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    (1..parts.len())
        .map(|n| format!("/{}", parts[..n].join("/")))
        .collect()
}

/// The parents each copy makes, as `(dir, index of the copy)`: those of its
/// `dest` the image does not have (`existing`), made by no earlier copy and
/// not inside an earlier copy's `dest` (which that copy's own entries place).
/// A directory in a layer twice is refused by the engine, so each comes once.
fn parents_to_make(dests: &[String], existing: &BTreeSet<String>) -> Vec<(String, usize)> {
    let mut made: BTreeSet<String> = BTreeSet::new();
    let mut placed: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for (i, dest) in dests.iter().enumerate() {
        for dir in ancestors(dest) {
            let inside_a_copy = placed
                .iter()
                .any(|p| dir == *p || dir.starts_with(&format!("{p}/")));
            if existing.contains(&dir) || inside_a_copy || !made.insert(dir.clone()) {
                continue;
            }
            out.push((dir, i));
        }
        placed.push(format!("/{}", normalised(dest)));
    }
    out
}

/// `dest` normalised (no empty or `.` parts, no leading `/`).
fn normalised(dest: &str) -> String {
    dest.split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(dirs: &[&str]) -> BTreeSet<String> {
        dirs.iter().map(|d| d.to_string()).collect()
    }

    #[test]
    fn missing_parents_are_made_once_by_the_first_copy_needing_them() {
        let dests: Vec<String> = [
            "/home/dev/.config/git/config",
            "/home/dev/.config/nvim/init.lua",
            "/home/dev/.ssh/",
            "/home/dev/.ssh/config",
            "/opt//tool/./bin",
            "/top",
        ]
        .map(String::from)
        .to_vec();
        let got = parents_to_make(&dests, &set(&["/home", "/home/dev", "/opt"]));
        let want: Vec<(String, usize)> = [
            ("/home/dev/.config", 0),
            ("/home/dev/.config/git", 0),
            ("/home/dev/.config/nvim", 1),
            ("/opt/tool", 4),
        ]
        .map(|(d, i)| (d.to_string(), i))
        .to_vec();
        assert_eq!(got, want);
    }

    #[test]
    fn the_dirs_of_earlier_tars_are_every_entry_and_its_parents() {
        let mut tar = tar::Builder::new(Vec::new());
        append_dir(&mut tar, "opt/tool", 0o755, 0, 0).unwrap();
        crate::image::tar::append_file(&mut tar, "./opt/tool/lib/x/f", b"f", 0o644, 0, 0).unwrap();
        let tars = [bytes::Bytes::from(tar.into_inner().unwrap())];
        assert_eq!(
            dirs_in_tars(&tars),
            set(&["/opt", "/opt/tool", "/opt/tool/lib", "/opt/tool/lib/x"])
        );
    }

    /// Generated: whatever the dests and the image's dirs, no directory is
    /// made twice, none the image has, and every parent of every dest is
    /// either in the image, made at or before its copy, or inside an
    /// earlier copy's dest.
    #[test]
    fn generated_parents_cover_every_dest_once() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for _ in 0..500 {
            let path = |next: &mut dyn FnMut(u64) -> u64| {
                let depth = 1 + next(4);
                (0..depth)
                    .map(|_| ["a", "b", "c"][next(3) as usize])
                    .fold(String::new(), |p, n| format!("{p}/{n}"))
            };
            let dests: Vec<String> = (0..1 + next(5)).map(|_| path(&mut next)).collect();
            let existing: BTreeSet<String> = (0..next(4)).map(|_| path(&mut next)).collect();
            let got = parents_to_make(&dests, &existing);
            let dirs: Vec<&String> = got.iter().map(|g| &g.0).collect();
            let unique: BTreeSet<&String> = dirs.iter().copied().collect();
            assert_eq!(unique.len(), dirs.len(), "{dests:?} {got:?}");
            assert!(dirs.iter().all(|d| !existing.contains(*d)));
            for (i, dest) in dests.iter().enumerate() {
                for dir in ancestors(dest) {
                    let covered = existing.contains(&dir)
                        || got.iter().any(|(d, j)| *d == dir && *j <= i)
                        || dests[..i]
                            .iter()
                            .any(|p| dir == *p || dir.starts_with(&format!("{p}/")));
                    assert!(covered, "{dir} of {dest} in {dests:?}: {got:?}");
                }
            }
        }
    }
}
