//! Table tests of `kiln.yaml` validation: each bad input must yield exactly the
//! expected message at the expected line and column, and good inputs in every
//! accepted form must parse to the expected typed values.
//!
//! Over 600 lines: a table of cases, one row each; it grows a row per rule.

use std::path::Path;

use kiln_core::config::{self, Config, Diagnostics, DirSpec, Env, HabitatDir, NpmPackage, Port};

/// A habitat directory with one copyable file, `f`, a subdirectory `sub`,
/// and what the rows name as a local repo (`a`) and tool source (`jq`).
fn habitat() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("f"), "content").expect("write f");
    std::fs::create_dir(dir.path().join("sub")).expect("mkdir sub");
    std::fs::create_dir(dir.path().join("a")).expect("mkdir a");
    std::fs::write(dir.path().join("jq"), "#!/bin/sh\n").expect("write jq");
    dir
}

fn parse_in(dir: &Path, yaml: &str) -> Result<Config, Diagnostics> {
    config::parse("kiln.yaml", yaml, dir)
}

/// Every problem as `line:col: message`, and hints as `hint: ...`.
fn problems(d: &Diagnostics) -> Vec<String> {
    d.iter()
        .map(|d| match d.hint() {
            Some(h) => format!("{}:{}: {} [hint: {h}]", d.line(), d.column(), d.message()),
            None => format!("{}:{}: {}", d.line(), d.column(), d.message()),
        })
        .collect()
}

const HEAD: &str = "name: x\nbuild:\n  base: { image: debian }\n";

