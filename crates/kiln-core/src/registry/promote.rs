//! `kiln promote SRC DST` (SPEC §10): points tag DST at the manifest SRC (a
//! tag or a digest) names, by putting that manifest's exact bytes under DST.
//! No blob moves: the registry already holds every blob the manifest names
//! in this repository, and the digest (of those bytes) stays the same.

use super::{Registry, RegistryError, RegistryResult, tags};

/// What `promote` could not do before asking the registry anything.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PromoteError {
    #[error("`{0}` is not a tag or a digest (`sha256:` and 64 hex)")]
    BadSource(String),
    #[error(
        "`{0}` is not a valid tag: letters, digits, `_`, `.` and `-`, not starting with `.` or `-`, at most 128"
    )]
    BadTag(String),
}

/// A reference as the registry takes it: a tag, or `sha256:…` (an `@` in
/// front, as in `REPO@sha256:…`, is accepted and dropped).
pub fn source_reference(src: &str) -> Result<String, PromoteError> {
    let src = src.strip_prefix('@').unwrap_or(src);
    if let Some(hex) = src.strip_prefix("sha256:") {
        let ok = hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        return if ok {
            Ok(src.to_string())
        } else {
            Err(PromoteError::BadSource(src.to_string()))
        };
    }
    if tags::is_valid(src) {
        Ok(src.to_string())
    } else {
        Err(PromoteError::BadSource(src.to_string()))
    }
}

/// The destination tag, checked.
pub fn destination_tag(dst: &str) -> Result<String, PromoteError> {
    if tags::is_valid(dst) {
        Ok(dst.to_string())
    } else {
        Err(PromoteError::BadTag(dst.to_string()))
    }
}

/// Points `dst` at the manifest `src` names in `repo`; returns its digest.
/// `src` and `dst` are checked with [`source_reference`] and
/// [`destination_tag`] first.
pub fn promote(r: &dyn Registry, repo: &str, src: &str, dst: &str) -> RegistryResult<String> {
    let manifest = r
        .manifest_get(repo, src)?
        .ok_or_else(|| RegistryError::NotFound {
            registry: r.host().to_string(),
            op: "promote".to_string(),
            what: format!("manifest `{src}` in `{repo}`"),
        })?;
    r.manifest_put(repo, dst, &manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_tags_or_digests_and_destinations_tags() {
        let d = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(source_reference(&d), Ok(d.clone()));
        assert_eq!(source_reference(&format!("@{d}")), Ok(d.clone()));
        assert_eq!(source_reference("main-abc1234"), Ok("main-abc1234".into()));
        for bad in ["sha256:abc", "sha256:", "-x", "a/b", ""] {
            assert!(source_reference(bad).is_err(), "{bad}");
        }
        assert_eq!(destination_tag("prod"), Ok("prod".into()));
        assert!(destination_tag(&d).is_err(), "a digest is not a tag");
        assert!(destination_tag(&"x".repeat(129)).is_err());
    }
}
