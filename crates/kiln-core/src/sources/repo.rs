//! Repositories named under `repos:` are fetched on the host with the user's
//! own `git` (so their credentials and config apply and no credential ever
//! enters an image), mirrored in kiln's cache, and handed to the engine as a
//! tar of a real clone checked out at the resolved commit.
//!
//! A credential written into a URL (`https://TOKEN@host/…`) is for the fetch
//! only: git is given the URL without it, and a per-process `insteadOf`
//! (in git's environment, not its argv or any file) puts it back for the
//! transport. The mirror's config, the image's `origin` and every message
//! name the URL without it.
//!
//! Over 600 lines: one type, [`RepoCache`], and the git plumbing that only it
//! uses (ref resolution, mirrors, bundles, the checkout's archive); split, the
//! git invocations and their error hints would be scattered.

use std::fs::File;
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Output, Stdio};

use sha2::{Digest, Sha256};
use tempfile::NamedTempFile;

use crate::cache::scratch;
use crate::config::Repo;
use crate::config::url::{credentials_hidden, without_credentials};
use crate::sources::io::{HostIo, io_err};

/// A repository failure. Every variant names the repository as written.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error(
        "cannot run `git` for `{url}`: {source}\nhint: kiln fetches repositories with the host's git; install git"
    )]
    GitMissing {
        url: String,
        #[source]
        source: io::Error,
    },
    #[error("`git {op}` failed for `{url}`{}: {stderr}{}", at_ref(.git_ref), git_hint(.op, .local.as_deref()))]
    Git {
        op: String,
        url: String,
        git_ref: Option<String>,
        stderr: String,
        /// The directory, when `url` is a local path or a `file://` URL:
        /// then no credentials or network are involved, and the hint says so.
        local: Option<PathBuf>,
    },
    #[error("repo `{url}`: the path `{}` does not exist\nhint: a local repo is a path relative to the habitat directory, or an absolute one", .path.display())]
    LocalMissing { url: String, path: PathBuf },
    #[error("repo `{url}`: `{}` is not a git repository\nhint: name the repository's own directory (the one holding `.git`), or run `git init` there", .path.display())]
    NotARepo { url: String, path: PathBuf },
    #[error("ref `{git_ref}` does not exist in `{url}`\nhint: {hint}")]
    RefNotFound {
        url: String,
        git_ref: String,
        hint: String,
    },
    #[error("`{url}` has no commits (its HEAD points nowhere)\nhint: push a commit, or set `ref:`")]
    EmptyRepo { url: String },
    #[error(
        "commit `{commit}` is not in `{url}`, even after fetching it\nhint: check the sha, or use a branch or tag as `ref:`"
    )]
    CommitNotFound { url: String, commit: String },
    #[error("`{value}` is not a valid {what} for `{url}`: it must not start with `-`")]
    Unsafe {
        url: String,
        what: &'static str,
        value: String,
    },
    #[error("repository path `{dest}` for `{url}` must be an absolute path without `..`")]
    BadDest { url: String, dest: String },
    #[error(transparent)]
    Io(#[from] HostIo),
}

fn at_ref(git_ref: &Option<String>) -> String {
    git_ref
        .as_ref()
        .map(|r| format!(" (ref `{r}`)"))
        .unwrap_or_default()
}

fn git_hint(op: &str, local: Option<&Path>) -> String {
    if !(op.starts_with("ls-remote") || op.starts_with("clone") || op.starts_with("fetch")) {
        return String::new();
    }
    match local {
        Some(dir) => format!(
            "\nhint: `{}` is a directory on this host, not a remote: check that it is a git repository (`git -C {} log -1` works)",
            dir.display(),
            dir.display()
        ),
        None => "\nhint: kiln runs git as you, without prompting; check that `git ls-remote URL` works in your shell (credentials, ssh keys, network)".to_string(),
    }
}

/// The directory a repo URL names on this host: a path, or a `file://` URL.
fn local_dir(url: &str, located: &str) -> Option<PathBuf> {
    if let Some(path) = url.strip_prefix("file://") {
        return Some(PathBuf::from(path));
    }
    (!Repo::is_remote_url(url)).then(|| PathBuf::from(located))
}

