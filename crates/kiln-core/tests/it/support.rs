//! What the engine-backed tests of this binary share: a quiet reporter, the
//! whole file system of an image as a comparable tree, git and sha256 on the
//! host, a seeded random generator whose seed a failure prints, and a scope
//! that removes the images of several habitats, also when a test panics.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use futures_util::FutureExt;
use kiln_core::engine::docker::DockerEngine;
use kiln_core::engine::{ContainerSpec, Engine};
use kiln_core::image::labels::LABEL_HABITAT;
use kiln_core::report::{Event, Reporter};
use kiln_core::testing::{self, TestError};

/// Drops every event.
pub struct Quiet;

impl Reporter for Quiet {
    fn report(&mut self, _event: Event) {}
}

/// One entry per path of an image's file system: kind, content digest or
/// link target, mode and owner. No times: the ways a layer is made date
/// directories differently.
pub type Tree = BTreeMap<String, String>;

pub fn sha256(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

/// Runs git in `dir` with a fixed identity; panics when it fails.
pub fn git(dir: &Path, args: &[&str]) {
    let ok = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=kiln", "-c", "user.email=kiln@example.com"])
        .args([
            "-c",
            "init.defaultBranch=main",
            "-c",
            "commit.gpgSign=false",
        ])
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .status()
        .expect("run git")
        .success();
    assert!(ok, "git {args:?} in {}", dir.display());
}

/// The output of git in `dir`, trimmed.
pub fn git_out(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .expect("run git");
    assert!(out.status.success(), "git {args:?} in {}", dir.display());
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The whole file system of `image`, read through a created (never started)
/// container labelled `habitat`, without the files the engine puts in every
/// container.
pub async fn tree_of(engine: &DockerEngine, image: &str, habitat: &str) -> Result<Tree, TestError> {
    let spec = ContainerSpec {
        image: image.to_string(),
        entrypoint: Some(vec!["/bin/sh".into()]),
        labels: BTreeMap::from([(LABEL_HABITAT.to_string(), habitat.to_string())]),
        ..ContainerSpec::default()
    };
    let id = engine.create_container(&spec).await?;
    let tar = engine.get_archive(&id, "/").await;
    engine.remove_container(&id).await?;
    let tar = tar?.ok_or("no archive of /")?;
    let mut tree = Tree::new();
    let mut ar = tar::Archive::new(&tar[..]);
    for entry in ar.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.display().to_string();
        let path = path.trim_matches('/').to_string();
        if path == ".dockerenv" || path.starts_with("etc/host") || path == "etc/resolv.conf" {
            continue;
        }
        let h = entry.header().clone();
        let kind = h.entry_type();
        let what = if kind.is_file() {
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut data)?;
            format!("file {}", sha256(&data))
        } else if kind.is_symlink() || kind.is_hard_link() {
            let target = entry.link_name()?.map(|l| l.display().to_string());
            format!("link {}", target.unwrap_or_default())
        } else {
            format!("{kind:?}")
        };
        tree.insert(
            path,
            format!(
                "{what} mode {:o} owner {}:{}",
                h.mode()? & 0o7777,
                h.uid()?,
                h.gid()?
            ),
        );
    }
    Ok(tree)
}

/// Every path where `a` and `b` differ, as `path: A vs B` lines, leaving out
/// the paths `skip` names.
pub fn tree_diff(a: &Tree, b: &Tree, skip: impl Fn(&str) -> bool) -> Vec<String> {
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).filter(|k| !skip(k)).collect();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| format!("/{k}: {:?} vs {:?}", a.get(k), b.get(k)))
        .collect()
}

/// Removes every image (dangling ones too) and container labelled habitat `name`.
pub async fn remove_habitat(engine: &DockerEngine, name: &str) {
    for id in engine
        .containers_with_label(LABEL_HABITAT, name)
        .await
        .unwrap_or_default()
    {
        let _ = engine.remove_container(&id).await;
    }
    for id in engine
        .images_with_labels(&[(LABEL_HABITAT, name)])
        .await
        .unwrap_or_default()
    {
        let _ = engine.remove_image(&id).await;
    }
}

/// Hands out habitat names under one unique prefix and remembers them, so
/// [`with_habitats`] can remove what they made.
#[derive(Clone)]
pub struct Names {
    prefix: String,
    made: Arc<Mutex<BTreeSet<String>>>,
}

impl Names {
    /// `PREFIX-suffix`, remembered for clean-up.
    pub fn name(&self, suffix: &str) -> String {
        let name = format!("{}-{suffix}", self.prefix);
        self.made.lock().unwrap().insert(name.clone());
        name
    }

    /// Removes what the habitats named so far made, and forgets them.
    pub async fn clean(&self, engine: &DockerEngine) {
        let names: Vec<String> = std::mem::take(&mut *self.made.lock().unwrap())
            .into_iter()
            .collect();
        for name in names {
            remove_habitat(engine, &name).await;
        }
    }
}

/// Runs `body` with fresh [`Names`], then removes everything labelled with
/// any name it handed out, also when `body` panics (the panic goes on after).
pub async fn with_habitats<F, Fut, T>(engine: &DockerEngine, prefix: &str, body: F) -> T
where
    F: FnOnce(Names) -> Fut,
    Fut: Future<Output = T>,
{
    let names = Names {
        prefix: testing::unique(prefix),
        made: Arc::default(),
    };
    let result = std::panic::AssertUnwindSafe(body(names.clone()))
        .catch_unwind()
        .await;
    names.clean(engine).await;
    match result {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// A small seeded generator (xorshift64*): the same seed gives the same
/// cases on every machine, so a printed seed reproduces a failure.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        // splitmix64 spreads nearby seeds apart; zero is xorshift's fixed point.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    /// True `percent` times in a hundred.
    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// The seed named by the environment variable `var`, or one from the clock
/// (so every run tries new cases); the caller prints it.
pub fn seed_from_env(var: &str) -> u64 {
    match std::env::var(var) {
        Ok(s) => s
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("`{var}` must be a number, not `{s}`")),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64),
    }
}

/// The count named by the environment variable `var`, or `default`.
pub fn count_from_env(var: &str, default: usize) -> usize {
    match std::env::var(var) {
        Ok(s) => s
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("`{var}` must be a number, not `{s}`")),
        Err(_) => default,
    }
}
