//! Setup: the phase script (packages, root commands, user scripts) run in a
//! started container, its output streamed and redacted, its container's
//! changes made the snapshot. Verify's commands run the same way.

use std::collections::VecDeque;

use crate::engine::{Engine, ImageConfig, Mount, Stream};
use crate::phase::Phase;
use crate::report::Event;

use crate::executor::context::{Executor, PhaseCtx, Produced};
use crate::executor::error::{BuildError, PhaseFailure};

use super::script::{PhaseScript, SECRETS_DIR};

/// How many lines of a failed phase's output are kept for the error.
const TAIL_LINES: usize = 50;

impl<E: Engine> Executor<'_, E> {
    /// Runs the setup script in a started container; on success snapshots it.
    pub(in crate::executor) async fn run_setup(
        &mut self,
        ctx: PhaseCtx,
    ) -> Result<Produced, BuildError> {
        let id = self
            .start_script(ctx.phase, &ctx.parent.id, &ctx.config)
            .await?;
        self.snapshot(ctx, &id).await
    }

    /// Creates the phase's container, runs its script to the end and returns
    /// the container (exited 0) for the caller to snapshot and remove.
    pub(super) async fn start_script(
        &mut self,
        phase: Phase,
        image: &str,
        config: &ImageConfig,
    ) -> Result<String, BuildError> {
        let script = match phase {
            Phase::Setup => PhaseScript::setup(self.config()),
            _ => PhaseScript::verify(self.config()),
        };
        let secrets = if phase == Phase::Setup {
            self.secrets_dir()?
        } else {
            None
        };
        let mut spec = self.container_spec(image);
        spec.entrypoint = Some(vec!["/bin/sh".into(), "-c".into(), script.script()]);
        // Steps start as root. Set only when the image names another user: a
        // user set here would otherwise be merged into the committed config.
        if config.user.as_deref().is_some_and(|u| !u.is_empty()) {
            spec.user = Some("0:0".into());
        }
        if let Some(dir) = &secrets {
            spec.mounts.push(Mount {
                source: dir.mount_source().display().to_string(),
                target: SECRETS_DIR.into(),
                readonly: true,
            });
        }
        let id = self.engine.create_container(&spec).await?;
        let result = self.run_steps(phase, &id, &script).await;
        drop(secrets);
        if let Err(e) = result {
            self.engine.remove_container(&id).await?;
            return Err(e);
        }
        Ok(id)
    }

    async fn run_steps(
        &mut self,
        phase: Phase,
        id: &str,
        script: &PhaseScript,
    ) -> Result<(), BuildError> {
        let mut tail: VecDeque<String> = VecDeque::new();
        let mut failed: Option<(usize, i64)> = None;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Stream, String)>();
        let mut on_line = move |stream: Stream, line: &str| {
            let _ = tx.send((stream, line.to_string()));
        };
        let run = self.engine.run_container(id, &mut on_line);
        tokio::pin!(run);
        let code = loop {
            tokio::select! {
                biased;
                Some((stream, line)) = rx.recv() => self.on_output(phase, stream, &line, &mut tail, &mut failed),
                code = &mut run => break code?,
            }
        };
        while let Ok((stream, line)) = rx.try_recv() {
            self.on_output(phase, stream, &line, &mut tail, &mut failed);
        }
        if code == 0 {
            return Ok(());
        }
        let step = failed.and_then(|(i, _)| script.steps.get(i));
        if let Some(file) = step.and_then(|s| s.file.as_ref()) {
            return Err(missing_file(format!(
                "`{file}` does not exist in the image"
            )));
        }
        let (command, exit_code) = match failed {
            Some((_, c)) => (step.map(|s| s.command.clone()), c),
            None => (None, code),
        };
        Err(BuildError::Phase(PhaseFailure {
            phase,
            message: match &command {
                Some(_) => "a command failed".to_string(),
                None => format!("the phase's container exited with code {code}"),
            },
            command: command.map(|c| self.redact(&c)),
            exit_code: Some(exit_code),
            output: tail.into_iter().collect(),
        }))
    }

    fn on_output(
        &mut self,
        phase: Phase,
        stream: Stream,
        line: &str,
        tail: &mut VecDeque<String>,
        failed: &mut Option<(usize, i64)>,
    ) {
        if let Some(f) = PhaseScript::parse_failure(line) {
            *failed = Some(f);
            return;
        }
        let line = self.redact(line);
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line.clone());
        self.reporter.report(Event::PhaseLog {
            phase,
            stream: stream.as_str(),
            line,
        });
    }
}

/// Verify's failure for a file in `verify.files` that is not in the image.
pub(super) fn missing_file(why: String) -> BuildError {
    BuildError::Phase(PhaseFailure {
        phase: Phase::Verify,
        message: format!("verify.files: {why}"),
        command: None,
        exit_code: None,
        output: Vec::new(),
    })
}