/// `e` with the local directory of `url` noted, so its wording fits: git
/// words every failure as a remote's ("check your access rights"), which
/// for a directory on this host misleads.
fn noted_local(e: RepoError, local: Option<&Path>) -> RepoError {
    let Some(dir) = local else { return e };
    match e {
        RepoError::Git { url, stderr, .. }
            if stderr.contains("does not appear to be a git repository") =>
        {
            RepoError::NotARepo {
                url,
                path: dir.to_path_buf(),
            }
        }
        RepoError::Git {
            op,
            url,
            git_ref,
            stderr,
            local: None,
        } => RepoError::Git {
            op,
            url,
            git_ref,
            stderr: stderr
                .lines()
                .filter(|l| {
                    !matches!(
                        l.trim(),
                        "fatal: Could not read from remote repository."
                            | "Please make sure you have the correct access rights"
                            | "and the repository exists."
                            | ""
                    )
                })
                .collect::<Vec<_>>()
                .join("\n"),
            local: Some(dir.to_path_buf()),
        },
        other => other,
    }
}

/// Bare mirrors of repositories, one per URL, under `root`.
#[derive(Debug, Clone)]
pub struct RepoCache {
    root: PathBuf,
}

impl RepoCache {
    pub fn new(root: PathBuf) -> Self {
        RepoCache { root }
    }

