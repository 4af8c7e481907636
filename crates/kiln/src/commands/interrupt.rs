//! The SIGINT/SIGTERM guard around a build: on an interrupt the build future
//! is dropped and this process's build containers are removed, so nothing
//! half-made is left behind (and nothing of a build it was waiting for).

use std::future::Future;

use kiln_core::engine::docker::DockerEngine;
use kiln_core::executor;

use crate::exit::{Failure, Signal};

/// Runs `fut` until it ends or the user interrupts (SIGINT/SIGTERM).
pub async fn interruptible<T>(
    engine: &DockerEngine,
    fut: impl Future<Output = T>,
) -> Result<T, Failure> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let sigterm = async {
        match term.as_mut() {
            Some(t) => {
                t.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    let signal = tokio::select! {
        out = fut => return Ok(out),
        _ = tokio::signal::ctrl_c() => Signal::Int,
        _ = sigterm => Signal::Term,
    };
    // The build future is dropped by now; its phase container may remain.
    // A create request may still be in flight: the engine finishes it even
    // though the future that sent it is gone, so its container can appear
    // after a first sweep. Sweep until three listings in a row find nothing.
    // Only this process's containers: a build this one waited for runs on.
    let mut removed = 0;
    let mut quiet = 0;
    for _ in 0..20 {
        let n = executor::remove_own_build_containers(engine)
            .await
            .unwrap_or(0);
        removed += n;
        quiet = if n == 0 { quiet + 1 } else { 0 };
        if quiet == 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    Err(Failure::Interrupted { signal, removed })
}
