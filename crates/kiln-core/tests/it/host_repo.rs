//! `RepoCache` against real git repositories made in temp dirs.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use kiln_core::sources::repo::{RepoCache, RepoError};

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=kiln", "-c", "user.email=kiln@example.com"])
        .args(["-c", "init.defaultBranch=main", "-c", "tag.gpgSign=false"])
        .args(["-c", "commit.gpgSign=false"])
        .args(args)
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A repository `app` inside a fake habitat directory, with a first commit
/// holding a README, an executable script and a symlink.
struct Fixture {
    _tmp: tempfile::TempDir,
    habitat: PathBuf,
    repo: PathBuf,
    cache: RepoCache,
}

impl Fixture {
    fn new() -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let habitat = tmp.path().join("habitat");
        let repo = habitat.join("app");
        std::fs::create_dir_all(&repo).expect("mkdir");
        git(&repo, &["init", "--quiet"]);
        std::fs::write(repo.join("README.md"), "hello\n").expect("write");
        std::fs::create_dir(repo.join("bin")).expect("mkdir");
        std::fs::write(repo.join("bin/run"), "#!/bin/sh\necho run\n").expect("write");
        std::fs::set_permissions(repo.join("bin/run"), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        std::os::unix::fs::symlink("README.md", repo.join("LINK")).expect("symlink");
        git(&repo, &["add", "-A"]);
        git(&repo, &["commit", "--quiet", "-m", "first"]);
        let cache = RepoCache::new(tmp.path().join("cache"));
        Fixture {
            _tmp: tmp,
            habitat,
            repo,
            cache,
        }
    }

    fn head(&self) -> String {
        git(&self.repo, &["rev-parse", "HEAD"])
    }

    fn commit(&self, file: &str, content: &str) -> String {
        std::fs::write(self.repo.join(file), content).expect("write");
        git(&self.repo, &["add", "-A"]);
        git(&self.repo, &["commit", "--quiet", "-m", file]);
        self.head()
    }

    fn resolve(&self, r: Option<&str>) -> Result<String, RepoError> {
        self.cache.resolve("app", r, &self.habitat)
    }
}

#[test]
fn resolves_default_head_branch_tags_and_shas() {
    let f = Fixture::new();
    let first = f.head();
    git(&f.repo, &["tag", "light"]);
    git(&f.repo, &["tag", "-a", "v1", "-m", "release 1"]);
    git(&f.repo, &["branch", "stable"]);
    let second = f.commit("CHANGES", "two\n");

    assert_eq!(f.resolve(None).expect("HEAD"), second);
    assert_eq!(f.resolve(Some("main")).expect("branch"), second);
    assert_eq!(f.resolve(Some("stable")).expect("branch"), first);
    assert_eq!(f.resolve(Some("light")).expect("lightweight tag"), first);
    // An annotated tag resolves to its commit, not the tag object.
    assert_eq!(f.resolve(Some("v1")).expect("annotated tag"), first);
    assert_eq!(f.resolve(Some("refs/tags/v1")).expect("full ref"), first);
    assert_eq!(f.resolve(Some(&first)).expect("full sha"), first);
    assert_eq!(f.resolve(Some(&first[..10])).expect("short sha"), first);
}

#[test]
fn resolve_sees_a_moved_branch() {
    let f = Fixture::new();
    let first = f.resolve(Some("main")).expect("resolve");
    // Fetch into the mirror once, so a stale mirror cannot be what answers.
    f.cache
        .archive("app", &first, &f.habitat, "/work/app", 0, 0)
        .expect("archive");
    let second = f.commit("NEW", "new\n");
    assert_ne!(first, second);
    assert_eq!(f.resolve(Some("main")).expect("resolve"), second);
}

#[test]
fn resolve_accepts_absolute_paths_and_file_urls() {
    let f = Fixture::new();
    let head = f.head();
    let abs = f.repo.to_string_lossy().into_owned();
    let other_dir = Path::new("/");
    assert_eq!(f.cache.resolve(&abs, None, other_dir).expect("abs"), head);
    let url = format!("file://{abs}");
    assert_eq!(
        f.cache
            .resolve(&url, Some("main"), other_dir)
            .expect("file url"),
        head
    );
}

