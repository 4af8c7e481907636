//! Retention (SPEC §10): a policy (rules in order; the first whose pattern
//! matches a tag decides) plus the tags a repository lists, with their
//! manifest digest and creation time, becomes a decision per tag. Pure and
//! table-tested; the caller lists, prints and deletes.
//!
//! A registry deletes manifests, not tags: deleting a digest removes every
//! tag pointing at it. So a tag its rule would delete is kept when a kept
//! tag shares its digest, or when a local instance runs that digest.

use std::collections::{BTreeMap, BTreeSet};

/// One rule of `registry.retention`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// A glob over tags: `*` is any run of characters.
    pub pattern: String,
    /// Keep the N newest matching tags.
    pub keep: Option<usize>,
    /// Delete matching tags older than this many seconds.
    pub older_than: Option<u64>,
}

/// A tag as listed, with what its manifest's config says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub tag: String,
    pub digest: String,
    /// Unix seconds of `org.opencontainers.image.created`; `None` when unknown
    /// (counted as oldest).
    pub created: Option<i64>,
}

/// Why a tag is kept or deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why {
    NoRule,
    /// Among the N newest of rule `rule`.
    Newest {
        rule: usize,
    },
    /// Newer than the rule's `older_than`.
    Recent {
        rule: usize,
    },
    /// Past the N newest, or older than `older_than`.
    Expired {
        rule: usize,
    },
    /// Its rule would delete it, but `tag` (kept) shares its manifest.
    SharedWith {
        rule: usize,
        tag: String,
    },
    /// Its rule would delete it, but a local instance runs its manifest.
    InUse {
        rule: usize,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub tag: String,
    pub digest: String,
    pub keep: bool,
    pub why: Why,
}

/// Whether `pattern` (with `*` wildcards) matches all of `text`.
pub fn matches(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let [first, middle @ .., last] = parts.as_slice() else {
        return pattern == text;
    };
    if parts.len() == 1 {
        return pattern == text;
    }
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// `30d`, `12h`, `2w`, `90m`, `45s` as seconds.
pub fn parse_age(text: &str) -> Option<u64> {
    let text = text.trim();
    let unit = text.chars().last()?;
    let n: u64 = text[..text.len() - unit.len_utf8()].parse().ok()?;
    let scale = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        'w' => 7 * 86_400,
        _ => return None,
    };
    n.checked_mul(scale)
}

/// Decides every listed tag at time `now` (unix seconds). `in_use` holds
/// the digests local instances run. Decisions come back in tag order.
pub fn decide(
    rules: &[Rule],
    listed: &[Listed],
    now: i64,
    in_use: &BTreeSet<String>,
) -> Vec<Decision> {
    // Each tag's deciding rule, then each rule's tags newest first (ties by name).
    let mut by_rule: BTreeMap<usize, Vec<&Listed>> = BTreeMap::new();
    let mut unmatched = Vec::new();
    for l in listed {
        match rules.iter().position(|r| matches(&r.pattern, &l.tag)) {
            Some(i) => by_rule.entry(i).or_default().push(l),
            None => unmatched.push(l),
        }
    }
    let mut out: Vec<Decision> = unmatched
        .into_iter()
        .map(|l| decision(l, true, Why::NoRule))
        .collect();
    for (i, mut tags) in by_rule {
        let rule = &rules[i];
        tags.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| a.tag.cmp(&b.tag)));
        for (rank, l) in tags.into_iter().enumerate() {
            let newest = rule.keep.is_some_and(|n| rank < n);
            let recent = rule.older_than.is_some_and(|age| {
                l.created.is_some_and(|c| {
                    now.saturating_sub(c) <= i64::try_from(age).unwrap_or(i64::MAX)
                })
            });
            // With both set, a tag goes only when both say so.
            let keep = match (rule.keep, rule.older_than) {
                (Some(_), Some(_)) => newest || recent,
                (Some(_), None) => newest,
                (None, Some(_)) => recent,
                (None, None) => true,
            };
            let why = if !keep {
                Why::Expired { rule: i }
            } else if newest || rule.keep.is_none() && rule.older_than.is_none() {
                Why::Newest { rule: i }
            } else {
                Why::Recent { rule: i }
            };
            out.push(decision(l, keep, why));
        }
    }
    // A manifest a kept tag (or an instance) uses stays, with all its tags.
    let kept: BTreeMap<String, String> = out
        .iter()
        .filter(|d| d.keep)
        .map(|d| (d.digest.clone(), d.tag.clone()))
        .collect();
    for d in out.iter_mut().filter(|d| !d.keep) {
        let Why::Expired { rule } = d.why else {
            continue;
        };
        if let Some(tag) = kept.get(&d.digest) {
            d.keep = true;
            d.why = Why::SharedWith {
                rule,
                tag: tag.clone(),
            };
        } else if in_use.contains(&d.digest) {
            d.keep = true;
            d.why = Why::InUse { rule };
        }
    }
    out.sort_by(|a, b| a.tag.cmp(&b.tag));
    out
}

fn decision(l: &Listed, keep: bool, why: Why) -> Decision {
    Decision {
        tag: l.tag.clone(),
        digest: l.digest.clone(),
        keep,
        why,
    }
}

/// The manifests to delete: the digests of the tags decided `delete`.
pub fn deletions(decisions: &[Decision]) -> BTreeSet<String> {
    decisions
        .iter()
        .filter(|d| !d.keep)
        .map(|d| d.digest.clone())
        .collect()
}
