//! One contract suite for every `Registry`: each check is written once and
//! run against both `FakeRegistry` and a real distribution 2.8 registry
//! (Debian's `docker-registry`) on loopback, so the fake cannot drift from
//! what a registry does. The checks that need a server (credentials) run
//! against the real one only.

use std::io::Cursor;

use kiln_core::registry::fake::FakeRegistry;
use kiln_core::registry::oci::{Credentials, OciRegistry};
use kiln_core::registry::{
    MEDIA_CONFIG, MEDIA_LAYER, MEDIA_MANIFEST, Manifest, Registry, RegistryError, digest_of,
};
use kiln_core::testing::{LocalRegistry, RegistryOptions, unique, write_docker_config};

#[derive(Clone, Copy)]
enum Kind {
    Fake,
    Real,
}

/// A registry under test, and the server behind it (kept alive by this).
struct Under {
    registry: Box<dyn Registry>,
    _server: Option<LocalRegistry>,
}

impl std::ops::Deref for Under {
    type Target = dyn Registry;
    fn deref(&self) -> &Self::Target {
        &*self.registry
    }
}

fn start(kind: Kind, deletes: bool) -> Under {
    match kind {
        Kind::Fake => {
            let fake = FakeRegistry::new();
            let fake = if deletes {
                fake
            } else {
                fake.without_deletes()
            };
            Under {
                registry: Box::new(fake),
                _server: None,
            }
        }
        Kind::Real => {
            let options = RegistryOptions {
                deletes,
                user: None,
            };
            let server = LocalRegistry::start(&options)
                .unwrap_or_else(|e| panic!("the contract suite needs docker-registry: {e}"));
            // Chunks of 1 KiB, so the blobs below go up in several PATCHes.
            let client = OciRegistry::with_credentials(&server.host, Credentials::Anonymous)
                .with_chunk_size(1024);
            Under {
                registry: Box::new(client),
                _server: Some(server),
            }
        }
    }
}

/// Writes each contract check once and runs it against both registries.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod fake_registry {
            $( #[test] fn $name() { super::$name(super::Kind::Fake); } )*
        }
        mod real_registry {
            $( #[test] fn $name() { super::$name(super::Kind::Real); } )*
        }
    };
}

contract!(
    an_uploaded_blob_exists_with_its_size_and_reads_back,
    a_large_blob_goes_up_in_chunks_and_reads_back,
    a_blob_whose_digest_is_wrong_is_refused,
    a_mount_links_a_blob_without_uploading_it,
    a_manifest_round_trips_by_tag_and_by_digest,
    a_manifest_digest_is_looked_up_by_tag_and_by_digest,
    a_manifest_naming_a_missing_blob_is_refused,
    tags_are_listed_sorted_and_an_unknown_repository_has_none,
    a_second_tag_points_at_the_same_digest,
    deleting_a_manifest_removes_every_tag_pointing_at_it,
    a_registry_without_deletes_says_so,
    a_registry_that_is_down_is_unreachable,
);

fn repo() -> String {
    unique("kiln-test/contract").replace('_', "-")
}

fn upload(r: &dyn Registry, repo: &str, bytes: &[u8]) -> String {
    let digest = digest_of(bytes);
    r.blob_upload(
        repo,
        &digest,
        bytes.len() as u64,
        &mut Cursor::new(bytes.to_vec()),
    )
    .expect("upload");
    digest
}

/// A manifest over one config and the given layers, all uploaded to `repo`.
fn image(r: &dyn Registry, repo: &str, layers: &[&[u8]]) -> Manifest {
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": { "type": "layers", "diff_ids": layers.iter().map(|l| digest_of(l)).collect::<Vec<_>>() },
        "config": {}
    })
    .to_string();
    let config_digest = upload(r, repo, config.as_bytes());
    let layers: Vec<_> = layers
        .iter()
        .map(|l| {
            let d = upload(r, repo, l);
            serde_json::json!({ "mediaType": MEDIA_LAYER, "digest": d, "size": l.len() })
        })
        .collect();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": { "mediaType": MEDIA_CONFIG, "digest": config_digest, "size": config.len() },
        "layers": layers,
    });
    Manifest::new(MEDIA_MANIFEST, serde_json::to_vec(&manifest).expect("json"))
}

fn an_uploaded_blob_exists_with_its_size_and_reads_back(kind: Kind) {
    let r = start(kind, true);
    let repo = repo();
    let bytes = b"hello kiln".to_vec();
    let digest = digest_of(&bytes);
    assert_eq!(r.blob_size(&repo, &digest).expect("head"), None);
    upload(&*r, &repo, &bytes);
    assert_eq!(
        r.blob_size(&repo, &digest).expect("head"),
        Some(bytes.len() as u64)
    );
    let mut out = Vec::new();
    assert_eq!(
        r.blob_get(&repo, &digest, &mut out).expect("get"),
        bytes.len() as u64
    );
    assert_eq!(out, bytes);
}

