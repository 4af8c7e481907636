//! The meaning checks of `registry:` (SPEC §10): the repository is
//! `HOST[:PORT]/PATH` as Docker's reference grammar has it, every tag
//! template can render, and every retention rule can decide, each located.

use super::Checker;
use super::rules::{is_domain, is_habitat_name};
use crate::config::model::Config;
use crate::config::node::Seg;
use crate::registry::retention::parse_age;
use crate::registry::tags::{self, TemplateError};

use Seg::{Index as I, Key as K};

const REPOSITORY_FORM: &str =
    "write `HOST[:PORT]/PATH`, e.g. `ghcr.io/team/app` or `127.0.0.1:5000/team/app`";
const PATH_RULE: &str = "path components are lowercase letters and digits, separated by one `.`, one or two `_`, or `-`s";
const TAG_VARIABLES: &str =
    "tag variables are {branch}, {sha}, {sha7}, {tag}, {pr}, {key12}, {date} and {env.NAME}";
/// Snapshot tags: `cache-` + the full phase key (SPEC §10).
const CACHE_PREFIX: &str = "cache-";

/// What is wrong with a `repository` value, worded, with its hint.
pub(crate) fn repository_problem(text: &str) -> Option<(String, String)> {
    let fail = |m: String, h: &str| Some((m, h.to_string()));
    if text.contains('@') {
        return fail(
            format!("repository `{text}` holds a digest"),
            "give the repository alone; `kiln push` prints the digest it pushed",
        );
    }
    let Some((host, path)) = text.split_once('/') else {
        return fail(
            format!("repository `{text}` names no registry host"),
            REPOSITORY_FORM,
        );
    };
    if !(host.contains(['.', ':']) || host == "localhost") {
        return fail(
            format!("repository `{text}` names no registry host (`{host}` is not one)"),
            REPOSITORY_FORM,
        );
    }
    let port_ok = host
        .rsplit_once(':')
        .is_none_or(|(_, p)| p.parse::<u16>().is_ok_and(|p| p > 0));
    if !is_domain(host) || !port_ok {
        return fail(
            format!("invalid registry host `{host}` in repository `{text}`"),
            "a host is letters, digits, `-` and `.`, with an optional `:PORT` (1 to 65535)",
        );
    }
    if let Some((_, tag)) = path
        .rsplit('/')
        .next()
        .and_then(|last| last.split_once(':'))
    {
        return fail(
            format!("repository `{text}` holds a tag `{tag}`"),
            "give the repository alone and list tags under `registry.tags`",
        );
    }
    if let Some(bad) = path.split('/').find(|c| !is_habitat_name(c)) {
        let shown = if bad.is_empty() {
            "an empty component".to_string()
        } else {
            format!("`{bad}`")
        };
        return fail(
            format!("invalid repository path `{path}`: {shown}"),
            PATH_RULE,
        );
    }
    if text.len() > 255 {
        return fail(
            format!("repository is {} characters long: at most 255", text.len()),
            REPOSITORY_FORM,
        );
    }
    None
}

/// Whether `pattern` could match a tag: tag characters and `*`.
fn is_tag_pattern(pattern: &str) -> bool {
    !pattern.is_empty()
        && pattern
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '*'))
}

impl Checker<'_, '_> {
    pub(super) fn registry(&mut self, config: &Config) {
        let Some(registry) = &config.registry else {
            return;
        };
        if let Some((message, hint)) = repository_problem(&registry.repository) {
            let loc = self.at(&[K("registry"), K("repository")]);
            self.error_hint(loc, message, hint);
        }
        for (i, template) in registry.tags.iter().enumerate() {
            let loc = self.at(&[K("registry"), K("tags"), I(i)]);
            match tags::check(template) {
                Err(e @ TemplateError::UnknownVariable(_)) => {
                    self.error_hint(loc, format!("tag `{template}`: {e}"), TAG_VARIABLES);
                }
                Err(e) => self.error(loc, format!("tag `{template}`: {e}")),
                Ok(()) if template.starts_with(CACHE_PREFIX) => self.error_hint(
                    loc,
                    format!("tag `{template}` starts with `{CACHE_PREFIX}`, which kiln keeps for phase snapshots"),
                    "pick another prefix; `cache: true` pushes the snapshots as `cache-KEY`",
                ),
                Ok(()) => {}
            }
        }
        for (i, rule) in registry.retention.iter().enumerate() {
            let here = |field: &'static str| [K("registry"), K("retention"), I(i), K(field)];
            if !is_tag_pattern(&rule.pattern) {
                let loc = self.at(&here("match"));
                self.error_hint(
                    loc,
                    format!("retention pattern `{}` can match no tag", rule.pattern),
                    "a pattern is tag characters (letters, digits, `_`, `.`, `-`) and `*` for any run of them",
                );
            } else if let Some(first) = registry.retention[..i]
                .iter()
                .position(|r| r.pattern == rule.pattern)
            {
                let loc = self.at(&here("match"));
                self.error_hint(
                    loc,
                    format!(
                        "retention rule {} never decides: rule {} matches `{}` first",
                        i + 1,
                        first + 1,
                        rule.pattern
                    ),
                    "the first rule that matches a tag decides; merge the two rules",
                );
            }
            if let Some(age) = &rule.older_than
                && parse_age(age).is_none()
            {
                let loc = self.at(&here("older_than"));
                self.error_hint(
                    loc,
                    format!("invalid age `{age}`"),
                    "give a number with a unit: `s`, `m`, `h`, `d` or `w`, e.g. `30d`",
                );
            }
        }
    }
}
