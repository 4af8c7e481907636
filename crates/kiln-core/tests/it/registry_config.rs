//! `registry:` (SPEC §10) as `kiln check` sees it: each bad value gets its
//! one located message, the SPEC's example reads into what push and
//! retention take, and generated repositories and templates are judged as
//! the reference grammar and the template renderer judge them.

use kiln_core::config;
use kiln_core::registry::retention::Rule;
use kiln_core::registry::{split_repository, tags};
use proptest::prelude::*;

use crate::config_cases::assert_rows;

const FORM: &str = "write `HOST[:PORT]/PATH`, e.g. `ghcr.io/team/app` or `127.0.0.1:5000/team/app`";
const PATH_RULE: &str = "path components are lowercase letters and digits, separated by one `.`, one or two `_`, or `-`s";
const AGE: &str = "give a number with a unit: `s`, `m`, `h`, `d` or `w`, e.g. `30d`";

const BAD: &[(&str, &str, &str, &str)] = &[
    (
        "a repository without a host",
        "name: x\nbuild:\n  base: { image: debian }\nregistry:\n  repository: team/app\n",
        "5:15: repository `team/app` names no registry host (`team` is not one)",
        FORM,
    ),
    (
        "a repository that is one name",
        "name: x\nbuild:\n  base: { image: debian }\nregistry:\n  repository: app\n",
        "5:15: repository `app` names no registry host",
        FORM,
    ),
    (
        "a repository with a tag",
        "name: x\nbuild:\n  base: { image: debian }\nregistry:\n  repository: ghcr.io/team/app:latest\n",
        "5:15: repository `ghcr.io/team/app:latest` holds a tag `latest`",
        "give the repository alone and list tags under `registry.tags`",
    ),
    (
        "a repository with a digest",
        "name: x\nbuild:\n  base: { image: debian }\nregistry:\n  repository: \"ghcr.io/team/app@sha256:00\"\n",
        "5:15: repository `ghcr.io/team/app@sha256:00` holds a digest",
        "give the repository alone; `kiln push` prints the digest it pushed",
    ),
    (
        "a port out of range",
        "name: x\nbuild:\n  base: { image: debian }\nregistry:\n  repository: 127.0.0.1:70000/app\n",
        "5:15: invalid registry host `127.0.0.1:70000` in repository `127.0.0.1:70000/app`",
        "a host is letters, digits, `-` and `.`, with an optional `:PORT` (1 to 65535)",
    ),
    (
        "a host with an underscore",
        "name: x\nbuild:\n  base: { image: debian }\nregistry:\n  repository: my_reg.example/app\n",
        "5:15: invalid registry host `my_reg.example` in repository `my_reg.example/app`",
        "a host is letters, digits, `-` and `.`, with an optional `:PORT` (1 to 65535)",
    ),
    (
        "capitals in the path",
        "name: x\nbuild:\n  base: { image: debian }\nregistry:\n  repository: ghcr.io/Team/app\n",
        "5:15: invalid repository path `Team/app`: `Team`",
        PATH_RULE,
    ),
    (
        "a trailing slash",
        "name: x\nbuild:\n  base: { image: debian }\nregistry:\n  repository: ghcr.io/team/\n",
        "5:15: invalid repository path `team/`: an empty component",
        PATH_RULE,
    ),
    (
        "no repository at all",
        "name: x\nbuild:\n  base: { image: debian }\nregistry:\n  tags: [latest]\n",
        "4:1: missing required key `repository` in `registry`",
        "",
    ),
    (
        "an unknown tag variable",
        "name: x\nbuild:\n  base: { image: debian }\nregistry:\n  repository: ghcr.io/team/app\n  tags: [\"{branch}-{commit}\"]\n",
        "6:10: tag `{branch}-{commit}`: unknown tag variable `{commit}`",
        "tag variables are {branch}, {sha}, {sha7}, {tag}, {pr}, {key12}, {date} and {env.NAME}",
    ),
    (
        "an unclosed brace",
        "name: x\nbuild:\n  base: { image: debian }\nregistry:\n  repository: ghcr.io/team/app\n  tags: [\"pr-{pr\"]\n",
        "6:10: tag `pr-{pr`: unclosed `{` in tag template",
        "",
    ),
    (
        "a tag in the snapshot namespace",
        "name: x\nbuild:\n  base: { image: debian }\nregistry:\n  repository: ghcr.io/team/app\n  tags: [latest, cache-main]\n",
        "6:18: tag `cache-main` starts with `cache-`, which kiln keeps for phase snapshots",
        "pick another prefix; `cache: true` pushes the snapshots as `cache-KEY`",
    ),
    (
        "an age without a unit",
        "name: x\nbuild:\n  base: { image: debian }\nregistry:\n  repository: ghcr.io/team/app\n  retention:\n    - { match: \"cache-*\", older_than: 30 }\n",
        "7:39: invalid age `30`",
        AGE,
    ),
    (
        "an age with an unknown unit",
        "name: x\nbuild:\n  base: { image: debian }\nregistry:\n  repository: ghcr.io/team/app\n  retention:\n    - { match: \"cache-*\", older_than: 30y }\n",
        "7:39: invalid age `30y`",
        AGE,
    ),
    (
        "a negative keep",
        "name: x\nbuild:\n  base: { image: debian }\nregistry:\n  repository: ghcr.io/team/app\n  retention:\n    - { match: \"pr-*\", keep: -1 }\n",
        "7:30: `-1` is out of range for `registry.retention[0].keep`: expected 0 to 4294967295",
        "",
    ),
    (
        "a pattern no tag can match",
        "name: x\nbuild:\n  base: { image: debian }\nregistry:\n  repository: ghcr.io/team/app\n  retention:\n    - { match: \"pr/*\", keep: 3 }\n",
        "7:16: retention pattern `pr/*` can match no tag",
        "a pattern is tag characters (letters, digits, `_`, `.`, `-`) and `*` for any run of them",
    ),
    (
        "a rule shadowed by an earlier one",
        "name: x\nbuild:\n  base: { image: debian }\nregistry:\n  repository: ghcr.io/team/app\n  retention:\n    - { match: \"pr-*\", keep: 3 }\n    - { match: \"pr-*\", older_than: 1d }\n",
        "8:16: retention rule 2 never decides: rule 1 matches `pr-*` first",
        "the first rule that matches a tag decides; merge the two rules",
    ),
    (
        "a misspelt key",
        "name: x\nbuild:\n  base: { image: debian }\nregistry:\n  repository: ghcr.io/team/app\n  retention:\n    - { match: \"pr-*\", kep: 3 }\n",
        "7:24: unknown key `kep` in `registry.retention[0]`",
        "did you mean `keep`?",
    ),
];

