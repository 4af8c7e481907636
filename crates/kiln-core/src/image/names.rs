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

/// `final-KEY12`
pub fn final_tag(final_key: &str) -> String {
    format!("final-{}", &final_key[..final_key.len().min(12)])
}

/// `habitat-NAME:final-KEY12`
pub fn final_image(habitat: &str, final_key: &str) -> String {
    format!("{}:{}", repository(habitat), final_tag(final_key))
}
