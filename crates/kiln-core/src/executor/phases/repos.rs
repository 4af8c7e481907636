//! Repos: each repository's clone, checked out at the commit its key names,
//! archived from the host mirror into one layer; then each repo's
//! `commands`, each a cached step (SPEC §2.1, §5).

use crate::config::url::without_credentials;
use crate::engine::Engine;
use crate::sources::repo;

use crate::executor::context::{Executor, PhaseCtx, Produced};
use crate::executor::error::{BuildError, fail};
use crate::executor::snapshot::{Needs, Uploads};

use super::accounts::names_an_account;
use super::script::PhaseScript;
use super::setup::StepWork;

impl<E: Engine> Executor<'_, E> {
    /// Places the checkouts; with repo `commands`, in steps (SPEC §2.1, §5):
    /// the checkouts, then each command in its repo's directory as its owner.
    pub(in crate::executor) async fn run_repos(
        &mut self,
        ctx: PhaseCtx,
    ) -> Result<Produced, BuildError> {
        if ctx.steps.is_empty() {
            return self.place_checkouts(ctx).await;
        }
        let work = std::iter::once(StepWork::Checkout)
            .chain(
                PhaseScript::repo_steps(self.config())
                    .into_iter()
                    .map(StepWork::Script),
            )
            .collect();
        self.run_in_steps(ctx, work).await
    }

    /// Every repo's checkout, archived from the host mirror into one layer.
    pub(in crate::executor) async fn place_checkouts(
        &mut self,
        ctx: PhaseCtx,
    ) -> Result<Produced, BuildError> {
        let phase = ctx.phase;
        let repos = self.config().build.repos.clone();
        let commits = self.facts.repos.clone();
        let dir = self.habitat.dir.clone();
        let cache = repo::RepoCache::new(self.opts.cache().repos());
        let needs_accounts = repos.iter().any(|r| names_an_account(r.owner.as_deref()));
        let needs = Needs {
            accounts: needs_accounts,
            skel: false,
        };
        self.archive_phase(ctx, needs, |facts| {
            let accounts = &facts.accounts;
            let mut uploads = Uploads::default();
            for (r, commit) in repos.iter().zip(&commits) {
                let url = without_credentials(&r.url);
                let (uid, gid) = accounts
                    .resolve_owner(r.owner.as_deref())
                    .map_err(|e| fail(phase, format!("repo `{url}`: {e}")))?;
                let at = repo::Checkout {
                    url: &r.url,
                    commit,
                    git_ref: r.git_ref.as_deref(),
                };
                let tar = cache
                    .archive_checkout(&at, &dir, &r.path, uid, gid)
                    .map_err(|e| fail(phase, e.to_string()))?;
                uploads.log.push(format!(
                    "{} @ {} -> {}",
                    url,
                    &commit[..commit.len().min(12)],
                    r.path
                ));
                uploads.files.push(tar.into_temp_path());
            }
            Ok(uploads)
        })
        .await
    }
}
