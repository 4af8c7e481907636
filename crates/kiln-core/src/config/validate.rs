//! The meaning checks run on a well-formed config: names, paths, modes, the one
//! base, duplicates, user references and copy sources. Each points back at the
//! YAML node it is about, and all are reported together.

mod instances;
mod registry;
mod rules;
mod services;

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use super::Inputs;
use super::diagnostic::Sink;
use super::expand;
use super::model::{BaseSource, Config, Env, HabitatDir, NpmPackage, Port, Repo, canonical_mode};
use super::node::{Loc, Node, Seg};
use super::shape::suggest;
use rules::{
    ACCOUNT_FIELD_RULE, ENV_NAME_RULE, HABITAT_NAME_RULE, IMAGE_REFERENCE_RULE, MAX_HABITAT_NAME,
    USER_NAME_RULE, is_account_field, is_env_name, is_habitat_name, is_image_reference, is_numeric,
    is_octal_mode, is_port, is_secret_id, is_user_name, normalize_image_path,
};

use Seg::{Index as I, Key as K};

/// Run every semantic check on `config`, whose YAML tree is `root`.
/// `habitat_dir` resolves copy sources; it should be canonical. With
/// [`Inputs::NotRequired`] a copy or tool source, local repo or base
/// habitat that is absent is no error (one that is there is checked).
///
/// `complete` is false when the structure check left bad parts out of `config`.
/// Then the checks that look across entries (exactly one base, user references,
/// duplicates, a secret's source) are skipped: a misspelt key left out would
/// only make them report a second, misleading error about the same mistake.
pub(crate) fn check(
    config: &Config,
    root: &Node,
    habitat_dir: &Path,
    complete: bool,
    base_users: &[String],
    inputs: Inputs,
    sink: &mut Sink<'_>,
) {
    let (entries, simultaneous) = config.build.env.entries();
    let mut c = Checker {
        root,
        sink,
        dir: habitat_dir,
        complete,
        base_users,
        inputs: inputs == Inputs::Required,
        env: expand::env_known(&entries, simultaneous),
        // The bootstrap base's image config sets `PATH` only
        // (`sources/bootstrap.rs`).
        base_env: config
            .build
            .base
            .bootstrap
            .as_ref()
            .filter(|_| config.build.base.source().is_some())
            .map(|_| &["PATH"][..]),
    };
    c.name(config);
    if complete {
        c.base(config);
    }
    c.users(config);
    c.env(config);
    c.habitat(config);
    c.files(config);
    c.setup(config);
    c.repos(config);
    c.tools(config);
    c.verify(config);
    if complete {
        c.destinations(config);
    }
    c.final_(config);
    c.secrets(config);
    c.instances(config);
    c.services(config);
    c.registry(config);
}

struct Checker<'a, 't> {
    root: &'a Node,
    sink: &'a mut Sink<'t>,
    dir: &'a Path,
    complete: bool,
    /// The users the base habitats declare (`build.base.habitat`, and its
    /// bases): the base image has them, so they need no declaring again.
    base_users: &'a [String],
    /// Whether the build's inputs must be on this machine ([`Inputs`]).
    inputs: bool,
    /// What `build.env` sets, as [`expand::env_known`] gives it.
    env: BTreeMap<String, (String, bool)>,
    /// The names the base's environment surely holds, when the base is one
    /// whose environment is known before the build (a bootstrap base's is
    /// `PATH` alone); `None` when only the build can know (an image).
    base_env: Option<&'static [&'static str]>,
}

