//! `kiln check`: validate the config; every problem is reported by `load`.

use std::path::Path;

use super::Outcome;
use crate::exit::ExitStatus;
use crate::render::stdout::err;

pub fn run(path: &Path) -> Outcome {
    let h = super::load(path)?;
    err!(
        "ok: `{}` is a valid habitat `{}`",
        h.file.display(),
        h.config.name
    );
    Ok(ExitStatus::Success)
}
