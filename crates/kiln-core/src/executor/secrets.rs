//! Build secrets (SPEC §6): read on the host into a private directory that
//! is mounted for the setup container only, and redacted from every line of
//! output shown. They never reach a layer, a label or a key.

use std::path::Path;

use crate::engine::Engine;
use crate::sources::io::io_err;

use super::context::Executor;
use super::error::BuildError;

impl<E: Engine> Executor<'_, E> {
    /// Reads each declared secret on the host into a private directory that is
    /// mounted read-only for the setup container only.
    pub(super) fn secrets_dir(&mut self) -> Result<Option<tempfile::TempDir>, BuildError> {
        let secrets = self.config().secrets.clone();
        if secrets.is_empty() {
            return Ok(None);
        }
        // Named by its owner: one a killed build left is swept by the next.
        let dir = crate::cache::scratch::tempdir(SECRETS_PREFIX).map_err(io_err(
            "cannot create a directory for secrets in",
            &std::env::temp_dir(),
        ))?;
        for s in &secrets {
            let value = match (&s.env, &s.file) {
                (Some(env), _) => std::env::var(env).map_err(|_| {
                    BuildError::Usage(format!(
                        "secret `{}` reads the environment variable `{env}`, which is not set\nhint: `export {env}=...` before building",
                        s.id
                    ))
                })?,
                (None, Some(file)) => std::fs::read_to_string(self.habitat.dir.join(file)).map_err(|e| {
                    BuildError::Usage(format!("secret `{}` cannot be read from `{file}`: {e}", s.id))
                })?,
                (None, None) => return Err(BuildError::Usage(format!("secret `{}` has no `env` or `file`", s.id))),
            };
            let path = dir.path().join(&s.id);
            std::fs::write(&path, &value).map_err(io_err("cannot write the secret file", &path))?;
            set_mode(&path, 0o444);
            if !value.trim().is_empty() {
                self.secrets.push(value.trim().to_string());
            }
        }
        set_mode(dir.path(), 0o755);
        Ok(Some(dir))
    }

    /// `line` with every secret value replaced by `***`.
    pub(super) fn redact(&self, line: &str) -> String {
        let mut out = line.to_string();
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), "***");
            }
        }
        out
    }
}

/// Where a build's secrets are kept in TMPDIR while it runs.
pub(super) const SECRETS_PREFIX: &str = "kiln-secrets-";

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
}
