//! A randomised cache oracle, on the real engine: a seeded sequence of edits
//! to a busybox habitat that uses every phase (config fields, copied file
//! contents with their size and modification time restored, source modes,
//! pushes to the repository, reverts of any of these to an earlier state,
//! and changes that are not inputs at all: `description`, YAML style, a
//! touched file). After each edit the habitat is built with its cache and
//! checked against two oracles:
//!
//! - the file system (file by file) and image config of its final image
//!   equal those of a `--no-cache` build of the same config under another
//!   name (its own snapshots, so the two caches are apart);
//! - the phases it rebuilt are exactly the first phase whose inputs are new
//!   (never built before in this sequence: an older snapshot is still a hit
//!   when the config returns to it) and every phase after it.
//!
//! Every run prints its seed. `KILN_ORACLE_SEED=N` replays a run,
//! `KILN_ORACLE_EDITS=N` makes N edits (default 8, what CI runs), e.g.
//! `KILN_ORACLE_EDITS=60 cargo test -p kiln-core --test it cache_oracle`.
//!
//! TODO(issue 9, scope `cache`): edits made while a build reads its inputs
//! (a copied file changed mid-build must not be cached under the old key)
//! are not generated yet; the engineer on the `cache` scope is fixing that
//! bug now. Add an edit that rewrites `files/conf` from a reporter callback
//! at the files phase's start once that lands.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use kiln_core::Phase;
use kiln_core::engine::Engine;
use kiln_core::engine::docker::DockerEngine;
use kiln_core::executor::{self, BuildOptions};
use kiln_core::plan::PlanOptions;
use kiln_core::report::{Event, PhaseStatus, Recorder};
use kiln_core::testing;

use crate::support::{
    Rng, Tree, count_from_env, git, git_out, seed_from_env, sha256, tree_diff, tree_of,
    with_habitats,
};

/// Edits made when `KILN_ORACLE_EDITS` is not set.
const DEFAULT_EDITS: usize = 8;

/// A fixed modification time the copied file gets back after every write,
/// so only its content (same size too) says it changed.
const RESTORED_MTIME: u64 = 1_000_000_000;

/// Everything the habitat's build depends on, and what it does not.
#[derive(Debug, Clone, PartialEq)]
struct World {
    shell: usize,
    env: u32,
    dirs: usize,
    owner: usize,
    mode: usize,
    /// The copied file's content: always the same length.
    content: u32,
    file_mode: u32,
    /// Whether the copied tree has its extra file.
    extra: bool,
    /// A file deep in the copied tree, rewritten in place (same size, same
    /// mtime, so its directory's metadata does not change either).
    nested: u32,
    setup: u32,
    /// The commit `main` of the repository is at.
    commit: String,
    tool: u32,
    verify: u32,
    label: u32,
    // Not inputs of any phase:
    description: u32,
    style: usize,
    touched: u64,
}

const SHELLS: &[&str] = &["/bin/sh", "/bin/ash"];
const DIRS: &[&str] = &["[/srv/a]", "[/srv/a, /srv/b]", "[/srv/b/deep]"];
const OWNERS: &[&str] = &["dev", "root", "\"1234\""];
const MODES: &[Option<&str>] = &[None, Some("0640"), Some("0600")];
const FILE_MODES: &[u32] = &[0o644, 0o600, 0o755];

impl World {
    /// What each phase reads, in a form that changes exactly when its inputs do.
    fn inputs(&self) -> [String; 10] {
        [
            "busybox".to_string(),
            format!("shell {}", self.shell),
            format!("env {}", self.env),
            format!("dirs {}", self.dirs),
            format!(
                "owner {} mode {} content {} file mode {:o} extra {} nested {}",
                self.owner, self.mode, self.content, self.file_mode, self.extra, self.nested
            ),
            format!("setup {}", self.setup),
            format!("commit {}", self.commit),
            format!("tool {}", self.tool),
            format!("verify {}", self.verify),
            format!("label {}", self.label),
        ]
    }

    /// The key-like prefix of each phase: its inputs and all before it.
    fn prefixes(&self) -> Vec<String> {
        let inputs = self.inputs();
        (0..inputs.len()).map(|p| inputs[..=p].join("|")).collect()
    }

    fn tool_script(&self) -> String {
        format!("#!/bin/sh\necho tool {:06}\n", self.tool)
    }