impl Checker<'_, '_> {
    /// The value at `path`, or the nearest enclosing node that exists (a default
    /// value has no node of its own).
    fn at(&self, path: &[Seg<'_>]) -> Loc {
        (0..=path.len())
            .rev()
            .find_map(|n| self.root.get(&path[..n]))
            .map_or(self.root.loc, |n| n.loc)
    }

    /// The key of the entry at `path` (`base:` rather than what is under it).
    fn key_at(&self, path: &[Seg<'_>]) -> Loc {
        self.root
            .get_key(path)
            .map_or_else(|| self.at(path), |n| n.loc)
    }

    /// Where `first` is, said from `here`: `line 3`, or `line 3 of
    /// `shared/kiln.yaml`` when it is in another of the habitat's files.
    fn line_of(&self, first: Loc, here: Loc) -> String {
        if first.file == here.file {
            format!("line {}", first.line)
        } else {
            format!(
                "line {} of `{}`",
                first.line,
                self.sink.file_name(first.file)
            )
        }
    }

    fn error(&mut self, loc: Loc, message: String) {
        self.sink.error(loc, message);
    }

    fn error_hint(&mut self, loc: Loc, message: String, hint: impl Into<String>) {
        self.sink.error_hint(loc, message, hint);
    }

    fn name(&mut self, config: &Config) {
        let loc = self.at(&[K("name")]);
        let length = config.name.chars().count();
        if !is_habitat_name(&config.name) {
            self.error_hint(
                loc,
                format!("invalid habitat name `{}`", config.name),
                HABITAT_NAME_RULE,
            );
        } else if length > MAX_HABITAT_NAME {
            self.error_hint(
                loc,
                format!(
                    "habitat name is {length} characters long: an image name fits at most {MAX_HABITAT_NAME}"
                ),
                HABITAT_NAME_RULE,
            );
        }
    }

    fn base(&mut self, config: &Config) {
        let base = &config.build.base;
        let set: Vec<&str> = [
            ("image", base.image.is_some()),
            ("habitat", base.habitat.is_some()),
            ("bootstrap", base.bootstrap.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, on)| on.then_some(k))
        .collect();
        match set.as_slice() {
            [] => {
                let loc = self.key_at(&[K("build"), K("base")]);
                self.error_hint(
                    loc,
                    "no base given in `build.base`".to_string(),
                    "set exactly one of `image`, `habitat` or `bootstrap`",
                );
            }
            [_] => {}
            [first, rest @ ..] => {
                for other in rest {
                    let loc = self.key_at(&[K("build"), K("base"), K(other)]);
                    self.error_hint(
                        loc,
                        format!("`build.base` sets both `{first}` and `{other}`"),
                        "set exactly one of `image`, `habitat` or `bootstrap`",
                    );
                }
            }
        }
        for (key, value) in [("image", &base.image), ("habitat", &base.habitat)] {
            if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                let loc = self.at(&[K("build"), K("base"), K(key)]);
                self.error(loc, format!("`build.base.{key}` is empty"));
            }
        }
        if let Some(image) = base.image.as_deref().filter(|i| !i.trim().is_empty())
            && !is_image_reference(image)
        {
            let loc = self.at(&[K("build"), K("base"), K("image")]);
            self.error_hint(
                loc,
                format!("invalid image reference `{image}`"),
                IMAGE_REFERENCE_RULE,
            );
        }
        if let Some(BaseSource::Habitat(h)) = base.source()
            && !h.trim().is_empty()
        {
            let loc = self.at(&[K("build"), K("base"), K("habitat")]);
            self.base_habitat(h, loc);
        }
        if let Some(b) = &base.bootstrap {
            let path = [K("build"), K("base"), K("bootstrap")];
            if b.distro != "debian" {
                let loc = self.at(&[path[0], path[1], path[2], K("distro")]);
                self.error_hint(
                    loc,
                    format!("unsupported bootstrap distro `{}`", b.distro),
                    "only `debian` is supported",
                );
            }
            if b.suite.trim().is_empty() {
                let loc = self.at(&[path[0], path[1], path[2], K("suite")]);
                self.error(loc, "`build.base.bootstrap.suite` is empty".to_string());
            } else if !is_bootstrap_word(&b.suite, "-") {
                let loc = self.at(&[path[0], path[1], path[2], K("suite")]);
                self.error_hint(
                    loc,
                    format!("invalid bootstrap suite `{}`", b.suite),
                    "use a Debian release name such as `bookworm`",
                );
            }
            if !is_bootstrap_word(&b.variant, "-") {
                let loc = self.at(&[path[0], path[1], path[2], K("variant")]);
                self.error_hint(
                    loc,
                    format!("invalid bootstrap variant `{}`", b.variant),
                    "use a debootstrap variant such as `minbase`",
                );
            }
            for (i, pkg) in b.include.iter().enumerate() {
                if !is_bootstrap_word(pkg.trim(), "+.-:") {
                    let loc = self.at(&[path[0], path[1], path[2], K("include"), I(i)]);
                    self.error_hint(
                        loc,
                        format!("invalid package name `{pkg}` in `build.base.bootstrap.include`"),
                        "use Debian package names",
                    );
                }
            }
            if let Some(m) = &b.mirror
                && !["http://", "https://", "file:///"]
                    .iter()
                    .any(|p| m.starts_with(p))
            {
                let loc = self.at(&[path[0], path[1], path[2], K("mirror")]);
                self.error_hint(
                    loc,
                    format!("invalid bootstrap mirror `{m}`"),
                    "use an `http://`, `https://` or `file:///` URL",
                );
            }
        }
    }

    fn users(&mut self, config: &Config) {
        let mut names: BTreeMap<&str, usize> = BTreeMap::new();
        let mut uids: BTreeMap<u32, usize> = BTreeMap::new();
        for (i, user) in config.build.users.iter().enumerate() {
            let here = |k| [K("build"), K("users"), I(i), K(k)];
            if !is_user_name(&user.name) {
                let loc = self.at(&here("name"));
                self.error_hint(
                    loc,
                    format!("invalid user name `{}`", user.name.escape_debug()),
                    USER_NAME_RULE,
                );
            }
            if let Some(first) = names.insert(&user.name, i)
                && self.complete
            {
                let loc = self.at(&here("name"));
                let line = self.line_of(self.at(&[K("build"), K("users"), I(first)]), loc);
                self.error(
                    loc,
                    format!(
                        "duplicate user `{}` in `build.users` (first declared on {line})",
                        user.name
                    ),
                );
            }
            for (key, id) in [("uid", user.uid), ("gid", user.gid)] {
                if id == Some(u32::MAX) {
                    let loc = self.at(&here(key));
                    self.error_hint(
                        loc,
                        format!(
                            "`build.users[{i}].{key}` is {}, which the kernel reads as -1, no id",
                            u32::MAX
                        ),
                        format!("use an id from 0 to {}", u32::MAX - 1),
                    );
                }
            }
            if let Some(uid) = user.uid
                && let Some(first) = uids.insert(uid, i)
                && self.complete
            {
                let loc = self.at(&here("uid"));
                let other = &config.build.users[first].name;
                self.error(
                    loc,
                    format!("duplicate uid {uid} in `build.users`: `{other}` has it too"),
                );
            }
            for (g, group) in user.groups.iter().enumerate() {
                if !is_user_name(group) {
                    let loc = self.at(&[K("build"), K("users"), I(i), K("groups"), I(g)]);
                    self.error_hint(
                        loc,
                        format!("invalid group name `{}`", group.escape_debug()),
                        USER_NAME_RULE,
                    );
                }
            }
            // Both land in `/etc/passwd`: a `:` or a line break there would
            // write fields or whole accounts of the config's choosing.
            for (key, value) in [("home", &user.home), ("shell", &user.shell)] {
                let Some(v) = value else { continue };
                if !is_account_field(v) {
                    let loc = self.at(&here(key));
                    self.error_hint(
                        loc,
                        format!("invalid `build.users[{i}].{key}` `{}`", v.escape_debug()),
                        ACCOUNT_FIELD_RULE,
                    );
                }
            }
            if let Some(home) = user.home.as_ref().filter(|h| is_account_field(h)) {
                let name = format!("build.users[{i}].home");
                if self.image_path(home, &here("home"), &name) && normalize_image_path(home) == "/"
                {
                    let loc = self.at(&here("home"));
                    self.error_hint(
                        loc,
                        format!(
                            "`{name}` is `/`: kiln makes a user's home and gives it to the user"
                        ),
                        format!(
                            "give the user a directory of its own, e.g. `/home/{}`",
                            user.name
                        ),
                    );
                }
            }
            if let Some(shell) = user.shell.as_ref().filter(|s| is_account_field(s)) {
                self.absolute(shell, &here("shell"), &format!("build.users[{i}].shell"));
            }
        }
    }

    fn env(&mut self, config: &Config) {
        match &config.build.env {
            Env::List(entries) => {
                for (i, entry) in entries.iter().enumerate() {
                    let loc = self.at(&[K("build"), K("env"), I(i)]);
                    match entry.split_once('=') {
                        None => self.error_hint(
                            loc,
                            format!("env entry `{entry}` is not `KEY=VALUE`"),
                            format!("write `{entry}=` for an empty value"),
                        ),
                        Some((key, _)) if !is_env_name(key) => self.error_hint(
                            loc,
                            format!("invalid environment variable name `{key}`"),
                            ENV_NAME_RULE,
                        ),
                        Some((_, value)) => {
                            self.env_value(value, loc, &format!("build.env[{i}]"));
                        }
                    }
                    self.exec_string(entry.len(), loc, &format!("build.env[{i}]"));
                }
            }
            Env::Map(map) => {
                for (key, value) in map {
                    if !is_env_name(key) {
                        let loc = self.key_at(&[K("build"), K("env"), K(key)]);
                        self.error_hint(
                            loc,
                            format!("invalid environment variable name `{key}`"),
                            ENV_NAME_RULE,
                        );
                    }
                    let loc = self.at(&[K("build"), K("env"), K(key)]);
                    self.env_value(value, loc, &format!("build.env.{key}"));
                    let entry = key.len() + 1 + value.len();
                    self.exec_string(entry, loc, &format!("build.env.{key}"));
                }
            }
        }
    }

    /// A variable or argument of a process the build runs: the kernel's
    /// `execve` takes at most [`MAX_ARG_STRLEN`] bytes in one.
    pub(super) fn exec_string(&mut self, len: usize, loc: Loc, name: &str) {
        if len >= MAX_ARG_STRLEN {
            self.error_hint(
                loc,
                format!(
                    "`{name}` is {len} bytes long: a process takes at most {} in one variable or argument",
                    MAX_ARG_STRLEN - 1
                ),
                "put a value this long in a file (a copy) and read it from there",
            );
        }
    }

    /// The commands of a phase run as one `sh -c` script: together they must
    /// fit in one argument, with room for the script around them.
    fn phase_script(&mut self, commands: &[&str], loc: Loc, name: &str) {
        let len: usize = commands.iter().map(|c| c.len()).sum();
        if len > MAX_PHASE_COMMANDS {
            self.error_hint(
                loc,
                format!(
                    "the commands of `{name}` are {len} bytes in all: at most {MAX_PHASE_COMMANDS} fit the one `sh -c` that runs them"
                ),
                "put long scripts in a file (a copy) and run that",
            );
        }
    }

    fn habitat(&mut self, config: &Config) {
        let Some(h) = &config.build.habitat else {
            return;
        };
        // Per directory, however it is spelt: the first entry to name each
        // attribute, to refuse a second that names it otherwise.
        let mut named: BTreeMap<(String, &str), (String, usize)> = BTreeMap::new();
        for (i, dir) in h.dirs.iter().enumerate() {
            let HabitatDir::Spec(spec) = dir else {
                self.path_field(
                    dir.path(),
                    &[K("build"), K("habitat"), K("dirs"), I(i)],
                    &format!("build.habitat.dirs[{i}]"),
                );
                continue;
            };
            let here = |k| [K("build"), K("habitat"), K("dirs"), I(i), K(k)];
            let name = |k: &str| format!("build.habitat.dirs[{i}].{k}");
            self.path_field(&spec.path, &here("path"), &name("path"));
            if let Some(owner) = &spec.owner {
                self.user_ref(config, owner, &here("owner"), &name("owner"));
            }
            if let Some(group) = &spec.group {
                self.group_ref(config, group, &here("group"), &name("group"));
            }
            if let Some(mode) = &spec.mode
                && !is_octal_mode(mode)
            {
                let loc = self.at(&here("mode"));
                self.error_hint(
                    loc,
                    format!("invalid mode `{mode}` in `{}`", name("mode")),
                    "write an octal mode, e.g. \"0750\" or 750",
                );
            }
            let attributes = [
                ("owner", spec.owner.clone()),
                ("group", spec.group.clone()),
                ("mode", spec.mode.as_deref().map(canonical_mode)),
            ];
            for (field, value) in attributes {
                let Some(value) = value else { continue };
                let key = (normalize_image_path(&spec.path), field);
                match named.get(&key) {
                    Some((first, j)) if *first != value => {
                        let loc = self.at(&here(field));
                        let line = self.line_of(
                            self.at(&[K("build"), K("habitat"), K("dirs"), I(*j), K(field)]),
                            loc,
                        );
                        self.error_hint(
                            loc,
                            format!(
                                "`{}` is `{value}`, but `build.habitat.dirs[{j}].{field}` ({line}) gives the same directory `{first}`",
                                name(field),
                            ),
                            "name each directory's owner, group and mode in one entry",
                        );
                    }
                    Some(_) => {}
                    None => {
                        named.insert(key, (value, i));
                    }
                }
            }
        }
        if let Some(w) = &h.work_dir {
            self.path_field(
                w,
                &[K("build"), K("habitat"), K("work_dir")],
                "build.habitat.work_dir",
            );
        }
    }

    fn files(&mut self, config: &Config) {
        let Some(files) = &config.build.files else {
            return;
        };
        for (i, copy) in files.copies.iter().enumerate() {
            let here = |k| [K("build"), K("files"), K("copies"), I(i), K(k)];
            let name = |k: &str| format!("build.files.copies[{i}].{k}");
            let (root, below) = copy.in_root();
            let source = self.habitat_file(Source::Copy, root, below, self.at(&here("source")));
            if self.complete
                && let Some(secret) = config
                    .secrets
                    .iter()
                    .find(|s| s.file.as_deref().map(lexical) == Some(lexical(&copy.source)))
            {
                let loc = self.at(&here("source"));
                self.error_hint(
                    loc,
                    format!(
                        "copy source `{}` is the file of secret `{}`, and secrets never enter an image",
                        copy.source, secret.id
                    ),
                    "read it from `/run/secrets` in a setup command instead",
                );
            }
            // Without its source (absent on a deploy machine), only what
            // the dest says alone is checked.
            if self.path_field(&copy.dest, &here("dest"), &name("dest"))
                && (source.is_some() || !self.inputs)
            {
                self.copy_dest(
                    &copy.source,
                    source.as_deref(),
                    &copy.dest,
                    &here("dest"),
                    &name("dest"),
                );
            }
            if let Some(owner) = &copy.owner {
                self.user_ref(config, owner, &here("owner"), &name("owner"));
            }
            if let Some(group) = &copy.group
                && self.an_id(group, &here("group"), &name("group"))
                && !is_numeric(group)
                && !is_user_name(group)
            {
                let loc = self.at(&here("group"));
                self.error_hint(
                    loc,
                    format!("invalid group name `{}`", group.escape_debug()),
                    USER_NAME_RULE,
                );
            }
            if let Some(mode) = &copy.mode
                && !is_octal_mode(mode)
            {
                let loc = self.at(&here("mode"));
                self.error_hint(
                    loc,
                    format!("invalid mode `{mode}` in `{}`", name("mode")),
                    "write an octal mode as a quoted string, e.g. \"0644\" or \"755\"",
                );
            }
        }
        for (i, volume) in files.volumes.iter().enumerate() {
            self.absolute(
                &volume.dest,
                &[K("build"), K("files"), K("volumes"), I(i), K("dest")],
                &format!("build.files.volumes[{i}].dest"),
            );
        }
    }

    fn setup(&mut self, config: &Config) {
        let Some(setup) = &config.build.setup else {
            return;
        };
        let mut script: Vec<&str> = Vec::new();
        if let Some(p) = &setup.packages {
            let names = [
                ("apt", p.apt.iter().map(String::as_str).collect::<Vec<_>>()),
                ("npm", p.npm.iter().map(NpmPackage::name).collect()),
                ("pip", p.pip.iter().map(String::as_str).collect()),
            ];
            for (manager, names) in names {
                for (i, name) in names.into_iter().enumerate() {
                    let mut path = vec![K("build"), K("setup"), K("packages"), K(manager), I(i)];
                    if manager == "npm" && matches!(p.npm[i], NpmPackage::Spec(_)) {
                        path.push(K("name"));
                    }
                    let loc = self.at(&path);
                    self.package_name(manager, name, loc);
                    script.push(name);
                }
            }
        }
        if let Some(c) = &setup.commands {
            script.extend(c.root.iter().chain(&c.scripts).map(String::as_str));
        }
        let loc = self.key_at(&[K("build"), K("setup")]);
        self.phase_script(&script, loc, "build.setup");
        if let Some(user) = setup.commands.as_ref().and_then(|c| c.user.as_ref()) {
            self.user_ref(
                config,
                user,
                &[K("build"), K("setup"), K("commands"), K("user")],
                "build.setup.commands.user",
            );
        }
        if let Some(shell) = &setup.shell {
            self.shell(shell);
        }
    }

    /// `setup.shell` names a program by its absolute path (the image's `PATH`
    /// is not searched by `su`), and gives the command as its last argument.
    fn shell(&mut self, shell: &[String]) {
        let Some(program) = shell.first() else {
            let loc = self.at(&[K("build"), K("setup"), K("shell")]);
            self.error_hint(
                loc,
                "`build.setup.shell` is empty".to_string(),
                "name the shell and its options, e.g. `[\"/bin/bash\", \"-c\"]`",
            );
            return;
        };
        if !program.starts_with('/') {
            let loc = self.at(&[K("build"), K("setup"), K("shell"), I(0)]);
            self.error_hint(
                loc,
                format!("`build.setup.shell[0]` is `{program}`, not an absolute path"),
                format!(
                    "write the shell's path in the image, e.g. `/bin/{}`",
                    program.trim_start_matches("./")
                ),
            );
        }
    }

    fn repos(&mut self, config: &Config) {
        for (i, repo) in config.build.repos.iter().enumerate() {
            let here = |k| [K("build"), K("repos"), I(i), K(k)];
            if repo.url.trim().is_empty() {
                let loc = self.at(&here("url"));
                self.error(loc, format!("`build.repos[{i}].url` is empty"));
            }
            if !repo.url.trim().is_empty() {
                let loc = self.at(&here("url"));
                self.repo_url(&repo.url, loc);
            }
            if let Some(r) = repo.git_ref.as_deref().filter(|r| r.starts_with('-')) {
                let loc = self.at(&here("ref"));
                self.error_hint(
                    loc,
                    format!("repo ref `{r}` starts with `-`"),
                    "git would read it as an option",
                );
            }
            if repo.depth == Some(0) {
                let loc = self.at(&here("depth"));
                self.error_hint(
                    loc,
                    format!("`build.repos[{i}].depth` is 0: a checkout has at least its commit"),
                    "give the number of commits to keep, e.g. `depth: 1`, or leave `depth` out for the whole history",
                );
            }
            let name = format!("build.repos[{i}].path");
            if self.path_field(&repo.path, &here("path"), &name)
                && normalize_image_path(&repo.path) == "/"
            {
                let loc = self.at(&here("path"));
                self.error_hint(
                    loc,
                    format!("`{name}` is `/`: a repo cannot replace the image's root"),
                    format!(
                        "name the directory the repo lands in, e.g. `/{}`",
                        last_name(&repo.url, "app")
                    ),
                );
            }
            if let Some(owner) = &repo.owner {
                self.user_ref(
                    config,
                    owner,
                    &here("owner"),
                    &format!("build.repos[{i}].owner"),
                );
            }
        }
    }

    fn tools(&mut self, config: &Config) {
        for (i, tool) in config.build.tools.iter().enumerate() {
            let here = |k| [K("build"), K("tools"), I(i), K(k)];
            if tool.name.is_empty()
                || tool.name.contains('/')
                || tool.name == "."
                || tool.name == ".."
            {
                let loc = self.at(&here("name"));
                self.error_hint(
                    loc,
                    format!("invalid tool name `{}`", tool.name),
                    "a tool name is a file name: not empty, not `.` or `..`, no `/`",
                );
            }
            if tool.source.trim().is_empty() {
                let loc = self.at(&here("source"));
                self.error(loc, format!("`build.tools[{i}].source` is empty"));
            } else {
                let loc = self.at(&here("source"));
                self.tool_source(tool, loc);
            }
            let is_digest = |d: &str| d.len() == 64 && d.bytes().all(|b| b.is_ascii_hexdigit());
            if !is_digest(&tool.sha256) {
                let loc = self.at(&here("sha256"));
                // Docker writes digests as `sha256:HEX`; the field is named for the algorithm already.
                let hint = match tool.sha256.strip_prefix("sha256:") {
                    Some(hex) if is_digest(hex) => {
                        format!("drop the `sha256:` prefix: `sha256: {hex}`")
                    }
                    _ => "give the 64 hex digits that `sha256sum FILE` prints".to_string(),
                };
                self.error_hint(
                    loc,
                    format!("`build.tools[{i}].sha256` is not a sha256 digest"),
                    hint,
                );
            }
            self.tool_archive(i, tool);
            if let Some(dest) = &tool.dest {
                let name = format!("build.tools[{i}].dest");
                let unpacked_into = tool.extract && tool.path.is_none();
                if self.path_field(dest, &here("dest"), &name)
                    && dest.ends_with('/')
                    && !unpacked_into
                {
                    let loc = self.at(&here("dest"));
                    let file = format!("{}/{}", dest.trim_end_matches('/'), tool.name);
                    self.error_hint(
                        loc,
                        format!("`{name}` ends in `/`: a tool's `dest` is the path of its file"),
                        format!("name the file, e.g. `{file}`"),
                    );
                }
            }
        }
    }

    /// `extract` needs an archive kiln can unpack; `path` needs `extract`
    /// and must stay inside the archive; unpacking a whole archive needs a
    /// `dest` directory.
    fn tool_archive(&mut self, i: usize, tool: &crate::config::Tool) {
        let here = |k| [K("build"), K("tools"), I(i), K(k)];
        if let Some(path) = &tool.path {
            let loc = self.at(&here("path"));
            if !tool.extract {
                self.error_hint(
                    loc,
                    format!("`build.tools[{i}].path` is set but `extract` is not"),
                    "`path` names a file inside an archive: add `extract: true`",
                );
            } else if crate::config::archive::member_path(path).is_none() {
                self.error_hint(
                    loc,
                    format!("`build.tools[{i}].path` `{path}` leaves the archive"),
                    "name a file inside the archive: relative, without `..`",
                );
            }
        }
        if !tool.extract {
            return;
        }
        if crate::config::archive::ArchiveKind::of(&tool.source).is_none() {
            let loc = self.at(&here("source"));
            self.error_hint(
                loc,
                format!(
                    "`build.tools[{i}].source` `{}` is not an archive kiln can unpack",
                    tool.source
                ),
                "`extract` takes a `.tar`, `.tar.gz`, `.tgz`, `.tar.xz` or `.zip` source",
            );
        }
        if tool.path.is_none() && tool.dest.is_none() {
            let loc = self.at(&here("extract"));
            self.error_hint(
                loc,
                format!("`build.tools[{i}]` unpacks a whole archive but has no `dest`"),
                "give the directory to unpack into as `dest`, or the file to install as `path`",
            );
        }
    }

    fn verify(&mut self, config: &Config) {
        let Some(v) = &config.build.verify else {
            return;
        };
        let script: Vec<&str> = v
            .files
            .iter()
            .chain(&v.commands)
            .map(String::as_str)
            .collect();
        let loc = self.key_at(&[K("build"), K("verify")]);
        self.phase_script(&script, loc, "build.verify");
        for (i, file) in v.files.iter().enumerate() {
            self.path_field(
                file,
                &[K("build"), K("verify"), K("files"), I(i)],
                &format!("build.verify.files[{i}]"),
            );
        }
        if let Some(user) = &v.user {
            self.user_ref(
                config,
                user,
                &[K("build"), K("verify"), K("user")],
                "build.verify.user",
            );
        }
    }

    /// Two things placed at the same path in the image would silently overwrite
    /// each other, depending on phase order.
    fn destinations(&mut self, config: &Config) {
        let mut targets: Vec<(String, String, Loc)> = Vec::new();
        if let Some(files) = &config.build.files {
            for (i, copy) in files.copies.iter().enumerate() {
                let loc = self.at(&[K("build"), K("files"), K("copies"), I(i), K("dest")]);
                targets.push((copy.dest.clone(), format!("build.files.copies[{i}]"), loc));
            }
        }
        for (i, repo) in config.build.repos.iter().enumerate() {
            let loc = self.at(&[K("build"), K("repos"), I(i), K("path")]);
            targets.push((repo.path.clone(), format!("build.repos[{i}]"), loc));
        }
        for (i, tool) in config.build.tools.iter().enumerate() {
            let loc = match &tool.dest {
                Some(_) => self.at(&[K("build"), K("tools"), I(i), K("dest")]),
                None => self.at(&[K("build"), K("tools"), I(i), K("name")]),
            };
            targets.push((tool.dest(), format!("build.tools[{i}]"), loc));
        }
        // An early copy under a repo's path would be replaced by the
        // checkout the repos phase places there afterwards.
        if let Some(files) = &config.build.files {
            for (i, copy) in files.copies.iter().enumerate().filter(|(_, c)| !c.late) {
                // Compared where they land: a variable may name either.
                let dest = self.image_place(&copy.dest);
                let Some((j, repo)) = config.build.repos.iter().enumerate().find(|(_, r)| {
                    let path = self.image_place(&r.path);
                    dest.starts_with(&format!("{}/", path.trim_end_matches('/')))
                }) else {
                    continue;
                };
                let loc = self.at(&[K("build"), K("files"), K("copies"), I(i), K("dest")]);
                self.error_hint(
                    loc,
                    format!(
                        "copy to `{}` lies under `{}`, the path of `build.repos[{j}]`, whose checkout replaces it in the repos phase",
                        copy.dest, repo.path
                    ),
                    "add `late: true` to the copy: it then lands on top of the checkout, after repos and tools",
                );
            }
        }
        let mut seen: BTreeMap<String, (String, Loc)> = BTreeMap::new();
        for (dest, owner, loc) in targets {
            let key = self.image_place(&dest);
            if let Some((first, at)) = seen.get(&key) {
                let line = self.line_of(*at, loc);
                let message = format!(
                    "duplicate destination `{dest}` in `{owner}`: `{first}` ({line}) puts something there too"
                );
                self.error(loc, message);
            } else {
                seen.insert(key, (owner, loc));
            }
        }
    }

    fn final_(&mut self, config: &Config) {
        let Some(f) = &config.build.final_ else {
            return;
        };
        if let Some(user) = &f.user {
            // Docker's USER takes `user:group` too.
            let (name, group) = match user.split_once(':') {
                Some((u, g)) => (u, Some(g)),
                None => (user.as_str(), None),
            };
            self.user_ref(
                config,
                name,
                &[K("build"), K("final"), K("user")],
                "build.final.user",
            );
            if let Some(g) = group
                && self.an_id(g, &[K("build"), K("final"), K("user")], "build.final.user")
                && !is_numeric(g)
                && !is_user_name(g)
            {
                let loc = self.at(&[K("build"), K("final"), K("user")]);
                self.error_hint(
                    loc,
                    format!("invalid group name `{}`", g.escape_debug()),
                    USER_NAME_RULE,
                );
            }
        }
        for (key, args) in [("command", &f.command), ("entrypoint", &f.entrypoint)] {
            for (i, arg) in args.iter().flatten().enumerate() {
                let loc = self.at(&[K("build"), K("final"), K(key), I(i)]);
                self.exec_string(arg.len(), loc, &format!("build.final.{key}[{i}]"));
            }
        }
        if let Some(w) = &f.workdir {
            self.path_field(
                w,
                &[K("build"), K("final"), K("workdir")],
                "build.final.workdir",
            );
        }
        for (i, port) in f.expose.iter().enumerate() {
            if !is_port(port) {
                let loc = self.at(&[K("build"), K("final"), K("expose"), I(i)]);
                let shown = match port {
                    Port::Number(n) => n.to_string(),
                    Port::Spec(s) => s.clone(),
                };
                self.error_hint(
                    loc,
                    format!("invalid port `{shown}` in `build.final.expose`"),
                    "write a port as `3000` or `\"53/udp\"` (1 to 65535; tcp, udp or sctp)",
                );
            }
        }
    }

    fn secrets(&mut self, config: &Config) {
        let mut ids: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, secret) in config.secrets.iter().enumerate() {
            let here = |k| [K("secrets"), I(i), K(k)];
            if !is_secret_id(&secret.id) {
                let loc = self.at(&here("id"));
                self.error_hint(
                    loc,
                    format!("invalid secret id `{}`", secret.id),
                    "use letters, digits, `_`, `.` and `-`, starting with a letter, digit or `_`",
                );
            } else if let Some(first) = ids.insert(&secret.id, i)
                && self.complete
            {
                let loc = self.at(&here("id"));
                let line = self.line_of(self.at(&[K("secrets"), I(first)]), loc);
                self.error(
                    loc,
                    format!(
                        "duplicate secret id `{}` (first declared on {line})",
                        secret.id
                    ),
                );
            }
            match (&secret.env, &secret.file) {
                _ if !self.complete => {}
                (Some(_), Some(_)) => {
                    let loc = self.key_at(&here("file"));
                    self.error_hint(
                        loc,
                        format!("secret `{}` sets both `env` and `file`", secret.id),
                        "a secret comes from exactly one of `env` or `file`",
                    );
                }
                (None, None) => {
                    let loc = self.at(&[K("secrets"), I(i)]);
                    self.error_hint(
                        loc,
                        format!("secret `{}` sets neither `env` nor `file`", secret.id),
                        "a secret comes from exactly one of `env` or `file`",
                    );
                }
                _ => {}
            }
            if let Some(env) = &secret.env
                && !is_env_name(env)
            {
                let loc = self.at(&here("env"));
                self.error_hint(
                    loc,
                    format!("invalid environment variable name `{env}`"),
                    ENV_NAME_RULE,
                );
            }
        }
    }

