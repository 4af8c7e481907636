//! The meaning checks run on a well-formed config: names, paths, modes, the one
//! base, duplicates, user references and copy sources. Each points back at the
//! YAML node it is about, and all are reported together.

mod instances;
mod rules;

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use super::diagnostic::Sink;
use super::model::{Config, Env, Port};
use super::node::{Loc, Node, Seg};
use super::shape::suggest;
use rules::{
    ACCOUNT_FIELD_RULE, ENV_NAME_RULE, USER_NAME_RULE, is_account_field, is_env_name,
    is_habitat_name, is_numeric, is_octal_mode, is_port, is_secret_id, is_user_name,
    normalize_image_path,
};

use Seg::{Index as I, Key as K};

/// Run every semantic check on `config`, whose YAML tree is `root`.
/// `habitat_dir` resolves copy sources; it should be canonical.
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
    sink: &mut Sink<'_>,
) {
    let mut c = Checker {
        root,
        sink,
        dir: habitat_dir,
        complete,
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
    if complete {
        c.destinations(config);
    }
    c.final_(config);
    c.secrets(config);
    c.instances(config);
}

struct Checker<'a, 't> {
    root: &'a Node,
    sink: &'a mut Sink<'t>,
    dir: &'a Path,
    complete: bool,
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

    fn error(&mut self, loc: Loc, message: String) {
        self.sink.error(loc, message);
    }

    fn error_hint(&mut self, loc: Loc, message: String, hint: impl Into<String>) {
        self.sink.error_hint(loc, message, hint);
    }

    fn name(&mut self, config: &Config) {
        if !is_habitat_name(&config.name) {
            let loc = self.at(&[K("name")]);
            self.error_hint(
                loc,
                format!("invalid habitat name `{}`", config.name),
                "use lowercase letters, digits, `_`, `.` and `-`, starting with a letter or digit",
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
                let line = self.at(&[K("build"), K("users"), I(first)]).line;
                self.error(
                    loc,
                    format!(
                        "duplicate user `{}` in `build.users` (first declared on line {line})",
                        user.name
                    ),
                );
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
                } else {
                    self.absolute(v, &here(key), &format!("build.users[{i}].{key}"));
                }
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
                        Some(_) => {}
                    }
                }
            }
            Env::Map(map) => {
                for key in map.keys() {
                    if !is_env_name(key) {
                        let loc = self.key_at(&[K("build"), K("env"), K(key)]);
                        self.error_hint(
                            loc,
                            format!("invalid environment variable name `{key}`"),
                            ENV_NAME_RULE,
                        );
                    }
                }
            }
        }
    }

    fn habitat(&mut self, config: &Config) {
        let Some(h) = &config.build.habitat else {
            return;
        };
        for (i, dir) in h.dirs.iter().enumerate() {
            self.absolute(
                dir,
                &[K("build"), K("habitat"), K("dirs"), I(i)],
                &format!("build.habitat.dirs[{i}]"),
            );
        }
        if let Some(w) = &h.work_dir {
            self.absolute(
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
            self.copy_source(&copy.source, self.at(&here("source")));
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
            self.absolute(&copy.dest, &here("dest"), &name("dest"));
            if let Some(owner) = &copy.owner {
                self.user_ref(config, owner, &here("owner"), &name("owner"));
            }
            if let Some(group) = &copy.group
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
        if let Some(user) = config
            .build
            .setup
            .as_ref()
            .and_then(|s| s.commands.as_ref())
            .and_then(|c| c.user.as_ref())
        {
            self.user_ref(
                config,
                user,
                &[K("build"), K("setup"), K("commands"), K("user")],
                "build.setup.commands.user",
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
            self.absolute(&repo.path, &here("path"), &format!("build.repos[{i}].path"));
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
            if tool.name.is_empty() || tool.name.contains('/') {
                let loc = self.at(&here("name"));
                self.error_hint(
                    loc,
                    format!("invalid tool name `{}`", tool.name),
                    "a tool name is a file name: not empty, no `/`",
                );
            }
            if tool.source.trim().is_empty() {
                let loc = self.at(&here("source"));
                self.error(loc, format!("`build.tools[{i}].source` is empty"));
            }
            if tool.sha256.len() != 64 || !tool.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                let loc = self.at(&here("sha256"));
                self.error_hint(
                    loc,
                    format!("`build.tools[{i}].sha256` is not a sha256 digest"),
                    "give the 64 hex digits that `sha256sum FILE` prints",
                );
            }
            if let Some(dest) = &tool.dest {
                self.absolute(dest, &here("dest"), &format!("build.tools[{i}].dest"));
            }
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
        let mut seen: BTreeMap<String, (String, usize)> = BTreeMap::new();
        for (dest, owner, loc) in targets {
            let key = normalize_image_path(&dest);
            if let Some((first, line)) = seen.get(&key) {
                let message = format!(
                    "duplicate destination `{dest}` in `{owner}`: `{first}` (line {line}) puts something there too"
                );
                self.error(loc, message);
            } else {
                seen.insert(key, (owner, loc.line));
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
        if let Some(w) = &f.workdir {
            self.absolute(
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
                let line = self.at(&[K("secrets"), I(first)]).line;
                self.error(
                    loc,
                    format!(
                        "duplicate secret id `{}` (first declared on line {line})",
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
    /// so only `root`, numeric ids and users declared in `build.users` pass.
    fn user_ref(&mut self, config: &Config, user: &str, path: &[Seg<'_>], name: &str) {
        if !self.complete
            || user == "root"
            || is_numeric(user)
            || config.build.users.iter().any(|u| u.name == user)
        {
            return;
        }
        let loc = self.at(path);
        let mut known: Vec<&str> = config.build.users.iter().map(|u| u.name.as_str()).collect();
        known.push("root");
        let hint = match suggest(user, &known) {
            Some(s) => format!("did you mean `{s}`?"),
            None => "declare it in `build.users`, or use `root` or a numeric id".to_string(),
        };
        self.error_hint(loc, format!("unknown user `{user}` in `{name}`"), hint);
    }

    /// A copy source must name something inside the habitat directory: the build
    /// must never read (and bake into an image) a file from elsewhere on the host.
    fn copy_source(&mut self, source: &str, loc: Loc) {
        const HINT: &str = "copy sources are relative to the habitat directory and stay inside it";
        if source.trim().is_empty() {
            self.error(loc, "empty copy source".to_string());
            return;
        }
        let relative = Path::new(source);
        if relative.has_root() {
            self.error_hint(
                loc,
                format!("copy source `{source}` is an absolute path"),
                HINT,
            );
            return;
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
                        format!("copy source `{source}` is outside the habitat directory"),
                        HINT,
                    );
                    return;
                }
            }
        }
        let full = self.dir.join(relative);
        if std::fs::symlink_metadata(&full).is_err() {
            let hint = format!(
                "paths are relative to the habitat directory `{}`",
                self.dir.display()
            );
            self.error_hint(loc, format!("copy source `{source}` does not exist"), hint);
            return;
        }
        match leads_out(self.dir, relative) {
            Ok(None) => {}
            Ok(Some((link, target))) => self.error_hint(
                loc,
                format!(
                    "copy source `{source}` leads out of the habitat directory: `{}` is a symlink to `{}`",
                    link.display(),
                    target.display()
                ),
                "copy the file into the habitat directory instead of linking to it",
            ),
            Err(err) => self.error(
                loc,
                format!("copy source `{source}` cannot be resolved: {err}"),
            ),
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