#[test]
fn each_bad_registry_value_gets_its_message_at_its_place() {
    assert_rows(BAD);
}

const SPEC_EXAMPLE: &str = r#"name: app
build:
  base: { image: debian }
registry:
  repository: 127.0.0.1:5000/team/app     # HOST[:PORT]/PATH
  tags: ["{branch}-{sha7}", "pr-{pr}", "latest"]
  cache: true                            # also push phase snapshots; builds use them
  retention:                             # the first rule that matches a tag decides
    - { match: "pr-*", keep: 20 }
    - { match: "main-*", keep: 10 }
    - { match: "cache-*", older_than: 30d }
"#;

#[test]
fn the_spec_example_reads_into_what_push_and_retention_take() {
    let dir = tempfile::tempdir().unwrap();
    let config = config::parse("kiln.yaml", SPEC_EXAMPLE, dir.path()).expect("valid");
    let registry = config.registry.expect("registry");
    assert_eq!(registry.host_and_path(), ("127.0.0.1:5000", "team/app"));
    assert!(registry.cache);
    assert_eq!(registry.tags, ["{branch}-{sha7}", "pr-{pr}", "latest"]);
    let rule = |pattern: &str, keep: Option<usize>, older_than: Option<u64>| Rule {
        pattern: pattern.into(),
        keep,
        older_than,
    };
    assert_eq!(
        registry.retention_rules(),
        [
            rule("pr-*", Some(20), None),
            rule("main-*", Some(10), None),
            rule("cache-*", None, Some(30 * 86_400)),
        ]
    );
}

#[test]
fn real_world_repositories_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    for repository in [
        "ghcr.io/acme/rust-service",
        "registry.gitlab.com/group/sub.group/project_name",
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/app",
        "localhost:5000/app",
        "127.0.0.1:5000/team/app",
        "docker.io/library/app",
        "europe-docker.pkg.dev/proj-1/repo/image__x",
    ] {
        let yaml = format!(
            "name: x\nbuild:\n  base: {{ image: debian }}\nregistry:\n  repository: {repository}\n"
        );
        let config = config::parse("kiln.yaml", &yaml, dir.path())
            .unwrap_or_else(|d| panic!("{repository}: {d}"));
        let registry = config.registry.unwrap();
        let (host, path) = registry.host_and_path();
        assert_eq!(format!("{host}/{path}"), repository);
    }
}

fn component() -> impl Strategy<Value = String> {
    "[a-z0-9]{1,6}((\\.|_|__|-{1,2})[a-z0-9]{1,6}){0,2}"
}

