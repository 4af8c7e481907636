//! Tag templates (SPEC §10): `{branch}-{sha7}`, `pr-{pr}`, `{env.NAME}` …
//! rendered against variables resolved beforehand (from CI variables, or
//! the habitat's git checkout), and made valid tags. Pure: the caller reads
//! the environment and git; [`TagVars::from_ci`] takes the environment as a map.

use std::collections::BTreeMap;

/// The longest tag a registry accepts.
pub const MAX_TAG: usize = 128;

/// The values tag variables take; `None` is unset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagVars {
    pub branch: Option<String>,
    pub sha: Option<String>,
    pub tag: Option<String>,
    pub pr: Option<String>,
    pub key12: Option<String>,
    /// UTC `YYYYMMDD`.
    pub date: Option<String>,
    pub env: BTreeMap<String, String>,
}

impl TagVars {
    /// What GitHub Actions (or `KILN_PR`) says, from the environment `env`:
    /// the branch of a pull request is `GITHUB_HEAD_REF`, else
    /// `GITHUB_REF_NAME`; `{pr}` from `GITHUB_REF=refs/pull/N/merge`.
    pub fn from_ci(env: &BTreeMap<String, String>) -> TagVars {
        let get = |k: &str| env.get(k).filter(|v| !v.is_empty()).cloned();
        let is_tag = get("GITHUB_REF_TYPE").as_deref() == Some("tag");
        let pr = get("GITHUB_REF")
            .and_then(|r| {
                let n = r.strip_prefix("refs/pull/")?.split('/').next()?.to_string();
                (!n.is_empty()).then_some(n)
            })
            .or_else(|| get("KILN_PR"));
        TagVars {
            branch: get("GITHUB_HEAD_REF").or_else(|| get("GITHUB_REF_NAME").filter(|_| !is_tag)),
            sha: get("GITHUB_SHA"),
            tag: get("GITHUB_REF_NAME").filter(|_| is_tag),
            pr,
            env: env.clone(),
            ..TagVars::default()
        }
    }

    fn value(&self, name: &str) -> Result<Option<String>, TemplateError> {
        Ok(match name {
            "branch" => self.branch.clone(),
            "sha" => self.sha.clone(),
            "sha7" => self.sha.as_ref().map(|s| s.chars().take(7).collect()),
            "tag" => self.tag.clone(),
            "pr" => self.pr.clone(),
            "key12" => self.key12.clone(),
            "date" => self.date.clone(),
            _ => match name.strip_prefix("env.") {
                Some(var) if !var.is_empty() => self.env.get(var).cloned(),
                _ => return Err(TemplateError::UnknownVariable(name.to_string())),
            },
        }
        .filter(|v| !v.is_empty()))
    }
}

/// What one template gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rendered {
    Tag(String),
    /// A variable it uses is unset: the tag is skipped, and kiln says so.
    Skipped {
        variable: String,
    },
}

/// A template that can never render (caught by `kiln check`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unknown tag variable `{{{0}}}`")]
    UnknownVariable(String),
    #[error("unclosed `{{` in tag template")]
    Unclosed,
    #[error("tag template renders to an empty tag")]
    Empty,
}

/// Checks a template without values: every variable is known, braces close.
pub fn check(template: &str) -> Result<(), TemplateError> {
    render(template, &TagVars::default()).map(|_| ())
}

/// Renders `template` with `vars`, then makes the result a valid tag.
pub fn render(template: &str, vars: &TagVars) -> Result<Rendered, TemplateError> {
    let mut out = String::new();
    let mut missing = None;
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after.find('}').ok_or(TemplateError::Unclosed)?;
        let name = after[..close].trim();
        match vars.value(name)? {
            Some(v) => out.push_str(&v),
            None => {
                missing.get_or_insert_with(|| name.to_string());
            }
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    if let Some(variable) = missing {
        return Ok(Rendered::Skipped { variable });
    }
    let tag = sanitize(&out);
    if tag.is_empty() {
        return Err(TemplateError::Empty);
    }
    Ok(Rendered::Tag(tag))
}

/// A valid tag (`[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`) from any text: `/`
/// and every other character a tag cannot hold become `-`, a leading `.`
/// or `-` becomes `_`, and it is cut at 128 characters.
pub fn sanitize(text: &str) -> String {
    let mut out: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(MAX_TAG)
        .collect();
    if out.starts_with(['.', '-']) {
        out.replace_range(..1, "_");
    }
    out
}

/// Whether `tag` is a valid tag as registries define it.
pub fn is_valid(tag: &str) -> bool {
    let mut chars = tag.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && tag.len() <= MAX_TAG
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}