    fn config(&self, name: &str) -> String {
        let mut y = String::new();
        if self.style % 2 == 1 {
            y.push_str("# the habitat the cache oracle edits\n");
        }
        let _ = writeln!(y, "name: {name}\ndescription: \"d{}\"", self.description);
        y.push_str("build:\n  base: { image: kiln-test/busybox:latest }\n");
        let _ = writeln!(
            y,
            "  users:\n    - {{ name: dev, uid: 1000, shell: {} }}",
            SHELLS[self.shell]
        );
        match self.style % 3 {
            0 => {
                let _ = writeln!(y, "  env:\n    APP_ENV: \"e{}\"\n    FIXED: x", self.env);
            }
            1 => {
                let _ = writeln!(y, "  env: [FIXED=x, \"APP_ENV=e{}\"]", self.env);
            }
            _ => {
                let _ = writeln!(y, "  env: {{ FIXED: x, APP_ENV: e{} }}", self.env);
            }
        }
        let _ = writeln!(
            y,
            "  habitat:\n    dirs: {}\n    work_dir: /work",
            DIRS[self.dirs]
        );
        let mode = MODES[self.mode].map_or(String::new(), |m| format!(", mode: \"{m}\""));
        let _ = writeln!(
            y,
            "  files:\n    copies:\n      - {{ source: files/conf, dest: /etc/app.conf, owner: {}{mode} }}\n      - {{ source: files/tree, dest: /opt/tree, owner: dev }}",
            OWNERS[self.owner]
        );
        let _ = writeln!(
            y,
            "  setup:\n    commands:\n      root: [\"echo s{} > /setup-marker\"]",
            self.setup
        );
        y.push_str("  repos:\n    - { url: ./app, path: /work/app, ref: main, owner: dev }\n");
        let _ = writeln!(
            y,
            "  tools:\n    - {{ name: tool, source: tool.sh, sha256: \"{}\", dest: /usr/local/bin/tool }}",
            sha256(self.tool_script().as_bytes())
        );
        let _ = writeln!(
            y,
            "  verify:\n    files: [/etc/app.conf]\n    commands: [\"test -e /setup-marker && echo v{}\"]",
            self.verify
        );
        let label = format!("org.example.v: \"f{}\"", self.label);
        let command = "command: [\"sh\"]";
        match self.style % 2 {
            0 => {
                let _ = writeln!(
                    y,
                    "  final:\n    workdir: /work\n    {command}\n    labels: {{ {label} }}"
                );
            }
            _ => {
                let _ = writeln!(
                    y,
                    "  final:\n    labels:\n      {label}\n    {command}\n    workdir: /work"
                );
            }
        }
        y
    }
}

/// One edit of the world, as the oracle describes it when a check fails.
fn edit(rng: &mut Rng, world: &mut World, history: &[World], repo: &Path) -> String {
    let n = rng.below(1_000_000) as u32;
    match rng.below(18) {
        0 => {
            world.shell = (world.shell + 1) % SHELLS.len();
            "users: the shell".into()
        }
        1 => {
            world.env = n;
            "env: a value".into()
        }
        2 => {
            world.dirs = (world.dirs + 1 + rng.below(DIRS.len() - 1)) % DIRS.len();
            "habitat: the dirs".into()
        }
        3 => {
            world.owner = (world.owner + 1 + rng.below(OWNERS.len() - 1)) % OWNERS.len();
            "files: a copy's owner".into()
        }
        4 => {
            world.mode = (world.mode + 1 + rng.below(MODES.len() - 1)) % MODES.len();
            "files: a copy's mode".into()
        }
        5 | 6 => {
            world.content = n;
            "files: the copied file's bytes (same size, same mtime)".into()
        }
        7 => {
            let others: Vec<u32> = FILE_MODES
                .iter()
                .copied()
                .filter(|m| *m != world.file_mode)
                .collect();
            world.file_mode = *rng.pick(&others);
            "files: the copied file's mode".into()
        }
        8 => {
            world.extra = !world.extra;
            "files: a file added to or removed from the copied tree".into()
        }
        17 => {
            world.nested = n;
            "files: a file deep in the copied tree, in place (same size, same mtime)".into()
        }
        9 => {
            world.setup = n;
            "setup: a root command".into()
        }
        10 | 11 => {
            std::fs::write(repo.join("README"), format!("readme {n}\n")).unwrap();
            git(repo, &["commit", "--quiet", "-am", &format!("push {n}")]);
            world.commit = git_out(repo, &["rev-parse", "HEAD"]);
            "repos: a push to the branch".into()
        }
        12 => {
            world.tool = n;
            "tools: the tool and its sha256".into()
        }
        13 => {
            world.verify = n;
            "verify: a command".into()
        }
        14 => {
            world.label = n;
            "final: a label".into()
        }
        15 => match rng.below(3) {
            0 => {
                world.description = n;
                "not an input: the description".into()
            }
            1 => {
                world.style += 1;
                "not an input: YAML style, comments and key order".into()
            }
            _ => {
                world.touched = RESTORED_MTIME + 1 + u64::from(n);
                "not an input: the copied file's mtime alone".into()
            }
        },
        _ => {
            let back = rng.below(history.len());
            *world = history[back].clone();
            format!("revert everything to the state after edit {back}")
        }
    }
}