fn parses(yaml: &str) -> Result<config::Config, String> {
    let dir = tempfile::tempdir().unwrap();
    config::parse("kiln.yaml", yaml, dir.path()).map_err(|d| d.to_string())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A repository built from the reference grammar is valid, and splits
    /// back into the host and path it was built from.
    #[test]
    fn generated_repositories_are_valid(
        labels in prop::collection::vec("[a-z0-9]([a-z0-9-]{0,6}[a-z0-9])?", 1..4),
        port in prop::option::of(1u16..),
        path in prop::collection::vec(component(), 1..4),
    ) {
        let mut host = labels.join(".");
        if labels.len() == 1 && port.is_none() {
            host.push_str(".example");
        }
        if let Some(p) = port {
            host = format!("{host}:{p}");
        }
        let path = path.join("/");
        let repository = format!("{host}/{path}");
        let yaml = format!("name: x\nbuild:\n  base: {{ image: debian }}\nregistry:\n  repository: \"{repository}\"\n");
        prop_assert!(parses(&yaml).is_ok(), "{}: {:?}", repository, parses(&yaml).err());
        prop_assert_eq!(split_repository(&repository), Some((host.as_str(), path.as_str())));
    }

    /// A character a path cannot hold, put anywhere in the path, is refused
    /// with the path rule.
    #[test]
    fn generated_bad_paths_are_refused(
        path in component(),
        bad in prop::sample::select(vec!['A', 'Z', ' ', '!', '#', '+', '~']),
        at in any::<prop::sample::Index>(),
    ) {
        let mut chars: Vec<char> = path.chars().collect();
        chars.insert(at.index(chars.len() + 1), bad);
        let path: String = chars.into_iter().collect();
        let yaml = format!("name: x\nbuild:\n  base: {{ image: debian }}\nregistry:\n  repository: \"ghcr.io/{path}\"\n");
        let err = parses(&yaml).expect_err("refused");
        prop_assert!(err.contains("invalid repository path"), "{}", err);
    }

    /// A template of known variables and literal text passes `check` and
    /// renders, with every variable set, to a valid tag; an unknown
    /// variable anywhere fails it.
    #[test]
    fn generated_templates_are_judged_as_they_render(
        parts in prop::collection::vec(
            prop_oneof![
                "[a-z0-9._-]{1,8}",
                prop::sample::select(vec!["{branch}", "{sha}", "{sha7}", "{tag}", "{pr}", "{key12}", "{date}", "{env.TEAM}"]).prop_map(String::from),
            ],
            1..5,
        ),
        unknown in prop::option::of("[a-z]{3,8}"),
    ) {
        let mut template = parts.concat();
        let known = ["branch", "sha", "sha7", "tag", "pr", "key12", "date", "env"];
        let unknown = unknown.filter(|u| !known.contains(&u.as_str()));
        if let Some(u) = &unknown {
            template.push_str(&format!("{{{u}}}"));
        }
        let yaml = format!("name: x\nbuild:\n  base: {{ image: debian }}\nregistry:\n  repository: ghcr.io/a/b\n  tags: [\"x{template}\"]\n");
        match unknown {
            Some(u) => {
                let err = parses(&yaml).expect_err("unknown variable");
                prop_assert!(err.contains(&format!("unknown tag variable `{{{u}}}`")), "{}", err);
            }
            None => {
                prop_assert!(parses(&yaml).is_ok(), "{:?}", parses(&yaml).err());
                let vars = tags::TagVars {
                    branch: Some("feature/x".into()),
                    sha: Some("abcdef0123456789".into()),
                    tag: Some("v1".into()),
                    pr: Some("12".into()),
                    key12: Some("0123456789ab".into()),
                    date: Some("20261203".into()),
                    env: [("TEAM".to_string(), "core".to_string())].into(),
                };
                match tags::render(&format!("x{template}"), &vars) {
                    Ok(tags::Rendered::Tag(t)) => prop_assert!(tags::is_valid(&t), "{}", t),
                    other => prop_assert!(false, "{:?}", other),
                }
            }
        }
    }

    /// Any age in any unit passes, and reads as its seconds.
    #[test]
    fn generated_ages_are_accepted(n in 0u64..100_000, unit in 0usize..5) {
        let (suffix, factor) = [("s", 1), ("m", 60), ("h", 3600), ("d", 86_400), ("w", 604_800)][unit];
        let yaml = format!("name: x\nbuild:\n  base: {{ image: debian }}\nregistry:\n  repository: ghcr.io/a/b\n  retention: [{{ match: \"*\", older_than: {n}{suffix} }}]\n");
        let config = parses(&yaml).map_err(TestCaseError::fail)?;
        prop_assert_eq!(config.registry.unwrap().retention_rules()[0].older_than, Some(n * factor));
    }
}