#[test]
fn a_missing_ref_names_the_url_the_ref_and_what_exists() {
    let f = Fixture::new();
    git(&f.repo, &["tag", "v1"]);
    let err = f.resolve(Some("mian")).expect_err("no such ref");
    assert!(matches!(err, RepoError::RefNotFound { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("`mian`") && msg.contains("`app`"), "{msg}");
    assert!(
        msg.contains("hint:") && msg.contains("`main`") && msg.contains("`v1`"),
        "{msg}"
    );
}

#[test]
fn a_missing_local_repository_says_the_path_does_not_exist() {
    let f = Fixture::new();
    let err = f
        .cache
        .resolve("nope", Some("main"), &f.habitat)
        .expect_err("no repo");
    let msg = err.to_string();
    assert!(
        msg.contains("repo `nope`: the path `") && msg.contains("/habitat/nope` does not exist"),
        "{msg}"
    );
}

#[test]
fn archive_of_an_unknown_commit_fails_clearly() {
    let f = Fixture::new();
    let sha = "0123456789abcdef0123456789abcdef01234567";
    assert_eq!(f.resolve(Some(sha)).expect("full sha passes"), sha);
    let err = f
        .cache
        .archive("app", sha, &f.habitat, "/work/app", 0, 0)
        .expect_err("unknown commit");
    assert!(matches!(err, RepoError::CommitNotFound { .. }), "{err:?}");
}

struct Entry {
    path: String,
    uid: u64,
    gid: u64,
    mode: u32,
    kind: tar::EntryType,
    link: Option<String>,
}

fn entries(file: &Path) -> Vec<Entry> {
    let mut ar = tar::Archive::new(std::fs::File::open(file).expect("open"));
    ar.entries()
        .expect("entries")
        .map(|e| {
            let e = e.expect("entry");
            let h = e.header();
            Entry {
                path: e.path().expect("path").to_string_lossy().into_owned(),
                uid: h.uid().expect("uid"),
                gid: h.gid().expect("gid"),
                mode: h.mode().expect("mode"),
                kind: h.entry_type(),
                link: e
                    .link_name()
                    .expect("link")
                    .map(|l| l.to_string_lossy().into_owned()),
            }
        })
        .collect()
}

#[test]
fn archive_holds_a_working_clone_under_dest_owned_by_uid_gid() {
    let f = Fixture::new();
    let first = f.head();
    let second = f.commit("CHANGES", "two\n");
    let tar = f
        .cache
        .archive("app", &first, &f.habitat, "/work/app", 1000, 1001)
        .expect("archive");
    let list = entries(tar.path());

    let paths: Vec<&str> = list.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths[0].trim_end_matches('/'), "work/app", "{paths:?}");
    assert!(
        list.iter().all(|e| e.path.starts_with("work/app")),
        "{paths:?}"
    );
    assert!(list.iter().all(|e| e.uid == 1000 && e.gid == 1001));
    let find = |p: &str| {
        list.iter()
            .find(|e| e.path.trim_end_matches('/') == p)
            .unwrap_or_else(|| panic!("no `{p}` in {paths:?}"))
    };
    assert_eq!(find("work/app/README.md").mode & 0o777, 0o644);
    assert_eq!(find("work/app/bin/run").mode & 0o777, 0o755);
    assert_eq!(find("work/app").mode & 0o777, 0o755);
    let link = find("work/app/LINK");
    assert_eq!(link.kind, tar::EntryType::Symlink);
    assert_eq!(link.link.as_deref(), Some("README.md"));
    assert_eq!(find("work/app/.git").kind, tar::EntryType::Directory);
    // The archive is of `first`: the later file is not checked out.
    assert!(!paths.iter().any(|p| p.ends_with("CHANGES")));

    // Unpacked, it is a clean clone at the commit with `origin` set.
    let out = tempfile::tempdir().expect("tempdir");
    let status = Command::new("tar")
        .args(["--no-same-owner", "-xf"])
        .arg(tar.path())
        .arg("-C")
        .arg(out.path())
        .status()
        .expect("tar");
    assert!(status.success());
    let clone = out.path().join("work/app");
    assert_eq!(git(&clone, &["rev-parse", "HEAD"]), first);
    assert_eq!(git(&clone, &["status", "--porcelain"]), "");
    assert_eq!(git(&clone, &["log", "--format=%s"]), "first");
    let origin = git(&clone, &["remote", "get-url", "origin"]);
    assert_eq!(Path::new(&origin), f.repo.canonicalize().expect("canon"));
    // The branch is there to switch to, as after `git clone`.
    assert_eq!(git(&clone, &["rev-parse", "origin/main"]), second);
    // Self-contained: no alternates pointing back into the host's cache.
    assert!(!clone.join(".git/objects/info/alternates").exists());
}

#[test]
fn archive_fetches_a_commit_the_mirror_lacks() {
    let f = Fixture::new();
    let first = f.head();
    f.cache
        .archive("app", &first, &f.habitat, "/srv/app", 0, 0)
        .expect("archive");
    let second = f.commit("LATER", "later\n");
    let tar = f
        .cache
        .archive("app", &second, &f.habitat, "/srv/app", 0, 0)
        .expect("archive");
    let list = entries(tar.path());
    assert!(list.iter().any(|e| e.path == "srv/app/LATER"));
}

#[test]
fn archive_rejects_a_relative_dest() {
    let f = Fixture::new();
    let err = f
        .cache
        .archive("app", &f.head(), &f.habitat, "work/app", 0, 0)
        .expect_err("relative dest");
    assert!(matches!(err, RepoError::BadDest { .. }), "{err:?}");
}

/// Not a timing assertion: prints how long a no-op `resolve` takes, which
/// every build pays.
#[test]
fn resolve_cost_on_a_local_repo() {
    let f = Fixture::new();
    let start = Instant::now();
    let n = 20;
    for _ in 0..n {
        f.resolve(Some("main")).expect("resolve");
    }
    eprintln!(
        "resolve(main) on a local repo: {:?} each",
        start.elapsed() / n
    );
}

/// The quickstart ships its repository as a git bundle beside kiln.yaml.
#[test]
fn a_git_bundle_in_the_habitat_is_a_repository() {
    let f = Fixture::new();
    let head = f.head();
    let bundle = f.habitat.join("app.bundle");
    git(
        &f.repo,
        &["bundle", "create", &bundle.to_string_lossy(), "--all"],
    );
    let got = f
        .cache
        .resolve("app.bundle", Some("main"), &f.habitat)
        .expect("resolve");
    assert_eq!(got, head);
    let tar = f
        .cache
        .archive("app.bundle", &got, &f.habitat, "/work/app", 1000, 1000)
        .expect("archive");
    assert!(
        entries(tar.path())
            .iter()
            .any(|e| e.path == "work/app/README.md")
    );
}

/// The file-reading fast path for local repositories must agree with git in
/// every layout it accepts: loose refs, packed refs, a bare repository, a
/// detached HEAD and a bundle, before and after a branch moves.
#[test]
fn local_refs_read_from_files_agree_with_git() {
    let f = Fixture::new();
    git(&f.repo, &["branch", "feature"]);
    let check = |f: &Fixture, label: &str| {
        for r in [
            None,
            Some("main"),
            Some("feature"),
            Some("refs/heads/feature"),
        ] {
            let want = git(&f.repo, &["rev-parse", r.unwrap_or("HEAD")]);
            let got = f.cache.resolve("app", r, &f.habitat).expect("resolve");
            assert_eq!(got, want, "{label}: ref {r:?}");
        }
    };
    check(&f, "loose refs");
    git(&f.repo, &["pack-refs", "--all"]);
    check(&f, "packed refs");
    std::fs::write(f.repo.join("README.md"), "moved\n").expect("write");
    git(&f.repo, &["commit", "--quiet", "-am", "second"]);
    check(&f, "loose ref over a packed one");
    let head = git(&f.repo, &["rev-parse", "HEAD"]);
    git(&f.repo, &["checkout", "--quiet", "--detach", "HEAD~1"]);
    let detached = f.cache.resolve("app", None, &f.habitat).expect("resolve");
    assert_eq!(detached, git(&f.repo, &["rev-parse", "HEAD"]));
    assert_ne!(detached, head);
    git(&f.repo, &["checkout", "--quiet", "main"]);

    git(
        &f.habitat,
        &["clone", "--quiet", "--bare", "app", "bare.git"],
    );
    assert_eq!(
        f.cache
            .resolve("bare.git", Some("main"), &f.habitat)
            .expect("bare"),
        head
    );
    assert_eq!(
        f.cache
            .resolve("bare.git", None, &f.habitat)
            .expect("bare HEAD"),
        head
    );

    git(
        &f.repo,
        &["bundle", "create", "--quiet", "../app.bundle", "--all"],
    );
    assert_eq!(
        f.cache
            .resolve("app.bundle", None, &f.habitat)
            .expect("bundle HEAD"),
        head
    );
    assert_eq!(
        f.cache
            .resolve("app.bundle", Some("main"), &f.habitat)
            .expect("bundle main"),
        head
    );
}

/// Builds of several habitats fetching one new repository at once (one
/// thread each here, as separate processes would): every one gets its
/// archive, whichever made the mirror, and the fetches into it do not trip
/// over each other's ref locks.
#[test]
fn concurrent_fetches_of_a_new_repository_all_succeed() {
    let f = Fixture::new();
    let first = f.head();
    let second = f.commit("MORE", "more\n");
    let barrier = std::sync::Barrier::new(6);
    std::thread::scope(|scope| {
        let runs: Vec<_> = (0..6)
            .map(|i| {
                let (f, barrier) = (&f, &barrier);
                let commit = if i % 2 == 0 { &first } else { &second };
                scope.spawn(move || {
                    // A cache of its own per thread would not race: share one.
                    let cache = RepoCache::new(f.cache.root().to_path_buf());
                    barrier.wait();
                    cache.archive("app", commit, &f.habitat, "/work/app", 0, 0)
                })
            })
            .collect();
        for run in runs {
            run.join().expect("no panic").expect("archive");
        }
    });
}

const TOKEN: &str = "tok-Zq9xW-s3cr3t";

/// Every file under `dir` (names and contents) that shows `needle`.
fn files_showing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let p = e.path();
            if p.to_string_lossy().contains(needle) {
                found.push(p.clone());
            }
            let meta = std::fs::symlink_metadata(&p).expect("stat");
            if meta.is_dir() {
                stack.push(p);
            } else if meta.is_file()
                && std::fs::read(&p)
                    .is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes()))
            {
                found.push(p);
            }
        }
    }
    found
}

