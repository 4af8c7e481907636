//! The facts a push reads on the host (SPEC §10): tag variables from CI
//! variables, else from the habitat directory's git checkout, and the
//! `org.opencontainers.image.*` labels the pushed final config adds. The
//! environment comes in as a map; git is asked only for what CI left unset.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

use super::tags::TagVars;
use crate::config::url::without_credentials;

pub const LABEL_CREATED: &str = "org.opencontainers.image.created";
pub const LABEL_REVISION: &str = "org.opencontainers.image.revision";
pub const LABEL_SOURCE: &str = "org.opencontainers.image.source";

/// `git -C dir ARGS` trimmed, when git answers.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}

/// The tag variables: CI's (`GITHUB_*`, `KILN_PR`), then for what they
/// leave unset the git checkout `dir` is in (its branch, unless detached;
/// its commit; a tag pointing at it). `key12` and `date` are the caller's.
pub fn tag_vars(dir: &Path, env: &BTreeMap<String, String>) -> TagVars {
    let mut vars = TagVars::from_ci(env);
    if vars.sha.is_none() {
        vars.sha = git(dir, &["rev-parse", "HEAD"]);
    }
    let ci = env.contains_key("GITHUB_REF_NAME") || env.contains_key("GITHUB_HEAD_REF");
    if vars.branch.is_none() && !ci {
        vars.branch = git(dir, &["symbolic-ref", "--quiet", "--short", "HEAD"]);
    }
    if vars.tag.is_none() && !ci {
        vars.tag = git(dir, &["describe", "--tags", "--exact-match", "HEAD"]);
    }
    vars
}

/// Where the source lives: `GITHUB_SERVER_URL/GITHUB_REPOSITORY` in
/// GitHub Actions, else the checkout's `origin` URL, without credentials.
pub fn source(dir: &Path, env: &BTreeMap<String, String>) -> Option<String> {
    if let (Some(server), Some(repo)) = (env.get("GITHUB_SERVER_URL"), env.get("GITHUB_REPOSITORY"))
        && !server.is_empty()
        && !repo.is_empty()
    {
        return Some(format!("{}/{repo}", server.trim_end_matches('/')));
    }
    let url = git(dir, &["config", "--get", "remote.origin.url"])?;
    Some(without_credentials(&url).into_owned())
}

/// The labels the pushed final config adds: `created` always, `revision`
/// and `source` when known.
pub fn oci_labels(
    created: &str,
    revision: Option<&str>,
    source: Option<&str>,
) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([(LABEL_CREATED.to_string(), created.to_string())]);
    if let Some(r) = revision {
        labels.insert(LABEL_REVISION.to_string(), r.to_string());
    }
    if let Some(s) = source {
        labels.insert(LABEL_SOURCE.to_string(), s.to_string());
    }
    labels
}

/// `YYYY-MM-DDTHH:MM:SSZ` of unix seconds `t`.
pub fn rfc3339(t: u64) -> String {
    let (y, m, d) = civil(t / 86_400);
    let s = t % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// `YYYYMMDD` (UTC) of unix seconds `t`, the `{date}` tag variable.
pub fn date(t: u64) -> String {
    let (y, m, d) = civil(t / 86_400);
    format!("{y:04}{m:02}{d:02}")
}

/// The civil date of day `z` since 1970-01-01 (Howard Hinnant's algorithm).
fn civil(z: u64) -> (u64, u64, u64) {
    let z = z + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_796_300_245), "2026-12-03T12:17:25Z");
        assert_eq!(date(1_796_300_245), "20261203");
        // Parsed back by the reader retention uses.
        for t in [0, 86_399, 951_782_400, 1_796_300_245, 4_102_444_800] {
            assert_eq!(crate::instances::status::unix_seconds(&rfc3339(t)), Some(t));
        }
    }
}
