//! The corpus (issue 13): real-world-shaped habitats kept in `corpus/`,
//! built with the real `kiln` binary on the real engine, on the bootstrap
//! base (made once per machine and shared by every corpus test). Each test
//! copies its habitats into a temp dir under names of their own
//! (`corpus-…-PID-N`) and asserts what the final image holds: users (home,
//! shell), owners, `PATH`, checked-out branches and files.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::support::{self, Run};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/corpus")
}

/// Copies `from` into `to`, recursively, keeping modes.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// One corpus set in a temp dir, its habitats renamed `NAME-PID-N`; their
/// images are removed when it drops.
struct Corpus {
    root: tempfile::TempDir,
    names: Vec<String>,
}

impl Corpus {
    /// Copies `corpus/SET` and renames the habitats at `habitats` (dirs
    /// relative to the set) so parallel runs never share an image.
    fn new(set: &str, habitats: &[&str]) -> Corpus {
        static N: AtomicU64 = AtomicU64::new(0);
        let root = tempfile::Builder::new()
            .prefix("corpus-")
            .tempdir()
            .unwrap();
        copy_tree(&corpus_dir().join(set), root.path());
        let suffix = format!(
            "{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let mut names = Vec::new();
        for h in habitats {
            let file = root.path().join(h).join("kiln.yaml");
            let text = std::fs::read_to_string(&file).unwrap();
            let name = text
                .lines()
                .find_map(|l| l.strip_prefix("name: "))
                .expect("a name")
                .to_string();
            let unique = format!("{name}-{suffix}");
            std::fs::write(
                &file,
                text.replace(&format!("name: {name}\n"), &format!("name: {unique}\n")),
            )
            .unwrap();
            support::remove_habitat(&unique);
            names.push(unique);
        }
        Corpus { root, names }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }

    /// `kiln build DIR --progress json`, with the set's own cache.
    fn build(&self, habitat: &str) -> Run {
        let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
            .args(["build", "--progress", "json"])
            .arg(self.path(habitat))
            .env("KILN_CACHE_DIR", self.path("cache"))
            .env("NO_COLOR", "1")
            .output()
            .expect("kiln runs");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `kiln check DIR` passes: a config that builds as written is valid.
    fn check_ok(&self, habitat: &str) {
        let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
            .arg("check")
            .arg(self.path(habitat))
            .output()
            .expect("kiln runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The final image of the habitat named `names[i]`.
    fn image(&self, i: usize) -> String {
        format!("habitat-{}:latest", self.names[i])
    }
}

impl Drop for Corpus {
    fn drop(&mut self) {
        for name in &self.names {
            support::remove_habitat(name);
        }
    }
}

/// The image's `PATH`.
fn path_of(image: &str) -> String {
    let env = support::docker(&["image", "inspect", "-f", "{{json .Config.Env}}", image]);
    let env: Vec<String> = serde_json::from_str(env.trim()).expect("env is JSON");
    env.iter()
        .find_map(|kv| kv.strip_prefix("PATH="))
        .expect("PATH is set")
        .to_string()
}

/// `git ARGS` in `dir`, which must succeed.
fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(["-c", "user.name=kt", "-c", "user.email=kt@example.invalid"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn corpus_layered_system_shared_habitat_through_include() {
    let c = Corpus::new("layered", &["habitats/app"]);
    // The app's repository: `main` with the README, `feature` with more.
    let src = c.path("habitats/app/app-src");
    let repo = c.path("app.git");
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::copy(src.join("README.md"), repo.join("README.md")).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["add", "README.md"]);
    git(&repo, &["commit", "-q", "-m", "readme"]);
    git(&repo, &["checkout", "-q", "-b", "feature"]);
    std::fs::copy(src.join("FEATURE"), repo.join("FEATURE")).unwrap();
    git(&repo, &["add", "FEATURE"]);
    git(&repo, &["commit", "-q", "-m", "feature"]);
    git(&repo, &["checkout", "-q", "main"]);

    let run = c.build("habitats/app");
    run.assert_code(0);
    let image = c.image(0);

    // The user from the system layer, with its home and shell.
    let passwd = support::sh_in(&image, Some("root"), "grep '^dev:' /etc/passwd");
    let fields: Vec<&str> = passwd.trim().split(':').collect();
    assert_eq!(
        (fields[2], fields[5], fields[6]),
        ("1000", "/home/dev", "/bin/bash")
    );

    // PATH: the habitat's entry, then the system layer's, then the base's.
    let path = path_of(&image);
    assert!(path.starts_with("/opt/app/bin:/opt/system/bin:/"), "{path}");
    assert_eq!(path.matches("/opt/system/bin").count(), 1, "{path}");

    // Each layer's files, read from its own directory, with owners and
    // modes; the copy parents under the home belong to dev.
    let out = support::sh_in(
        &image,
        Some("root"),
        "stat -c '%n %U %G %a' /etc/motd /opt/system/bin/sys-hello /home/dev/.gitconfig \
         /home/dev/.config /home/dev/.config/readline /home/dev/.config/readline/inputrc \
         /etc/app/app.conf; cat /etc/motd",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "/etc/motd root root 644",
            "/opt/system/bin/sys-hello root root 755",
            "/home/dev/.gitconfig dev dev 644",
            "/home/dev/.config dev dev 755",
            "/home/dev/.config/readline dev dev 755",
            "/home/dev/.config/readline/inputrc dev dev 644",
            "/etc/app/app.conf dev users 640",
            "Welcome to a kiln habitat.",
        ],
        "{out}"
    );
    // No config file of any layer went into the image.
    let out = support::sh_in(
        &image,
        Some("root"),
        "find / -xdev -name kiln.yaml 2>/dev/null | wc -l; cat /home/dev/.hello",
    );
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["0", "hello from the system layer", "app-tool"]
    );

    // The repo on its branch, a local branch (not a detached HEAD), owned by dev.
    let out = support::sh_in(
        &image,
        Some("root"),
        "cat /work/app/.git/HEAD; cat /work/app/FEATURE; stat -c '%U' /work/app/README.md",
    );
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["ref: refs/heads/feature", "feature work", "dev"]
    );

    // Editing a file of the system layer rebuilds from files on; the users
    // and env phases stay cached.
    std::fs::write(c.path("system/motd"), "Changed.\n").unwrap();
    let run = c.build("habitats/app");
    run.assert_code(0);
    assert_eq!(run.end("users").status, "cached");
    assert_eq!(run.end("env").status, "cached");
    assert_eq!(run.end("files").status, "built");
    let out = support::sh_in(&c.image(0), Some("root"), "cat /etc/motd");
    assert_eq!(out, "Changed.\n");
}

#[test]
fn corpus_habitat_on_a_base_habitat_uses_its_users() {
    let c = Corpus::new("on-base", &["base", "app"]);
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["check"])
        .arg(c.path("app"))
        .output()
        .expect("kiln runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = c.build("app");
    run.assert_code(0);
    let image = c.image(1);

    // The base's user kept its home, shell and groups; this habitat never
    // declared it.
    let out = support::sh_in(
        &image,
        Some("root"),
        "grep '^dev:' /etc/passwd; id -Gn dev; cat /home/dev/.profile | head -1",
    );
    let lines: Vec<&str> = out.lines().collect();
    let fields: Vec<&str> = lines[0].split(':').collect();
    assert_eq!(
        (fields[2], fields[5], fields[6]),
        ("1000", "/home/dev", "/bin/bash")
    );
    assert!(lines[1].split_whitespace().any(|g| g == "users"), "{out}");
    assert_eq!(lines[2], "# the base profile");

    // Owned by the base's user: the copy, its new parent, the script's file.
    let out = support::sh_in(
        &image,
        Some("root"),
        "stat -c '%n %U %a' /home/dev/work /home/dev/work/notes.txt /home/dev/.local/bin/mine",
    );
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "/home/dev/work dev 755",
            "/home/dev/work/notes.txt dev 600",
            "/home/dev/.local/bin/mine dev 755",
        ]
    );
    // The base's PATH reaches this image, and the final user is dev.
    assert!(path_of(&image).starts_with("/home/dev/.local/bin:"));
    let user = support::docker(&["image", "inspect", "-f", "{{.Config.User}}", &image]);
    assert_eq!(user.trim(), "dev");
    let out = support::docker(&[
        "run",
        "--rm",
        "--entrypoint",
        "/bin/sh",
        &image,
        "-c",
        "mine",
    ]);
    assert_eq!(out.trim(), "mine");
}