/// `https://user:TOKEN@host/…` reached kiln's mirror config (its URL and its
/// directory name) and the image's `.git/config` kept `user@` (a token
/// written as the user name stayed whole), and errors named the URL as
/// written. The credential is for the fetch only.
#[test]
fn regression_credentials_in_a_repo_url_are_used_for_the_fetch_only() {
    let f = Fixture::new();
    let head = f.head();
    let served = f._tmp.path().join("srv");
    std::fs::create_dir(&served).expect("mkdir");
    let bare = served.join("app.git");
    let bare_s = bare.to_string_lossy().into_owned();
    let repo_s = f.repo.to_string_lossy().into_owned();
    git(&served, &["clone", "--quiet", "--bare", &repo_s, &bare_s]);
    git(&bare, &["update-server-info"]);
    let server = kiln_core::testing::serve_git_http(&served, "kiln", TOKEN).expect("serve");
    let host = server.base.trim_start_matches("http://");
    let url = format!("http://kiln:{TOKEN}@{host}/app.git");
    let plain = format!("{}/app.git", server.base);

    let commit = f
        .cache
        .resolve(&url, Some("main"), &f.habitat)
        .expect("resolve");
    assert_eq!(commit, head);
    let tar = f
        .cache
        .archive(&url, &commit, &f.habitat, "/work/app", 0, 0)
        .expect("archive");
    assert!(
        server.authorized.load(std::sync::atomic::Ordering::SeqCst) > 0,
        "the credentials were not used"
    );
    // Without them the server refuses: they are what made the fetch work.
    let err = f
        .cache
        .resolve(&plain, Some("main"), &f.habitat)
        .expect_err("no credentials");
    assert!(matches!(err, RepoError::Git { .. }), "{err:?}");

    let bytes = std::fs::read(tar.path()).expect("read tar");
    assert!(
        !bytes.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()),
        "the credential is in the image's files"
    );
    let config = tar::Archive::new(bytes.as_slice())
        .entries()
        .expect("entries")
        .map(|e| e.expect("entry"))
        .find(|e| e.path().expect("path").ends_with(".git/config"))
        .map(|mut e| {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut e, &mut s).expect("read");
            s
        })
        .expect("a .git/config");
    assert!(config.contains(&format!("url = {plain}")), "{config}");
    assert_eq!(
        files_showing(f.cache.root(), TOKEN),
        Vec::<PathBuf>::new(),
        "the credential is in kiln's cache"
    );

    // Errors name the URL without it: a wrong token, a missing ref.
    let wrong = format!("http://kiln:WRONG-{TOKEN}@{host}/app.git");
    for (err, what) in [
        (
            f.cache
                .resolve(&wrong, Some("main"), &f.habitat)
                .expect_err("wrong"),
            "a refused fetch",
        ),
        (
            f.cache
                .resolve(&url, Some("nope"), &f.habitat)
                .expect_err("ref"),
            "a missing ref",
        ),
    ] {
        let msg = err.to_string();
        assert!(!msg.contains(TOKEN), "{what}: {msg}");
        assert!(msg.contains(&format!("`{plain}`")), "{what}: {msg}");
    }
}