    /// An env value's variable references parse.
    fn env_value(&mut self, value: &str, loc: Loc, name: &str) {
        if let Err(e) = expand::parse(value) {
            self.error_hint(
                loc,
                format!("invalid variable reference in `{name}`: {e}"),
                "write `$$` for a literal `$`",
            );
        }
    }

    /// A path field, which expands against the environment after the env
    /// phase: its references parse, a variable nothing sets (when that can
    /// be known) is an error, and the path as far as it is known before the
    /// build is checked as [`Self::image_path`] does. True when the path
    /// was checked and is one.
    fn path_field(&mut self, value: &str, path: &[Seg<'_>], name: &str) -> bool {
        let word = match expand::parse(value) {
            Ok(word) => word,
            Err(e) => {
                let loc = self.at(path);
                self.error_hint(
                    loc,
                    format!("invalid variable reference in `{name}`: {e}"),
                    "write `$$` for a literal `$`",
                );
                return false;
            }
        };
        if !word.has_references() {
            return self.image_path(value, path, name);
        }
        if let Some(base) = self.base_env {
            let mut unset: Vec<&str> = word
                .required()
                .into_iter()
                .filter(|n| !self.env.contains_key(*n) && !base.contains(n))
                .collect();
            unset.dedup();
            if let Some(first) = unset.first() {
                let loc = self.at(path);
                let names: Vec<String> = unset.iter().map(|n| format!("`${n}`")).collect();
                self.error_hint(
                    loc,
                    format!(
                        "unset variable {} in `{name}` and no default",
                        names.join(", ")
                    ),
                    format!("set it in `build.env`, or give a default: `${{{first}:-/path}}`"),
                );
                return false;
            }
        }
        if let Some(expanded) = self.expand_known(&word) {
            return self.image_path(&expanded, path, name);
        }
        // The base's environment decides; the build checks it.
        false
    }

    /// `word` expanded, when every variable it names is one `build.env`
    /// sets to a value known before the build; `None` when the base's
    /// environment decides.
    fn expand_known(&self, word: &expand::Word) -> Option<String> {
        let known = |n: &str| {
            self.env
                .get(n)
                .filter(|(_, symbolic)| !symbolic)
                .map(|(v, _)| v.replace("$$", "$"))
        };
        let values: BTreeMap<&str, String> = word
            .names()
            .into_iter()
            .map(|n| Some((n, known(n)?)))
            .collect::<Option<_>>()?;
        Some(word.expand(&|n: &str| values.get(n).map(String::as_str)))
    }

    /// A path field as the image will see it, when that is known before the
    /// build (`$APP_ROOT/x` with `APP_ROOT=/work/app` in `build.env` is
    /// `/work/app/x`), normalized; else as written, normalized, so two
    /// spellings of one place compare equal either way.
    fn image_place(&self, value: &str) -> String {
        let expanded = expand::parse(value)
            .ok()
            .and_then(|w| self.expand_known(&w));
        normalize_image_path(expanded.as_deref().unwrap_or(value))
    }

    /// `path` names a place in the image, which only an absolute path does.
    fn absolute(&mut self, value: &str, path: &[Seg<'_>], name: &str) {
        if !value.starts_with('/') {
            let loc = self.at(path);
            self.error_hint(
                loc,
                format!("`{name}` must be an absolute path, found `{value}`"),
                "paths in the image start with `/`",
            );
        }
    }

    /// A user named by an owner or `user` field must exist when the phase runs. The
    /// base image's own users (other than `root`) are unknown until build time,
    /// so only `root`, numeric ids, users declared in `build.users` and those
    /// the base habitats declare pass.
    fn user_ref(&mut self, config: &Config, user: &str, path: &[Seg<'_>], name: &str) {
        if !self.an_id(user, path, name) {
            return;
        }
        if !self.complete
            || user == "root"
            || is_numeric(user)
            || config.build.users.iter().any(|u| u.name == user)
            || self.base_users.iter().any(|u| u == user)
            // The base habitat's users are unknown when it is not here.
            || !self.inputs && config.build.base.habitat.is_some()
        {
            return;
        }
        let loc = self.at(path);
        let mut known: Vec<&str> = config.build.users.iter().map(|u| u.name.as_str()).collect();
        known.extend(self.base_users.iter().map(String::as_str));
        known.push("root");
        let hint = match suggest(user, &known) {
            Some(s) => format!("did you mean `{s}`?"),
            None => "declare it in `build.users`, or use `root` or a numeric id".to_string(),
        };
        self.error_hint(loc, format!("unknown user `{user}` in `{name}`"), hint);
    }

    /// A group named by a `group` field that `check` can vouch for: `root`,
    /// a numeric id, a declared user's own group or one of its `groups`
    /// (the users phase makes those), or a base habitat's user. As with
    /// owners, the base image's other groups are unknown until build time:
    /// a numeric id names one of those.
    fn group_ref(&mut self, config: &Config, group: &str, path: &[Seg<'_>], name: &str) {
        if !self.an_id(group, path, name) {
            return;
        }
        if !is_numeric(group) && !is_user_name(group) {
            let loc = self.at(path);
            self.error_hint(
                loc,
                format!("invalid group name `{}`", group.escape_debug()),
                USER_NAME_RULE,
            );
            return;
        }
        let mut known: Vec<&str> = vec!["root"];
        for u in &config.build.users {
            known.push(&u.name);
            known.extend(u.groups.iter().map(String::as_str));
        }
        known.extend(self.base_users.iter().map(String::as_str));
        if !self.complete || is_numeric(group) || known.contains(&group) {
            return;
        }
        let loc = self.at(path);
        let hint = match suggest(group, &known) {
            Some(s) => format!("did you mean `{s}`?"),
            None => "add it to a user's `groups` in `build.users`, or use `root` or a numeric id"
                .to_string(),
        };
        self.error_hint(loc, format!("unknown group `{group}` in `{name}`"), hint);
    }

    /// A numeric owner or group is an id the kernel can give: 4294967295 is
    /// -1 to `chown`, which leaves the owner as it was. False after saying so.
    fn an_id(&mut self, value: &str, path: &[Seg<'_>], name: &str) -> bool {
        if value != u32::MAX.to_string() {
            return true;
        }
        let loc = self.at(path);
        self.error_hint(
            loc,
            format!("`{name}` is {value}, which the kernel reads as -1, no id"),
            format!("use an id from 0 to {}", u32::MAX - 1),
        );
        false
    }

    /// A package a package manager is asked for: one word, not an option.
    fn package_name(&mut self, manager: &str, name: &str, loc: Loc) {
        let problem = if name.trim().is_empty() {
            Some("is empty")
        } else if name.chars().any(char::is_whitespace) {
            Some("holds a space: one entry is one package")
        } else if name.starts_with('-') {
            Some("starts with `-`, so it would be read as an option")
        } else {
            None
        };
        if let Some(problem) = problem {
            self.error_hint(
                loc,
                format!("{manager} package `{name}` {problem}"),
                format!("list one {manager} package name per entry"),
            );
        }
    }

    /// `path` names a place in the image: absolute, and without `..`, which
    /// no archive entry may hold (and which would put the thing somewhere
    /// other than where the config seems to say). True when it is one.
    fn image_path(&mut self, value: &str, path: &[Seg<'_>], name: &str) -> bool {
        if !value.starts_with('/') {
            self.absolute(value, path, name);
            return false;
        }
        if let Some(part) = value.split('/').find(|part| part.len() > NAME_MAX) {
            let loc = self.at(path);
            self.error_hint(
                loc,
                format!(
                    "`{name}` has a name of {} bytes: a file name is at most {NAME_MAX}",
                    part.len()
                ),
                "shorten the part of the path between two `/`",
            );
            return false;
        }
        if value.len() >= PATH_MAX {
            let loc = self.at(path);
            self.error(
                loc,
                format!(
                    "`{name}` is {} bytes long: a path is at most {}",
                    value.len(),
                    PATH_MAX - 1
                ),
            );
            return false;
        }
        if value.split('/').any(|part| part == "..") {
            let loc = self.at(path);
            self.error_hint(
                loc,
                format!("`{name}` must not contain `..`, found `{value}`"),
                format!(
                    "write the path without `..`, e.g. `{}`",
                    lexical_path(value)
                ),
            );
            return false;
        }
        true
    }

    /// A copy lands at `dest`: never `/` itself, and a file never at a path
    /// that ends in `/` (the archive would put the file in place of the
    /// directory, not in it).
    /// (`real` is the source's real path; `None` when it is not on this
    /// machine, and then only the first holds.)
    fn copy_dest(
        &mut self,
        source: &str,
        real: Option<&Path>,
        dest: &str,
        path: &[Seg<'_>],
        name: &str,
    ) {
        let is_dir = real.is_none_or(Path::is_dir);
        let example = |dir: &str| {
            format!(
                "{}/{}",
                dir.trim_end_matches('/'),
                last_name(source, "copy")
            )
        };
        let hint = |dir: &str| match is_dir {
            true => format!(
                "name the directory the copy lands in, e.g. `{}`",
                example(dir)
            ),
            false => format!("name the file's path in the image, e.g. `{}`", example(dir)),
        };
        let loc = self.at(path);
        if normalize_image_path(dest) == "/" {
            self.error_hint(
                loc,
                format!("`{name}` is `/`: a copy cannot replace the image's root"),
                hint(""),
            );
        } else if !is_dir && dest.ends_with('/') {
            self.error_hint(
                loc,
                format!("`{name}` ends in `/`, but `{source}` is a file"),
                hint(dest),
            );
        }
    }

    /// A tool comes from an `http(s)://` URL or a file inside the habitat.
    fn tool_source(&mut self, tool: &crate::config::Tool, loc: Loc) {
        let (root, source) = tool.in_root();
        let lower = source.to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            return;
        }
        if lower.starts_with("file://") {
            self.error_hint(
                loc,
                format!("tool source `{source}` is a `file://` URL"),
                Source::Tool.hint(),
            );
        } else if source.contains("://") {
            self.error_hint(
                loc,
                format!("tool source `{source}` has an unsupported scheme"),
                Source::Tool.hint(),
            );
        } else {
            self.habitat_file(Source::Tool, root, source, loc);
        }
    }

    /// A repo named by a local path (or a `file://` URL) must be there, and a
    /// URL git is given must not read as one of its options.
    fn repo_url(&mut self, url: &str, loc: Loc) {
        if Repo::is_remote_url(url) {
            if url.starts_with('-') {
                self.error_hint(
                    loc,
                    format!("repo url `{url}` starts with `-`"),
                    "git would read it as an option",
                );
            }
            let Some(path) = url.strip_prefix("file://").filter(|p| p.starts_with('/')) else {
                return;
            };
            if self.inputs && std::fs::symlink_metadata(path).is_err() {
                self.error_hint(
                    loc,
                    format!("repo `{url}` does not exist"),
                    "a `file://` URL names a path on this machine",
                );
            }
            return;
        }
        if self.inputs && std::fs::symlink_metadata(self.dir.join(url)).is_err() {
            let hint = format!(
                "a local repo is a path relative to the habitat directory `{}`",
                self.dir.display()
            );
            self.error_hint(loc, format!("repo `{url}` does not exist"), hint);
        }
    }

    /// A base habitat must be there, and be a habitat: a directory holding
    /// `kiln.yaml`, or that file. (One that is this habitat, or leads back to
    /// it, is the cycle check's to report.)
    fn base_habitat(&mut self, path: &str, loc: Loc) {
        let Ok(real) = std::fs::canonicalize(self.dir.join(path)) else {
            if !self.inputs {
                return;
            }
            self.error_hint(
                loc,
                format!("base habitat `{path}` does not exist"),
                format!(
                    "`build.base.habitat` is the directory of another habitat, relative to `{}`",
                    self.dir.display()
                ),
            );
            return;
        };
        if real.is_dir() && real != self.dir && !real.join(super::FILE_NAME).is_file() {
            self.error_hint(
                loc,
                format!("no `{}` in base habitat `{path}`", super::FILE_NAME),
                format!("a habitat is a directory holding `{}`", super::FILE_NAME),
            );
        }
    }

    /// A file or directory named relative to its root (the habitat
    /// directory, or for a fragment's copy or tool that fragment's
    /// directory, `root` relative to the habitat directory) must be inside
    /// it: the build must never read (and bake into an image) a file from
    /// elsewhere on the host. Its real path when it is.
    fn habitat_file(
        &mut self,
        kind: Source,
        root: &str,
        source: &str,
        loc: Loc,
    ) -> Option<std::path::PathBuf> {
        let what = kind.what();
        let dir = match root {
            "" => self.dir.to_path_buf(),
            root => super::lexical_join(self.dir, root),
        };
        let dir = dir.as_path();
        let (inside, hint) = match root {
            "" => ("the habitat directory".to_string(), kind.hint().to_string()),
            root => (
                "the fragment's directory".to_string(),
                format!(
                    "a path in an included fragment is relative to the fragment's directory (`{root}` from the habitat) and stays inside it"
                ),
            ),
        };
        if source.trim().is_empty() {
            self.error(loc, format!("empty {what}"));
            return None;
        }
        let relative = Path::new(source);
        if relative.has_root() {
            self.error_hint(
                loc,
                format!("{what} `{source}` is an absolute path"),
                hint.clone(),
            );
            return None;
        }
        let mut depth = 0usize;
        for component in relative.components() {
            match component {
                Component::Normal(_) => depth += 1,
                Component::CurDir => {}
                Component::ParentDir if depth > 0 => depth -= 1,
                Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                    self.error_hint(
                        loc,
                        format!("{what} `{source}` is outside {inside}"),
                        hint.clone(),
                    );
                    return None;
                }
            }
        }
        let full = dir.join(relative);
        if std::fs::symlink_metadata(&full).is_err() {
            if !self.inputs {
                return None;
            }
            let hint = match root {
                "" => format!(
                    "paths are relative to the habitat directory `{}`",
                    dir.display()
                ),
                _ => format!(
                    "paths in an included fragment are relative to its directory `{}`",
                    dir.display()
                ),
            };
            self.error_hint(loc, format!("{what} `{source}` does not exist"), hint);
            return None;
        }
        match leads_out(dir, relative) {
            Ok(None) => {}
            Ok(Some((link, target))) => {
                self.error_hint(
                    loc,
                    format!(
                        "{what} `{source}` leads out of {inside}: `{}` is a symlink to `{}`",
                        link.display(),
                        target.display()
                    ),
                    "copy the file into the habitat directory instead of linking to it",
                );
                return None;
            }
            Err(err) => {
                self.error(loc, format!("{what} `{source}` cannot be resolved: {err}"));
                return None;
            }
        }
        match std::fs::canonicalize(&full) {
            Ok(real) => {
                if matches!(kind, Source::Tool) && !real.is_file() {
                    self.error_hint(loc, format!("{what} `{source}` is not a file"), hint);
                    return None;
                }
                Some(real)
            }
            Err(err) => {
                self.error(loc, format!("{what} `{source}` cannot be resolved: {err}"));
                None
            }
        }
    }
}

/// The symlink through which `rel` leads out of `dir`, and its target, when
/// it does: the build's own rule (`sources/beneath.rs`, which opens what
/// this looks at), so `check` passes exactly the sources a build can read.
/// Links are followed while they stay inside, an absolute one only into
/// `dir` itself (it is canonical); `rel` climbs out by `..` on its own only
/// lexically, which the caller has refused already.
fn leads_out(dir: &Path, rel: &Path) -> std::io::Result<Option<(PathBuf, PathBuf)>> {
    use std::collections::VecDeque;
    use std::ffi::OsString;
    fn names(p: &Path) -> VecDeque<OsString> {
        p.components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n.to_os_string()),
                Component::ParentDir => Some(OsString::from("..")),
                _ => None,
            })
            .collect()
    }
    let mut at = PathBuf::new();
    let mut pending = names(rel);
    let mut via: Option<(PathBuf, PathBuf)> = None;
    let mut links = 0;
    while let Some(name) = pending.pop_front() {
        if name == ".." {
            if !at.pop() {
                return Ok(via);
            }
            continue;
        }
        let here = at.join(&name);
        let meta = std::fs::symlink_metadata(dir.join(&here))?;
        if !meta.file_type().is_symlink() {
            at = here;
            continue;
        }
        links += 1;
        if links > 40 {
            return Err(std::io::Error::other("too many levels of symbolic links"));
        }
        let target = std::fs::read_link(dir.join(&here))?;
        let rest = if target.has_root() {
            match target.strip_prefix(dir) {
                Ok(inside) => {
                    at = PathBuf::new();
                    names(inside)
                }
                Err(_) => return Ok(Some((here, target))),
            }
        } else {
            names(&target)
        };
        via = Some((here, target));
        for n in rest.into_iter().rev() {
            pending.push_front(n);
        }
    }
    Ok(None)
}

/// `path` with `.` dropped and `..` applied, as far as the text says.
fn lexical(path: &str) -> PathBuf {
    let mut out = PathBuf::new();
    for c in Path::new(path).components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
            _ => {}
        }
    }
    out
}

