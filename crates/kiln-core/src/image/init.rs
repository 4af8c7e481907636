//! The init kiln carries: the static `kiln-init` binary the build script made
//! (see `crates/kiln-core/build.rs`), its digest (an input of `final` when
//! the config has `services:`), and the layer the final phase adds with it
//! and the services spec (SPEC §9). Built into kiln, so a fresh machine needs
//! nothing else, and the digest of what is placed is the digest of what was
//! keyed.

use std::io;
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

use crate::engine::Healthcheck;
use crate::image::layer::{Hashing, Layer, LayerOut};
use crate::image::tar::{append_dir, append_file};

pub use kiln_init::spec::{INIT_PATH, SPEC_PATH};

static INIT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/kiln-init"));

/// The init binary, or `None` when this kiln was built for a target the init
/// is not built for (it cannot bake services then).
pub fn binary() -> Option<&'static [u8]> {
    (!INIT.is_empty()).then_some(INIT)
}

/// `sha256:` of [`binary`]; `None` without one.
pub fn digest() -> Option<&'static str> {
    static DIGEST: OnceLock<String> = OnceLock::new();
    binary().map(|bytes| {
        DIGEST
            .get_or_init(|| format!("sha256:{}", hex::encode(Sha256::digest(bytes))))
            .as_str()
    })
}

/// The entrypoint of an image with services: the init, then the main
/// process (the image's own entrypoint, then its command) after `--`.
pub fn entrypoint(own: Option<&[String]>) -> Vec<String> {
    let mut argv = vec![INIT_PATH.to_string(), "--".to_string()];
    // A base habitat's image with services already starts with the init.
    let own = own.unwrap_or_default();
    let own = own.strip_prefix(argv.as_slice()).unwrap_or(own);
    argv.extend(own.iter().cloned());
    argv
}

/// How often Docker asks the init whether every long-running service is
/// ready (`kiln-init health`, which reads the state the init keeps).
pub const HEALTH_INTERVAL_MS: u64 = 2_000;
/// How long one answer may take; reading a small file takes far less.
pub const HEALTH_TIMEOUT_MS: u64 = 5_000;
/// Failed answers in a row before the container is unhealthy.
pub const HEALTH_RETRIES: u64 = 3;

/// The image's `HEALTHCHECK`: the init's health answer. The start period
/// covers every readiness probe's timeout, so a slow boot that the init
/// still waits for is `starting`, not `unhealthy`.
pub fn healthcheck(start_period_ms: u64) -> Healthcheck {
    const NS: u64 = 1_000_000;
    Healthcheck {
        test: vec!["CMD".into(), INIT_PATH.into(), "health".into()],
        interval_ns: HEALTH_INTERVAL_MS * NS,
        timeout_ns: HEALTH_TIMEOUT_MS * NS,
        start_period_ns: start_period_ms.saturating_mul(NS),
        retries: HEALTH_RETRIES,
    }
}

/// Writes the layer of `/.kiln/` (root's, 0755), `/.kiln/init` (0755) and
/// `/.kiln/services.json` (0644) into `out`. It reads nothing of the parent:
/// the same bytes give the same layer on any engine.
pub fn write_layer(out: &mut dyn LayerOut, init: &[u8], spec_json: &[u8]) -> io::Result<Layer> {
    let dir = INIT_PATH.trim_start_matches('/');
    let dir = dir.rsplit_once('/').map_or(dir, |(d, _)| d);
    let mut tar = ::tar::Builder::new(Hashing::new(out));
    append_dir(&mut tar, dir, 0o755, 0, 0)?;
    append_file(
        &mut tar,
        INIT_PATH.trim_start_matches('/'),
        init,
        0o755,
        0,
        0,
    )?;
    append_file(
        &mut tar,
        SPEC_PATH.trim_start_matches('/'),
        spec_json,
        0o644,
        0,
        0,
    )?;
    tar.into_inner()?.finish(3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_init_wraps_the_images_own_entrypoint_once() {
        let own = vec!["/app/run".to_string(), "-v".to_string()];
        let once = entrypoint(Some(&own));
        assert_eq!(once, ["/.kiln/init", "--", "/app/run", "-v"]);
        assert_eq!(entrypoint(Some(&once)), once);
        assert_eq!(entrypoint(None), ["/.kiln/init", "--"]);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_embedded_init_is_a_static_executable() {
        let bytes = binary().expect("the build script builds the init on Linux");
        assert_eq!(&bytes[..4], b"\x7fELF");
        // No program interpreter: it runs in an image without a libc.
        let interp = b"/lib64/ld-linux";
        assert!(!bytes.windows(interp.len()).any(|w| w == interp));
        assert!(digest().unwrap().starts_with("sha256:"));
    }
}
