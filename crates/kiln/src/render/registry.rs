//! What the registry commands print: `kiln retention`'s decision per tag
//! (stdout: the data) and what it deleted (stderr).

use kiln_core::registry::retain;
use kiln_core::registry::retention::{Decision, Rule, Why};

use crate::render::stdout::{err, out};

/// `rule 2 (main-* keep 10)`.
fn rule_name(rules: &[Rule], i: usize) -> String {
    let Some(r) = rules.get(i) else {
        return format!("rule {}", i + 1);
    };
    let mut what = Vec::new();
    if let Some(n) = r.keep {
        what.push(format!("keep {n}"));
    }
    if let Some(age) = r.older_than {
        what.push(format!("older_than {}", age_text(age)));
    }
    format!("rule {} ({} {})", i + 1, r.pattern, what.join(" "))
}

/// Seconds as the largest whole unit a config would write: `30d`, `12h`.
fn age_text(secs: u64) -> String {
    for (unit, scale) in [("w", 7 * 86_400), ("d", 86_400), ("h", 3600), ("m", 60)] {
        if secs >= scale && secs.is_multiple_of(scale) {
            return format!("{}{unit}", secs / scale);
        }
    }
    format!("{secs}s")
}

/// What `rule` says of a tag it expires.
fn expired(rules: &[Rule], i: usize) -> String {
    let r = rules.get(i);
    match (r.and_then(|r| r.keep), r.and_then(|r| r.older_than)) {
        (Some(n), Some(age)) => format!("past the {n} newest and older than {}", age_text(age)),
        (Some(n), None) => format!("past the {n} newest"),
        (None, Some(age)) => format!("older than {}", age_text(age)),
        (None, None) => "expired".to_string(),
    }
}

/// Why a decision went the way it did, in words.
pub fn why(d: &Decision, rules: &[Rule]) -> String {
    match &d.why {
        Why::NoRule => "no rule matches".to_string(),
        Why::Newest { rule } => match rules.get(*rule).and_then(|r| r.keep) {
            Some(n) => format!("{}: among the {n} newest", rule_name(rules, *rule)),
            None => format!("{}: kept", rule_name(rules, *rule)),
        },
        Why::Recent { rule } => {
            let age = rules.get(*rule).and_then(|r| r.older_than).unwrap_or(0);
            format!("{}: newer than {}", rule_name(rules, *rule), age_text(age))
        }
        Why::Expired { rule } => format!("{}: {}", rule_name(rules, *rule), expired(rules, *rule)),
        Why::SharedWith { rule, tag } => format!(
            "{}: {}, but kept tag `{tag}` shares its manifest",
            rule_name(rules, *rule),
            expired(rules, *rule)
        ),
        Why::InUse { rule } => format!(
            "{}: {}, but a local instance runs it",
            rule_name(rules, *rule),
            expired(rules, *rule)
        ),
    }
}

/// One line per tag: `keep    pr-12   rule 1 (pr-* keep 20): among the 20 newest`.
pub fn retention(decisions: &[Decision], rules: &[Rule], dry_run: bool) {
    let width = decisions.iter().map(|d| d.tag.len()).max().unwrap_or(0);
    for d in decisions {
        let verb = if d.keep { "keep" } else { "delete" };
        out!("{verb:<6}  {:<width$}  {}", d.tag, why(d, rules));
    }
    let deleting = decisions.iter().filter(|d| !d.keep).count();
    if dry_run {
        err!(
            "dry run: {} tag(s), {deleting} would be deleted; nothing was changed",
            decisions.len()
        );
    }
}

/// What a real run deleted: each manifest with its tags.
pub fn deleted(digests: &[String], decisions: &[Decision], repository: &str) {
    let tags = retain::tags_by_digest(decisions);
    for digest in digests {
        let names = tags.get(digest).map(|t| t.join(", ")).unwrap_or_default();
        err!("deleted {repository}@{digest} ({names})");
    }
    err!("deleted {} manifest(s)", digests.len());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(why: Why, keep: bool) -> Decision {
        Decision {
            tag: "t".into(),
            digest: "sha256:x".into(),
            keep,
            why,
        }
    }

    #[test]
    fn every_reason_names_its_rule_in_the_configs_words() {
        let rules = vec![
            Rule {
                pattern: "pr-*".into(),
                keep: Some(20),
                older_than: None,
            },
            Rule {
                pattern: "cache-*".into(),
                keep: None,
                older_than: Some(30 * 86_400),
            },
        ];
        let cases = [
            (Why::NoRule, "no rule matches"),
            (
                Why::Newest { rule: 0 },
                "rule 1 (pr-* keep 20): among the 20 newest",
            ),
            (
                Why::Recent { rule: 1 },
                "rule 2 (cache-* older_than 30d): newer than 30d",
            ),
            (
                Why::Expired { rule: 1 },
                "rule 2 (cache-* older_than 30d): older than 30d",
            ),
            (
                Why::SharedWith {
                    rule: 0,
                    tag: "latest".into(),
                },
                "rule 1 (pr-* keep 20): past the 20 newest, but kept tag `latest` shares its manifest",
            ),
            (
                Why::InUse { rule: 0 },
                "rule 1 (pr-* keep 20): past the 20 newest, but a local instance runs it",
            ),
        ];
        for (w, text) in cases {
            assert_eq!(why(&d(w, true), &rules), text);
        }
        assert_eq!(age_text(90 * 60), "90m");
        assert_eq!(age_text(14 * 86_400), "2w");
        assert_eq!(age_text(45), "45s");
    }
}