/// (what, yaml, expected `line:col: message`, expected hint or "")
const BAD: &[(&str, &str, &str, &str)] = &[
    // --- structure: unknown keys, types, required keys, duplicates
    (
        "misspelt top-level key",
        "name: x\ndescripton: y\nbuild:\n  base: { image: debian }\n",
        "2:1: unknown key `descripton` at the top level",
        "did you mean `description`?",
    ),
    (
        "misspelt key in build.setup",
        "name: x\nbuild:\n  base: { image: debian }\n  setup:\n    pakages:\n      apt: [curl]\n",
        "5:5: unknown key `pakages` in `build.setup`",
        "did you mean `packages`?",
    ),
    (
        "unknown key far from any known one",
        "name: x\nbuild:\n  base: { image: debian }\n  verify: { zzz: 1 }\n",
        "4:13: unknown key `zzz` in `build.verify`",
        "expected one of `files`, `commands`, `user`",
    ),
    (
        "misspelt key inside an npm table",
        "name: x\nbuild:\n  base: { image: debian }\n  setup:\n    packages:\n      npm: [{ name: tsc, globl: true }]\n",
        "6:26: unknown key `globl` in `build.setup.packages.npm[0]`",
        "did you mean `global`?",
    ),
    (
        "uid that is not a number",
        "name: x\nbuild:\n  base: { image: debian }\n  users:\n    - { name: dev, uid: abc }\n",
        "5:25: wrong type for `build.users[0].uid`: expected an integer, found `abc`",
        "",
    ),
    (
        "negative uid",
        "name: x\nbuild:\n  base: { image: debian }\n  users:\n    - { name: dev, uid: -1 }\n",
        "5:25: `-1` is out of range for `build.users[0].uid`: expected 0 to 4294967295",
        "",
    ),
    (
        "boolean that is not one",
        "name: x\nbuild:\n  base: { image: debian }\n  files:\n    volumes: [{ source: a, dest: /a, readonly: maybe }]\n",
        "5:48: wrong type for `build.files.volumes[0].readonly`: expected `true` or `false`, found `maybe`",
        "",
    ),
    (
        "name that is a list",
        "name: [a]\nbuild:\n  base: { image: debian }\n",
        "1:7: wrong type for `name`: expected a string, found a list",
        "",
    ),
    (
        "users that is a mapping",
        "name: x\nbuild:\n  base: { image: debian }\n  users: { name: dev }\n",
        "4:10: wrong type for `build.users`: expected a list, found a mapping",
        "",
    ),
    (
        "env value that is a mapping",
        "name: x\nbuild:\n  base: { image: debian }\n  env:\n    A: { b: 1 }\n",
        "5:8: wrong type for `build.env.A`: expected a string, found a mapping",
        "",
    ),
    (
        "env that is a string",
        "name: x\nbuild:\n  base: { image: debian }\n  env: A=1\n",
        "4:8: wrong type for `build.env`: expected a list or a mapping, found a scalar",
        "",
    ),
    (
        "required key left empty",
        "name:\nbuild:\n  base: { image: debian }\n",
        "1:1: wrong type for `name`: expected a string, found nothing",
        "give a value, or remove the key",
    ),
    (
        "missing name",
        "build:\n  base: { image: debian }\n",
        "1:1: missing required key `name`",
        "",
    ),
    (
        "user without a name",
        "name: x\nbuild:\n  base: { image: debian }\n  users:\n    - { uid: 1 }\n",
        "5:7: missing required key `name` in `build.users[0]`",
        "",
    ),
    (
        "bootstrap without a suite",
        "name: x\nbuild:\n  base:\n    bootstrap:\n      distro: debian\n",
        "4:5: missing required key `suite` in `build.base.bootstrap`",
        "",
    ),
    (
        "duplicate key",
        "name: x\nbuild:\n  base: { image: debian }\n  setup:\n    commands:\n      root: [ls]\n      root: [pwd]\n",
        "7:7: duplicate key `root` in `build.setup.commands`",
        "it is already set on line 6; remove one of them",
    ),
    (
        "empty file",
        "",
        "1:1: the config is empty",
        "a `kiln.yaml` needs at least `name` and `build.base`",
    ),
    (
        "top level that is a list",
        "- a\n",
        "1:1: wrong type for the config: expected a mapping, found a list",
        "",
    ),
    // --- YAML syntax
    (
        "unclosed quote",
        "name: \"x\nbuild: {}\n",
        "1:7: invalid YAML: unclosed quote",
        "",
    ),
    (
        "bad indentation",
        "name: x\n  build: y\n",
        "2:8: invalid YAML: mapping values are not allowed in this context",
        "",
    ),
    (
        "two documents",
        "name: x\n---\nname: y\n",
        "3:1: invalid YAML: more than one YAML document",
        "a `kiln.yaml` holds one document: remove the `---` separator",
    ),
    (
        "tab indentation",
        "name: x\nbuild:\n\tbase: {}\n",
        "3:2: invalid YAML: tabs disallowed within this context (block indentation)",
        "indent with spaces, not tabs",
    ),
    // --- semantics
    (
        "habitat name with capitals",
        "name: Discourse\nbuild:\n  base: { image: debian }\n",
        "1:7: invalid habitat name `Discourse`",
        "images are `habitat-NAME`: lowercase letters and digits, separated by one `.`, one or two `_`, or `-`s, at most 247 characters",
    ),
    (
        "no base",
        "name: x\nbuild:\n  users: []\n",
        "3:3: no base given in `build.base`",
        "set exactly one of `image`, `habitat` or `bootstrap`",
    ),
    (
        "no build at all",
        "name: x\n",
        "1:1: no base given in `build.base`",
        "set exactly one of `image`, `habitat` or `bootstrap`",
    ),
    (
        "two bases",
        "name: x\nbuild:\n  base:\n    image: debian\n    habitat: ../base\n",
        "5:5: `build.base` sets both `image` and `habitat`",
        "set exactly one of `image`, `habitat` or `bootstrap`",
    ),
    (
        "bootstrap of another distro",
        "name: x\nbuild:\n  base:\n    bootstrap: { distro: ubuntu, suite: noble }\n",
        "4:26: unsupported bootstrap distro `ubuntu`",
        "only `debian` is supported",
    ),
    (
        "invalid user name",
        "name: x\nbuild:\n  base: { image: debian }\n  users:\n    - { name: Dev }\n",
        "5:15: invalid user name `Dev`",
        "a user or group name is `[a-z_][a-z0-9_-]*`, optionally ending in `$`, at most 32 characters",
    ),
    (
        "user name too long",
        "name: x\nbuild:\n  base: { image: debian }\n  users:\n    - { name: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa }\n",
        "5:15: invalid user name `aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa`",
        "a user or group name is `[a-z_][a-z0-9_-]*`, optionally ending in `$`, at most 32 characters",
    ),
    (
        "invalid group name",
        "name: x\nbuild:\n  base: { image: debian }\n  users:\n    - { name: dev, groups: [Wheel] }\n",
        "5:29: invalid group name `Wheel`",
        "a user or group name is `[a-z_][a-z0-9_-]*`, optionally ending in `$`, at most 32 characters",
    ),
    (
        "duplicate user name",
        "name: x\nbuild:\n  base: { image: debian }\n  users:\n    - { name: dev }\n    - { name: dev }\n",
        "6:15: duplicate user `dev` in `build.users` (first declared on line 5)",
        "",
    ),
    (
        "duplicate uid",
        "name: x\nbuild:\n  base: { image: debian }\n  users:\n    - { name: a, uid: 1000 }\n    - { name: b, uid: 1000 }\n",
        "6:23: duplicate uid 1000 in `build.users`: `a` has it too",
        "",
    ),
    (
        "mode that is not octal",
        "name: x\nbuild:\n  base: { image: debian }\n  files:\n    copies: [{ source: f, dest: /f, mode: \"0888\" }]\n",
        "5:43: invalid mode `0888` in `build.files.copies[0].mode`",
        "write an octal mode as a quoted string, e.g. \"0644\" or \"755\"",
    ),
    (
        "mode in letters",
        "name: x\nbuild:\n  base: { image: debian }\n  files:\n    copies: [{ source: f, dest: /f, mode: rw-r--r-- }]\n",
        "5:43: invalid mode `rw-r--r--` in `build.files.copies[0].mode`",
        "write an octal mode as a quoted string, e.g. \"0644\" or \"755\"",
    ),
    (
        "env list entry without =",
        "name: x\nbuild:\n  base: { image: debian }\n  env:\n    - FOO\n",
        "5:7: env entry `FOO` is not `KEY=VALUE`",
        "write `FOO=` for an empty value",
    ),
    (
        "env list entry with a bad key",
        "name: x\nbuild:\n  base: { image: debian }\n  env: [\"1X=2\"]\n",
        "4:9: invalid environment variable name `1X`",
        "a variable name is letters, digits and `_`, not starting with a digit",
    ),
    (
        "env map with a bad key",
        "name: x\nbuild:\n  base: { image: debian }\n  env:\n    MY-VAR: 1\n",
        "5:5: invalid environment variable name `MY-VAR`",
        "a variable name is letters, digits and `_`, not starting with a digit",
    ),
    (
        "relative copy dest",
        "name: x\nbuild:\n  base: { image: debian }\n  files:\n    copies: [{ source: f, dest: etc/f }]\n",
        "5:33: `build.files.copies[0].dest` must be an absolute path, found `etc/f`",
        "paths in the image start with `/`",
    ),
    (
        "relative repo path",
        "name: x\nbuild:\n  base: { image: debian }\n  repos: [{ url: a, path: app }]\n",
        "4:27: `build.repos[0].path` must be an absolute path, found `app`",
        "paths in the image start with `/`",
    ),
    (
        "relative habitat dir",
        "name: x\nbuild:\n  base: { image: debian }\n  habitat: { dirs: [/a, b] }\n",
        "4:25: `build.habitat.dirs[1]` must be an absolute path, found `b`",
        "paths in the image start with `/`",
    ),
    (
        "relative work_dir",
        "name: x\nbuild:\n  base: { image: debian }\n  habitat: { work_dir: work }\n",
        "4:24: `build.habitat.work_dir` must be an absolute path, found `work`",
        "paths in the image start with `/`",
    ),
    (
        "relative tool dest",
        "name: x\nbuild:\n  base: { image: debian }\n  tools:\n    - name: jq\n      source: jq\n      sha256: 5942c9b0934e510ee61eb3e30273f1b3fe2590df93933a93d7c58b81d19c8ff5\n      dest: bin/jq\n",
        "8:13: `build.tools[0].dest` must be an absolute path, found `bin/jq`",
        "paths in the image start with `/`",
    ),
    (
        "tool path without extract",
        "name: x\nbuild:\n  base: { image: debian }\n  tools:\n    - name: jq\n      source: https://x.example/jq.tar.gz\n      sha256: 5942c9b0934e510ee61eb3e30273f1b3fe2590df93933a93d7c58b81d19c8ff5\n      path: bin/jq\n",
        "8:13: `build.tools[0].path` is set but `extract` is not",
        "`path` names a file inside an archive: add `extract: true`",
    ),
    (
        "tool path leaving the archive",
        "name: x\nbuild:\n  base: { image: debian }\n  tools:\n    - name: jq\n      source: https://x.example/jq.tar.gz\n      sha256: 5942c9b0934e510ee61eb3e30273f1b3fe2590df93933a93d7c58b81d19c8ff5\n      extract: true\n      path: ../jq\n",
        "9:13: `build.tools[0].path` `../jq` leaves the archive",
        "name a file inside the archive: relative, without `..`",
    ),
    (
        "tool extract of a non-archive",
        "name: x\nbuild:\n  base: { image: debian }\n  tools:\n    - name: jq\n      source: https://x.example/jq.bz2\n      sha256: 5942c9b0934e510ee61eb3e30273f1b3fe2590df93933a93d7c58b81d19c8ff5\n      extract: true\n      path: jq\n",
        "6:15: `build.tools[0].source` `https://x.example/jq.bz2` is not an archive kiln can unpack",
        "`extract` takes a `.tar`, `.tar.gz`, `.tgz`, `.tar.xz` or `.zip` source",
    ),
    (
        "tool unpacked whole without dest",
        "name: x\nbuild:\n  base: { image: debian }\n  tools:\n    - name: node\n      source: https://x.example/node.tar.xz\n      sha256: 5942c9b0934e510ee61eb3e30273f1b3fe2590df93933a93d7c58b81d19c8ff5\n      extract: true\n",
        "8:16: `build.tools[0]` unpacks a whole archive but has no `dest`",
        "give the directory to unpack into as `dest`, or the file to install as `path`",
    ),
    (
        "undeclared copy owner",
        "name: x\nbuild:\n  base: { image: debian }\n  users: [{ name: dev }]\n  files:\n    copies: [{ source: f, dest: /f, owner: dve }]\n",
        "6:44: unknown user `dve` in `build.files.copies[0].owner`",
        "did you mean `dev`?",
    ),
    (
        "undeclared repo owner",
        "name: x\nbuild:\n  base: { image: debian }\n  repos: [{ url: a, path: /a, owner: www-data }]\n",
        "4:38: unknown user `www-data` in `build.repos[0].owner`",
        "declare it in `build.users`, or use `root` or a numeric id",
    ),
    (
        "undeclared script user",
        "name: x\nbuild:\n  base: { image: debian }\n  setup:\n    commands: { user: bob, scripts: [ls] }\n",
        "5:23: unknown user `bob` in `build.setup.commands.user`",
        "declare it in `build.users`, or use `root` or a numeric id",
    ),
    (
        "undeclared verify user",
        "name: x\nbuild:\n  base: { image: debian }\n  verify: { user: bob, commands: [ls] }\n",
        "4:19: unknown user `bob` in `build.verify.user`",
        "declare it in `build.users`, or use `root` or a numeric id",
    ),
    (
        "empty setup shell",
        "name: x\nbuild:\n  base: { image: debian }\n  setup: { shell: [], commands: { root: [ls] } }\n",
        "4:19: `build.setup.shell` is empty",
        "name the shell and its options, e.g. `[\"/bin/bash\", \"-c\"]`",
    ),
    (
        "relative setup shell",
        "name: x\nbuild:\n  base: { image: debian }\n  setup: { shell: [bash, -c], commands: { root: [ls] } }\n",
        "4:20: `build.setup.shell[0]` is `bash`, not an absolute path",
        "write the shell's path in the image, e.g. `/bin/bash`",
    ),
    (
        "undeclared final user",
        "name: x\nbuild:\n  base: { image: debian }\n  final: { user: \"bob:staff\" }\n",
        "4:18: unknown user `bob` in `build.final.user`",
        "declare it in `build.users`, or use `root` or a numeric id",
    ),
    (
        "short sha256",
        "name: x\nbuild:\n  base: { image: debian }\n  tools: [{ name: jq, source: jq, sha256: abc123 }]\n",
        "4:43: `build.tools[0].sha256` is not a sha256 digest",
        "give the 64 hex digits that `sha256sum FILE` prints",
    ),
    (
        "sha256 written as Docker writes a digest",
        "name: x\nbuild:\n  base: { image: debian }\n  tools: [{ name: jq, source: jq, sha256: \"sha256:5942c9b0934e510ee61eb3e30273f1b3fe2590df93933a93d7c58b81d19c8ff5\" }]\n",
        "4:43: `build.tools[0].sha256` is not a sha256 digest",
        "drop the `sha256:` prefix: `sha256: 5942c9b0934e510ee61eb3e30273f1b3fe2590df93933a93d7c58b81d19c8ff5`",
    ),
    (
        "sha256 with a prefix but too short",
        "name: x\nbuild:\n  base: { image: debian }\n  tools: [{ name: jq, source: jq, sha256: \"sha256:abc\" }]\n",
        "4:43: `build.tools[0].sha256` is not a sha256 digest",
        "give the 64 hex digits that `sha256sum FILE` prints",
    ),
    (
        "sha256 that is not hex",
        "name: x\nbuild:\n  base: { image: debian }\n  tools: [{ name: jq, source: jq, sha256: zz42c9b0934e510ee61eb3e30273f1b3fe2590df93933a93d7c58b81d19c8ff5 }]\n",
        "4:43: `build.tools[0].sha256` is not a sha256 digest",
        "give the 64 hex digits that `sha256sum FILE` prints",
    ),
    (
        "tool name with a slash",
        "name: x\nbuild:\n  base: { image: debian }\n  tools: [{ name: bin/jq, source: jq, sha256: 5942c9b0934e510ee61eb3e30273f1b3fe2590df93933a93d7c58b81d19c8ff5 }]\n",
        "4:19: invalid tool name `bin/jq`",
        "a tool name is a file name: not empty, not `.` or `..`, no `/`",
    ),
    (
        "empty repo url",
        "name: x\nbuild:\n  base: { image: debian }\n  repos: [{ url: \"\", path: /a }]\n",
        "4:18: `build.repos[0].url` is empty",
        "",
    ),
    (
        "copy and tool at the same place",
        "name: x\nbuild:\n  base: { image: debian }\n  files:\n    copies: [{ source: f, dest: /usr/local/bin/jq }]\n  tools: [{ name: jq, source: jq, sha256: 5942c9b0934e510ee61eb3e30273f1b3fe2590df93933a93d7c58b81d19c8ff5 }]\n",
        "6:19: duplicate destination `/usr/local/bin/jq` in `build.tools[0]`: `build.files.copies[0]` (line 5) puts something there too",
        "",
    ),
    (
        "a repo depth of 0",
        "name: x\nbuild:\n  base: { image: debian }\n  repos: [{ url: a, path: /work/app, depth: 0 }]\n",
        "4:45: `build.repos[0].depth` is 0: a checkout has at least its commit",
        "give the number of commits to keep, e.g. `depth: 1`, or leave `depth` out for the whole history",
    ),
    (
        "an early copy under a repo's path",
        "name: x\nbuild:\n  base: { image: debian }\n  files:\n    copies: [{ source: f, dest: /work/app//config/x.yml }]\n  repos: [{ url: a, path: /work/app }]\n",
        "5:33: copy to `/work/app//config/x.yml` lies under `/work/app`, the path of `build.repos[0]`, whose checkout replaces it in the repos phase",
        "add `late: true` to the copy: it then lands on top of the checkout, after repos and tools",
    ),
    (
        "regression: an early copy under a repo's path named through a variable",
        "name: x\nbuild:\n  base: { image: debian }\n  env: [APP_ROOT=/work/app]\n  files:\n    copies: [{ source: f, dest: /work/app/.env }]\n  repos: [{ url: a, path: $APP_ROOT }]\n",
        "6:33: copy to `/work/app/.env` lies under `$APP_ROOT`, the path of `build.repos[0]`, whose checkout replaces it in the repos phase",
        "add `late: true` to the copy: it then lands on top of the checkout, after repos and tools",
    ),
    (
        "an early copy through a variable under a repo's path",
        "name: x\nbuild:\n  base: { image: debian }\n  env: [APP_ROOT=/work/app, CONF=$APP_ROOT/config]\n  files:\n    copies: [{ source: f, dest: \"${CONF}/x.yml\" }]\n  repos: [{ url: a, path: /work/app }]\n",
        "6:33: copy to `${CONF}/x.yml` lies under `/work/app`, the path of `build.repos[0]`, whose checkout replaces it in the repos phase",
        "add `late: true` to the copy: it then lands on top of the checkout, after repos and tools",
    ),
    (
        "regression: copy and tool at one place, one named through a variable",
        "name: x\nbuild:\n  base: { image: debian }\n  env: [BIN=/usr/local/bin]\n  files:\n    copies: [{ source: f, dest: /usr/local/bin/jq }]\n  tools: [{ name: jq, source: jq, sha256: 5942c9b0934e510ee61eb3e30273f1b3fe2590df93933a93d7c58b81d19c8ff5, dest: $BIN/jq }]\n",
        "7:115: duplicate destination `$BIN/jq` in `build.tools[0]`: `build.files.copies[0]` (line 6) puts something there too",
        "",
    ),
    (
        "repo and copy at the same place, spelt differently",
        "name: x\nbuild:\n  base: { image: debian }\n  files:\n    copies: [{ source: f, dest: /work/app }]\n  repos: [{ url: a, path: /work//app/ }]\n",
        "6:27: duplicate destination `/work//app/` in `build.repos[0]`: `build.files.copies[0]` (line 5) puts something there too",
        "",
    ),
    (
        "secret with env and file",
        "name: x\nbuild:\n  base: { image: debian }\nsecrets:\n  - { id: t, env: T, file: t.txt }\n",
        "5:22: secret `t` sets both `env` and `file`",
        "a secret comes from exactly one of `env` or `file`",
    ),
    (
        "secret with neither env nor file",
        "name: x\nbuild:\n  base: { image: debian }\nsecrets:\n  - { id: t }\n",
        "5:5: secret `t` sets neither `env` nor `file`",
        "a secret comes from exactly one of `env` or `file`",
    ),
    (
        "secret with a bad id",
        "name: x\nbuild:\n  base: { image: debian }\nsecrets:\n  - { id: \"a b\", env: T }\n",
        "5:11: invalid secret id `a b`",
        "use letters, digits, `_`, `.` and `-`, starting with a letter, digit or `_`",
    ),
    (
        "duplicate secret id",
        "name: x\nbuild:\n  base: { image: debian }\nsecrets:\n  - { id: t, env: T }\n  - { id: t, env: U }\n",
        "6:11: duplicate secret id `t` (first declared on line 5)",
        "",
    ),
    (
        "port out of range",
        "name: x\nbuild:\n  base: { image: debian }\n  final: { expose: [70000] }\n",
        "4:21: invalid port `70000` in `build.final.expose`",
        "write a port as `3000` or `\"53/udp\"` (1 to 65535; tcp, udp or sctp)",
    ),
    (
        "port with an unknown protocol",
        "name: x\nbuild:\n  base: { image: debian }\n  final: { expose: [\"53/xyz\"] }\n",
        "4:21: invalid port `53/xyz` in `build.final.expose`",
        "write a port as `3000` or `\"53/udp\"` (1 to 65535; tcp, udp or sctp)",
    ),
    // --- copy sources
    (
        "copy source that climbs out",
        "name: x\nbuild:\n  base: { image: debian }\n  files:\n    copies: [{ source: ../etc/passwd, dest: /p }]\n",
        "5:24: copy source `../etc/passwd` is outside the habitat directory",
        "copy sources are relative to the habitat directory and stay inside it",
    ),
    (
        "copy source that climbs out through a subdirectory",
        "name: x\nbuild:\n  base: { image: debian }\n  files:\n    copies: [{ source: sub/../../x, dest: /p }]\n",
        "5:24: copy source `sub/../../x` is outside the habitat directory",
        "copy sources are relative to the habitat directory and stay inside it",
    ),
    (
        "a copy of a secret's file",
        "name: x\nbuild:\n  base: { image: debian }\n  files:\n    copies: [{ source: ./f, dest: /p }]\nsecrets:\n  - { id: t, file: f }\n",
        "5:24: copy source `./f` is the file of secret `t`, and secrets never enter an image",
        "read it from `/run/secrets` in a setup command instead",
    ),
    (
        "absolute copy source",
        "name: x\nbuild:\n  base: { image: debian }\n  files:\n    copies: [{ source: /etc/passwd, dest: /p }]\n",
        "5:24: copy source `/etc/passwd` is an absolute path",
        "copy sources are relative to the habitat directory and stay inside it",
    ),
    // --- `habitat.dirs` entries with an owner, group and mode (SPEC §2.1)
    (
        "undeclared dir owner",
        "name: x\nbuild:\n  base: { image: debian }\n  users: [{ name: dev, groups: [sudo] }]\n  habitat:\n    dirs:\n      - { path: /d, owner: dve }\n",
        "7:28: unknown user `dve` in `build.habitat.dirs[0].owner`",
        "did you mean `dev`?",
    ),
    (
        "misspelt dir group",
        "name: x\nbuild:\n  base: { image: debian }\n  users: [{ name: dev, groups: [sudo] }]\n  habitat:\n    dirs:\n      - { path: /d, group: sduo }\n",
        "7:28: unknown group `sduo` in `build.habitat.dirs[0].group`",
        "did you mean `sudo`?",
    ),
    (
        "a base image's group by name",
        "name: x\nbuild:\n  base: { image: debian }\n  users: [{ name: dev, groups: [sudo] }]\n  habitat:\n    dirs:\n      - { path: /d, group: staff }\n",
        "7:28: unknown group `staff` in `build.habitat.dirs[0].group`",
        "add it to a user's `groups` in `build.users`, or use `root` or a numeric id",
    ),
    (
        "invalid dir group name",
        "name: x\nbuild:\n  base: { image: debian }\n  users: [{ name: dev, groups: [sudo] }]\n  habitat:\n    dirs:\n      - { path: /d, group: \"a b\" }\n",
        "7:28: invalid group name `a b`",
        "a user or group name is `[a-z_][a-z0-9_-]*`, optionally ending in `$`, at most 32 characters",
    ),
    (
        "dir mode with a digit that is not octal",
        "name: x\nbuild:\n  base: { image: debian }\n  users: [{ name: dev, groups: [sudo] }]\n  habitat:\n    dirs:\n      - { path: /d, mode: 0789 }\n",
        "7:27: invalid mode `0789` in `build.habitat.dirs[0].mode`",
        "write an octal mode, e.g. \"0750\" or 750",
    ),
    (
        "dir mode in letters",
        "name: x\nbuild:\n  base: { image: debian }\n  users: [{ name: dev, groups: [sudo] }]\n  habitat:\n    dirs:\n      - { path: /d, mode: u+rwx }\n",
        "7:27: invalid mode `u+rwx` in `build.habitat.dirs[0].mode`",
        "write an octal mode, e.g. \"0750\" or 750",
    ),
    (
        "relative dir path in an entry",
        "name: x\nbuild:\n  base: { image: debian }\n  users: [{ name: dev, groups: [sudo] }]\n  habitat:\n    dirs:\n      - { path: d, mode: \"0750\" }\n",
        "7:17: `build.habitat.dirs[0].path` must be an absolute path, found `d`",
        "paths in the image start with `/`",
    ),
    (
        "one directory, two modes",
        "name: x\nbuild:\n  base: { image: debian }\n  users: [{ name: dev, groups: [sudo] }]\n  habitat:\n    dirs:\n      - { path: /d, mode: \"0750\" }\n      - { path: /d/, mode: \"0700\" }\n",
        "8:28: `build.habitat.dirs[1].mode` is `0700`, but `build.habitat.dirs[0].mode` (line 7) gives the same directory `0750`",
        "name each directory's owner, group and mode in one entry",
    ),
];