/// Writes the world's files: both configs, the copied file (its mtime set
/// back), the copied tree, the tool; points the repository's `main` at
/// the world's commit.
fn write_world(world: &World, dir: &Path, cached: &str, reference: &str) {
    std::fs::write(dir.join("kiln.yaml"), world.config(cached)).unwrap();
    std::fs::write(dir.join("reference.yaml"), world.config(reference)).unwrap();
    let conf = dir.join("files/conf");
    std::fs::create_dir_all(conf.parent().unwrap()).unwrap();
    let content = format!("conf {:06}\n", world.content);
    if std::fs::read(&conf).ok().as_deref() != Some(content.as_bytes()) {
        std::fs::write(&conf, content).unwrap();
    }
    std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(world.file_mode)).unwrap();
    let mtime = match world.touched {
        0 => RESTORED_MTIME,
        t => t,
    };
    let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime);
    std::fs::File::options()
        .write(true)
        .open(&conf)
        .unwrap()
        .set_modified(when)
        .unwrap();
    let tree = dir.join("files/tree");
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    let nested = tree.join("sub/kept");
    let content = format!("kept {:06}\n", world.nested);
    if std::fs::read(&nested).ok().as_deref() != Some(content.as_bytes()) {
        // In place: the directory's entries, and so its mtime, stay as they were.
        std::fs::File::options()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&nested)
            .and_then(|mut f| std::io::Write::write_all(&mut f, content.as_bytes()))
            .unwrap();
        let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(RESTORED_MTIME);
        for path in [&nested, &tree.join("sub")] {
            std::fs::File::open(path)
                .unwrap()
                .set_modified(when)
                .unwrap();
        }
    }
    let extra = tree.join("extra");
    match world.extra {
        true => std::fs::write(&extra, "extra\n").unwrap(),
        false => {
            let _ = std::fs::remove_file(&extra);
        }
    }
    std::fs::write(dir.join("tool.sh"), world.tool_script()).unwrap();
    let repo = dir.join("app");
    if git_out(&repo, &["rev-parse", "HEAD"]) != world.commit {
        git(&repo, &["reset", "--quiet", "--hard", &world.commit]);
    }
}

/// Builds the config in `file` and returns the phases it built and its final
/// image's file system and config.
async fn build(
    engine: &DockerEngine,
    dir: &Path,
    file: &str,
    no_cache: bool,
) -> Result<(BTreeSet<Phase>, Tree, String), String> {
    let habitat = kiln_core::config::load(&dir.join(file)).map_err(|d| format!("config: {d}"))?;
    let opts = BuildOptions {
        cache_root: Some(dir.join("../cache")),
        plan: PlanOptions {
            no_cache,
            ..PlanOptions::default()
        },
        ..BuildOptions::default()
    };
    let mut events = Recorder::default();
    let built = executor::build(engine, &habitat, &opts, &mut events)
        .await
        .map_err(|e| format!("build of {file}: {e}"))?;
    let rebuilt = events
        .events
        .iter()
        .filter_map(|e| match e {
            Event::PhaseEnd {
                phase,
                status: PhaseStatus::Built,
                ..
            } => Some(*phase),
            _ => None,
        })
        .collect();
    let name = &habitat.config.name;
    let tree = tree_of(engine, &built.image, name)
        .await
        .map_err(|e| format!("reading {}: {e}", built.image))?;
    let info = engine
        .image_inspect(&built.image)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("no final image")?;
    let mut config = info.config;
    // kiln's own labels name the habitat and its keys: not what is compared.
    config.labels.retain(|k, _| !k.starts_with("dev.kiln."));
    // The order of env entries is not a key input where no value refers to
    // another (SPEC §5: keyed by meaning), so a cache hit keeps the order of
    // the build that made it: the variables and their values are compared.
    config.env.sort();
    Ok((rebuilt, tree, format!("{config:?}")))
}

