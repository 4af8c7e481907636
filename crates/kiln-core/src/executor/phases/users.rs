//! Users: the accounts files edited as text and written as one layer, with a
//! home made from `/etc/skel` for each new user. No container runs.

use bytes::Bytes;

use crate::engine::Engine;
use crate::image::tar::{append_dir, append_file, append_skel};

use crate::executor::context::{Executor, PhaseCtx, Produced};
use crate::executor::error::{BuildError, archive_error, fail};
use crate::executor::snapshot::{Needs, Uploads};

use super::accounts::AccountsError;

impl<E: Engine> Executor<'_, E> {
    pub(in crate::executor) async fn run_users(
        &mut self,
        ctx: PhaseCtx,
    ) -> Result<Produced, BuildError> {
        let phase = ctx.phase;
        let users = self.config().build.users.clone();
        let needs = Needs {
            accounts: true,
            skel: true,
        };
        self.archive_phase(ctx, needs, |facts| {
            let mut accounts = facts.accounts.clone();
            let modes = &facts.modes;
            let created = accounts
                .add_users(&users)
                .map_err(|e: AccountsError| fail(phase, e.to_string()))?;
            let mut tar = tar::Builder::new(Vec::new());
            let shadow_gid = accounts.resolve_group("shadow").unwrap_or(0);
            let mut put = |path: &str, content: &str, mode: u32, gid: u32| {
                append_file(&mut tar, path, content.as_bytes(), mode, 0, gid).map_err(archive_error)
            };
            put(
                "etc/passwd",
                &accounts.passwd,
                *modes.get("/etc/passwd").unwrap_or(&0o644),
                0,
            )?;
            put(
                "etc/group",
                &accounts.group,
                *modes.get("/etc/group").unwrap_or(&0o644),
                0,
            )?;
            if let Some(shadow) = &accounts.shadow {
                put(
                    "etc/shadow",
                    shadow,
                    *modes.get("/etc/shadow").unwrap_or(&0o640),
                    shadow_gid,
                )?;
            }
            for u in &created {
                let home = u.home.trim_start_matches('/');
                append_dir(&mut tar, home, 0o755, u.uid, u.gid).map_err(archive_error)?;
                if let Some(skel) = &facts.skel {
                    append_skel(&mut tar, skel, home, u.uid, u.gid).map_err(archive_error)?;
                }
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