    /// The cache at [`crate::cache::CacheDir::repos`].
    pub fn default_location() -> Self {
        RepoCache::new(crate::cache::CacheDir::from_env().repos())
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Resolves `git_ref` (branch, tag, full or abbreviated commit sha; the
    /// remote's HEAD when `None`) of `url` to a full commit sha.
    ///
    /// `url` may be a remote URL, a `file://` URL or a local path (relative
    /// to `habitat_dir`). This runs on every build, so it asks the remote with
    /// one `git ls-remote` and fetches no objects (except to expand an
    /// abbreviated sha the mirror does not know yet).
    pub fn resolve(
        &self,
        url: &str,
        git_ref: Option<&str>,
        habitat_dir: &Path,
    ) -> Result<String, RepoError> {
        let remote = Remote::new(url, habitat_dir);
        check_safe(url, "url", &remote.arg)?;
        // A local repository's branches are read from its files: this runs on
        // every build, and a `git` process costs more than the rest of a no-op.
        if let Some(sha) = local_branch(Path::new(&remote.arg), git_ref) {
            return Ok(sha);
        }
        let local = local_dir(url, &locate(url, habitat_dir));
        if let Some(dir) = local.as_deref().filter(|d| !d.exists()) {
            return Err(RepoError::LocalMissing {
                url: shown(url),
                path: dir.to_path_buf(),
            });
        }
        self.resolve_remote(url, git_ref, &remote)
            .map_err(|e| noted_local(e, local.as_deref()))
    }

    /// [`Self::resolve`] by asking git.
    fn resolve_remote(
        &self,
        url: &str,
        git_ref: Option<&str>,
        remote: &Remote,
    ) -> Result<String, RepoError> {
        let Some(r) = git_ref else {
            let out = self.git_ok(url, None, "ls-remote", None, |c| {
                remote.authorize(c);
                c.args(["ls-remote", &remote.arg, "HEAD"]);
            })?;
            let refs = parse_ls_remote(&out);
            return refs
                .into_iter()
                .find(|(name, _)| name == "HEAD")
                .map(|(_, sha)| sha)
                .ok_or_else(|| RepoError::EmptyRepo { url: shown(url) });
        };
        check_safe(url, "ref", r)?;
        if is_hex(r) && (r.len() == 40 || r.len() == 64) {
            // A full sha names itself; whether the remote has it is checked by
            // `archive`, which must fetch it anyway.
            return Ok(r.to_ascii_lowercase());
        }
        // `^{}` asks for the peeled entry too: without it an annotated tag
        // shows only the tag object, not the commit it names.
        let peeled = format!("{r}^{{}}");
        let out = self.git_ok(url, Some(r), "ls-remote", None, |c| {
            remote.authorize(c);
            c.args(["ls-remote", &remote.arg, r, &peeled]);
        })?;
        let refs = parse_ls_remote(&out);
        if let Some(sha) = pick_ref(&refs, r) {
            return Ok(sha);
        }
        if is_hex(r)
            && r.len() >= 4
            && let Some(sha) = self.expand_abbrev(url, remote, r)?
        {
            return Ok(sha);
        }
        Err(RepoError::RefNotFound {
            url: shown(url),
            git_ref: r.to_string(),
            hint: self.ref_hint(remote),
        })
    }

    /// Makes sure `commit` is in the mirror of `url` (fetching only when it
    /// is missing) and writes a tar of a clone checked out at `commit`
    /// (detached HEAD, `origin` pointing at `url`), whose entries are `dest`
    /// and everything below it, owned by `uid`:`gid`.
    pub fn archive(
        &self,
        url: &str,
        commit: &str,
        habitat_dir: &Path,
        dest: &str,
        uid: u32,
        gid: u32,
    ) -> Result<NamedTempFile, RepoError> {
        let at = Checkout {
            url,
            commit,
            git_ref: None,
        };
        self.archive_checkout(&at, habitat_dir, dest, uid, gid)
    }

    /// [`Self::archive`], where a `git_ref` that names a branch of the
    /// remote is checked out on a local branch of that name (tracking
    /// `origin/BRANCH`, as `git clone --branch` leaves it) instead of a
    /// detached HEAD; a tag or a commit stays detached.
    pub fn archive_checkout(
        &self,
        at: &Checkout<'_>,
        habitat_dir: &Path,
        dest: &str,
        uid: u32,
        gid: u32,
    ) -> Result<NamedTempFile, RepoError> {
        let Checkout { url, commit, .. } = *at;
        let remote = Remote::new(url, habitat_dir);
        check_safe(url, "url", &remote.arg)?;
        check_safe(url, "commit", commit)?;
        let dest_rel = dest_entry_path(dest).ok_or_else(|| RepoError::BadDest {
            url: shown(url),
            dest: dest.to_string(),
        })?;
        let mirror = self.ensure_commit(url, &remote, commit)?;

        let work = scratch::tempdir_in(&self.root, ".checkout-")
            .map_err(io_err("cannot create a checkout directory in", &self.root))?;
        let checkout = work.path().join("repo");
        let (checkout_s, mirror_s) = (path_str(&checkout), path_str(&mirror));
        self.git_ok(url, Some(commit), "clone", None, |c| {
            c.args(["clone", "--quiet", "--no-checkout", &mirror_s, &checkout_s]);
        })?;
        self.git_ok(url, Some(commit), "remote set-url", Some(&checkout), |c| {
            c.args(["remote", "set-url", "origin", &remote.arg]);
        })?;
        self.git_ok(url, Some(commit), "checkout", Some(&checkout), |c| {
            c.args([
                "-c",
                "advice.detachedHead=false",
                "checkout",
                "--quiet",
                "--detach",
                commit,
            ]);
        })?;
        if let Some(branch) = at.git_ref.and_then(|r| self.remote_branch(&checkout, r)) {
            check_safe(url, "ref", &branch)?;
            self.git_ok(url, Some(commit), "checkout -B", Some(&checkout), |c| {
                c.args(["checkout", "--quiet", "-B", &branch, commit]);
            })?;
            let upstream = format!("origin/{branch}");
            self.git_ok(
                url,
                Some(commit),
                "branch --set-upstream-to",
                Some(&checkout),
                |c| {
                    c.args(["branch", "--quiet", "--set-upstream-to", &upstream, &branch]);
                },
            )?;
        }

        let tmp = scratch::tempfile_in(&self.root, ".archive-")
            .map_err(io_err("cannot create a temporary file in", &self.root))?;
        let write_err = io_err("cannot write", tmp.path());
        let mut builder = tar::Builder::new(BufWriter::new(tmp.as_file()));
        append_tree(&mut builder, &checkout, &dest_rel, Owner { uid, gid })?;
        let finished = builder
            .into_inner()
            .and_then(|mut w| w.flush())
            .and_then(|()| tmp.as_file().seek(SeekFrom::Start(0)));
        finished.map_err(write_err)?;
        Ok(tmp)
    }

    /// The branch `git_ref` names, when the checkout (a clone of the mirror,
    /// whose `origin/*` are the remote's branches) has it as a branch.
    fn remote_branch(&self, checkout: &Path, git_ref: &str) -> Option<String> {
        let branch = git_ref.strip_prefix("refs/heads/").unwrap_or(git_ref);
        if branch.is_empty() || branch.starts_with('-') {
            return None;
        }
        let tracking = format!("refs/remotes/origin/{branch}");
        let found = self.git(Some(checkout), |c| {
            c.args(["rev-parse", "--verify", "--quiet", &tracking]);
        });
        matches!(found, Ok(out) if out.status.success()).then(|| branch.to_string())
    }

    /// The mirror directory of `url` as a habitat in `habitat_dir` names it
    /// (what `cache status` counts as that habitat's).
    pub fn mirror_for(&self, url: &str, habitat_dir: &Path) -> PathBuf {
        self.mirror_path(&Remote::new(url, habitat_dir).arg)
    }

    /// The mirror directory for a located remote (named without its
    /// credentials: the directory name must not show one, and a changed
    /// token is the same repository).
    pub fn mirror_path(&self, remote: &str) -> PathBuf {
        let remote = without_credentials(remote);
        let hash = hex::encode(Sha256::digest(remote.as_bytes()));
        let stem: String = remote
            .trim_end_matches('/')
            .trim_end_matches(".git")
            .rsplit(['/', ':'])
            .next()
            .unwrap_or("repo")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.root.join(format!("{stem}-{}.git", &hash[..16]))
    }

    /// Returns the mirror of `remote`, holding `commit`.
    fn ensure_commit(
        &self,
        url: &str,
        remote: &Remote,
        commit: &str,
    ) -> Result<PathBuf, RepoError> {
        std::fs::create_dir_all(&self.root)
            .map_err(io_err("cannot create the repository cache", &self.root))?;
        let mirror = self.mirror_path(&remote.arg);
        // Builds of different habitats may want one mirror at once (builds of
        // one habitat are serialised already). git's ref locks do not make
        // two fetches into one repository safe (the loser fails with "cannot
        // lock ref"), and two clones race for the rename: one at a time.
        let _lock = mirror_lock(&mirror)?;
        if !is_mirror(&mirror) {
            self.create_mirror(url, remote, &mirror, commit)?;
        }
        if self.has_commit(&mirror, commit) {
            return Ok(mirror);
        }
        self.git_ok(url, Some(commit), "fetch", Some(&mirror), |c| {
            remote.authorize(c);
            c.args(["fetch", "--quiet", "--prune", "origin"]);
        })?;
        if self.has_commit(&mirror, commit) {
            return Ok(mirror);
        }
        // A commit no branch or tag reaches: servers that allow fetching by
        // sha (GitHub, GitLab, local repos with the right config) still give it.
        let _ = self.git(Some(&mirror), |c| {
            remote.authorize(c);
            c.args(["fetch", "--quiet", "origin", commit]);
        });
        if self.has_commit(&mirror, commit) {
            return Ok(mirror);
        }
        Err(RepoError::CommitNotFound {
            url: shown(url),
            commit: commit.to_string(),
        })
    }

    fn create_mirror(
        &self,
        url: &str,
        remote: &Remote,
        mirror: &Path,
        commit: &str,
    ) -> Result<(), RepoError> {
        // Clone beside the final place, then rename: a crash never leaves a
        // half-made mirror that later builds would trust.
        let tmp = scratch::tempdir_in(&self.root, ".mirror-")
            .map_err(io_err("cannot create a directory in", &self.root))?;
        let target = tmp.path().join("m.git");
        let target_s = path_str(&target);
        // `clone --bare` takes branches and tags only (not e.g. GitHub's
        // `refs/pull/*`) and points HEAD at the remote's default branch.
        self.git_ok(url, Some(commit), "clone --bare", None, |c| {
            remote.authorize(c);
            c.args(["clone", "--bare", "--quiet", &remote.arg, &target_s]);
        })?;
        for refspec in ["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"] {
            self.git_ok(url, None, "config", Some(&target), |c| {
                c.args(["config", "--add", "remote.origin.fetch", refspec]);
            })?;
        }
        match std::fs::rename(&target, mirror) {
            Ok(()) => Ok(()),
            // Another build (another habitat, or a kiln without the mirror
            // lock) made the mirror first: its mirror is as good as this one,
            // which goes with `tmp`.
            Err(_) if is_mirror(mirror) => Ok(()),
            Err(e) => Err(io_err("cannot create the mirror", mirror)(e).into()),
        }
    }

    fn has_commit(&self, mirror: &Path, commit: &str) -> bool {
        self.git(Some(mirror), |c| {
            c.args(["cat-file", "-e", &format!("{commit}^{{commit}}")]);
        })
        .map(|o| o.status.success())
        .unwrap_or(false)
    }

    /// Expands an abbreviated sha in the mirror, fetching once if the mirror
    /// does not know it yet.
    fn expand_abbrev(
        &self,
        url: &str,
        remote: &Remote,
        abbrev: &str,
    ) -> Result<Option<String>, RepoError> {
        let mirror = self.mirror_path(&remote.arg);
        let rev_parse = |m: &Path| {
            self.git(Some(m), |c| {
                c.args([
                    "rev-parse",
                    "--verify",
                    "--quiet",
                    &format!("{abbrev}^{{commit}}"),
                ]);
            })
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        };
        if is_mirror(&mirror)
            && let Some(sha) = rev_parse(&mirror)
        {
            return Ok(Some(sha));
        }
        // `ensure_commit` fetches (or creates the mirror) since the abbreviation
        // is not a commit it has; it fails with `CommitNotFound` when no fetch helps.
        match self.ensure_commit(url, remote, abbrev) {
            Ok(m) => Ok(rev_parse(&m)),
            Err(RepoError::CommitNotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Names some branches and tags of `remote`, for a "no such ref" error.
    fn ref_hint(&self, remote: &Remote) -> String {
        let listed = self
            .git(None, |c| {
                remote.authorize(c);
                c.args(["ls-remote", "--heads", "--tags", &remote.arg]);
            })
            .ok()
            .filter(|o| o.status.success())
            .map(|o| parse_ls_remote(&String::from_utf8_lossy(&o.stdout)))
            .unwrap_or_default();
        let mut names: Vec<&str> = listed
            .iter()
            .filter(|(n, _)| !n.ends_with("^{}"))
            .filter_map(|(n, _)| {
                n.strip_prefix("refs/heads/")
                    .or_else(|| n.strip_prefix("refs/tags/"))
            })
            .collect();
        names.dedup();
        if names.is_empty() {
            return "use a branch, a tag or a commit sha of the repository".to_string();
        }
        let more = names.len().saturating_sub(10);
        let shown: Vec<String> = names.iter().take(10).map(|n| format!("`{n}`")).collect();
        let mut hint = format!("the repository has {}", shown.join(", "));
        if more > 0 {
            hint.push_str(&format!(" and {more} more"));
        }
        hint
    }

    /// Runs git with kiln's fixed environment; `Err` only when git cannot start.
    fn git(&self, dir: Option<&Path>, args: impl FnOnce(&mut Command)) -> io::Result<Output> {
        let mut cmd = Command::new("git");
        if let Some(dir) = dir {
            cmd.arg("-C").arg(dir);
        }
        args(&mut cmd);
        // kiln runs inside a build with its own progress output: fail instead
        // of waiting on a password prompt nobody sees.
        cmd.env("GIT_TERMINAL_PROMPT", "0")
            .stdin(Stdio::null())
            .output()
    }

    /// Runs git and turns a non-zero exit into [`RepoError::Git`]; returns stdout.
    fn git_ok(
        &self,
        url: &str,
        git_ref: Option<&str>,
        op: &str,
        dir: Option<&Path>,
        args: impl FnOnce(&mut Command),
    ) -> Result<String, RepoError> {
        let out = self
            .git(dir, args)
            .map_err(|source| RepoError::GitMissing {
                url: shown(url),
                source,
            })?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            return Err(RepoError::Git {
                op: op.to_string(),
                url: shown(url),
                git_ref: git_ref.map(str::to_string),
                stderr: credentials_hidden(stderr.trim()).into_owned(),
                local: None,
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// Whether `path` holds a mirror (a bare repository's `HEAD`): a directory
/// without one is not, and is not trusted.
fn is_mirror(path: &Path) -> bool {
    path.join("HEAD").is_file()
}

/// Holds the lock of one mirror (`MIRROR.lock` beside it) until dropped.
fn mirror_lock(mirror: &Path) -> Result<File, RepoError> {
    let mut path = mirror.as_os_str().to_owned();
    path.push(".lock");
    let path = PathBuf::from(path);
    let file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io_err("cannot open the mirror's lock", &path))?;
    file.lock()
        .map_err(io_err("cannot take the mirror's lock", &path))?;
    Ok(file)
}

/// `url` as kiln shows it: without credentials.
fn shown(url: &str) -> String {
    without_credentials(url).into_owned()
}

/// What a repository's checkout is: the commit its ref resolved to, and
/// the ref as written (a branch is checked out on a local branch).
#[derive(Debug, Clone, Copy)]
pub struct Checkout<'a> {
    pub url: &'a str,
    pub commit: &'a str,
    pub git_ref: Option<&'a str>,
}

/// A located remote: what git is given (`arg`, without credentials) and,
/// when the URL carried some, the URL with them, for the transport only.
struct Remote {
    arg: String,
    with_credentials: Option<String>,
}

impl Remote {
    fn new(url: &str, habitat_dir: &Path) -> Remote {
        let full = locate(url, habitat_dir);
        let arg = shown(&full);
        let with_credentials = (arg != full).then_some(full);
        Remote {
            arg,
            with_credentials,
        }
    }

    /// Lets `cmd` reach the remote with its credentials: git rewrites `arg`
    /// to the credentialed URL through `url.<full>.insteadOf`, set in the
    /// environment (readable by this user only, unlike argv), after any
    /// `GIT_CONFIG_*` entries the user set.
    fn authorize(&self, cmd: &mut Command) {
        let Some(full) = &self.with_credentials else {
            return;
        };
        let n = std::env::var("GIT_CONFIG_COUNT")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0);
        cmd.env("GIT_CONFIG_COUNT", (n + 1).to_string())
            .env(
                format!("GIT_CONFIG_KEY_{n}"),
                format!("url.{full}.insteadOf"),
            )
            .env(format!("GIT_CONFIG_VALUE_{n}"), &self.arg);
    }
}

/// What git is given for `url`: URLs (`scheme://…`, scp-like `host:path`)
/// as written, local paths made absolute against the habitat directory.
pub fn locate(url: &str, habitat_dir: &Path) -> String {
    if Repo::is_remote_url(url) {
        return url.to_string();
    }
    let path = Path::new(url);
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        habitat_dir.join(path)
    };
    // Canonical, so `./app` and `app/` share one mirror.
    path_str(&abs.canonicalize().unwrap_or(abs))
}

fn check_safe(url: &str, what: &'static str, value: &str) -> Result<(), RepoError> {
    // A leading `-` would be read by git as an option.
    if value.starts_with('-') {
        return Err(RepoError::Unsafe {
            url: shown(url),
            what,
            value: shown(value),
        });
    }
    Ok(())
}

fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// `(refname, sha)` pairs from `git ls-remote` output.
fn parse_ls_remote(out: &str) -> Vec<(String, String)> {
    out.lines()
        .filter_map(|line| {
            let (sha, name) = line.split_once('\t')?;
            Some((name.trim().to_string(), sha.trim().to_string()))
        })
        .collect()
}

/// The commit `r` names among `refs`, as `git clone --branch` would pick it:
/// a full ref name exactly, else a branch, else a tag (peeled to its commit).
fn pick_ref(refs: &[(String, String)], r: &str) -> Option<String> {
    let find = |name: &str| {
        refs.iter()
            .find(|(n, _)| n == name)
            .map(|(_, sha)| sha.clone())
    };
    let candidates = if r.starts_with("refs/") || r == "HEAD" {
        vec![format!("{r}^{{}}"), r.to_string()]
    } else {
        vec![
            format!("refs/heads/{r}"),
            format!("refs/tags/{r}^{{}}"),
            format!("refs/tags/{r}"),
        ]
    };
    candidates.iter().find_map(|c| find(c))
}

/// The commit a local repository's HEAD (`git_ref` None) or branch points
/// at, read from its files without running git. `None` whenever anything is
/// not plain (a tag, which may need peeling; a linked worktree; reftable; an
/// unreadable file): the caller then asks `git ls-remote`, which is exact.
fn local_branch(remote: &Path, git_ref: Option<&str>) -> Option<String> {
    if !remote.is_absolute() {
        return None;
    }
    let meta = std::fs::metadata(remote).ok()?;
    if meta.is_file() {
        return bundle_branch(remote, git_ref);
    }
    let dotgit = remote.join(".git");
    let gitdir = if dotgit.is_dir() {
        dotgit
    } else if remote.join("HEAD").is_file() {
        remote.to_path_buf()
    } else {
        return None;
    };
    if gitdir.join("reftable").exists() || gitdir.join("commondir").exists() {
        return None;
    }
    let name = match git_ref {
        None => {
            let head = std::fs::read_to_string(gitdir.join("HEAD")).ok()?;
            let head = head.trim();
            match head.strip_prefix("ref: ") {
                Some(r) => r.to_string(),
                None if is_full_sha(head) => return Some(head.to_string()),
                None => return None,
            }
        }
        Some(r) if r.starts_with("refs/heads/") => r.to_string(),
        Some(r) if !r.starts_with("refs/") && r != "HEAD" && !is_hex(r) => {
            format!("refs/heads/{r}")
        }
        Some(_) => return None,
    };
    if !name.starts_with("refs/heads/") || name.contains("..") {
        return None;
    }
    if let Ok(loose) = std::fs::read_to_string(gitdir.join(&name)) {
        let sha = loose.trim();
        return is_full_sha(sha).then(|| sha.to_string());
    }
    let packed = std::fs::read_to_string(gitdir.join("packed-refs")).ok()?;
    packed.lines().find_map(|l| {
        let (sha, r) = l.split_once(' ')?;
        (r == name && is_full_sha(sha)).then(|| sha.to_string())
    })
}

/// The same from a git bundle's header: `SHA REFNAME` lines after the signature.
fn bundle_branch(bundle: &Path, git_ref: Option<&str>) -> Option<String> {
    use std::io::BufRead;
    let file = std::fs::File::open(bundle).ok()?;
    let mut lines = std::io::BufReader::new(file).lines();
    let sig = lines.next()?.ok()?;
    if sig != "# v2 git bundle" && sig != "# v3 git bundle" {
        return None;
    }
    let wanted = match git_ref {
        None => "HEAD".to_string(),
        Some(r) if r.starts_with("refs/heads/") => r.to_string(),
        Some(r) if !r.starts_with("refs/") && r != "HEAD" && !is_hex(r) => {
            format!("refs/heads/{r}")
        }
        Some(_) => return None,
    };
    for line in lines {
        let line = line.ok()?;
        if line.is_empty() {
            break;
        }
        if line.starts_with('@') || line.starts_with('-') {
            continue;
        }
        let (sha, r) = line.split_once(' ')?;
        if r == wanted && is_full_sha(sha) {
            return Some(sha.to_string());
        }
    }
    None
}

fn is_full_sha(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && is_hex(s)
}

/// `/work/app` → `work/app`; `None` unless absolute and free of `..`.
fn dest_entry_path(dest: &str) -> Option<PathBuf> {
    let path = Path::new(dest);
    if !path.is_absolute() {
        return None;
    }
    let mut rel = PathBuf::new();
    for c in path.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(part) => rel.push(part),
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    (!rel.as_os_str().is_empty()).then_some(rel)
}

#[derive(Clone, Copy)]
struct Owner {
    uid: u32,
    gid: u32,
}

/// Mode bits for the image: git records only "executable or not", and the
/// host's umask must not leak in (a 0077 umask would hide the repo from
/// other users in the image), so group and other get what the owner has,
/// minus write.
fn normalized_mode(mode: u32, is_dir: bool) -> u32 {
    if is_dir {
        return 0o755;
    }
    let owner = (mode >> 6) & 0o7;
    let others = owner & 0o5;
    (owner << 6) | (others << 3) | others
}

fn append_tree<W: io::Write>(
    builder: &mut tar::Builder<W>,
    src: &Path,
    entry: &Path,
    owner: Owner,
) -> Result<(), RepoError> {
    let meta = std::fs::symlink_metadata(src).map_err(io_err("cannot read", src))?;
    let ft = meta.file_type();
    let mut header = tar::Header::new_gnu();
    header.set_uid(owner.uid.into());
    header.set_gid(owner.gid.into());
    header.set_mtime(
        meta.modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs()),
    );
    let write_err = |e: io::Error| {
        RepoError::Io(HostIo {
            context: "cannot add to the repository archive",
            path: src.to_path_buf(),
            source: e,
        })
    };
    if ft.is_symlink() {
        let target = std::fs::read_link(src).map_err(io_err("cannot read the link", src))?;
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_mode(0o777);
        header.set_size(0);
        builder
            .append_link(&mut header, entry, &target)
            .map_err(write_err)?;
    } else if ft.is_dir() {
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(normalized_mode(meta.permissions().mode(), true));
        header.set_size(0);
        builder
            .append_data(&mut header, entry, io::empty())
            .map_err(write_err)?;
        let mut children: Vec<_> = std::fs::read_dir(src)
            .map_err(io_err("cannot list", src))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(io_err("cannot list", src))?;
        children.sort();
        for name in children {
            append_tree(builder, &src.join(&name), &entry.join(&name), owner)?;
        }
    } else if ft.is_file() {
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(normalized_mode(meta.permissions().mode(), false));
        header.set_size(meta.len());
        let file = File::open(src).map_err(io_err("cannot read", src))?;
        builder
            .append_data(&mut header, entry, file)
            .map_err(write_err)?;
    }
    // Sockets, fifos and devices do not occur in a git checkout.
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A repository with one commit in a temp dir, a cache beside it, and
    /// that commit's sha.
    fn repo_and_cache() -> (tempfile::TempDir, RepoCache, Remote, String) {
        let tmp = tempfile::tempdir().unwrap();
        let repo = tmp.path().join("app");
        std::fs::create_dir(&repo).unwrap();
        let git = |args: &[&str]| {
            let out = Command::new("git")
                .arg("-C")
                .arg(&repo)
                .args(["-c", "user.name=kiln", "-c", "user.email=kiln@example.com"])
                .args([
                    "-c",
                    "init.defaultBranch=main",
                    "-c",
                    "commit.gpgSign=false",
                ])
                .args(args)
                .output()
                .unwrap();
            assert!(out.status.success(), "git {args:?}");
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        git(&["init", "--quiet"]);
        std::fs::write(repo.join("README"), "hi\n").unwrap();
        git(&["add", "-A"]);
        git(&["commit", "--quiet", "-m", "one"]);
        let sha = git(&["rev-parse", "HEAD"]);
        let cache = RepoCache::new(tmp.path().join("cache"));
        let remote = Remote::new("app", tmp.path());
        (tmp, cache, remote, sha)
    }

    /// Bug: two habitats fetching one new repository at once both cloned it,
    /// and the loser's rename into place failed ("Directory not empty"). The
    /// loser uses the winner's mirror. (Here the winner finished first.)
    #[test]
    fn regression_the_loser_of_the_mirror_rename_uses_the_winners_mirror() {
        let (_tmp, cache, remote, sha) = repo_and_cache();
        let mirror = cache.ensure_commit("app", &remote, &sha).unwrap();
        // The loser cloned before the winner's rename, and renames after it.
        cache
            .create_mirror("app", &remote, &mirror, &sha)
            .expect("the loser uses the winner's mirror");
        assert!(cache.has_commit(&mirror, &sha));
        let left: Vec<_> = std::fs::read_dir(cache.root())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".mirror-"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn scp_like_urls_are_not_paths() {
        assert!(Repo::is_remote_url("git@github.com:org/app.git"));
        assert!(Repo::is_remote_url("host:app"));
        assert!(!Repo::is_remote_url("./a:b"));
        assert!(!Repo::is_remote_url("/abs/path"));
        assert!(!Repo::is_remote_url("relative/dir"));
    }

    #[test]
    fn locate_keeps_urls_and_anchors_paths() {
        let h = Path::new("/nonexistent/habitat");
        assert_eq!(locate("https://x/y", h), "https://x/y");
        assert_eq!(locate("file:///srv/y", h), "file:///srv/y");
        assert_eq!(locate("git@x:y", h), "git@x:y");
        assert_eq!(locate("app", h), "/nonexistent/habitat/app");
        assert_eq!(locate("/srv/app", h), "/srv/app");
    }

    #[test]
    fn pick_ref_prefers_branch_then_peeled_tag() {
        let refs = vec![
            ("refs/heads/feature/main".to_string(), "f".to_string()),
            ("refs/heads/main".to_string(), "b".to_string()),
            ("refs/tags/main".to_string(), "t".to_string()),
            ("refs/tags/v1".to_string(), "tagobj".to_string()),
            ("refs/tags/v1^{}".to_string(), "c".to_string()),
        ];
        assert_eq!(pick_ref(&refs, "main").as_deref(), Some("b"));
        assert_eq!(pick_ref(&refs, "v1").as_deref(), Some("c"));
        assert_eq!(pick_ref(&refs, "refs/tags/main").as_deref(), Some("t"));
        assert_eq!(pick_ref(&refs, "feature").as_deref(), None);
    }

    #[test]
    fn dest_must_be_absolute_without_parent() {
        assert_eq!(
            dest_entry_path("/work/app"),
            Some(PathBuf::from("work/app"))
        );
        assert_eq!(dest_entry_path("work/app"), None);
        assert_eq!(dest_entry_path("/work/../etc"), None);
        assert_eq!(dest_entry_path("/"), None);
    }

    #[test]
    fn modes_follow_the_owner_bits() {
        assert_eq!(normalized_mode(0o100755, false), 0o755);
        assert_eq!(normalized_mode(0o100700, false), 0o755);
        assert_eq!(normalized_mode(0o100600, false), 0o644);
        assert_eq!(normalized_mode(0o100444, false), 0o444);
        assert_eq!(normalized_mode(0o40700, true), 0o755);
    }
}