/// Git's record of a clone (its objects, packs, index and reflogs depend on
/// what the mirror held when it was made); the checked-out `HEAD` and the
/// work tree are compared.
fn clone_bookkeeping(path: &str) -> bool {
    path.starts_with("work/app/.git/") && path != "work/app/.git/HEAD"
}

#[tokio::test]
async fn a_cached_build_equals_a_fresh_one_and_rebuilds_from_the_first_changed_phase() {
    let engine = DockerEngine::connect().await.expect("engine");
    testing::busybox_image(&engine).await.expect("busybox");
    let seed = seed_from_env("KILN_ORACLE_SEED");
    let edits = count_from_env("KILN_ORACLE_EDITS", DEFAULT_EDITS);
    eprintln!("cache_oracle: KILN_ORACLE_SEED={seed} KILN_ORACLE_EDITS={edits}");
    let engine = &engine;
    with_habitats(engine, "oracle", |names| async move {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("habitat");
        let repo = dir.join("app");
        std::fs::create_dir_all(&repo).unwrap();
        std::fs::write(repo.join("README"), "readme\n").unwrap();
        git(&repo, &["init", "--quiet", "--initial-branch=main"]);
        git(&repo, &["add", "-A"]);
        git(&repo, &["commit", "--quiet", "-m", "first"]);
        let cached = names.name("cached");
        let reference = names.name("reference");
        let mut rng = Rng::new(seed);
        let mut world = World {
            shell: 0,
            env: 0,
            dirs: 0,
            owner: 0,
            mode: 0,
            content: 0,
            file_mode: 0o644,
            extra: false,
            nested: 0,
            setup: 0,
            commit: git_out(&repo, &["rev-parse", "HEAD"]),
            tool: 0,
            verify: 0,
            label: 0,
            description: 0,
            style: 0,
            touched: 0,
        };
        let mut history: Vec<World> = Vec::new();
        // Per phase, every prefix of inputs a build has made a snapshot of.
        let mut seen: Vec<BTreeSet<String>> = vec![BTreeSet::new(); Phase::ALL.len()];
        // Fresh builds by the inputs they were built from: a revert needs none.
        let mut fresh: BTreeMap<String, (Tree, String)> = BTreeMap::new();
        let mut log = Vec::new();
        for step in 0..=edits {
            let what = match step {
                0 => "the first build".to_string(),
                _ => edit(&mut rng, &mut world, &history, &repo),
            };
            log.push(format!("{step}: {what}"));
            write_world(&world, &dir, &cached, &reference);
            let replay = || {
                format!(
                    "replay with KILN_ORACLE_SEED={seed} KILN_ORACLE_EDITS={edits}\nedits:\n{}\nconfig:\n{}",
                    log.join("\n"),
                    world.config(&cached)
                )
            };
            let prefixes = world.prefixes();
            let first_new = (0..prefixes.len()).find(|p| !seen[*p].contains(&prefixes[*p]));
            let expected: BTreeSet<Phase> = match first_new {
                Some(p) => Phase::ALL[p..].iter().copied().collect(),
                None => BTreeSet::new(),
            };
            let (rebuilt, tree, config) = build(engine, &dir, "kiln.yaml", false)
                .await
                .unwrap_or_else(|e| panic!("{e}\n{}", replay()));
            assert_eq!(
                rebuilt,
                expected,
                "after edit {step} ({what}) the build rebuilt other phases than expected\n{}",
                replay()
            );
            let all = prefixes.join("\n");
            if !fresh.contains_key(&all) {
                let (_, tree, config) = build(engine, &dir, "reference.yaml", true)
                    .await
                    .unwrap_or_else(|e| panic!("{e}\n{}", replay()));
                fresh.insert(all.clone(), (tree, config));
            }
            let (fresh_tree, fresh_config) = &fresh[&all];
            let differ = tree_diff(&tree, fresh_tree, clone_bookkeeping);
            assert!(
                differ.is_empty(),
                "after edit {step} ({what}) the cached build's file system differs from a fresh build's (cached vs fresh):\n{}\n{}",
                differ.join("\n"),
                replay()
            );
            assert_eq!(
                &config,
                fresh_config,
                "after edit {step} ({what}) the cached build's image config differs from a fresh build's\n{}",
                replay()
            );
            for (p, prefix) in prefixes.into_iter().enumerate() {
                seen[p].insert(prefix);
            }
            history.push(world.clone());
        }
        eprintln!("cache_oracle: {}", log.join("; "));
    })
    .await;
}