/// Makes a git repository at `repo` from the files of `src`: `main` holds
/// them all, `branch` adds `extra` (a file name) holding `branch`'s name,
/// and `main` is left checked out, so only a checkout of `branch` has it.
/// Returns `branch`'s commit.
fn repo_from(src: &Path, repo: &Path, branch: &str, extra: &str) -> String {
    copy_tree(src, repo);
    git(repo, &["init", "-q", "-b", "main"]);
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "-m", "initial"]);
    git(repo, &["checkout", "-q", "-b", branch]);
    std::fs::write(repo.join(extra), format!("{branch}\n")).unwrap();
    git(repo, &["add", extra]);
    git(repo, &["commit", "-q", "-m", branch]);
    let out = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(repo)
        .output()
        .expect("git runs");
    git(repo, &["checkout", "-q", "main"]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Each phase's `NAME STATUS`, in order.
fn statuses(run: &Run) -> Vec<String> {
    run.phase_ends()
        .into_iter()
        .map(|p| format!("{} {}", p.phase, p.status))
        .collect()
}

/// What `statuses` says when every phase before `from` was a hit and it and
/// every phase after it were built.
fn rebuilt_from(from: &str) -> Vec<String> {
    let phases = [
        "base", "users", "env", "habitat", "files", "setup", "repos", "tools", "verify", "final",
    ];
    let at = phases.iter().position(|p| *p == from).expect("a phase");
    phases
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{p} {}", if i < at { "cached" } else { "built" }))
        .collect()
}

/// Each `step_end` of `phase` as `STEP STATUS`.
fn steps_of(run: &Run, phase: &str) -> Vec<String> {
    run.events()
        .iter()
        .filter(|e| e["event"] == "step_end" && e["phase"] == phase)
        .map(|e| {
            format!(
                "{} {}",
                e["step"].as_str().unwrap_or_default(),
                e["status"].as_str().unwrap_or_default()
            )
        })
        .collect()
}

/// Replaces `from` (which must be there) with `to` in the file at `path`.
fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{from:?} not in {}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

/// Slow on any machine: Debian's `npm` is 387 packages (its setup phase took
/// 366 s here, under load), so it is ignored in the suite and `scripts/test`
/// runs it after the suite, as it does `app_with_postgres`:
/// `cargo test -p kiln --test it -- --ignored corpus_node`.
#[test]
#[ignore = "slow: Debian's nodejs and npm (387 packages) from the mirror; run with --ignored"]
fn corpus_node_app_runs_npm_ci_after_checkout() {
    let c = Corpus::new("node-app", &["habitat"]);
    let commit = repo_from(&c.path("app-src"), &c.path("app.git"), "release", "RELEASE");
    c.check_ok("habitat");
    let run = c.build("habitat");
    run.assert_code(0);
    assert_eq!(
        steps_of(&run, "repos"),
        ["7-repos.1 built", "7-repos.2 built", "7-repos.3 built"]
    );
    let image = c.image(0);

    // The user: its uid, home and shell.
    let passwd = support::sh_in(&image, Some("root"), "grep '^dev:' /etc/passwd; id -Gn dev");
    let lines: Vec<&str> = passwd.lines().collect();
    let fields: Vec<&str> = lines[0].split(':').collect();
    assert_eq!(
        (fields[2], fields[5], fields[6]),
        ("1000", "/home/dev", "/bin/bash")
    );
    assert!(
        lines[1].split_whitespace().any(|g| g == "users"),
        "{passwd}"
    );

    // The branch, checked out as a local branch at its commit.
    let out = support::sh_in(
        &image,
        Some("root"),
        "cd /work/app && cat .git/HEAD && { cat .git/refs/heads/release 2>/dev/null || \
         grep ' refs/heads/release$' .git/packed-refs | cut -d' ' -f1; } && cat RELEASE",
    );
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["ref: refs/heads/release", commit.as_str(), "release"]
    );

    // `npm ci` installed the lockfile's versions, owned by the repo's owner;
    // the global install went to the user's prefix.
    let out = support::sh_in(
        &image,
        Some("root"),
        "cd /work/app/node_modules && for p in greet shout-cli; do \
         node -p \"require('./$p/package.json').name + ' ' + require('./$p/package.json').version\"; done; \
         stat -c '%n %U' /work/app/node_modules /work/app/node_modules/greet/index.js \
         /work/app/node_modules/.bin/shout /home/dev/.npm-global /home/dev/.npm-global/bin/appctl",
    );
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "greet 1.2.0",
            "shout-cli 0.3.1",
            "/work/app/node_modules dev",
            "/work/app/node_modules/greet/index.js dev",
            "/work/app/node_modules/.bin/shout dev",
            "/home/dev/.npm-global dev",
            "/home/dev/.npm-global/bin/appctl dev",
        ],
        "{out}"
    );

    // PATH: both entries expanded, in order, ahead of the base's.
    let path = path_of(&image);
    assert!(
        path.starts_with("/home/dev/.npm-global/bin:/work/app/node_modules/.bin:/"),
        "{path}"
    );
    assert!(!path.contains('$'), "{path}");

    // The final user runs the app, the local bin and the global bin by name.
    let user = support::docker(&["image", "inspect", "-f", "{{.Config.User}}", &image]);
    assert_eq!(user.trim(), "dev");
    let out = support::sh_in(
        &image,
        None,
        "id -un; pwd; echo $HOME; node app.js; shout quiet please; appctl status; \
         cat ~/.bashrc | head -1",
    );
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "dev",
            "/work/app",
            "/home/dev",
            "Hello, kiln! (greet 1.2.0, development)",
            "QUIET PLEASE",
            "appctl 2.0.0: status",
            "# dev's bashrc (a late copy: editing it rebuilds only tools..final)",
        ],
        "{out}"
    );
    let out = support::docker(&["run", "--rm", &image]);
    assert_eq!(out.trim(), "Hello, kiln! (greet 1.2.0, development)");

    // Editing the late dotfile rebuilds only tools..final.
    edit(
        &c.path("habitat/dotfiles/bashrc"),
        "alias ll='ls -l'",
        "alias ll='ls -la'",
    );
    let run = c.build("habitat");
    run.assert_code(0);
    assert_eq!(statuses(&run), rebuilt_from("tools"), "{}", run.stdout);
    let out = support::sh_in(&c.image(0), None, "grep alias ~/.bashrc; node app.js");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "alias ll='ls -la'",
            "Hello, kiln! (greet 1.2.0, development)"
        ]
    );

    // Editing a repo command reruns only repos..final, and inside repos
    // only that command: the checkout and `npm ci` are hits.
    edit(
        &c.path("habitat/kiln.yaml"),
        "- npm install -g ./tools/appctl",
        "- npm install -g ./tools/appctl && appctl installed > ~/.appctl-installed",
    );
    let run = c.build("habitat");
    run.assert_code(0);
    assert_eq!(statuses(&run), rebuilt_from("repos"), "{}", run.stdout);
    assert_eq!(
        steps_of(&run, "repos"),
        ["7-repos.1 cached", "7-repos.2 cached", "7-repos.3 built"]
    );
    let out = support::sh_in(&c.image(0), None, "cat ~/.appctl-installed; shout done");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["appctl 2.0.0: installed", "DONE"]
    );
}

