//! `kiln promote SRC DST [PATH]`: point tag DST at SRC's manifest in the
//! habitat's registry repository (one manifest read, one write; no layer
//! moves) and print `REPOSITORY@DIGEST`.

use std::path::Path;

use kiln_core::registry::promote;

use super::Outcome;
use crate::exit::{ExitStatus, Failure};
use crate::render::stdout::{err, out};

pub fn run(src: &str, dst: &str, path: &Path) -> Outcome {
    // Registry work only: the build's inputs need not be here.
    let habitat = super::load_members(path)?;
    let src = promote::source_reference(src).map_err(Failure::Promote)?;
    let dst = promote::destination_tag(dst).map_err(Failure::Promote)?;
    let remote = super::remote_of(&habitat, "promote")?;
    let digest =
        promote::promote(&remote.registry, &remote.path, &src, &dst).map_err(Failure::Registry)?;
    err!("promoted `{src}` to `{dst}` in `{}`", remote.repository);
    out!("{}@{digest}", remote.repository);
    Ok(ExitStatus::Success)
}