/// What `git rev-parse --abbrev-ref HEAD` says in the checkout `at` archives.
fn checked_out_branch(f: &Fixture, at: &kiln_core::sources::repo::Checkout<'_>) -> String {
    let tar = f
        .cache
        .archive_checkout(at, &f.habitat, "/work/app", 0, 0)
        .expect("archive");
    let out = tempfile::tempdir().expect("tempdir");
    let status = Command::new("tar")
        .arg("-xf")
        .arg(tar.path())
        .arg("-C")
        .arg(out.path())
        .status()
        .expect("run tar");
    assert!(status.success());
    let checkout = out.path().join("work/app");
    let head = git(&checkout, &["rev-parse", "--abbrev-ref", "HEAD"]);
    if head != "HEAD" {
        // A local branch tracks the remote's, as `git clone --branch` leaves it.
        let upstream = git(&checkout, &["rev-parse", "--abbrev-ref", "@{upstream}"]);
        assert_eq!(upstream, format!("origin/{head}"));
    }
    assert_eq!(git(&checkout, &["rev-parse", "HEAD"]), at.commit);
    head
}

#[test]
fn a_branch_ref_is_checked_out_on_a_local_branch_and_a_tag_or_sha_detached() {
    use kiln_core::sources::repo::Checkout;
    let f = Fixture::new();
    let first = f.head();
    git(&f.repo, &["tag", "v1"]);
    git(&f.repo, &["branch", "stable"]);
    let second = f.commit("CHANGES", "two\n");
    let cases: [(Option<&str>, &str, &str); 5] = [
        (Some("stable"), first.as_str(), "stable"),
        (Some("main"), second.as_str(), "main"),
        (Some("refs/heads/main"), second.as_str(), "main"),
        (Some("v1"), first.as_str(), "HEAD"),
        (None, second.as_str(), "HEAD"),
    ];
    for (git_ref, commit, want) in cases {
        let at = Checkout {
            url: "app",
            commit,
            git_ref,
        };
        assert_eq!(checked_out_branch(&f, &at), want, "ref {git_ref:?}");
    }
    // A full sha is detached even when it is a branch's tip.
    let at = Checkout {
        url: "app",
        commit: &second,
        git_ref: Some(&second),
    };
    assert_eq!(checked_out_branch(&f, &at), "HEAD");
}

