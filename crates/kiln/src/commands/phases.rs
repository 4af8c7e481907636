//! `kiln phases` (and `kiln build --show-phases`): the ten phases with their ids.

use kiln_core::Phase;

use super::Outcome;
use crate::exit::ExitStatus;
use crate::render::stdout::out;

pub fn run() -> Outcome {
    for p in Phase::ALL {
        out!("{:>2}  {:<8} {}", p.id(), p.name(), p.description());
    }
    Ok(ExitStatus::Success)
}
