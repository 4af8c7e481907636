//! Verify: files checked in the image's layers where they can be read on the
//! host (no container), otherwise every check run in a container of the
//! image. Makes no image of its own.

use crate::engine::Engine;
use crate::phase::Phase;

use crate::executor::context::{Executor, PhaseCtx};
use crate::executor::error::BuildError;

use super::setup::missing_file;

impl<E: Engine> Executor<'_, E> {
    pub(in crate::executor) async fn run_verify(
        &mut self,
        ctx: &PhaseCtx,
    ) -> Result<(), BuildError> {
        // A verify of files alone is a lookup in the image's layers: no
        // container to start, where they can be read here.
        let verify = self.config().build.verify.clone().unwrap_or_default();
        if verify.commands.is_empty()
            && !verify.files.iter().any(|f| engine_provided(f))
            && let Some(rootfs) = self.host_rootfs(&ctx.parent).await?
        {
            for file in &verify.files {
                // `test -e` follows symlinks; a dangling one, or a path through
                // a file, does not exist.
                let missing = match rootfs.follow(file) {
                    Ok(Some(_)) => continue,
                    Ok(None) => format!("`{file}` does not exist in the image"),
                    Err(e) => format!("`{file}` is not in the image: {e}"),
                };
                return Err(missing_file(missing));
            }
            return Ok(());
        }
        let script = super::script::PhaseScript::verify(self.config());
        let id = self
            .start_script(Phase::Verify, &ctx.parent.id, &ctx.config, &script)
            .await?;
        self.engine.remove_container(&id).await?;
        Ok(())
    }
}

/// Paths a container has that its image does not: the engine mounts or
/// makes them in every container (`/proc`, `/etc/hosts`, ...), so only a
/// container can say whether they exist.
fn engine_provided(path: &str) -> bool {
    let p = format!("/{}", path.trim_start_matches('/'));
    ["/proc", "/sys", "/dev", "/run/secrets"]
        .iter()
        .any(|d| p == *d || p.starts_with(&format!("{d}/")))
        || [
            "/etc/hosts",
            "/etc/hostname",
            "/etc/resolv.conf",
            "/.dockerenv",
        ]
        .contains(&p.as_str())
}
