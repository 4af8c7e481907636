//! Promote and retention carried out on a registry (`registry/promote.rs`,
//! `registry/retain.rs`), each case run against the fake and a real
//! distribution registry on loopback, over seeded generated tags.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Cursor;

use kiln_core::registry::fake::FakeRegistry;
use kiln_core::registry::oci::{Credentials, OciRegistry};
use kiln_core::registry::retain::{self, LABEL_CREATED, Running};
use kiln_core::registry::retention::{Rule, Why};
use kiln_core::registry::{
    MEDIA_CONFIG, MEDIA_LAYER, MEDIA_MANIFEST, Manifest, Registry, RegistryError, digest_of,
    promote,
};
use kiln_core::testing::{LocalRegistry, RegistryOptions, unique};

#[derive(Clone, Copy)]
enum Kind {
    Fake,
    Real,
}

struct Under {
    registry: Box<dyn Registry>,
    fake: Option<std::sync::Arc<FakeRegistry>>,
    _server: Option<LocalRegistry>,
}

/// Lets a test share the fake it counts uploads on.
struct Shared(std::sync::Arc<FakeRegistry>);

macro_rules! forward {
    ($($f:ident($($a:ident: $t:ty),*) -> $r:ty;)*) => {
        impl Registry for Shared {
            fn host(&self) -> &str { self.0.host() }
            $( fn $f(&self, $($a: $t),*) -> $r { self.0.$f($($a),*) } )*
        }
    };
}

forward! {
    blob_size(repo: &str, digest: &str) -> kiln_core::registry::RegistryResult<Option<u64>>;
    blob_upload(repo: &str, digest: &str, size: u64, body: &mut (dyn std::io::Read + Send)) -> kiln_core::registry::RegistryResult<()>;
    blob_mount(repo: &str, digest: &str, from_repo: &str) -> kiln_core::registry::RegistryResult<bool>;
    blob_get(repo: &str, digest: &str, sink: &mut dyn std::io::Write) -> kiln_core::registry::RegistryResult<u64>;
    manifest_get(repo: &str, reference: &str) -> kiln_core::registry::RegistryResult<Option<Manifest>>;
    manifest_put(repo: &str, reference: &str, manifest: &Manifest) -> kiln_core::registry::RegistryResult<String>;
    manifest_delete(repo: &str, digest: &str) -> kiln_core::registry::RegistryResult<()>;
    tags(repo: &str) -> kiln_core::registry::RegistryResult<Vec<String>>;
}

fn start(kind: Kind, deletes: bool) -> Under {
    match kind {
        Kind::Fake => {
            let fake = FakeRegistry::new();
            let fake = std::sync::Arc::new(if deletes {
                fake
            } else {
                fake.without_deletes()
            });
            Under {
                registry: Box::new(Shared(fake.clone())),
                fake: Some(fake),
                _server: None,
            }
        }
        Kind::Real => {
            let server = LocalRegistry::start(&RegistryOptions {
                deletes,
                user: None,
            })
            .unwrap_or_else(|e| panic!("these tests need docker-registry: {e}"));
            Under {
                registry: Box::new(OciRegistry::with_credentials(
                    &server.host,
                    Credentials::Anonymous,
                )),
                fake: None,
                _server: Some(server),
            }
        }
    }
}

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod fake_registry {
            $( #[test] fn $name() { super::$name(super::Kind::Fake); } )*
        }
        mod real_registry {
            $( #[test] fn $name() { super::$name(super::Kind::Real); } )*
        }
    };
}

both!(
    promote_points_a_tag_at_the_same_digest_and_moves_no_blob,
    promote_by_digest_and_of_a_missing_source,
    retention_over_30_generated_tags_dry_run_then_real_run,
    retention_on_a_registry_without_deletes_says_so_and_deletes_nothing,
);

fn repo() -> String {
    unique("remote-ops/app").replace('_', "-")
}

fn upload(r: &dyn Registry, repo: &str, bytes: &[u8]) -> String {
    let digest = digest_of(bytes);
    if r.blob_size(repo, &digest).expect("head").is_none() {
        r.blob_upload(
            repo,
            &digest,
            bytes.len() as u64,
            &mut Cursor::new(bytes.to_vec()),
        )
        .expect("upload");
    }
    digest
}

/// An image whose config carries `labels`, over one layer, all uploaded.
fn image(r: &dyn Registry, repo: &str, layer: &[u8], labels: &BTreeMap<&str, String>) -> Manifest {
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "created": "2001-01-01T00:00:00Z",
        "rootfs": { "type": "layers", "diff_ids": [digest_of(layer)] },
        "config": { "Labels": labels }
    })
    .to_string();
    let config_digest = upload(r, repo, config.as_bytes());
    let layer_digest = upload(r, repo, layer);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": { "mediaType": MEDIA_CONFIG, "digest": config_digest, "size": config.len() },
        "layers": [{ "mediaType": MEDIA_LAYER, "digest": layer_digest, "size": layer.len() }],
    });
    Manifest::new(MEDIA_MANIFEST, serde_json::to_vec(&manifest).expect("json"))
}

