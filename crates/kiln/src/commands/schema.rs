//! `kiln schema`: the JSON Schema of kiln.yaml on stdout.

use kiln_core::config;

use super::Outcome;
use crate::exit::{ExitStatus, Failure};
use crate::render::stdout::out;

pub fn run() -> Outcome {
    let schema = serde_json::to_string_pretty(&config::schema()).map_err(Failure::Schema)?;
    out!("{schema}");
    Ok(ExitStatus::Success)
}
