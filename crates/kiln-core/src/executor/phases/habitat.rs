//! Habitat: the listed directories and the work dir, as one layer, and the
//! work dir in the image config.

use bytes::Bytes;

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
        self.archive_phase(ctx, Needs::default(), |_| {
            let mut tar = tar::Builder::new(Vec::new());
            // Only the listed directories: the engine creates missing parents
            // (root, 0755) and existing parents keep their modes.
            for dir in h.dirs.iter().chain(h.work_dir.iter()) {
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
