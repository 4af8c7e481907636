//! The typed shape of `kiln.yaml` (SPEC §2): one struct per section, shared by the
//! parser, the JSON Schema and the key computation, so the three cannot disagree.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A whole `kiln.yaml`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The habitat's name: runs of `[a-z0-9]` separated by one `.`, one or
    /// two `_`, or `-`s, at most 247 characters, so that `habitat-NAME`, the
    /// name of its images, is a valid image name.
    pub name: String,
    /// Free text; never causes a rebuild.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub build: Build,
    /// Build-time secrets, given to setup commands; never baked into an image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<Secret>,
    /// Long-running containers of the built image, one per member; not a
    /// cache-key input: changing this section rebuilds nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instances: Option<Instances>,
    /// Processes run in one container under kiln's init (SPEC §9), by name;
    /// an input of the `final` phase only, which adds `/.kiln/init` and
    /// `/.kiln/services.json`, makes the init the entrypoint (`final.command`
    /// is the main process) and sets a HEALTHCHECK.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub services: BTreeMap<String, ServiceConfig>,
    /// How many old snapshots kiln keeps (SPEC §11); not a cache-key input:
    /// changing it rebuilds nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheConfig>,
    /// Fragments merged before this file, in order (SPEC §2.1): paths
    /// relative to this file's directory, of a file or of a directory
    /// holding `kiln.yaml`. Maps merge key by key, lists append, a later
    /// scalar wins; a fragment's own relative paths are relative to its
    /// directory. Merged away when the config loads: always empty there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    /// Where `kiln push` sends the built image, under which tags, and what
    /// `kiln retention` keeps (SPEC §10); not a cache-key input: changing
    /// this section rebuilds nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<RegistryConfig>,
}

/// The `cache:` section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// After each successful build kiln prunes this habitat's snapshots at
    /// level `soft`, keeping the `keep` most recently used chains besides
    /// the current one (and everything tagged or in use); `0` turns the
    /// automatic prune off. 5 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep: Option<u32>,
}

impl Config {
    /// `cache.keep`, or its default (5).
    pub fn cache_keep(&self) -> usize {
        self.cache
            .as_ref()
            .and_then(|c| c.keep)
            .map_or(5, |k| k as usize)
    }
}

/// The `build:` section: one optional subsection per phase.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Build {
    #[serde(default)]
    pub base: Base,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<User>,
    #[serde(default, skip_serializing_if = "Env::is_empty")]
    pub env: Env,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub habitat: Option<HabitatDirs>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<Files>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setup: Option<Setup>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repos: Vec<Repo>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<Tool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<Verify>,
    #[serde(default, rename = "final", skip_serializing_if = "Option::is_none")]
    pub final_: Option<Final>,
}

/// Exactly one of `image`, `habitat` or `bootstrap`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Base {
    /// An image reference, pulled when missing locally.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Path to another habitat whose final image is this one's base.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub habitat: Option<String>,
    /// A base made locally with debootstrap from the distro's packages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap: Option<Bootstrap>,
}

