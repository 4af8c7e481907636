//! The phases that change only the image config: base (the resolved base
//! image, relabelled), env and final. Each is one `docker load` of a few
//! kilobytes over the parent's layers.

use crate::config::expand;
use crate::engine::Engine;
use crate::image::labels::LABEL_VERIFIED;
use crate::phase::Phase;

use crate::executor::context::{Executor, PhaseCtx, Produced};
use crate::executor::error::BuildError;

impl<E: Engine> Executor<'_, E> {
    pub(in crate::executor) async fn config_phase(
        &mut self,
        mut ctx: PhaseCtx,
    ) -> Result<Produced, BuildError> {
        let config = &mut ctx.config;
        match ctx.phase {
            Phase::Env => {
                // Each value expands against the base's environment and the
                // entries before it, as a Dockerfile `ENV` does.
                let (entries, simultaneous) = self.config().build.env.entries();
                config.env = expand::apply_env(&config.env, &entries, simultaneous);
            }
            Phase::Final => {
                let f = self.config().build.final_.clone().unwrap_or_default();
                if f.user.is_some() {
                    config.user = f.user;
                }
                if f.workdir.is_some() {
                    config.working_dir = f.workdir;
                }
                if f.command.is_some() {
                    config.cmd = f.command;
                }
                if f.entrypoint.is_some() {
                    config.entrypoint = f.entrypoint;
                }
                for p in &f.expose {
                    if !config.exposed_ports.contains(&p.docker()) {
                        config.exposed_ports.push(p.docker());
                    }
                }
                config.labels.extend(f.labels);
                let verify_key = self.chain.get(Phase::Verify).key.to_string();
                config.labels.insert(LABEL_VERIFIED.to_string(), verify_key);
            }
            _ => {}
        }
        self.load_phase(ctx).await
    }
}