fn a_large_blob_goes_up_in_chunks_and_reads_back(kind: Kind) {
    let r = start(kind, true);
    let repo = repo();
    // Not a multiple of the chunk, so the last chunk is short.
    let bytes: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
    let digest = upload(&*r, &repo, &bytes);
    let mut out = Vec::new();
    r.blob_get(&repo, &digest, &mut out).expect("get");
    assert_eq!(digest_of(&out), digest);
}

fn a_blob_whose_digest_is_wrong_is_refused(kind: Kind) {
    let r = start(kind, true);
    let repo = repo();
    let wrong = digest_of(b"something else");
    let err = r
        .blob_upload(&repo, &wrong, 4, &mut Cursor::new(b"abcd".to_vec()))
        .expect_err("a wrong digest");
    assert!(matches!(err, RegistryError::Refused { .. }), "{err:?}");
    assert_eq!(r.blob_size(&repo, &wrong).expect("head"), None);
}

fn a_mount_links_a_blob_without_uploading_it(kind: Kind) {
    let r = start(kind, true);
    let (from, to) = (repo(), repo());
    let digest = upload(&*r, &from, b"shared layer");
    assert_eq!(r.blob_size(&to, &digest).expect("head"), None);
    assert!(r.blob_mount(&to, &digest, &from).expect("mount"));
    assert_eq!(r.blob_size(&to, &digest).expect("head"), Some(12));
    let unknown = digest_of(b"nowhere");
    assert!(
        !r.blob_mount(&to, &unknown, &from)
            .expect("mount of an unknown blob")
    );
}

fn a_manifest_round_trips_by_tag_and_by_digest(kind: Kind) {
    let r = start(kind, true);
    let repo = repo();
    let m = image(&*r, &repo, &[b"layer one", b"layer two"]);
    let digest = r.manifest_put(&repo, "v1", &m).expect("put");
    assert_eq!(digest, m.digest);
    let by_tag = r.manifest_get(&repo, "v1").expect("get").expect("by tag");
    assert_eq!(by_tag.bytes, m.bytes);
    assert_eq!(by_tag.digest, m.digest);
    assert_eq!(by_tag.media_type, MEDIA_MANIFEST);
    let by_digest = r
        .manifest_get(&repo, &digest)
        .expect("get")
        .expect("by digest");
    assert_eq!(by_digest.bytes, m.bytes);
    assert_eq!(r.manifest_get(&repo, "v2").expect("get"), None);
}

fn a_manifest_digest_is_looked_up_by_tag_and_by_digest(kind: Kind) {
    let r = start(kind, true);
    let repo = repo();
    assert_eq!(r.manifest_digest(&repo, "cache-0").expect("head"), None);
    let m = image(&*r, &repo, &[b"looked up"]);
    r.manifest_put(&repo, "cache-0", &m).expect("put");
    assert_eq!(
        r.manifest_digest(&repo, "cache-0").expect("head"),
        Some(m.digest.clone())
    );
    assert_eq!(
        r.manifest_digest(&repo, &m.digest).expect("head"),
        Some(m.digest.clone())
    );
    assert_eq!(r.manifest_digest(&repo, "cache-1").expect("head"), None);
}

fn a_manifest_naming_a_missing_blob_is_refused(kind: Kind) {
    let r = start(kind, true);
    let repo = repo();
    let m = image(&*r, &repo, &[b"present"]);
    let text = String::from_utf8(m.bytes).expect("utf8");
    let missing = digest_of(b"absent");
    let broken = text.replace(&digest_of(b"present"), &missing);
    let broken = Manifest::new(MEDIA_MANIFEST, broken.into_bytes());
    let err = r
        .manifest_put(&repo, "broken", &broken)
        .expect_err("a missing blob");
    assert!(matches!(err, RegistryError::Refused { .. }), "{err:?}");
}

fn tags_are_listed_sorted_and_an_unknown_repository_has_none(kind: Kind) {
    let r = start(kind, true);
    let repo = repo();
    assert_eq!(r.tags(&repo).expect("tags"), Vec::<String>::new());
    let m = image(&*r, &repo, &[b"a layer"]);
    for tag in ["pr-2", "main-abc", "latest", "pr-10"] {
        r.manifest_put(&repo, tag, &m).expect("put");
    }
    assert_eq!(
        r.tags(&repo).expect("tags"),
        ["latest", "main-abc", "pr-10", "pr-2"]
    );
}

