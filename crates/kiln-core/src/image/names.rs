//! Image names and tags (SPEC §4), in one place.

use crate::phase::Phase;

/// `habitat-NAME`
pub fn repository(habitat: &str) -> String {
    format!("habitat-{habitat}")
}

/// `habitat-NAME:6-setup`
pub fn snapshot(habitat: &str, phase: Phase) -> String {
    format!("{}:{}", repository(habitat), phase.tag())
}

/// `habitat-NAME:6-setup.3`: step 3 of a phase run in steps (SPEC §5).
pub fn step(habitat: &str, phase: Phase, number: usize) -> String {
    format!(
        "{}:{}",
        repository(habitat),
        crate::keys::steps::step_tag(phase, number)
    )
}

/// `final-KEY12`
pub fn final_tag(final_key: &str) -> String {
    format!("final-{}", &final_key[..final_key.len().min(12)])
}

/// `habitat-NAME:final-KEY12`
pub fn final_image(habitat: &str, final_key: &str) -> String {
    format!("{}:{}", repository(habitat), final_tag(final_key))
}
