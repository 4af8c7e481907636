//! Files: every copy's owner and mode resolved against the image's accounts
//! first, then the copies streamed into one layer.

use crate::engine::Engine;
use crate::image::layer_from_tars::Producer;
use crate::sources::copies::{self, Ownership};

use crate::executor::context::{Executor, PhaseCtx, Produced};
use crate::executor::error::{BuildError, fail};
use crate::executor::snapshot::{Needs, Uploads};

use super::accounts::{AccountsError, names_an_account};

impl<E: Engine> Executor<'_, E> {
    pub(in crate::executor) async fn run_files(
        &mut self,
        ctx: PhaseCtx,
    ) -> Result<Produced, BuildError> {
        let phase = ctx.phase;
        let copies = self.config().build.files.clone().unwrap_or_default().copies;
        let dir = self.habitat.dir.clone();
        let keyed = self.copies.to_vec();
        if keyed.len() != copies.len() {
            return Err(fail(phase, "the copies were not all keyed"));
        }
        // A secret's file is never copied, even inside a copied directory.
        let withheld = copies::Withheld::secret_files(&dir, &self.config().secrets);
        let needs_accounts = copies
            .iter()
            .any(|c| names_an_account(c.owner.as_deref()) || names_an_account(c.group.as_deref()));
        let needs = Needs {
            accounts: needs_accounts,
            skel: false,
        };
        let sources: Vec<String> = copies.iter().map(|c| c.source.clone()).collect();
        let digests = self.opts.cache().digests(self.name());
        let made = self
            .archive_phase(ctx, needs, |facts| {
                let accounts = &facts.accounts;
                // Every owner and mode is resolved before a byte is written.
                let mut placed = Vec::new();
                for (c, keyed) in copies.iter().zip(keyed) {
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
                    placed.push((c.source.clone(), c.dest.clone(), own, keyed));
                }
                let produce: Producer = Box::new(move |out| {
                    let mut tar =
                        tar::Builder::new(std::io::BufWriter::with_capacity(256 * 1024, out));
                    // Each copy is checked against its key as it streams: a
                    // change since it was keyed fails the phase, and the layer
                    // is thrown away.
                    for (source, dest, own, keyed) in &placed {
                        copies::append_to_tar(&mut tar, &dir, source, dest, *own, &withheld, keyed)
                            .map_err(std::io::Error::other)?;
                    }
                    std::io::Write::flush(&mut tar.into_inner()?)
                });
                Ok(Uploads {
                    streams: vec![produce],
                    ..Uploads::default()
                })
            })
            .await;
        if made.is_err() {
            // A copy that did not stream as it was keyed may have been
            // served wrongly by the stat cache: the next build reads every
            // copy again rather than trust it.
            let mut cache = copies::DigestCache::load(&digests);
            for source in &sources {
                cache.forget(&self.habitat.dir, source);
            }
            let _ = cache.save(&digests);
        }
        made
    }
}