/// Linux's limits on one argument or variable of `execve` (with its NUL),
/// a file name, and a path (with its NUL).
const MAX_ARG_STRLEN: usize = 32 * 4096;
const NAME_MAX: usize = 255;
const PATH_MAX: usize = 4096;

/// The bytes a phase's commands may take together: one argument, less room
/// for the script kiln wraps them in (quoting, one line per step).
const MAX_PHASE_COMMANDS: usize = MAX_ARG_STRLEN - 8 * 1024;

/// A word of debootstrap's command line, which is also part of an image
/// name: a lowercase letter or digit, then those and `extra`. The build
/// refuses anything else (`sources::bootstrap::validate`).
fn is_bootstrap_word(s: &str, extra: &str) -> bool {
    s.bytes()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || extra.as_bytes().contains(&c))
}

/// What a file read from the habitat directory is for.
#[derive(Clone, Copy)]
enum Source {
    Copy,
    Tool,
}

impl Source {
    fn what(self) -> &'static str {
        match self {
            Source::Copy => "copy source",
            Source::Tool => "tool source",
        }
    }

    fn hint(self) -> &'static str {
        match self {
            Source::Copy => "copy sources are relative to the habitat directory and stay inside it",
            Source::Tool => {
                "a tool source is an `https://` URL, or a path inside the habitat directory"
            }
        }
    }
}

/// `/a/../b` as a path without `..` (`/b`), taking each `..` lexically.
fn lexical_path(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    format!("/{}", parts.join("/"))
}

/// The last name of a path or URL (`app` of `git@host:org/app.git`), for
/// examples in hints; `default` when it has none.
fn last_name<'a>(path: &'a str, default: &'a str) -> &'a str {
    let name = path
        .trim_end_matches('/')
        .rsplit(['/', ':'])
        .next()
        .unwrap_or("");
    let name = name.strip_suffix(".git").unwrap_or(name);
    if name.is_empty() || name == "." || name == ".." {
        default
    } else {
        name
    }
}
