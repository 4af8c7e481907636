//! Where kiln keeps what it fetches on the host (repository mirrors, tool
//! downloads, bootstrap scratch space, per-file digests, the images kiln
//! made), so a second build fetches nothing. (Build locks are not here: they
//! are machine-wide, see `cache::lock`.)

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// kiln's host cache and every subdirectory in it: the one place that names
/// them, so status, prune and the build agree on what lives where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheDir {
    root: PathBuf,
}

impl CacheDir {
    /// The cache at `root`.
    pub fn new(root: impl Into<PathBuf>) -> CacheDir {
        CacheDir { root: root.into() }
    }

    /// The cache at [`cache_root`]: `$KILN_CACHE_DIR`, `$XDG_CACHE_HOME/kiln`
    /// or `~/.cache/kiln`.
    pub fn from_env() -> CacheDir {
        CacheDir::new(cache_root())
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Bare mirrors of the repositories named under `repos:`.
    pub fn repos(&self) -> PathBuf {
        self.root.join("repos")
    }

    /// Downloaded tools, one file per expected sha256.
    pub fn tools(&self) -> PathBuf {
        self.root.join("tools")
    }

    /// Scratch space for `debootstrap` (on disk rather than in `/tmp`, which
    /// is often a small `noexec`/`nodev` tmpfs that debootstrap cannot use).
    pub fn bootstrap(&self) -> PathBuf {
        self.root.join("bootstrap")
    }

    /// The per-file digests of one habitat's copies (its stat cache).
    pub fn digests(&self, habitat: &str) -> PathBuf {
        self.root.join("digests").join(format!("{habitat}.json"))
    }

    /// The ids of the images kiln made for one habitat (its snapshots), and
    /// of those it found it did not make.
    pub fn made(&self, habitat: &str) -> PathBuf {
        self.root.join("made").join(format!("{habitat}.json"))
    }

    /// The bootstrap bases kiln made with this cache (image id → parameters'
    /// key), beside the habitats' indexes (`+` is in no habitat's name):
    /// what `nuke` removes of the bootstrap bases, and only those.
    pub fn bootstrap_made(&self) -> PathBuf {
        self.made("+bootstrap")
    }

    /// What pushes of one habitat keep: configs and creation times by image id.
    pub fn pushed(&self, habitat: &str) -> PathBuf {
        self.root.join("pushed").join(format!("{habitat}.json"))
    }

    /// When each snapshot of one habitat was last used, by key.
    pub fn used(&self, habitat: &str) -> PathBuf {
        self.root.join("used").join(format!("{habitat}.json"))
    }

    /// The habitats built with this cache, one record each: the known
    /// habitats whose mirrors and tools are in use.
    pub fn habitats(&self) -> PathBuf {
        self.root.join("habitats")
    }

    /// What the last build of one habitat recorded (see `cache::known`).
    pub fn known(&self, habitat: &str) -> PathBuf {
        self.habitats().join(format!("{habitat}.json"))
    }

    /// Every habitat with a record in this cache, sorted.
    pub fn known_habitats(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.habitats()) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_suffix(".json").map(str::to_string)
            })
            .collect();
        names.sort();
        names
    }
}

/// The root of kiln's host cache: `$KILN_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/kiln`, else `~/.cache/kiln`.
pub fn cache_root() -> PathBuf {
    cache_root_from(|name| std::env::var_os(name))
}

/// [`cache_root`] with the environment passed in, so it can be tested
/// without mutating the process environment.
pub fn cache_root_from(var: impl Fn(&str) -> Option<OsString>) -> PathBuf {
    // The XDG spec says to ignore empty and relative values.
    let set = |name: &str| var(name).map(PathBuf::from).filter(|p| p.is_absolute());
    if let Some(dir) = var("KILN_CACHE_DIR").filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(xdg) = set("XDG_CACHE_HOME") {
        return xdg.join("kiln");
    }
    match set("HOME") {
        Some(home) => home.join(".cache").join("kiln"),
        // No home at all (a bare service account): still somewhere private-ish.
        None => std::env::temp_dir().join("kiln-cache"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(vars: &[(&str, &str)]) -> PathBuf {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        cache_root_from(|name| {
            vars.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| OsString::from(v))
        })
    }

    #[test]
    fn kiln_cache_dir_wins() {
        let r = root(&[
            ("KILN_CACHE_DIR", "/k"),
            ("XDG_CACHE_HOME", "/x"),
            ("HOME", "/h"),
        ]);
        assert_eq!(r, PathBuf::from("/k"));
    }

    #[test]
    fn xdg_cache_home_next() {
        let r = root(&[("XDG_CACHE_HOME", "/x"), ("HOME", "/h")]);
        assert_eq!(r, PathBuf::from("/x/kiln"));
    }

    #[test]
    fn home_last() {
        assert_eq!(root(&[("HOME", "/h")]), PathBuf::from("/h/.cache/kiln"));
    }

    #[test]
    fn empty_and_relative_values_are_ignored() {
        let r = root(&[
            ("KILN_CACHE_DIR", ""),
            ("XDG_CACHE_HOME", "relative"),
            ("HOME", "/h"),
        ]);
        assert_eq!(r, PathBuf::from("/h/.cache/kiln"));
    }
}