#[test]
fn corpus_ruby_dev_box_runs_bundle_install_after_checkout() {
    let c = Corpus::new("ruby-box", &["habitat"]);
    let commit = repo_from(
        &c.path("app-src"),
        &c.path("shop.git"),
        "develop",
        "DEVELOP",
    );
    c.check_ok("habitat");
    let run = c.build("habitat");
    run.assert_code(0);
    assert_eq!(
        steps_of(&run, "repos"),
        ["7-repos.1 built", "7-repos.2 built", "7-repos.3 built"]
    );
    let image = c.image(0);

    // The developer: home, bash, and the groups asked for.
    let out = support::sh_in(&image, Some("root"), "grep '^dev:' /etc/passwd; id -Gn dev");
    let lines: Vec<&str> = out.lines().collect();
    let fields: Vec<&str> = lines[0].split(':').collect();
    assert_eq!(
        (fields[2], fields[5], fields[6]),
        ("1000", "/home/dev", "/bin/bash")
    );
    let groups: Vec<&str> = lines[1].split_whitespace().collect();
    assert!(
        groups.contains(&"sudo") && groups.contains(&"users"),
        "{out}"
    );

    // The branch, checked out as a local branch at its commit, at the path
    // `$APP_ROOT` expanded to.
    let out = support::sh_in(
        &image,
        Some("root"),
        "cd /work/shop && cat .git/HEAD && { cat .git/refs/heads/develop 2>/dev/null || \
         grep ' refs/heads/develop$' .git/packed-refs | cut -d' ' -f1; } && cat DEVELOP",
    );
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["ref: refs/heads/develop", commit.as_str(), "develop"]
    );

    // The Rails-like layout, `bin/setup`'s work, and the owners: the
    // checkout and what the commands made (the vendored gem installed into
    // `BUNDLE_PATH`) belong to dev, the late dotfile has its mode, and the
    // late override landed on the checkout.
    let out = support::sh_in(
        &image,
        Some("root"),
        "cd /work/shop && stat -c '%n %U %a' Gemfile.lock bin/shop config/application.rb \
         config/database.yml log tmp/cache vendor/bundle/ruby/3.1.0/gems/tinycolor-0.4.2/lib/tinycolor.rb \
         .env.development.local /home/dev/.gemrc /home/dev/.irbrc; cat ~dev/.gem-args .env.development.local",
    );
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "Gemfile.lock dev 644",
            "bin/shop dev 755",
            "config/application.rb dev 644",
            "config/database.yml dev 644",
            "log dev 755",
            "tmp/cache dev 755",
            "vendor/bundle/ruby/3.1.0/gems/tinycolor-0.4.2/lib/tinycolor.rb dev 644",
            ".env.development.local dev 644",
            "/home/dev/.gemrc dev 644",
            "/home/dev/.irbrc dev 600",
            "--no-document",
            "DATABASE_URL=sqlite3:db/development.sqlite3",
        ],
        "{out}"
    );

    // `bundle install` resolved from the lockfile as committed: it had
    // nothing to change in it.
    let lock = support::sh_in(&image, Some("root"), "cat /work/shop/Gemfile.lock");
    let committed = std::fs::read_to_string(c.path("app-src/Gemfile.lock")).unwrap();
    assert_eq!(lock, committed);

    // PATH and the variables it was built from, expanded.
    let path = path_of(&image);
    assert!(path.starts_with("/work/shop/bin:/"), "{path}");
    assert!(!path.contains('$'), "{path}");

    // As the final user: the gems resolve through bundler at the locked
    // versions, and the app's own bin is on PATH.
    let user = support::docker(&["image", "inspect", "-f", "{{.Config.User}}", &image]);
    assert_eq!(user.trim(), "dev");
    let out = support::sh_in(
        &image,
        None,
        "id -un; pwd; echo $HOME $BUNDLE_GEMFILE $BUNDLE_PATH; \
         bundle exec ruby -e 'require \"greeter\"; puts Greeter.greet(\"dev\"); \
         require \"tinycolor\"; puts TinyColor::VERSION; \
         puts Bundler.load.specs.map { |s| \"#{s.name} #{s.version}\" }.sort'; \
         shop welcome corpus",
    );
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "dev",
            "/work/shop",
            "/home/dev /work/shop/Gemfile /work/shop/vendor/bundle",
            "HELLO, DEV!",
            "0.4.2",
            "bundler 2.3.15",
            "greeter 0.2.0",
            "shouty 1.1.0",
            "tinycolor 0.4.2",
            "HELLO, CORPUS!",
        ],
        "{out}"
    );

    // Editing the late dotfile rebuilds only tools..final.
    edit(&c.path("habitat/dotfiles/irbrc"), ":SIMPLE", ":DEFAULT");
    let run = c.build("habitat");
    run.assert_code(0);
    assert_eq!(statuses(&run), rebuilt_from("tools"), "{}", run.stdout);
    let out = support::sh_in(
        &c.image(0),
        None,
        "grep PROMPT ~/.irbrc; shop welcome again",
    );
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["IRB.conf[:PROMPT_MODE] = :DEFAULT", "HELLO, AGAIN!"]
    );

    // Editing a repo command reruns only repos..final, and inside repos
    // only that command: the checkout and `bundle install` are hits.
    edit(
        &c.path("habitat/kiln.yaml"),
        "&& bin/setup\"\n",
        "&& bin/setup && touch tmp/restart.txt\"\n",
    );
    let run = c.build("habitat");
    run.assert_code(0);
    assert_eq!(statuses(&run), rebuilt_from("repos"), "{}", run.stdout);
    assert_eq!(
        steps_of(&run, "repos"),
        ["7-repos.1 cached", "7-repos.2 cached", "7-repos.3 built"]
    );
    let out = support::sh_in(
        &c.image(0),
        None,
        "stat -c '%U' tmp/restart.txt; shop welcome last",
    );
    assert_eq!(out.lines().collect::<Vec<_>>(), ["dev", "HELLO, LAST!"]);
}