/// Bug: a local repo path that is not a repository (or is gone by the time
/// kiln resolves it) got git's "check your access rights" and kiln's
/// credentials hint, as if it were a remote.
#[test]
fn regression_a_local_path_that_is_not_a_repo_says_so_not_credentials() {
    let f = Fixture::new();
    std::fs::create_dir_all(f.habitat.join("plain")).expect("mkdir");
    let gone = f.habitat.join("gone");
    let file_url = format!("file://{}", f.habitat.join("plain").display());
    let cases = [
        ("plain", "is not a git repository"),
        (file_url.as_str(), "is not a git repository"),
        ("gone", "does not exist"),
        (gone.to_str().expect("utf-8"), "does not exist"),
    ];
    for (url, want) in cases {
        for r in [None, Some("main")] {
            let err = f.cache.resolve(url, r, &f.habitat).expect_err("not a repo");
            let text = err.to_string();
            assert!(text.contains(want), "{url} {r:?}: {text}");
            for wrong in ["credentials", "access rights", "ssh keys"] {
                assert!(!text.contains(wrong), "{url} {r:?}: {text}");
            }
        }
    }
    // A remote keeps the remote's hint.
    let err = f
        .cache
        .resolve("http://127.0.0.1:9/nothing.git", None, &f.habitat)
        .expect_err("nothing listens on port 9");
    assert!(err.to_string().contains("credentials"), "{err}");
}
