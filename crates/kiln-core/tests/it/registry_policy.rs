//! The registry's pure rooms: tag templates (`registry/tags.rs`) and the
//! retention policy (`registry/retention.rs`), as tables of hand-written
//! cases beside generated ones.

use std::collections::{BTreeMap, BTreeSet};

use kiln_core::registry::retention::{self, Decision, Listed, Rule, Why};
use kiln_core::registry::tags::{self, Rendered, TagVars, TemplateError};
use proptest::prelude::*;

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn tag(t: &str) -> Result<Rendered, TemplateError> {
    Ok(Rendered::Tag(t.to_string()))
}

fn skipped(v: &str) -> Result<Rendered, TemplateError> {
    Ok(Rendered::Skipped {
        variable: v.to_string(),
    })
}

#[test]
fn tag_templates_render_as_the_spec_says() {
    let push_main = TagVars {
        key12: Some("0123456789ab".into()),
        date: Some("20261202".into()),
        ..TagVars::from_ci(&env(&[
            ("GITHUB_REF", "refs/heads/main"),
            ("GITHUB_REF_NAME", "main"),
            ("GITHUB_REF_TYPE", "branch"),
            ("GITHUB_SHA", "abc1234def5678"),
            ("TEAM", "infra/core"),
        ]))
    };
    let pull_request = TagVars::from_ci(&env(&[
        ("GITHUB_REF", "refs/pull/123/merge"),
        ("GITHUB_REF_NAME", "123/merge"),
        ("GITHUB_HEAD_REF", "feature/login"),
        ("GITHUB_SHA", "fedcba9876543210"),
    ]));
    let release = TagVars::from_ci(&env(&[
        ("GITHUB_REF_NAME", "v1.2.0"),
        ("GITHUB_REF_TYPE", "tag"),
        ("GITHUB_SHA", "1111111222"),
    ]));
    let local_pr = TagVars::from_ci(&env(&[("KILN_PR", "7")]));
    let cases: &[(&str, &TagVars, Result<Rendered, TemplateError>)] = &[
        ("{branch}-{sha7}", &push_main, tag("main-abc1234")),
        ("pr-{pr}", &push_main, skipped("pr")),
        ("latest", &push_main, tag("latest")),
        ("{key12}", &push_main, tag("0123456789ab")),
        ("nightly-{date}", &push_main, tag("nightly-20261202")),
        (
            "{env.TEAM}-{sha}",
            &push_main,
            tag("infra-core-abc1234def5678"),
        ),
        ("{env.NOPE}", &push_main, skipped("env.NOPE")),
        (
            "{branch}-{sha7}",
            &pull_request,
            tag("feature-login-fedcba9"),
        ),
        ("pr-{pr}", &pull_request, tag("pr-123")),
        ("{tag}", &pull_request, skipped("tag")),
        ("{tag}", &release, tag("v1.2.0")),
        ("{branch}", &release, skipped("branch")),
        ("pr-{pr}", &local_pr, tag("pr-7")),
        ("{ branch }", &push_main, tag("main")),
        (
            "{bogus}",
            &push_main,
            Err(TemplateError::UnknownVariable("bogus".into())),
        ),
        (
            "{env.}",
            &push_main,
            Err(TemplateError::UnknownVariable("env.".into())),
        ),
        ("v{sha", &push_main, Err(TemplateError::Unclosed)),
        ("", &push_main, Err(TemplateError::Empty)),
        ("-{branch}", &push_main, tag("_main")),
        (".hidden", &push_main, tag("_hidden")),
        ("a b:c@d", &push_main, tag("a-b-c-d")),
    ];
    for (template, vars, want) in cases {
        assert_eq!(&tags::render(template, vars), want, "{template}");
    }
    let long = "x".repeat(300);
    assert_eq!(tags::render(&long, &push_main), tag(&"x".repeat(128)));
    assert!(tags::check("{branch}-{sha7}").is_ok());
    assert!(tags::check("{brnch}").is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever text a variable holds, a rendered tag is a valid tag.
    #[test]
    fn a_rendered_tag_is_always_valid(branch in "\\PC{0,200}", sha in "[0-9a-f]{0,40}") {
        let vars = TagVars { branch: Some(branch), sha: Some(sha), ..TagVars::default() };
        if let Ok(Rendered::Tag(t)) = tags::render("{branch}-{sha7}", &vars) {
            prop_assert!(tags::is_valid(&t), "{t:?}");
        }
        prop_assert!(!tags::is_valid(""));
    }
}

fn rule(pattern: &str, keep: Option<usize>, older_than: Option<&str>) -> Rule {
    Rule {
        pattern: pattern.to_string(),
        keep,
        older_than: older_than.map(|a| retention::parse_age(a).expect("an age")),
    }
}

fn listed(tag: &str, digest: &str, created: Option<i64>) -> Listed {
    Listed {
        tag: tag.to_string(),
        digest: digest.to_string(),
        created,
    }
}

const DAY: i64 = 86_400;
const NOW: i64 = 1000 * DAY;

fn kept(decisions: &[Decision]) -> Vec<&str> {
    decisions
        .iter()
        .filter(|d| d.keep)
        .map(|d| d.tag.as_str())
        .collect()
}

#[test]
fn retention_rules_decide_as_the_spec_says() {
    let rules = [
        rule("pr-*", Some(2), None),
        rule("main-*", Some(1), None),
        rule("cache-*", None, Some("30d")),
    ];
    let tags = [
        listed("pr-1", "sha256:p1", Some(NOW - 5 * DAY)),
        listed("pr-2", "sha256:p2", Some(NOW - 4 * DAY)),
        listed("pr-3", "sha256:p3", Some(NOW - 3 * DAY)),
        listed("pr-old", "sha256:po", None),
        listed("main-a", "sha256:m1", Some(NOW - 2 * DAY)),
        listed("main-b", "sha256:m2", Some(NOW - DAY)),
        // The same manifest as the kept `main-b`: stays.
        listed("main-c", "sha256:m2", Some(NOW - 9 * DAY)),
        listed("cache-new", "sha256:c1", Some(NOW - 29 * DAY)),
        listed("cache-old", "sha256:c2", Some(NOW - 31 * DAY)),
        // Runs in a local instance: stays.
        listed("cache-run", "sha256:c3", Some(NOW - 90 * DAY)),
        listed("cache-unknown", "sha256:c4", None),
        listed("latest", "sha256:m2", Some(NOW - DAY)),
    ];
    let in_use = BTreeSet::from(["sha256:c3".to_string()]);
    let d = retention::decide(&rules, &tags, NOW, &in_use);
    assert_eq!(
        kept(&d),
        [
            "cache-new",
            "cache-run",
            "latest",
            "main-b",
            "main-c",
            "pr-2",
            "pr-3"
        ]
    );
    let why: BTreeMap<&str, &Why> = d.iter().map(|d| (d.tag.as_str(), &d.why)).collect();
    assert_eq!(why["latest"], &Why::NoRule);
    assert_eq!(why["pr-3"], &Why::Newest { rule: 0 });
    assert_eq!(why["pr-1"], &Why::Expired { rule: 0 });
    assert_eq!(why["pr-old"], &Why::Expired { rule: 0 });
    assert_eq!(why["cache-new"], &Why::Recent { rule: 2 });
    assert_eq!(why["cache-run"], &Why::InUse { rule: 2 });
    assert!(matches!(why["main-c"], Why::SharedWith { rule: 1, .. }));
    assert_eq!(
        retention::deletions(&d),
        BTreeSet::from(
            [
                "sha256:c2",
                "sha256:c4",
                "sha256:m1",
                "sha256:p1",
                "sha256:po"
            ]
            .map(String::from)
        )
    );
}

#[test]
fn the_first_matching_rule_decides() {
    let rules = [rule("pr-1*", Some(10), None), rule("pr-*", Some(0), None)];
    let tags = [
        listed("pr-12", "sha256:a", Some(1)),
        listed("pr-2", "sha256:b", Some(2)),
    ];
    let d = retention::decide(&rules, &tags, NOW, &BTreeSet::new());
    assert_eq!(kept(&d), ["pr-12"]);
}

#[test]
fn globs_and_ages_parse() {
    for (pattern, text, want) in [
        ("pr-*", "pr-12", true),
        ("pr-*", "pr-", true),
        ("pr-*", "main-1", false),
        ("*-rc", "1.0-rc", true),
        ("*-rc", "1.0-rc2", false),
        ("a*b*c", "axxbyyc", true),
        ("a*b*c", "acb", false),
        ("latest", "latest", true),
        ("latest", "latest2", false),
        ("*", "", true),
        ("ab*ba", "aba", false),
    ] {
        assert_eq!(
            retention::matches(pattern, text),
            want,
            "{pattern} ~ {text}"
        );
    }
    for (age, want) in [
        ("30d", Some(30 * 86_400)),
        ("12h", Some(43_200)),
        ("2w", Some(1_209_600)),
        ("90m", Some(5400)),
        ("45s", Some(45)),
        ("3y", None),
        ("d", None),
        ("", None),
    ] {
        assert_eq!(retention::parse_age(age), want, "{age}");
    }
}

fn arb_listing() -> impl Strategy<Value = Vec<Listed>> {
    let prefixes = prop::sample::select(vec!["pr-", "main-", "cache-", "v"]);
    prop::collection::vec(
        (prefixes, 0u32..40, 0u8..12, prop::option::of(0i64..60)),
        0..40,
    )
    .prop_map(|raw| {
        let mut seen = BTreeSet::new();
        raw.into_iter()
            .filter_map(|(p, n, digest, age)| {
                let tag = format!("{p}{n}");
                seen.insert(tag.clone()).then(|| {
                    listed(
                        &tag,
                        &format!("sha256:{digest}"),
                        age.map(|a| NOW - a * DAY),
                    )
                })
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever the listing: no deleted manifest is one a kept tag or an
    /// instance uses; tags no rule matches are kept; a `keep: N` rule keeps
    /// at least min(N, its tags); every tag gets exactly one decision.
    #[test]
    fn retention_never_deletes_what_it_keeps(listing in arb_listing(), n in 0usize..6, age in 0u64..50, used in 0u8..12) {
        let rules = [rule("pr-*", Some(n), None), Rule { pattern: "cache-*".into(), keep: None, older_than: Some(age * 86_400) }, rule("main-*", Some(n), Some("20d"))];
        let in_use = BTreeSet::from([format!("sha256:{used}")]);
        let d = retention::decide(&rules, &listing, NOW, &in_use);
        prop_assert_eq!(d.len(), listing.len());
        let deleted = retention::deletions(&d);
        for x in &d {
            if x.keep {
                prop_assert!(!deleted.contains(&x.digest), "{} kept but its manifest is deleted", x.tag);
            }
            if x.tag.starts_with('v') {
                prop_assert!(x.keep && x.why == Why::NoRule);
            }
        }
        let used = format!("sha256:{used}");
        prop_assert!(!deleted.contains(&used));
        let prs = listing.iter().filter(|l| l.tag.starts_with("pr-")).count();
        let kept_prs = d.iter().filter(|x| x.keep && x.tag.starts_with("pr-")).count();
        prop_assert!(kept_prs >= prs.min(n));
    }
}