/// Every field of `build.users` lands in `/etc/passwd` or `/etc/group`; a
/// `:` or a line break in one wrote fields or whole accounts of the
/// config's choosing (a passwordless uid-0 account among them), since only
/// `name` and `groups` were checked. Each is refused in `check`, located.
const ACCOUNT_INJECTION: &[(&str, &str, &str, &str)] = &[
    (
        "a shell that starts a second account",
        "name: x\nbuild:\n  base: { image: debian }\n  users:\n    - { name: dev, shell: \"/bin/sh\\nevil::0:0::/root:/bin/sh\" }\n",
        "5:27: invalid `build.users[0].shell` `/bin/sh\\nevil::0:0::/root:/bin/sh`",
        ACCOUNT_RULE,
    ),
    (
        "a shell with a field separator",
        "name: x\nbuild:\n  base: { image: debian }\n  users:\n    - { name: dev, shell: \"/bin/sh:x\" }\n",
        "5:27: invalid `build.users[0].shell` `/bin/sh:x`",
        ACCOUNT_RULE,
    ),
    (
        "a home that starts a second account",
        "name: x\nbuild:\n  base: { image: debian }\n  users:\n    - { name: dev, home: \"/home/dev\\nevil::0:0::/root:/bin/sh\" }\n",
        "5:26: invalid `build.users[0].home` `/home/dev\\nevil::0:0::/root:/bin/sh`",
        ACCOUNT_RULE,
    ),
    (
        "a home with a field separator",
        "name: x\nbuild:\n  base: { image: debian }\n  users:\n    - { name: dev, home: \"/home/dev:0\" }\n",
        "5:26: invalid `build.users[0].home` `/home/dev:0`",
        ACCOUNT_RULE,
    ),
    (
        "a home with a carriage return",
        "name: x\nbuild:\n  base: { image: debian }\n  users:\n    - { name: dev, home: \"/home/dev\\r\" }\n",
        "5:26: invalid `build.users[0].home` `/home/dev\\r`",
        ACCOUNT_RULE,
    ),
    (
        "a name that starts a second account",
        "name: x\nbuild:\n  base: { image: debian }\n  users:\n    - { name: \"dev\\nevil::0:0::/root:/bin/sh\" }\n",
        "5:15: invalid user name `dev\\nevil::0:0::/root:/bin/sh`",
        "a user or group name is `[a-z_][a-z0-9_-]*`, optionally ending in `$`, at most 32 characters",
    ),
    (
        "a group that starts a second group",
        "name: x\nbuild:\n  base: { image: debian }\n  users:\n    - { name: dev, groups: [\"sudo\\nroot::0:dev\"] }\n",
        "5:29: invalid group name `sudo\\nroot::0:dev`",
        "a user or group name is `[a-z_][a-z0-9_-]*`, optionally ending in `$`, at most 32 characters",
    ),
    (
        "a group with a field separator",
        "name: x\nbuild:\n  base: { image: debian }\n  users:\n    - { name: dev, groups: [\"sudo:x:0\"] }\n",
        "5:29: invalid group name `sudo:x:0`",
        "a user or group name is `[a-z_][a-z0-9_-]*`, optionally ending in `$`, at most 32 characters",
    ),
    (
        "a group with a member separator",
        "name: x\nbuild:\n  base: { image: debian }\n  users:\n    - { name: dev, groups: [\"sudo,root\"] }\n",
        "5:29: invalid group name `sudo,root`",
        "a user or group name is `[a-z_][a-z0-9_-]*`, optionally ending in `$`, at most 32 characters",
    ),
];