/// RFC 3339 of unix seconds `t` (days from the civil date, inverted).
fn rfc3339(t: i64) -> String {
    let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// A tiny seeded generator (xorshift), so a failing case can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn promote_points_a_tag_at_the_same_digest_and_moves_no_blob(kind: Kind) {
    let u = start(kind, true);
    let r = &*u.registry;
    let repo = repo();
    let m = image(r, &repo, b"promoted layer", &BTreeMap::new());
    r.manifest_put(&repo, "main-abc1234", &m).expect("put");
    let before_blobs = u.fake.as_ref().map(|f| f.uploaded());
    let digest = promote::promote(r, &repo, "main-abc1234", "prod").expect("promote");
    assert_eq!(digest, m.digest);
    let prod = r.manifest_get(&repo, "prod").expect("get").expect("prod");
    assert_eq!(prod.digest, m.digest);
    assert_eq!(prod.bytes, m.bytes, "the same manifest bytes");
    if let Some(f) = &u.fake {
        assert_eq!(Some(f.uploaded()), before_blobs, "no blob moved");
    }
    // Promoting again over an existing tag moves it.
    let other = image(r, &repo, b"another layer", &BTreeMap::new());
    r.manifest_put(&repo, "main-def5678", &other).expect("put");
    let digest = promote::promote(r, &repo, "main-def5678", "prod").expect("promote");
    assert_eq!(digest, other.digest);
    assert_eq!(
        r.manifest_get(&repo, "prod")
            .expect("get")
            .expect("prod")
            .digest,
        other.digest
    );
    assert_eq!(
        r.manifest_get(&repo, "main-abc1234")
            .expect("get")
            .expect("source stays")
            .digest,
        m.digest
    );
}

fn promote_by_digest_and_of_a_missing_source(kind: Kind) {
    let u = start(kind, true);
    let r = &*u.registry;
    let repo = repo();
    let m = image(r, &repo, b"by digest", &BTreeMap::new());
    r.manifest_put(&repo, "pr-7", &m).expect("put");
    let src = promote::source_reference(&format!("@{}", m.digest)).expect("a digest");
    assert_eq!(
        promote::promote(r, &repo, &src, "staging").expect("promote"),
        m.digest
    );
    let err = promote::promote(r, &repo, "pr-8", "staging").expect_err("no pr-8");
    assert!(matches!(err, RegistryError::NotFound { .. }), "{err:?}");
    assert!(err.to_string().contains("pr-8"), "{err}");
    assert_eq!(
        r.manifest_get(&repo, "staging")
            .expect("get")
            .expect("staging stays")
            .digest,
        m.digest
    );
}

