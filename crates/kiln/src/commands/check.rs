//! `kiln check`: validate the config (every problem is reported by `load`),
//! then the habitat directory's `.kilnignore`.

use std::path::Path;

use super::Outcome;
use crate::exit::ExitStatus;
use crate::render::stdout::err;

pub fn run(path: &Path) -> Outcome {
    let h = super::load(path)?;
    kiln_core::sources::copies::Withheld::for_habitat(&h).map_err(super::Failure::Config)?;
    err!(
        "ok: `{}` is a valid habitat `{}`",
        h.file.display(),
        h.config.name
    );
    Ok(ExitStatus::Success)
}
