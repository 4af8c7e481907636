//! The phases that change only the image config: base (the resolved base
//! image, relabelled), env and final. Each is one `docker load` of a few
//! kilobytes over the parent's layers; a final phase with `services:` adds
//! one small layer of its own, the init and its spec.

use kiln_init::spec::Spec;

use crate::config::{expand, services};
use crate::engine::Engine;
use crate::image::init;
use crate::image::labels::{LABEL_STOP_BUDGET, LABEL_VERIFIED};
use crate::phase::Phase;

use crate::executor::context::{Executor, PhaseCtx, Produced};
use crate::executor::error::{BuildError, fail};

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
                if let Some(spec) = services::init_spec(self.config()) {
                    return self.services_phase(ctx, spec).await;
                }
            }
            _ => {}
        }
        self.load_phase(ctx).await
    }

    /// The final phase of a config with `services:` (SPEC §9): the init and
    /// the spec in a layer of their own, the init as the entrypoint (`final`'s
    /// own entrypoint and command become its main process), root as
    /// the image's user (the init starts each service, and the main process,
    /// as their users), and the init's health answer as the healthcheck.
    async fn services_phase(
        &mut self,
        mut ctx: PhaseCtx,
        spec: Spec,
    ) -> Result<Produced, BuildError> {
        let Some(init) = init::binary() else {
            return Err(fail(
                Phase::Final,
                "this kiln carries no init for `services:`: it was built for a target other than Linux\nhint: build kiln on Linux (x86_64-unknown-linux-gnu), or set KILN_INIT_BINARY to a static kiln-init when building it",
            ));
        };
        let config = &mut ctx.config;
        // The init runs as root; the main process as `final.user`, which
        // the spec already holds (root when unset, SPEC §9, whatever user
        // the base image had).
        config.user = None;
        // The main process is `final`'s entrypoint and command (SPEC §9),
        // not what the base happened to set (busybox's `sh`, which would end
        // the container at once): without them the container runs until
        // it is stopped.
        let f = self.config().build.final_.clone().unwrap_or_default();
        config.entrypoint = Some(init::entrypoint(f.entrypoint.as_deref()));
        config.cmd = f.command;
        let start_period: u64 = spec
            .services
            .iter()
            .filter_map(|s| s.ready.as_ref())
            .map(|p| p.timeout_ms)
            .sum();
        config.healthcheck = Some(init::healthcheck(start_period));
        config.labels.insert(
            LABEL_STOP_BUDGET.to_string(),
            spec.stop_budget_ms().to_string(),
        );
        let json = serde_json::to_vec_pretty(&spec)
            .map_err(|e| fail(Phase::Final, format!("cannot write the services spec: {e}")))?;
        self.own_layer_phase(ctx, move |out| init::write_layer(out, init, &json))
            .await
    }
}
