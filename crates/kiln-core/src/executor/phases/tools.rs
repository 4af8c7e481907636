//! Tools: each file fetched (or read) on the host and checked against its
//! sha256 before anything is written, then placed with mode 0755; then
//! the late copies.

use bytes::Bytes;

use crate::engine::Engine;
use crate::sources::{tool, unpack};

use crate::executor::context::{Executor, PhaseCtx, Produced};
use crate::executor::error::{BuildError, fail};
use crate::executor::snapshot::{Needs, Uploads};

impl<E: Engine> Executor<'_, E> {
    pub(in crate::executor) async fn run_tools(
        &mut self,
        ctx: PhaseCtx,
    ) -> Result<Produced, BuildError> {
        let phase = ctx.phase;
        let tools = self.config().build.tools.clone();
        let cache = self.opts.cache().tools();
        let mut uploads = Uploads::default();
        // Every checksum is checked before the container is even created.
        for t in &tools {
            let fetched = tool::fetch_tool(t, &self.habitat.dir, &cache)
                .map_err(|e| fail(phase, e.to_string()))?;
            let tar =
                unpack::tool_layer(t, &fetched.content).map_err(|e| fail(phase, e.to_string()))?;
            uploads.log.push(format!("{} -> {}", t.name, t.dest()));
            uploads.tars.push(Bytes::from(tar));
        }
        let late = self
            .config()
            .build
            .files
            .iter()
            .flat_map(|f| &f.copies)
            .any(|c| c.late);
        if late {
            // Late copies (SPEC §2.1) land after the tools, on top of the
            // repos' checkouts, in the same layer.
            return self.copy_phase(ctx, true, uploads).await;
        }
        self.archive_phase(ctx, Needs::default(), |_| Ok(uploads))
            .await
    }
}