fn a_second_tag_points_at_the_same_digest(kind: Kind) {
    let r = start(kind, true);
    let repo = repo();
    let m = image(&*r, &repo, &[b"promoted"]);
    r.manifest_put(&repo, "staging", &m).expect("put");
    // Promote: read the manifest, put the same bytes under another tag.
    let got = r
        .manifest_get(&repo, "staging")
        .expect("get")
        .expect("staging");
    let digest = r.manifest_put(&repo, "prod", &got).expect("put");
    assert_eq!(digest, m.digest);
    assert_eq!(
        r.manifest_get(&repo, "prod")
            .expect("get")
            .expect("prod")
            .digest,
        m.digest
    );
}

fn deleting_a_manifest_removes_every_tag_pointing_at_it(kind: Kind) {
    let r = start(kind, true);
    let repo = repo();
    let gone = image(&*r, &repo, &[b"old"]);
    let kept = image(&*r, &repo, &[b"new"]);
    r.manifest_put(&repo, "a", &gone).expect("put");
    r.manifest_put(&repo, "b", &gone).expect("put");
    r.manifest_put(&repo, "c", &kept).expect("put");
    r.manifest_delete(&repo, &gone.digest).expect("delete");
    assert_eq!(r.tags(&repo).expect("tags"), ["c"]);
    assert_eq!(r.manifest_get(&repo, &gone.digest).expect("get"), None);
    let err = r
        .manifest_delete(&repo, &gone.digest)
        .expect_err("deleted twice");
    assert!(matches!(err, RegistryError::NotFound { .. }), "{err:?}");
}

fn a_registry_without_deletes_says_so(kind: Kind) {
    let r = start(kind, false);
    let repo = repo();
    let m = image(&*r, &repo, &[b"stays"]);
    r.manifest_put(&repo, "t", &m).expect("put");
    let err = r
        .manifest_delete(&repo, &m.digest)
        .expect_err("deletes are off");
    assert!(
        matches!(err, RegistryError::DeleteDisabled { .. }),
        "{err:?}"
    );
    assert!(err.hint().is_some_and(|h| h.contains("delete")));
    assert_eq!(r.tags(&repo).expect("tags"), ["t"]);
}

fn a_registry_that_is_down_is_unreachable(kind: Kind) {
    let r: Box<dyn Registry> = match kind {
        Kind::Fake => Box::new(FakeRegistry::new().down()),
        Kind::Real => {
            // A port nothing listens on: bound, read, released.
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            Box::new(OciRegistry::with_credentials(
                &format!("127.0.0.1:{port}"),
                Credentials::Anonymous,
            ))
        }
    };
    let err = r.tags("kiln-test/down").expect_err("down");
    assert!(matches!(err, RegistryError::Unreachable { .. }), "{err:?}");
    assert!(err.to_string().contains(r.host()), "{err}");
    assert!(err.hint().is_some());
}

// Against the real registry only: what needs a server that checks credentials.

fn with_auth() -> (LocalRegistry, tempfile::TempDir) {
    let options = RegistryOptions {
        deletes: true,
        user: Some(("kiln".to_string(), "s3cret-pw".to_string())),
    };
    let server = LocalRegistry::start(&options).expect("docker-registry with htpasswd");
    (server, tempfile::tempdir().expect("tempdir"))
}

#[test]
fn real_registry_credentials_from_docker_config_json_are_used() {
    let (server, docker) = with_auth();
    write_docker_config(docker.path(), &server.host, "kiln", "s3cret-pw").expect("config.json");
    let r = OciRegistry::with_credentials(
        &server.host,
        Credentials::DockerConfig(Some(docker.path().to_path_buf())),
    );
    let repo = repo();
    let m = image(&r, &repo, &[b"authorized"]);
    r.manifest_put(&repo, "ok", &m).expect("put");
    assert_eq!(r.tags(&repo).expect("tags"), ["ok"]);
}

#[test]
fn real_registry_wrong_credentials_are_unauthorized_with_a_login_hint() {
    let (server, docker) = with_auth();
    write_docker_config(docker.path(), &server.host, "kiln", "wrong").expect("config.json");
    let r = OciRegistry::with_credentials(
        &server.host,
        Credentials::DockerConfig(Some(docker.path().to_path_buf())),
    );
    let err = r.tags("kiln-test/auth").expect_err("wrong password");
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err:?}");
    let hint = err.hint().expect("a hint");
    assert!(
        hint.contains(&format!("docker login {}", server.host)),
        "{hint}"
    );
    let shown = format!("{err} {hint}");
    assert!(
        !shown.contains("wrong"),
        "the message shows no credential: {shown}"
    );
}

#[test]
fn real_registry_without_credentials_is_unauthorized() {
    let (server, _docker) = with_auth();
    let r = OciRegistry::with_credentials(&server.host, Credentials::Anonymous);
    let err = r
        .blob_size("kiln-test/auth", &digest_of(b"x"))
        .expect_err("no credentials");
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err:?}");
}
