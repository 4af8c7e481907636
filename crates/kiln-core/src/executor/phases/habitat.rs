//! Habitat: the listed directories and the work dir, as one layer, and the
//! work dir in the image config.

use std::collections::BTreeSet;

use bytes::Bytes;

use crate::config::HabitatDirs;
use crate::engine::Engine;
use crate::image::tar::append_dir;

use crate::executor::context::{Executor, PhaseCtx, Produced};
use crate::executor::error::{BuildError, archive_error};
use crate::executor::snapshot::{Needs, Uploads};

impl<E: Engine> Executor<'_, E> {
    pub(in crate::executor) async fn run_habitat(
        &mut self,
        mut ctx: PhaseCtx,
    ) -> Result<Produced, BuildError> {
        let h = self.config().build.habitat.clone().unwrap_or_default();
        if let Some(w) = &h.work_dir {
            ctx.config.working_dir = Some(w.clone());
        }
        let dirs = dirs_to_make(&h);
        self.archive_phase_probing(ctx, Needs::default(), &dirs, |facts| {
            let mut tar = tar::Builder::new(Vec::new());
            // As `mkdir -p`: a directory the image has keeps its owner, mode
            // and time; a new one is root's 0755, as are its missing parents
            // (the engine makes them so, and existing parents keep theirs).
            for dir in dirs.iter().filter(|d| !facts.dirs.contains(*d)) {
                append_dir(&mut tar, dir.trim_start_matches('/'), 0o755, 0, 0)
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

/// The listed directories and the work dir, each once however it is spelt
/// (`/a/`, `/a//b`), parents before what is inside them: a directory in a
/// layer twice is refused by the engine, and one after its own children
/// would be made twice. `/` is never one: every image has it.
fn dirs_to_make(h: &HabitatDirs) -> Vec<String> {
    let parts: BTreeSet<Vec<&str>> = h
        .dirs
        .iter()
        .chain(h.work_dir.iter())
        .map(|d| {
            d.split('/')
                .filter(|p| !p.is_empty() && *p != ".")
                .collect()
        })
        .filter(|p: &Vec<&str>| !p.is_empty())
        .collect();
    parts
        .into_iter()
        .map(|p| format!("/{}", p.join("/")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(dirs_to_make(&h), ["/a", "/a/b", "/a-b", "/w", "/w/x/y"]);
    }
}