/// The resolved kind of base, once `Base` has been validated.
#[derive(Debug, Clone, PartialEq)]
pub enum BaseSource<'a> {
    Image(&'a str),
    Habitat(&'a str),
    Bootstrap(&'a Bootstrap),
}

impl Base {
    /// The one base kind given; `None` when zero or several are set (a config error).
    pub fn source(&self) -> Option<BaseSource<'_>> {
        match (&self.image, &self.habitat, &self.bootstrap) {
            (Some(i), None, None) => Some(BaseSource::Image(i)),
            (None, Some(h), None) => Some(BaseSource::Habitat(h)),
            (None, None, Some(b)) => Some(BaseSource::Bootstrap(b)),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Bootstrap {
    /// Only `debian` is supported.
    #[serde(default = "default_distro")]
    pub distro: String,
    /// The release, e.g. `bookworm`.
    pub suite: String,
    /// debootstrap's `--variant`; `minbase` by default.
    #[serde(default = "default_variant")]
    pub variant: String,
    /// The package mirror; the host's Debian mirror by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<String>,
    /// Extra packages to include in the base.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
}

fn default_distro() -> String {
    "debian".to_string()
}

fn default_variant() -> String {
    "minbase".to_string()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// Primary group id; a group named after the user is created with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    /// Supplementary groups, created when missing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<String>,
    /// `/home/NAME` by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home: Option<String>,
}

/// Environment variables: a list of `KEY=VALUE` or a map. Values expand
/// `$NAME`, `${NAME}`, `${NAME:-default}`, `${NAME:+alt}` (`$$` is a `$`)
/// against the base's environment and, in a list, the entries before them:
/// `PATH=/opt/bin:$PATH`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Env {
    List(Vec<String>),
    Map(BTreeMap<String, String>),
}

impl Default for Env {
    fn default() -> Self {
        Env::List(Vec::new())
    }
}

impl Env {
    pub fn is_empty(&self) -> bool {
        match self {
            Env::List(l) => l.is_empty(),
            Env::Map(m) => m.is_empty(),
        }
    }

    /// The entries in order, and whether they apply at once (the map form,
    /// whose order YAML does not keep: every value sees only the environment
    /// before the phase) rather than one after another (the list form: a
    /// value sees the entries before it). List entries without `=` are
    /// skipped here (the validator reports them).
    pub fn entries(&self) -> (Vec<(String, String)>, bool) {
        match self {
            Env::Map(m) => (m.clone().into_iter().collect(), true),
            Env::List(l) => (
                l.iter()
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                false,
            ),
        }
    }

    /// The variables as a map; in a list a later `KEY=` wins, as in a shell.
    /// Entries without `=` are skipped here (the validator reports them).
    pub fn to_map(&self) -> BTreeMap<String, String> {
        match self {
            Env::Map(m) => m.clone(),
            Env::List(l) => l
                .iter()
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HabitatDirs {
    /// Directories created in the image (with parents, root's `0755`), each
    /// a path or `{ path, owner, group, mode }`. Path fields expand
    /// variables against the environment after the env phase: `$HOME/bin`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dirs: Vec<HabitatDir>,
    /// The image's working directory; created too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work_dir: Option<String>,
}

/// One entry of `habitat.dirs`: a path, or a path with the owner, group
/// and mode it must have (SPEC §2.1). A directory the image already has
/// keeps whatever the entry does not name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum HabitatDir {
    Path(String),
    Spec(DirSpec),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DirSpec {
    /// Absolute path in the image; variables expand as in `dirs`' plain entries.
    pub path: String,
    /// A user name or uid: `root`, a numeric id, or a user declared in
    /// `build.users` or by a base habitat. A new directory is root's when
    /// absent; an existing one keeps its owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// A group name or gid: `root`, a numeric id, a declared user's name or
    /// one of its `groups`, or a base habitat's user. When absent: the
    /// owner's primary group if `owner` is given, else root's for a new
    /// directory, and the group an existing one has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Octal, e.g. "0750" (quoted or not; "750" is the same mode). A new
    /// directory is `0755` when absent; an existing one keeps its mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
}

/// An octal mode in one spelling (`644`, `"0644"` and `"00644"` are one
/// mode, so they are one key); `check` has refused anything else.
pub fn canonical_mode(mode: &str) -> String {
    match u32::from_str_radix(mode, 8) {
        Ok(m) => format!("{m:04o}"),
        Err(_) => mode.to_string(),
    }
}

impl From<&str> for HabitatDir {
    fn from(path: &str) -> Self {
        HabitatDir::Path(path.to_string())
    }
}

impl HabitatDir {
    pub fn path(&self) -> &str {
        match self {
            HabitatDir::Path(p) => p,
            HabitatDir::Spec(s) => &s.path,
        }
    }

    pub fn path_mut(&mut self) -> &mut String {
        match self {
            HabitatDir::Path(p) => p,
            HabitatDir::Spec(s) => &mut s.path,
        }
    }

    /// The entry's owner, group and mode, each `None` when not named.
    pub fn attributes(&self) -> (Option<&str>, Option<&str>, Option<&str>) {
        match self {
            HabitatDir::Path(_) => (None, None, None),
            HabitatDir::Spec(s) => (s.owner.as_deref(), s.group.as_deref(), s.mode.as_deref()),
        }
    }

    /// Whether the entry names an owner, group or mode: `{ path: /x }` is
    /// the same directory as `/x`.
    pub fn names_attributes(&self) -> bool {
        self.attributes() != (None, None, None)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Files {
    /// Files or directories baked into the image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub copies: Vec<Copy>,
    /// Run-time mounts only: never baked, never a cause of rebuild.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Volume>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Copy {
    /// Relative to the directory of the file that names it (the habitat
    /// directory, or an included fragment's); must stay inside it.
    pub source: String,
    /// Absolute path in the image.
    pub dest: String,
    /// A user name or uid; `root` by default.
    /// Must be `root`, a numeric id, or a user declared in `build.users` or
    /// by a base habitat (`base.habitat`, and its bases): other users of a
    /// base image are unknown when the config is checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// A group name or gid; the owner's primary group by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Octal, e.g. "0644"; the source's own mode by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Land this copy after repos and tools (in the tools phase), so that
    /// editing it rebuilds only tools..final, and it may go on top of a
    /// repo's checkout. Copies that setup or repo commands need stay early.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub late: bool,
    /// Not written by the user: the directory `source` must stay inside,
    /// relative to the habitat directory, when the copy came from an
    /// included fragment (its directory); the habitat directory when `None`.
    #[serde(skip)]
    #[schemars(skip)]
    pub root: Option<String>,
}

impl Copy {
    /// The copy's root (relative to the habitat directory; empty for the
    /// habitat directory) and its source below that root.
    pub fn in_root(&self) -> (&str, &str) {
        super::include::in_root(self.root.as_deref(), &self.source)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Volume {
    /// A host path (relative to the habitat directory) or a named volume.
    pub source: String,
    pub dest: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub readonly: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Setup {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packages: Option<Packages>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commands: Option<Commands>,
    /// The program and its leading arguments every setup, repo and verify
    /// command is run with, the command appended as the last argument; each
    /// command is its own shell, like a Dockerfile `RUN`. Default
    /// `["/bin/sh", "-e", "-c"]`; e.g. `["/bin/bash", "-c"]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
}

/// The shell a config's commands run with when `setup.shell` is absent.
pub const DEFAULT_SHELL: [&str; 3] = ["/bin/sh", "-e", "-c"];

impl Config {
    /// `setup.shell`, or [`DEFAULT_SHELL`].
    pub fn shell(&self) -> Vec<String> {
        self.build
            .setup
            .as_ref()
            .and_then(|s| s.shell.clone())
            .unwrap_or_else(|| DEFAULT_SHELL.iter().map(|s| s.to_string()).collect())
    }
}

/// Package lists are order-insensitive: a reordered list is the same config.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Packages {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub apt: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub npm: Vec<NpmPackage>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pip: Vec<String>,
}

/// An npm package: a bare name (installed globally) or a table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum NpmPackage {
    Name(String),
    Spec(NpmSpec),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NpmSpec {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default = "default_true")]
    pub global: bool,
}

fn default_true() -> bool {
    true
}

impl NpmPackage {
    pub fn name(&self) -> &str {
        match self {
            NpmPackage::Name(n) => n,
            NpmPackage::Spec(s) => &s.name,
        }
    }

    /// `name` or `name@version`, as npm takes it.
    pub fn spec(&self) -> String {
        match self {
            NpmPackage::Name(n) => n.clone(),
            NpmPackage::Spec(NpmSpec {
                name,
                version: Some(v),
                ..
            }) => format!("{name}@{v}"),
            NpmPackage::Spec(s) => s.name.clone(),
        }
    }

    pub fn global(&self) -> bool {
        match self {
            NpmPackage::Name(_) => true,
            NpmPackage::Spec(s) => s.global,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Commands {
    /// Shell commands run as root, in order, after packages.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub root: Vec<String>,
    /// The user `scripts` run as; root by default.
    /// Must be `root`, a numeric id, or a user declared in `build.users` or
    /// by a base habitat (`base.habitat`, and its bases): other users of a
    /// base image are unknown when the config is checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Shell commands run as `user`, in order, after the root commands.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scripts: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Repo {
    /// A git URL, `file://` URL or local path (relative to the habitat directory).
    pub url: String,
    /// Absolute path in the image.
    pub path: String,
    /// Branch, tag or commit; the remote's default branch when absent.
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub git_ref: Option<String>,
    /// A user name or uid; `root` by default.
    /// Must be `root`, a numeric id, or a user declared in `build.users` or
    /// by a base habitat (`base.habitat`, and its bases): other users of a
    /// base image are unknown when the config is checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Keep only the last N commits of history in the image's checkout
    /// (`git clone --depth N`); the whole history when absent. A key input:
    /// the image's `.git` differs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depth: Option<u32>,
    /// Shell commands run in the repo's directory as its `owner`, in order,
    /// right after the checkout (e.g. `npm ci`, `bundle install`), with
    /// `setup.shell`; each is cached as its own step, keyed with the commit.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub commands: Vec<String>,
}

impl Repo {
    /// Whether git takes `url` as a URL (`scheme://…`, or scp-like
    /// `host:path`: a colon before any slash) rather than a local path.
    pub fn is_remote_url(url: &str) -> bool {
        if url.contains("://") {
            return true;
        }
        match (url.find(':'), url.find('/')) {
            (Some(colon), slash) => colon > 0 && slash.is_none_or(|s| colon < s),
            _ => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Tool {
    pub name: String,
    /// An `http(s)://` URL, or a path relative to the habitat directory.
    pub source: String,
    /// The expected sha256 of the file, in hex.
    pub sha256: String,
    /// `/usr/local/bin/NAME` by default. With `extract` and no `path`, the
    /// directory the whole archive is unpacked into (then required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dest: Option<String>,
    /// The source is an archive (`.tar`, `.tar.gz`, `.tgz`, `.tar.xz` or
    /// `.zip`, by its name) to unpack; `sha256` is the archive's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub extract: bool,
    /// With `extract`: the file inside the archive installed at `dest`,
    /// e.g. `jq-1.7/bin/jq`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Not written by the user: the directory a local `source` must stay
    /// inside, as [`Copy::root`].
    #[serde(skip)]
    #[schemars(skip)]
    pub root: Option<String>,
}

impl Tool {
    /// The tool's root (relative to the habitat directory; empty for the
    /// habitat directory) and its local source below that root.
    pub fn in_root(&self) -> (&str, &str) {
        super::include::in_root(self.root.as_deref(), &self.source)
    }

    pub fn dest(&self) -> String {
        self.dest
            .clone()
            .unwrap_or_else(|| format!("/usr/local/bin/{}", self.name))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Verify {
    /// Paths that must exist in the image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<String>,
    /// Shell commands that must exit 0.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub commands: Vec<String>,
    /// The user the commands run as; `root` by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Final {
    /// The image's user, `USER[:GROUP]`.
    /// Must be `root`, a numeric id, or a user declared in `build.users` or
    /// by a base habitat (`base.habitat`, and its bases): other users of a
    /// base image are unknown when the config is checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// Ports, e.g. `3000` or `"53/udp"`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expose: Vec<Port>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// A port number, or `PORT/PROTO`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Port {
    Number(u16),
    Spec(String),
}

impl Port {
    /// Docker's form: `3000/tcp`.
    pub fn docker(&self) -> String {
        match self {
            Port::Number(n) => format!("{n}/tcp"),
            Port::Spec(s) if s.contains('/') => s.clone(),
            Port::Spec(s) => format!("{s}/tcp"),
        }
    }
}

/// A build-time secret: read on the host from `env` or `file`, mounted for
/// setup commands at `/run/secrets/ID` and exported as `env` when given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Secret {
    pub id: String,
    /// The host environment variable holding the value; also the name it is
    /// exported under inside the build command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// A host file holding the value, relative to the habitat directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

/// The `instances:` section: members run from the habitat's final image.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Instances {
    /// Applied to every member. A member's `command` and `restart` replace
    /// these, its `env` entries override these by key, and its `ports`,
    /// `volumes` and `persist` are added to these.
    #[serde(default)]
    pub defaults: InstanceSpec,
    /// Member name → its own settings. A member's container is `HABITAT-MEMBER`;
    /// names are `[a-z0-9][a-z0-9_.-]*`, at most 64 characters (the
    /// container's hostname).
    #[serde(default)]
    pub members: BTreeMap<String, Option<InstanceSpec>>,
}

/// The settings of one instance (or the defaults of all).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InstanceSpec {
    /// The command to run instead of the image's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Env::is_empty")]
    pub env: Env,
    /// What the engine does when the container exits; `no` by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<RestartPolicy>,
    /// Absolute paths in the container kept in a named volume per member,
    /// which survives `down`, `up` and image upgrades (`down --volumes` removes it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub persist: Vec<String>,
    /// Published ports, `[HOST_IP:]HOST_PORT:CONTAINER_PORT[/PROTO]`,
    /// e.g. `"127.0.0.1:8081:3000"`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<String>,
    /// Extra mounts, `SOURCE:DEST[:ro]`: a host path (relative to the habitat
    /// directory) or a named volume.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<String>,
}

/// The engine's restart policy for an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    No,
    OnFailure,
    Always,
    UnlessStopped,
}

impl RestartPolicy {
    /// Docker's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            RestartPolicy::No => "no",
            RestartPolicy::OnFailure => "on-failure",
            RestartPolicy::Always => "always",
            RestartPolicy::UnlessStopped => "unless-stopped",
        }
    }
}

/// One entry of `services:`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// A string for `/bin/sh -c`, or a list (argv).
    pub command: ServiceCommand,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    #[serde(default, skip_serializing_if = "Env::is_empty")]
    pub env: Env,
    /// Services this one starts after: once each is ready (or, a oneshot, done).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<String>,
    /// Runs to completion; what comes after it waits for its exit 0.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub oneshot: bool,
    /// A oneshot is skipped when this path exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creates: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<ReadyConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<StopConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<ServiceRestart>,
    /// Restarts allowed within a minute (default 5), with backoff.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_restarts: Option<u32>,
}

/// A service's command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ServiceCommand {
    Shell(String),
    Argv(Vec<String>),
}

impl Default for ServiceCommand {
    fn default() -> Self {
        ServiceCommand::Argv(Vec::new())
    }
}

impl ServiceCommand {
    /// The argv: a string runs under `/bin/sh -c`.
    pub fn argv(&self) -> Vec<String> {
        match self {
            ServiceCommand::Shell(s) => vec!["/bin/sh".into(), "-c".into(), s.clone()],
            ServiceCommand::Argv(v) => v.clone(),
        }
    }
}

/// A readiness probe: exactly one of `command`, `tcp`, `unix`, `http`, `file`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadyConfig {
    /// Ready when it exits 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<ServiceCommand>,
    /// Ready when 127.0.0.1:PORT accepts a connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<u32>,
    /// Ready when this Unix socket accepts a connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unix: Option<String>,
    /// Ready on a 2xx answer to this `http://` URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<String>,
    /// Ready when this path exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// How often to probe, e.g. `100ms` (the default), `1s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// How long until the container fails, e.g. `60s` (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}

/// How a service stops.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StopConfig {
    /// `SIGTERM` (the default), `SIGINT`, `SIGQUIT`, `SIGHUP`, `SIGUSR1`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    /// How long it may take before SIGKILL, e.g. `30s` (default `10s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace: Option<String>,
}

/// When a service is started again after it exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ServiceRestart {
    No,
    OnFailure,
    Always,
}

/// The `registry:` section (SPEC §10).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// `HOST[:PORT]/PATH`, e.g. `ghcr.io/team/app` or
    /// `127.0.0.1:5000/team/app`: the registry host is required, and the
    /// path is lowercase components separated by `/`; no tag, no digest.
    pub repository: String,
    /// Tag templates the final image is pushed under, e.g.
    /// `"{branch}-{sha7}"`, `"pr-{pr}"`, `"latest"`. Variables: `{branch}`,
    /// `{sha}`, `{sha7}`, `{tag}`, `{pr}`, `{key12}`, `{date}`,
    /// `{env.NAME}`; a tag with an unset variable is skipped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Also push each phase snapshot as `cache-KEY`, and let builds pull
    /// the deepest one instead of running the phases up to it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cache: bool,
    /// What `kiln retention` keeps: the first rule whose `match` fits a tag
    /// decides; tags no rule matches are kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retention: Vec<RetentionRule>,
}

/// One rule of `registry.retention`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetentionRule {
    /// A glob over tags, `*` matching any run of characters: `"pr-*"`.
    #[serde(rename = "match")]
    pub pattern: String,
    /// Keep the N newest matching tags (by `org.opencontainers.image.created`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep: Option<u32>,
    /// Delete matching tags created longer ago than this: `30d`, `12h`,
    /// `2w`, `90m`, `45s`. With `keep` too, a tag goes only when both say so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub older_than: Option<String>,
}