const ACCOUNT_RULE: &str = "`/etc/passwd` keeps one account per line and its fields apart with `:`, so a field holds no `:` and no control character (a line break)";

#[test]
fn regression_account_fields_with_a_colon_or_a_line_break_are_refused_in_check() {
    let dir = habitat();
    let mut failures = Vec::new();
    for (what, yaml, expected, hint) in ACCOUNT_INJECTION {
        let expected = format!("{expected} [hint: {hint}]");
        match parse_in(dir.path(), yaml) {
            Ok(_) => failures.push(format!("{what}: parsed, expected `{expected}`")),
            Err(d) => {
                let got = problems(&d);
                if got != [expected.clone()] {
                    failures.push(format!(
                        "{what}:\n  expected {expected:?}\n  got      {got:?}"
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Each row must give exactly its one problem; `{dir}` in a hint stands for
/// the (canonical) habitat directory.
pub(crate) fn assert_rows(rows: &[(&str, &str, &str, &str)]) {
    let dir = habitat();
    let shown = std::fs::canonicalize(dir.path()).expect("canonicalize");
    let shown = shown.display().to_string();
    let mut failures = Vec::new();
    for (what, yaml, expected, hint) in rows {
        let expected = if hint.is_empty() {
            (*expected).to_string()
        } else {
            format!("{expected} [hint: {}]", hint.replace("{dir}", &shown))
        };
        match parse_in(dir.path(), yaml) {
            Ok(_) => failures.push(format!("{what}: parsed, expected `{expected}`")),
            Err(d) => {
                let got = problems(&d);
                if got != [expected.clone()] {
                    failures.push(format!(
                        "{what}:\n  expected {expected:?}\n  got      {got:?}"
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn each_bad_input_gets_its_message_at_its_place() {
    assert_rows(BAD);
}

#[test]
fn copy_source_that_does_not_exist() {
    let dir = habitat();
    let yaml = format!("{HEAD}  files:\n    copies: [{{ source: nope.txt, dest: /p }}]\n");
    let d = parse_in(dir.path(), &yaml).unwrap_err();
    assert_eq!(d.len(), 1);
    let d = &d.items()[0];
    assert_eq!((d.line(), d.column()), (5, 24));
    assert_eq!(d.message(), "copy source `nope.txt` does not exist");
}

#[cfg(unix)]
#[test]
fn copy_source_symlinked_outside_is_refused() {
    let outside = tempfile::tempdir().expect("tempdir");
    std::fs::write(outside.path().join("secret"), "s").expect("write");
    let dir = habitat();
    std::os::unix::fs::symlink(outside.path().join("secret"), dir.path().join("link"))
        .expect("symlink");
    std::os::unix::fs::symlink(outside.path(), dir.path().join("linkdir")).expect("symlink");
    std::os::unix::fs::symlink("f", dir.path().join("inside")).expect("symlink");
    std::os::unix::fs::symlink("gone", dir.path().join("dangling")).expect("symlink");
    let yaml = format!(
        "{HEAD}  files:\n    copies:\n      - {{ source: link, dest: /a }}\n      - {{ source: linkdir/secret, dest: /b }}\n      - {{ source: inside, dest: /c }}\n      - {{ source: dangling, dest: /d }}\n"
    );
    let d = parse_in(dir.path(), &yaml).unwrap_err();
    let got: Vec<(usize, &str)> = d.iter().map(|d| (d.line(), d.message())).collect();
    assert_eq!(got.len(), 3, "{d}");
    assert_eq!(got[0].0, 6);
    let out = outside.path().display();
    assert_eq!(
        got[0].1,
        format!(
            "copy source `link` leads out of the habitat directory: `link` is a symlink to `{out}/secret`"
        )
    );
    assert_eq!(got[1].0, 7);
    assert_eq!(
        got[1].1,
        format!(
            "copy source `linkdir/secret` leads out of the habitat directory: `linkdir` is a symlink to `{out}`"
        )
    );
    // `inside` (line 8) points inside the habitat and is fine.
    assert_eq!(got[2].0, 9);
    assert!(
        got[2]
            .1
            .starts_with("copy source `dangling` cannot be resolved")
    );
}

/// `check` passes exactly the sources the build can open: a link that
/// leaves the habitat is refused even when it comes back in, and an
/// absolute link into the habitat itself is followed.
#[cfg(unix)]
#[test]
fn copy_source_links_are_judged_as_the_build_opens_them() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().canonicalize().expect("canonical").join("h");
    std::fs::create_dir_all(dir.join("sub")).expect("mkdir");
    std::fs::write(dir.join("f"), "content").expect("write");
    std::os::unix::fs::symlink("../h/f", dir.join("back")).expect("symlink");
    std::os::unix::fs::symlink(dir.join("f"), dir.join("abs")).expect("symlink");
    std::os::unix::fs::symlink("../f", dir.join("sub/up")).expect("symlink");
    let yaml = format!(
        "{HEAD}  files:\n    copies:\n      - {{ source: back, dest: /a }}\n      - {{ source: abs, dest: /b }}\n      - {{ source: sub/up, dest: /c }}\n"
    );
    let d = parse_in(&dir, &yaml).unwrap_err();
    let got: Vec<(usize, &str)> = d.iter().map(|d| (d.line(), d.message())).collect();
    assert_eq!(
        got,
        [(
            6,
            "copy source `back` leads out of the habitat directory: `back` is a symlink to `../h/f`"
        )]
    );
}

/// A diagnostic shows the line it is about: a repo URL's credential on
/// that line was printed with it.
#[test]
fn regression_a_diagnostic_masks_a_credential_on_the_line_it_shows() {
    let dir = habitat();
    let yaml =
        format!("{HEAD}  repos:\n    - {{ url: \"https://me:tok-s3cr3t@host/r\", path: app }}\n");
    let d = parse_in(dir.path(), &yaml).unwrap_err();
    let shown = d.to_string();
    assert!(!shown.contains("tok-s3cr3t"), "{shown}");
    assert!(shown.contains("https://**************host/r"), "{shown}");
    // The caret still points at `app`.
    let lines: Vec<&str> = shown.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.contains("path: app"))
        .expect("the line");
    let caret = lines[at + 1].find('^').expect("a caret");
    assert_eq!(&lines[at][caret..caret + 3], "app", "{shown}");
}

#[test]
fn all_structural_errors_come_in_one_run() {
    let yaml = "\
name: x
bild: {}
build:
  base: { imge: debian }
  users:
    - { name: dev, uid: abc }
  setup:
    pakages: {}
";
    let d = parse_in(Path::new("."), yaml).unwrap_err();
    assert_eq!(
        problems(&d),
        [
            "2:1: unknown key `bild` at the top level [hint: did you mean `build`?]",
            "4:11: unknown key `imge` in `build.base` [hint: did you mean `image`?]",
            "6:25: wrong type for `build.users[0].uid`: expected an integer, found `abc`",
            "8:5: unknown key `pakages` in `build.setup` [hint: did you mean `packages`?]",
        ]
    );
}

#[test]
fn shape_and_meaning_errors_come_in_one_run() {
    let yaml = "\
name: Bad
build:
  base: { image: debian }
  users: [{ name: dev, shel: /bin/sh }]
  habitat: { work_dir: work }
  files:
    copies: [{ source: f, dest: /f, owner: dev }]
";
    let d = parse_in(Path::new("/nonexistent"), yaml).unwrap_err();
    let got: Vec<String> = d
        .iter()
        .map(|d| format!("{}:{}: {}", d.line(), d.column(), d.message()))
        .collect();
    // Checks across entries (like the copy owner) wait until the shape is right,
    // so a misspelt key is never reported twice; all the others run.
    assert_eq!(
        got,
        [
            "1:7: invalid habitat name `Bad`",
            "4:24: unknown key `shel` in `build.users[0]`",
            "5:24: `build.habitat.work_dir` must be an absolute path, found `work`",
            "7:24: copy source `f` does not exist",
        ]
    );
}

#[test]
fn all_semantic_errors_come_in_one_run() {
    let dir = habitat();
    let yaml = "\
name: Bad
build:
  base: { image: debian, habitat: ../b }
  users: [{ name: Dev }]
  files:
    copies: [{ source: ../x, dest: rel, mode: \"99\" }]
secrets: [{ id: s }]
";
    let d = parse_in(dir.path(), yaml).unwrap_err();
    let lines: Vec<usize> = d.iter().map(|d| d.line()).collect();
    assert_eq!(lines, [1, 3, 4, 6, 6, 6, 7], "{d}");
}

#[test]
fn the_spec_example_parses() {
    let dir = habitat();
    std::fs::create_dir(dir.path().join("shared")).expect("mkdir");
    std::fs::write(dir.path().join("shared/gitconfig"), "[user]\n").expect("write");
    let yaml = include_str!("config_data/spec_example.yaml");
    let config = parse_in(dir.path(), yaml).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(config.name, "discourse");
    assert_eq!(
        config.build.base.image.as_deref(),
        Some("debian:bookworm-slim")
    );
    assert_eq!(config.build.users[0].uid, Some(1000));
    assert_eq!(
        config.build.env,
        Env::List(vec!["DEBIAN_FRONTEND=noninteractive".to_string()])
    );
    let copy = &config.build.files.as_ref().expect("files").copies[0];
    assert_eq!(copy.mode.as_deref(), Some("0644"));
    let packages = config
        .build
        .setup
        .as_ref()
        .and_then(|s| s.packages.as_ref())
        .expect("packages");
    assert_eq!(packages.npm[0].name(), "typescript");
    assert!(packages.npm[0].global());
    assert_eq!(config.build.repos[0].git_ref.as_deref(), Some("main"));
    assert_eq!(config.build.tools[0].dest(), "/usr/local/bin/jq");
    let fin = config.build.final_.as_ref().expect("final");
    assert_eq!(fin.expose, [Port::Number(3000)]);
    assert_eq!(config.secrets[0].env.as_deref(), Some("NPM_TOKEN"));
}

#[test]
fn every_accepted_form_parses() {
    let dir = habitat();
    let yaml = "\
name: forms
build:
  base:
    bootstrap: { suite: bookworm }
  users:
    - name: dev
      uid: 1000
      gid: \"1001\"
  env:
    PORT: 3000
    MODE: 0644
    DEBUG: yes
  files:
    copies:
      - { source: f, dest: /etc/f, mode: 0644, owner: \"1000\", group: staff }
      - { source: ./sub/., dest: /etc/sub, owner: root }
  setup:
    packages:
      apt:
      npm: [typescript, { name: eslint, version: \"9.0.0\", global: false }]
  final:
    user: dev:dev
    expose: [3000, \"53/udp\", \"8080\"]
    labels: { a: 1, b: true }
";
    let config = parse_in(dir.path(), yaml).unwrap_or_else(|d| panic!("{d}"));
    let b = config.build.base.bootstrap.as_ref().expect("bootstrap");
    assert_eq!(
        (b.distro.as_str(), b.suite.as_str(), b.variant.as_str()),
        ("debian", "bookworm", "minbase")
    );
    assert_eq!(config.build.users[0].uid, Some(1000));
    assert_eq!(config.build.users[0].gid, Some(1001));
    let env = config.build.env.to_map();
    assert_eq!(env["PORT"], "3000");
    assert_eq!(env["MODE"], "0644");
    assert_eq!(env["DEBUG"], "yes");
    let files = config.build.files.as_ref().expect("files");
    assert_eq!(files.copies[0].mode.as_deref(), Some("0644"));
    let packages = config
        .build
        .setup
        .as_ref()
        .and_then(|s| s.packages.as_ref())
        .expect("packages");
    assert!(packages.apt.is_empty());
    assert_eq!(packages.npm[0], NpmPackage::Name("typescript".to_string()));
    assert_eq!(packages.npm[1].spec(), "eslint@9.0.0");
    assert!(!packages.npm[1].global());
    let fin = config.build.final_.as_ref().expect("final");
    assert_eq!(
        fin.expose,
        [
            Port::Number(3000),
            Port::Spec("53/udp".to_string()),
            Port::Spec("8080".to_string())
        ]
    );
    assert_eq!(fin.labels["a"], "1");
    assert_eq!(fin.labels["b"], "true");
}

#[test]
fn load_takes_a_directory_or_its_file() {
    let dir = habitat();
    std::fs::write(dir.path().join("kiln.yaml"), HEAD).expect("write");
    let by_dir = config::load(dir.path()).unwrap_or_else(|d| panic!("{d}"));
    let by_file = config::load(&dir.path().join("kiln.yaml")).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(by_dir, by_file);
    let canonical = std::fs::canonicalize(dir.path()).expect("canonicalize");
    assert_eq!(by_dir.dir, canonical);
    assert_eq!(by_dir.file, canonical.join("kiln.yaml"));
    assert_eq!(by_dir.config.name, "x");
}

#[test]
fn load_names_the_file_in_diagnostics() {
    let dir = habitat();
    let file = dir.path().join("kiln.yaml");
    std::fs::write(&file, "name: x\nbuild:\n  base: { imag: debian }\n").expect("write");
    let d = config::load(dir.path()).unwrap_err();
    assert_eq!(d.items()[0].file, file.display().to_string());
    assert!(
        d.to_string()
            .contains(&format!("--> {}:3:11", file.display())),
        "{d}"
    );
}

#[test]
fn load_reports_a_missing_habitat() {
    let dir = habitat();
    let d = config::load(dir.path()).unwrap_err();
    assert_eq!(d.len(), 1);
    let msg = d.items()[0].message();
    assert_eq!(msg, format!("no `kiln.yaml` in `{}`", dir.path().display()));
    assert_eq!(d.items()[0].line(), 0);

    let gone = dir.path().join("gone");
    let d = config::load(&gone).unwrap_err();
    assert_eq!(
        d.items()[0].message(),
        format!(
            "no habitat at `{}`: the path does not exist",
            gone.display()
        )
    );
}

#[test]
fn schema_has_the_top_level_properties_and_descriptions() {
    let schema = config::schema();
    let props = schema["properties"].as_object().expect("properties");
    let keys: Vec<&str> = props.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "name",
            "description",
            "build",
            "secrets",
            "instances",
            "services",
            "cache",
            "include",
            "registry"
        ]
    );
    assert_eq!(schema["required"], serde_json::json!(["name"]));
    assert_eq!(schema["additionalProperties"], serde_json::json!(false));
    assert!(
        props["name"]["description"]
            .as_str()
            .is_some_and(|d| d.contains("[a-z0-9]"))
    );
    let build = &schema["$defs"]["Build"]["properties"];
    for phase in [
        "base", "users", "env", "habitat", "files", "setup", "repos", "tools", "verify", "final",
    ] {
        assert!(build.get(phase).is_some(), "missing build.{phase}");
    }
    let owner = schema["$defs"]["Copy"]["properties"]["owner"]["description"]
        .as_str()
        .expect("owner description");
    assert!(owner.contains("declared in `build.users`"), "{owner}");
    // A `habitat.dirs` entry is a path or an object of path, owner, group, mode.
    let dir = &schema["$defs"]["HabitatDir"];
    let alternatives = dir["anyOf"].as_array().expect("anyOf");
    assert_eq!(alternatives[0]["type"], "string", "{dir}");
    let spec = &schema["$defs"]["DirSpec"];
    assert_eq!(spec["required"], serde_json::json!(["path"]), "{spec}");
    assert_eq!(spec["additionalProperties"], serde_json::json!(false));
    for field in ["path", "owner", "group", "mode"] {
        assert!(
            spec["properties"][field]["description"].is_string(),
            "{field}: {spec}"
        );
    }
}

// --- What the build would trip on: each class caught by `check`, located.

const SHA: &str = "5942c9b0934e510ee61eb3e30273f1b3fe2590df93933a93d7c58b81d19c8ff5";

/// Bug: `..` in a path of the image passed `check`; the build then failed
/// (a tar refuses `..`) or placed things where the user did not look.
#[test]
fn regression_check_refuses_dotdot_in_image_paths() {
    let tool = format!(
        "name: x\nbuild:\n  base: {{ image: debian }}\n  tools: [{{ name: jq, source: f, sha256: {SHA}, dest: /opt/../jq }}]\n"
    );
    assert_rows(&[
        (
            "habitat dir",
            "name: x\nbuild:\n  base: { image: debian }\n  habitat: { dirs: [/a/../b] }\n",
            "4:21: `build.habitat.dirs[0]` must not contain `..`, found `/a/../b`",
            "write the path without `..`, e.g. `/b`",
        ),
        (
            "work_dir",
            "name: x\nbuild:\n  base: { image: debian }\n  habitat: { work_dir: /w/.. }\n",
            "4:24: `build.habitat.work_dir` must not contain `..`, found `/w/..`",
            "write the path without `..`, e.g. `/`",
        ),
        (
            "user home",
            "name: x\nbuild:\n  base: { image: debian }\n  users: [{ name: dev, home: /home/../dev }]\n",
            "4:30: `build.users[0].home` must not contain `..`, found `/home/../dev`",
            "write the path without `..`, e.g. `/dev`",
        ),
        (
            "copy dest",
            "name: x\nbuild:\n  base: { image: debian }\n  files:\n    copies: [{ source: f, dest: /etc/../f }]\n",
            "5:33: `build.files.copies[0].dest` must not contain `..`, found `/etc/../f`",
            "write the path without `..`, e.g. `/f`",
        ),
        (
            "tool dest",
            &tool,
            "4:114: `build.tools[0].dest` must not contain `..`, found `/opt/../jq`",
            "write the path without `..`, e.g. `/jq`",
        ),
        (
            "repo path",
            "name: x\nbuild:\n  base: { image: debian }\n  repos: [{ url: sub, path: /w/../app }]\n",
            "4:29: `build.repos[0].path` must not contain `..`, found `/w/../app`",
            "write the path without `..`, e.g. `/app`",
        ),
        (
            "final workdir",
            "name: x\nbuild:\n  base: { image: debian }\n  final: { workdir: /w/../x }\n",
            "4:21: `build.final.workdir` must not contain `..`, found `/w/../x`",
            "write the path without `..`, e.g. `/x`",
        ),
        (
            "verify file",
            "name: x\nbuild:\n  base: { image: debian }\n  verify: { files: [/a/..] }\n",
            "4:21: `build.verify.files[0]` must not contain `..`, found `/a/..`",
            "write the path without `..`, e.g. `/`",
        ),
    ]);
}

/// Bug: a copy, repo, tool or home placed at `/` itself, or a file copied to
/// a path ending in `/`, passed `check`; the build failed (an empty or
/// absolute archive name: "this is a bug in kiln" for a home) or replaced a
/// whole directory with the file.
#[test]
fn regression_check_refuses_a_copy_onto_the_image_root() {
    let tool = format!(
        "name: x\nbuild:\n  base: {{ image: debian }}\n  tools: [{{ name: jq, source: f, sha256: {SHA}, dest: /usr/local/bin/ }}]\n"
    );
    assert_rows(&[
        (
            "directory copied to /",
            "name: x\nbuild:\n  base: { image: debian }\n  files:\n    copies: [{ source: sub, dest: / }]\n",
            "5:35: `build.files.copies[0].dest` is `/`: a copy cannot replace the image's root",
            "name the directory the copy lands in, e.g. `/sub`",
        ),
        (
            "file copied to //",
            "name: x\nbuild:\n  base: { image: debian }\n  files:\n    copies: [{ source: f, dest: // }]\n",
            "5:33: `build.files.copies[0].dest` is `/`: a copy cannot replace the image's root",
            "name the file's path in the image, e.g. `/f`",
        ),
        (
            "file copied to a path ending in /",
            "name: x\nbuild:\n  base: { image: debian }\n  files:\n    copies: [{ source: f, dest: /etc/ }]\n",
            "5:33: `build.files.copies[0].dest` ends in `/`, but `f` is a file",
            "name the file's path in the image, e.g. `/etc/f`",
        ),
        (
            "home at /",
            "name: x\nbuild:\n  base: { image: debian }\n  users: [{ name: dev, home: // }]\n",
            "4:30: `build.users[0].home` is `/`: kiln makes a user's home and gives it to the user",
            "give the user a directory of its own, e.g. `/home/dev`",
        ),
        (
            "repo at /",
            "name: x\nbuild:\n  base: { image: debian }\n  repos: [{ url: sub, path: / }]\n",
            "4:29: `build.repos[0].path` is `/`: a repo cannot replace the image's root",
            "name the directory the repo lands in, e.g. `/sub`",
        ),
        (
            "tool dest ending in /",
            &tool,
            "4:114: `build.tools[0].dest` ends in `/`: a tool's `dest` is the path of its file",
            "name the file, e.g. `/usr/local/bin/jq`",
        ),
    ]);
}

/// Bug: a tool source outside the habitat, a `file://` URL or a missing
/// file passed `check`; the build failed at 8-tools after seven phases.
#[test]
fn regression_check_refuses_tool_sources_the_build_cannot_read() {
    let row = |source: &str| {
        format!(
            "name: x\nbuild:\n  base: {{ image: debian }}\n  tools: [{{ name: jq, source: \"{source}\", sha256: {SHA} }}]\n"
        )
    };
    let (outside, absolute, file_url, ftp, missing, dir) = (
        row("../f"),
        row("/etc/passwd"),
        row("file:///etc/passwd"),
        row("ftp://example.com/jq"),
        row("nope"),
        row("sub"),
    );
    assert_rows(&[
        (
            "outside",
            &outside,
            "4:31: tool source `../f` is outside the habitat directory",
            "a tool source is an `https://` URL, or a path inside the habitat directory",
        ),
        (
            "absolute",
            &absolute,
            "4:31: tool source `/etc/passwd` is an absolute path",
            "a tool source is an `https://` URL, or a path inside the habitat directory",
        ),
        (
            "file URL",
            &file_url,
            "4:31: tool source `file:///etc/passwd` is a `file://` URL",
            "a tool source is an `https://` URL, or a path inside the habitat directory",
        ),
        (
            "other scheme",
            &ftp,
            "4:31: tool source `ftp://example.com/jq` has an unsupported scheme",
            "a tool source is an `https://` URL, or a path inside the habitat directory",
        ),
        (
            "missing",
            &missing,
            "4:31: tool source `nope` does not exist",
            "paths are relative to the habitat directory `{dir}`",
        ),
        (
            "a directory",
            &dir,
            "4:31: tool source `sub` is not a file",
            "a tool source is an `https://` URL, or a path inside the habitat directory",
        ),
    ]);
}

#[cfg(unix)]
#[test]
fn regression_check_refuses_a_tool_source_linked_outside() {
    let outside = tempfile::tempdir().expect("tempdir");
    std::fs::write(outside.path().join("jq"), "jq").expect("write");
    let dir = habitat();
    std::os::unix::fs::symlink(outside.path().join("jq"), dir.path().join("jq-link"))
        .expect("symlink");
    let yaml = format!("{HEAD}  tools: [{{ name: jq, source: jq-link, sha256: {SHA} }}]\n");
    let d = parse_in(dir.path(), &yaml).unwrap_err();
    assert_eq!(d.len(), 1, "{d}");
    let m = d.items()[0].message();
    assert!(
        m.starts_with(
            "tool source `jq-link` leads out of the habitat directory: `jq-link` is a symlink to `"
        ) && m.ends_with("/jq`"),
        "{m}"
    );
}

/// Bug: a local repo or a base habitat that is not there passed `check`;
/// the build failed resolving it, with no line or column.
#[test]
fn regression_check_refuses_missing_local_repos_and_base_habitats() {
    assert_rows(&[
        (
            "missing local repo",
            "name: x\nbuild:\n  base: { image: debian }\n  repos: [{ url: ./nope, path: /app }]\n",
            "4:18: repo `./nope` does not exist",
            "a local repo is a path relative to the habitat directory `{dir}`",
        ),
        (
            "missing file:// repo",
            "name: x\nbuild:\n  base: { image: debian }\n  repos: [{ url: \"file:///nonexistent/app\", path: /app }]\n",
            "4:18: repo `file:///nonexistent/app` does not exist",
            "a `file://` URL names a path on this machine",
        ),
        (
            "repo url git would read as an option",
            "name: x\nbuild:\n  base: { image: debian }\n  repos: [{ url: \"-oProxyCommand=x:y\", path: /app }]\n",
            "4:18: repo url `-oProxyCommand=x:y` starts with `-`",
            "git would read it as an option",
        ),
        (
            "repo ref git would read as an option",
            "name: x\nbuild:\n  base: { image: debian }\n  repos: [{ url: sub, path: /app, ref: \"--upload-pack=x\" }]\n",
            "4:40: repo ref `--upload-pack=x` starts with `-`",
            "git would read it as an option",
        ),
        (
            "missing base habitat",
            "name: x\nbuild:\n  base: { habitat: ../nope-kiln-base }\n",
            "3:20: base habitat `../nope-kiln-base` does not exist",
            "`build.base.habitat` is the directory of another habitat, relative to `{dir}`",
        ),
        (
            "base habitat without kiln.yaml",
            "name: x\nbuild:\n  base: { habitat: sub }\n",
            "3:20: no `kiln.yaml` in base habitat `sub`",
            "a habitat is a directory holding `kiln.yaml`",
        ),
    ]);
}

const IMAGE_NAME_RULE: &str = "images are `habitat-NAME`: lowercase letters and digits, separated by one `.`, one or two `_`, or `-`s, at most 247 characters";

/// Bug: names that are not valid image names (`x-`, `x..y`, too long) passed
/// `check`; the build failed at 1-base when it tagged the first image.
#[test]
fn regression_habitat_names_are_valid_image_names() {
    let rows: Vec<(String, String)> = ["x-", "x..y", "x._y", "x___y", "_x", "x."]
        .iter()
        .map(|n| {
            (
                format!("name: \"{n}\"\nbuild:\n  base: {{ image: debian }}\n"),
                format!("1:7: invalid habitat name `{n}`"),
            )
        })
        .collect();
    let mut table: Vec<(&str, &str, &str, &str)> = rows
        .iter()
        .map(|(y, e)| ("bad name", y.as_str(), e.as_str(), IMAGE_NAME_RULE))
        .collect();
    let long = format!(
        "name: {}\nbuild:\n  base: {{ image: debian }}\n",
        "a".repeat(248)
    );
    let member = format!(
        "{HEAD}instances:\n  members:\n    {}: {{}}\n",
        "m".repeat(65)
    );
    let member_error = format!("6:5: invalid member name `{}`", "m".repeat(65));
    table.push((
        "member name too long for a hostname",
        &member,
        &member_error,
        "use lowercase letters, digits, `_`, `.` and `-`, starting with a letter or digit, at most 64 characters (it is the container's hostname)",
    ));
    table.push((
        "too long",
        &long,
        "1:7: habitat name is 248 characters long: an image name fits at most 247",
        IMAGE_NAME_RULE,
    ));
    assert_rows(&table);
    let dir = habitat();
    for good in ["a--b", "a__b", "a.b-c_d", "0", &"a".repeat(247)] {
        let yaml = format!("name: \"{good}\"\nbuild:\n  base: {{ image: debian }}\n");
        if let Err(d) = parse_in(dir.path(), &yaml) {
            panic!("`{good}` is a valid name: {d}");
        }
    }
}

/// Bug: a NUL character (`"\0"` in a quoted YAML string) passed `check`; no
/// environment variable, argument or path can hold one, so the build failed.
#[test]
fn regression_a_nul_in_a_value_is_refused() {
    assert_rows(&[
        (
            "env map value",
            "name: x\nbuild:\n  base: { image: debian }\n  env: { A: \"a\\0b\" }\n",
            "4:13: `build.env.A` contains a NUL character",
            "no variable, argument or path can hold one: remove it",
        ),
        (
            "env list entry",
            "name: x\nbuild:\n  base: { image: debian }\n  env: [\"A=a\\0b\"]\n",
            "4:9: `build.env[0]` contains a NUL character",
            "no variable, argument or path can hold one: remove it",
        ),
        (
            "root command",
            "name: x\nbuild:\n  base: { image: debian }\n  setup: { commands: { root: [\"echo \\0\"] } }\n",
            "4:31: `build.setup.commands.root[0]` contains a NUL character",
            "no variable, argument or path can hold one: remove it",
        ),
        (
            "habitat dir",
            "name: x\nbuild:\n  base: { image: debian }\n  habitat: { dirs: [\"/a\\0\"] }\n",
            "4:21: `build.habitat.dirs[0]` contains a NUL character",
            "no variable, argument or path can hold one: remove it",
        ),
    ]);
}

/// Bug: an unknown `restart` value was reported as "this is a bug in kiln"
/// at 1:1, and hid every other error in the file.
#[test]
fn regression_an_invalid_restart_policy_is_located() {
    assert_rows(&[
        (
            "unknown policy",
            "name: x\nbuild:\n  base: { image: debian }\ninstances:\n  defaults: { restart: sometimes }\n",
            "5:24: invalid value `sometimes` for `instances.defaults.restart`: expected one of `no`, `on-failure`, `always`, `unless-stopped`",
            "",
        ),
        (
            "misspelt policy",
            "name: x\nbuild:\n  base: { image: debian }\ninstances:\n  members: { a: { restart: onfailure } }\n",
            "5:28: invalid value `onfailure` for `instances.members.a.restart`: expected one of `no`, `on-failure`, `always`, `unless-stopped`",
            "did you mean `on-failure`?",
        ),
    ]);
    let yaml = "name: X\nbuild:\n  base: { image: debian }\ninstances:\n  members: { a: { restart: sometimes } }\n";
    let d = parse_in(Path::new("."), yaml).unwrap_err();
    let got: Vec<(usize, usize)> = d.iter().map(|d| (d.line(), d.column())).collect();
    assert_eq!(got, [(1, 7), (5, 28)], "{d}");
    // Every accepted policy parses, `no` included (YAML 1.1 would read it as false).
    for policy in ["no", "on-failure", "always", "unless-stopped", "\"no\""] {
        let yaml = format!("{HEAD}instances:\n  defaults: {{ restart: {policy} }}\n");
        if let Err(d) = parse_in(Path::new("."), &yaml) {
            panic!("`{policy}`: {d}");
        }
    }
}

/// Bug: a `kiln.yaml` that is not UTF-8 was "stream did not contain valid
/// UTF-8" with no line or column.
#[test]
fn regression_encoding_errors_are_located() {
    let dir = habitat();
    let cases: &[(&[u8], &str)] = &[
        (
            b"name: x\nbuild:\n  base: { image: caf\xe9 }\n",
            "3:21: invalid UTF-8: byte 0xe9 is not text [hint: save `kiln.yaml` as UTF-8]",
        ),
        (
            b"name: x\xff\n",
            "1:8: invalid UTF-8: byte 0xff is not text [hint: save `kiln.yaml` as UTF-8]",
        ),
        (
            b"\xff\xfen\x00a\x00m\x00e\x00",
            "1:1: invalid UTF-8: the file starts with a UTF-16 byte order mark [hint: save `kiln.yaml` as UTF-8]",
        ),
    ];
    for (bytes, expected) in cases {
        let file = dir.path().join("kiln.yaml");
        std::fs::write(&file, bytes).expect("write");
        let d = config::load(dir.path()).unwrap_err();
        assert_eq!(problems(&d), [expected.to_string()], "{d}");
        let shown = format!("--> {}:", file.display());
        assert!(d.to_string().contains(&shown), "{d}");
    }
}

/// Bug: control characters from the config (an ESC starting a terminal
/// escape sequence, an OSC setting the window title) were echoed raw to the
/// terminal by the rendered diagnostics.
#[test]
fn regression_control_characters_are_escaped_when_rendered() {
    let dir = habitat();
    for yaml in [
        // In a value: quoted escapes.
        "name: \"x\\e]0;pwned\\a\\x9b2J\"\nbuild:\n  base: { image: debian }\n",
        // In a key.
        "name: x\n\"k\\e[31m\": 1\nbuild:\n  base: { image: debian }\n",
        // Raw in the source line itself.
        "name: x # \u{1b}]0;pwned\u{7}\nbuild:\n  base: { image: debian }\n",
    ] {
        let d = parse_in(dir.path(), yaml).unwrap_err();
        let rendered = d.to_string();
        let raw: Vec<char> = rendered
            .chars()
            .filter(|c| c.is_control() && *c != '\n')
            .collect();
        assert!(
            raw.is_empty(),
            "raw control characters {raw:?} in\n{rendered}"
        );
        assert!(rendered.contains("\\u{1b}"), "{rendered}");
    }
    // The caret still points at the column it marks.
    let d = parse_in(
        dir.path(),
        "name: \"\\e\" # \u{1b}\nbuild:\n  base: { image: debian }\n",
    )
    .unwrap_err();
    let rendered = d.to_string();
    assert!(
        rendered.contains("1 | name: \"\\e\" # \\u{1b}"),
        "{rendered}"
    );
}

/// Bug: a config over the parser's budget was "budget breached: Nodes {
/// nodes: 250001 }".
#[test]
fn regression_a_config_too_large_gets_a_plain_message() {
    let mut yaml =
        String::from("name: x\nbuild:\n  base: { image: debian }\n  verify:\n    files:\n");
    for i in 0..250_001 {
        yaml.push_str(&format!("      - /f{i}\n"));
    }
    let d = parse_in(Path::new("."), &yaml).unwrap_err();
    assert_eq!(d.len(), 1);
    assert_eq!(
        d.items()[0].message(),
        "the config is too large: more than 250000 values"
    );
    let deep = format!("name: x\nbuild: {}{}\n", "[".repeat(100), "]".repeat(100));
    let d = parse_in(Path::new("."), &deep).unwrap_err();
    assert_eq!(
        d.items()[0].message(),
        "the config nests too deeply: more than 32 levels"
    );
}

// --- Siblings: more of what the build trips on, found by trying to break it.

/// Bug: a tool named `.` replaced `/usr/local/bin` with the tool's file;
/// one named `..` failed at 8-tools.
#[test]
fn regression_check_refuses_tool_names_that_are_not_file_names() {
    let rows: Vec<(String, String)> = [".", ".."]
        .iter()
        .map(|n| {
            (
                format!("{HEAD}  tools: [{{ name: \"{n}\", source: f, sha256: {SHA} }}]\n"),
                format!("4:19: invalid tool name `{n}`"),
            )
        })
        .collect();
    let table: Vec<(&str, &str, &str, &str)> = rows
        .iter()
        .map(|(y, e)| {
            (
                "tool name",
                y.as_str(),
                e.as_str(),
                "a tool name is a file name: not empty, not `.` or `..`, no `/`",
            )
        })
        .collect();
    assert_rows(&table);
}

/// Bug: uid 4294967295 (-1 to the kernel) passed `check`; the first command
/// run as that user failed with "can't set groups: Invalid argument". As a
/// numeric owner it left files root's (`chown` takes -1 as "no change").
#[test]
fn regression_check_refuses_the_id_that_means_no_id() {
    assert_rows(&[
        (
            "uid",
            "name: x\nbuild:\n  base: { image: debian }\n  users: [{ name: dev, uid: 4294967295 }]\n",
            "4:29: `build.users[0].uid` is 4294967295, which the kernel reads as -1, no id",
            "use an id from 0 to 4294967294",
        ),
        (
            "copy owner",
            "name: x\nbuild:\n  base: { image: debian }\n  files:\n    copies: [{ source: f, dest: /f, owner: \"4294967295\" }]\n",
            "5:44: `build.files.copies[0].owner` is 4294967295, which the kernel reads as -1, no id",
            "use an id from 0 to 4294967294",
        ),
        (
            "copy group",
            "name: x\nbuild:\n  base: { image: debian }\n  files:\n    copies: [{ source: f, dest: /f, group: 4294967295 }]\n",
            "5:44: `build.files.copies[0].group` is 4294967295, which the kernel reads as -1, no id",
            "use an id from 0 to 4294967294",
        ),
        (
            "repo owner",
            "name: x\nbuild:\n  base: { image: debian }\n  repos: [{ url: a, path: /a, owner: \"4294967295\" }]\n",
            "4:38: `build.repos[0].owner` is 4294967295, which the kernel reads as -1, no id",
            "use an id from 0 to 4294967294",
        ),
        (
            "gid",
            "name: x\nbuild:\n  base: { image: debian }\n  users: [{ name: dev, gid: 4294967295 }]\n",
            "4:29: `build.users[0].gid` is 4294967295, which the kernel reads as -1, no id",
            "use an id from 0 to 4294967294",
        ),
    ]);
}

/// Bug: a path with a name longer than a file system takes (255 bytes)
/// passed `check`; the engine refused the layer, exit 3.
#[test]
fn regression_check_refuses_names_longer_than_a_file_system_takes() {
    let long = "a".repeat(256);
    let dir = format!("{HEAD}  habitat: {{ dirs: [/opt/{long}] }}\n");
    let deep = format!(
        "{HEAD}  habitat: {{ dirs: [{}] }}\n",
        "/abcdefg".repeat(512)
    );
    assert_rows(&[
        (
            "a name of 256 bytes",
            &dir,
            "4:21: `build.habitat.dirs[0]` has a name of 256 bytes: a file name is at most 255",
            "shorten the part of the path between two `/`",
        ),
        (
            "a path of 4096 bytes",
            &deep,
            "4:21: `build.habitat.dirs[0]` is 4096 bytes long: a path is at most 4095",
            "",
        ),
    ]);
}

/// Bug: an environment variable or a command longer than one `execve`
/// argument takes (128 KiB) passed `check`; the setup phase then failed
/// with "exec /bin/sh: argument list too long".
#[test]
fn regression_check_refuses_values_longer_than_a_process_takes() {
    let big = "a".repeat(131_072);
    let env = format!("{HEAD}  env: {{ BIG: {big} }}\n");
    let list = format!("{HEAD}  env: [\"B={big}\"]\n");
    let command = format!("{HEAD}  setup: {{ commands: {{ root: [\"echo {big}\"] }} }}\n");
    let many = format!(
        "{HEAD}  setup:\n    commands:\n      root:\n{}",
        format!("        - echo {}\n", "a".repeat(60_000)).repeat(3)
    );
    let instance = format!("{HEAD}instances:\n  members:\n    a: {{ command: [\"{big}\"] }}\n");
    assert_rows(&[
        (
            "env map value",
            &env,
            "4:15: `build.env.BIG` is 131076 bytes long: a process takes at most 131071 in one variable or argument",
            "put a value this long in a file (a copy) and read it from there",
        ),
        (
            "env list entry",
            &list,
            "4:9: `build.env[0]` is 131074 bytes long: a process takes at most 131071 in one variable or argument",
            "put a value this long in a file (a copy) and read it from there",
        ),
        (
            "one long command",
            &command,
            "4:3: the commands of `build.setup` are 131077 bytes in all: at most 122880 fit the one `sh -c` that runs them",
            "put long scripts in a file (a copy) and run that",
        ),
        (
            "many commands",
            &many,
            "4:3: the commands of `build.setup` are 180015 bytes in all: at most 122880 fit the one `sh -c` that runs them",
            "put long scripts in a file (a copy) and run that",
        ),
        (
            "instance command",
            &instance,
            "6:20: `instances.members.a.command[0]` is 131072 bytes long: a process takes at most 131071 in one variable or argument",
            "put a value this long in a file (a copy) and read it from there",
        ),
    ]);
}

/// Bug: a package entry that is empty, holds two names or starts with `-`
/// passed `check`; apt, npm or pip then failed, or read it as an option.
#[test]
fn regression_check_refuses_package_names_a_package_manager_would_misread() {
    assert_rows(&[
        (
            "two apt names in one entry",
            "name: x\nbuild:\n  base: { image: debian }\n  setup: { packages: { apt: [\"curl git\"] } }\n",
            "4:30: apt package `curl git` holds a space: one entry is one package",
            "list one apt package name per entry",
        ),
        (
            "an apt option",
            "name: x\nbuild:\n  base: { image: debian }\n  setup: { packages: { apt: [--allow-unauthenticated] } }\n",
            "4:30: apt package `--allow-unauthenticated` starts with `-`, so it would be read as an option",
            "list one apt package name per entry",
        ),
        (
            "an empty pip entry",
            "name: x\nbuild:\n  base: { image: debian }\n  setup: { packages: { pip: [\"\"] } }\n",
            "4:30: pip package `` is empty",
            "list one pip package name per entry",
        ),
        (
            "an npm table's name",
            "name: x\nbuild:\n  base: { image: debian }\n  setup: { packages: { npm: [{ name: \"-g x\" }] } }\n",
            "4:38: npm package `-g x` holds a space: one entry is one package",
            "list one npm package name per entry",
        ),
    ]);
}

/// Bug: a bootstrap suite, variant, package or mirror that the build refuses
/// (`sources::bootstrap::validate`, at 1-base) passed `check`.
#[test]
fn regression_check_refuses_bootstrap_parameters_the_build_refuses() {
    assert_rows(&[
        (
            "suite",
            "name: x\nbuild:\n  base: { bootstrap: { suite: Bookworm } }\n",
            "3:31: invalid bootstrap suite `Bookworm`",
            "use a Debian release name such as `bookworm`",
        ),
        (
            "variant",
            "name: x\nbuild:\n  base: { bootstrap: { suite: bookworm, variant: \"--foo\" } }\n",
            "3:50: invalid bootstrap variant `--foo`",
            "use a debootstrap variant such as `minbase`",
        ),
        (
            "included package",
            "name: x\nbuild:\n  base: { bootstrap: { suite: bookworm, include: [\"a,b\"] } }\n",
            "3:51: invalid package name `a,b` in `build.base.bootstrap.include`",
            "use Debian package names",
        ),
        (
            "mirror",
            "name: x\nbuild:\n  base: { bootstrap: { suite: bookworm, mirror: \"ftp://m\" } }\n",
            "3:49: invalid bootstrap mirror `ftp://m`",
            "use an `http://`, `https://` or `file:///` URL",
        ),
    ]);
}

/// Bug: a base image reference Docker cannot parse (`Debian`, `debian::x`)
/// passed `check`; the build then stopped at 1-base with "the engine
/// refused `inspect image`", exit 3 and no line.
#[test]
fn regression_check_refuses_image_references_docker_cannot_parse() {
    let rule = "an image is `[REGISTRY/]NAME[:TAG][@sha256:DIGEST]`, its name in lowercase, e.g. `debian:bookworm-slim`";
    let rows: Vec<(String, String)> = ["Debian", "debian::x", "debian ", "busybox@sha256:abc"]
        .iter()
        .map(|r| {
            (
                format!("name: x\nbuild:\n  base: {{ image: \"{r}\" }}\n"),
                format!("3:18: invalid image reference `{r}`"),
            )
        })
        .collect();
    let table: Vec<(&str, &str, &str, &str)> = rows
        .iter()
        .map(|(y, e)| ("image", y.as_str(), e.as_str(), rule))
        .collect();
    assert_rows(&table);
}

#[test]
fn a_late_copy_may_land_on_top_of_a_checkout() {
    let dir = habitat();
    for dest in ["/work/app/config/x.yml", "/work/app/.env"] {
        let yaml = format!(
            "{HEAD}  files:\n    copies: [{{ source: f, dest: {dest}, late: true }}, {{ source: f, dest: /work/application/x }}]\n  repos: [{{ url: a, path: /work/app }}]\n"
        );
        let c = parse_in(dir.path(), &yaml).unwrap_or_else(|d| panic!("{d}"));
        let copies = &c.build.files.as_ref().expect("files").copies;
        assert!(copies[0].late && !copies[1].late);
    }
}

/// `habitat.dirs` entries: plain paths and objects side by side, a mode
/// quoted or not, a group that is a declared user's, one of its `groups`
/// or a number, and one directory named twice alike.
#[test]
fn dir_entries_parse_in_every_accepted_form() {
    let dir = habitat();
    let yaml = "name: x
build:
  base: { image: debian }
  users: [{ name: dev, groups: [sudo] }]
  habitat:
    dirs:
      - /plain
      - { path: /a, owner: dev, group: sudo, mode: 0750 }
      - { path: /b, group: dev, mode: \"2775\" }
      - { path: /c, owner: \"1000\", group: \"50\" }
      - { path: /a/, mode: 750 }
      - path: /d
";
    let config = parse_in(dir.path(), yaml).unwrap_or_else(|d| panic!("{d}"));
    let spec = |path: &str, owner: Option<&str>, group: Option<&str>, mode: Option<&str>| {
        HabitatDir::Spec(DirSpec {
            path: path.into(),
            owner: owner.map(Into::into),
            group: group.map(Into::into),
            mode: mode.map(Into::into),
        })
    };
    assert_eq!(
        config.build.habitat.expect("habitat").dirs,
        [
            HabitatDir::Path("/plain".into()),
            spec("/a", Some("dev"), Some("sudo"), Some("0750")),
            spec("/b", None, Some("dev"), Some("2775")),
            spec("/c", Some("1000"), Some("50"), None),
            spec("/a/", None, None, Some("750")),
            spec("/d", None, None, None),
        ]
    );
}

#[test]
fn a_misspelt_dir_field_is_named() {
    let dir = habitat();
    let yaml = format!("{HEAD}  habitat:\n    dirs: [{{ path: /d, mod: \"0750\" }}]\n");
    let d = parse_in(dir.path(), &yaml).expect_err("refused");
    assert_eq!(
        problems(&d),
        ["5:24: unknown key `mod` in `build.habitat.dirs[0]` [hint: did you mean `mode`?]"]
    );
}