/// 30 tags of three kinds (pr-N, main-N, cache-N) with generated creation
/// times, two of them sharing a manifest with `latest` (no rule matches it,
/// so it is kept), one that a "local instance" runs, and one without a
/// creation label.
fn retention_over_30_generated_tags_dry_run_then_real_run(kind: Kind) {
    let seed = std::env::var("KILN_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::process::id() as u64 | 1);
    let mut rng = Rng(seed);
    let u = start(kind, true);
    let r = &*u.registry;
    let repo = repo();
    let now: i64 = 1_800_000_000;
    let day = 86_400;
    let mut tags = Vec::new();
    for i in 0..30 {
        let tag = match i % 3 {
            0 => format!("pr-{i}"),
            1 => format!("main-{i}"),
            _ => format!("cache-{i:02}"),
        };
        let created = now - (rng.below(60) as i64) * day - rng.below(day as u64) as i64;
        // One tag has no creation label: retention counts it as oldest.
        tags.push((tag, Some(created).filter(|_| i != 4)));
    }
    let mut by_tag = BTreeMap::new();
    for (i, (tag, created)) in tags.iter().enumerate() {
        let mut labels = BTreeMap::new();
        if let Some(created) = created {
            labels.insert(LABEL_CREATED, rfc3339(*created));
        }
        labels.insert("dev.kiln.key", format!("key-{i}"));
        let m = image(r, &repo, format!("layer {i}").as_bytes(), &labels);
        r.manifest_put(&repo, tag, &m).expect("put");
        by_tag.insert(tag.clone(), m.digest.clone());
    }
    // The oldest main and the oldest pr share `latest`'s manifest.
    let oldest = |prefix: &str| {
        tags.iter()
            .filter(|(t, _)| t.starts_with(prefix))
            .min_by_key(|(t, c)| (*c, t.clone()))
            .map(|(t, _)| t.clone())
            .expect("a tag")
    };
    let shared_tag = oldest("main-");
    let shared = r
        .manifest_get(&repo, &shared_tag)
        .expect("get")
        .expect("the shared one");
    r.manifest_put(&repo, "latest", &shared).expect("latest");
    // A local instance runs the oldest pr's image (known by its key).
    let running_tag = oldest("pr-");
    let running_index = tags.iter().position(|(t, _)| *t == running_tag).unwrap();
    let running = Running {
        keys: BTreeSet::from([format!("key-{running_index}")]),
        digests: BTreeSet::new(),
    };
    let rules = vec![
        Rule {
            pattern: "pr-*".into(),
            keep: Some(4),
            older_than: None,
        },
        Rule {
            pattern: "main-*".into(),
            keep: Some(3),
            older_than: None,
        },
        Rule {
            pattern: "cache-*".into(),
            keep: None,
            older_than: Some(30 * day as u64),
        },
    ];
    let before = r.tags(&repo).expect("tags");
    assert_eq!(before.len(), 31, "seed {seed}");

    // The dry run: list and decide, delete nothing.
    let listed = retain::list(r, &repo).expect("list");
    assert_eq!(listed.len(), 31);
    let decisions = retain::decide(&rules, &listed, now, &running);
    assert_eq!(
        r.tags(&repo).expect("tags"),
        before,
        "a dry run changes nothing"
    );
    assert_eq!(decisions.len(), 31);

    // What the rules should keep, worked out here from the generated times.
    let mut expect_kept: BTreeSet<String> = BTreeSet::from(["latest".to_string()]);
    for (prefix, n) in [("pr-", 4), ("main-", 3)] {
        let mut of: Vec<&(String, Option<i64>)> =
            tags.iter().filter(|(t, _)| t.starts_with(prefix)).collect();
        of.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        expect_kept.extend(of.iter().take(n).map(|(t, _)| t.clone()));
    }
    for (tag, created) in &tags {
        if tag.starts_with("cache-") && created.is_some_and(|c| now - c <= 30 * day) {
            expect_kept.insert(tag.clone());
        }
    }
    expect_kept.insert(shared_tag.clone());
    expect_kept.insert(running_tag.clone());
    let kept: BTreeSet<String> = decisions
        .iter()
        .filter(|d| d.keep)
        .map(|d| d.tag.clone())
        .collect();
    assert_eq!(kept, expect_kept, "seed {seed}");
    let why = |t: &str| decisions.iter().find(|d| d.tag == t).unwrap().why.clone();
    assert!(
        matches!(why(&shared_tag), Why::SharedWith { ref tag, .. } if tag == "latest"),
        "{:?} seed {seed}",
        why(&shared_tag)
    );
    assert!(
        matches!(why(&running_tag), Why::InUse { .. }),
        "seed {seed}"
    );

    // The real run leaves exactly the kept set, and the shared digest.
    let deleted = retain::apply(r, &repo, &decisions).expect("apply");
    assert!(!deleted.is_empty(), "seed {seed}");
    let after: BTreeSet<String> = r.tags(&repo).expect("tags").into_iter().collect();
    assert_eq!(after, expect_kept, "seed {seed}");
    assert_eq!(
        r.manifest_get(&repo, "latest")
            .expect("get")
            .expect("latest")
            .digest,
        by_tag[&shared_tag]
    );
    for d in &deleted {
        assert_eq!(r.manifest_get(&repo, d).expect("get"), None, "{d} is gone");
    }
    // A second run deletes nothing more.
    let again = retain::decide(
        &rules,
        &retain::list(r, &repo).expect("list"),
        now,
        &running,
    );
    assert!(again.iter().all(|d| d.keep), "seed {seed}: {again:?}");
}

fn retention_on_a_registry_without_deletes_says_so_and_deletes_nothing(kind: Kind) {
    let u = start(kind, false);
    let r = &*u.registry;
    let repo = repo();
    for i in 0..3 {
        let m = image(r, &repo, format!("l{i}").as_bytes(), &BTreeMap::new());
        r.manifest_put(&repo, &format!("pr-{i}"), &m).expect("put");
    }
    let rules = [Rule {
        pattern: "pr-*".into(),
        keep: Some(1),
        older_than: None,
    }];
    let listed = retain::list(r, &repo).expect("list");
    let decisions = retain::decide(&rules, &listed, 0, &Running::default());
    assert_eq!(decisions.iter().filter(|d| !d.keep).count(), 2);
    let err = retain::apply(r, &repo, &decisions).expect_err("deletes are off");
    assert!(
        matches!(err, RegistryError::DeleteDisabled { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("does not allow deletes"), "{err}");
    assert_eq!(r.tags(&repo).expect("tags").len(), 3);
}

#[test]
fn rfc3339_round_trips_through_the_engines_parser() {
    for t in [0, 86_399, 951_782_400, 1_709_208_001, 1_800_000_000] {
        assert_eq!(
            kiln_core::instances::status::unix_seconds(&rfc3339(t)),
            Some(t as u64),
            "{t}"
        );
    }
}
