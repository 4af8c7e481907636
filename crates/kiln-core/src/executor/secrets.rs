//! Build secrets (SPEC §6): read on the host into a private directory that
//! is mounted for the setup container only, and redacted from every line of
//! output shown. They never reach a layer, a label or a key.
//!
//! The directory on the host is `TMP/kiln-secrets-OWNER.RANDOM/` (mode
//! 0700, so no other user of the host can reach it) holding `mounted/`
//! (0755, files 0444: what the container sees at `/run/secrets`, readable by
//! the non-root users that setup scripts run as). It is named after its
//! process (`cache::scratch`), so one a killed build left is swept by the
//! next build, with those of kiln versions that named it without an owner.

use std::collections::BTreeSet;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::engine::Engine;
use crate::sources::io::io_err;

use super::context::Executor;
use super::error::BuildError;

/// The name every secrets directory starts with, in the temp dir.
pub(super) const SECRETS_PREFIX: &str = "kiln-secrets-";
const DIR_PREFIX: &str = SECRETS_PREFIX;
/// The subdirectory that is mounted.
const MOUNTED: &str = "mounted";

/// A build's secrets on the host, removed on drop.
#[derive(Debug)]
pub(super) struct SecretsDir {
    dir: tempfile::TempDir,
}

impl SecretsDir {
    /// Makes an empty secrets directory in `temp`, after sweeping the ones
    /// that dead builds left there.
    fn create(temp: &Path) -> std::io::Result<SecretsDir> {
        sweep_legacy(temp);
        crate::cache::scratch::sweep_once(temp, DIR_PREFIX);
        let dir = tempfile::Builder::new()
            .prefix(&crate::cache::scratch::named(DIR_PREFIX))
            .permissions(mode(0o700))
            .tempdir_in(temp)?;
        let mounted = dir.path().join(MOUNTED);
        std::fs::create_dir(&mounted)?;
        std::fs::set_permissions(&mounted, mode(0o755))?;
        Ok(SecretsDir { dir })
    }

    /// The host directory mounted at `/run/secrets`.
    pub(super) fn mount_source(&self) -> PathBuf {
        self.dir.path().join(MOUNTED)
    }

    fn write(&self, id: &str, value: &str) -> Result<(), BuildError> {
        let path = self.mount_source().join(id);
        std::fs::write(&path, value).map_err(io_err("cannot write the secret file", &path))?;
        std::fs::set_permissions(&path, mode(0o444))
            .map_err(io_err("cannot write the secret file", &path))?;
        Ok(())
    }
}

/// Removes the secrets directories that kiln versions before the owner was
/// in the name left (`kiln-secrets-` and six random characters, readable by
/// every user of the host): this user's, whose owner nothing can tell.
/// Nothing here fails a build.
fn sweep_legacy(temp: &Path) {
    let Ok(entries) = std::fs::read_dir(temp) else {
        return;
    };
    let me = rustix::process::geteuid().as_raw();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(DIR_PREFIX)) else {
            continue;
        };
        let legacy = rest.len() == 6 && rest.chars().all(|c| c.is_ascii_alphanumeric());
        let path = entry.path();
        let mine = std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir() && m.uid() == me);
        if legacy && mine {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

fn mode(bits: u32) -> std::fs::Permissions {
    use std::os::unix::fs::PermissionsExt;
    std::fs::Permissions::from_mode(bits)
}

/// Replaces secret values in output lines with `***`. Output arrives a line
/// at a time, so a multi-line secret (a PEM key) is redacted line by line:
/// each of its lines is a value of its own, as well as the whole.
#[derive(Debug, Default, Clone)]
pub(crate) struct Redactor {
    /// Longest first, so a value that contains another is matched whole.
    values: Vec<String>,
}

impl Redactor {
    /// Adds `secret`: the whole value and every line of it, trimmed; blank
    /// lines are nothing to hide.
    pub(crate) fn add(&mut self, secret: &str) {
        let mut all: BTreeSet<String> = self.values.drain(..).collect();
        all.insert(secret.trim().to_string());
        all.extend(secret.lines().map(|l| l.trim().to_string()));
        all.remove("");
        self.values = all.into_iter().collect();
        self.values
            .sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    }

    /// `line` with every occurrence of every value replaced by `***`. The
    /// places are found in the line as it came, then replaced at once, so
    /// overlapping values and a value that contains `*` are all covered.
    pub(crate) fn redact(&self, line: &str) -> String {
        let mut hidden: Vec<(usize, usize)> = Vec::new();
        for v in &self.values {
            let mut from = 0;
            while let Some(i) = line[from..].find(v.as_str()) {
                let start = from + i;
                hidden.push((start, start + v.len()));
                // Overlapping occurrences too (`aa` in `aaa`): step one char.
                from = start + line[start..].chars().next().map_or(1, char::len_utf8);
            }
        }
        if hidden.is_empty() {
            return line.to_string();
        }
        hidden.sort_unstable();
        let mut out = String::with_capacity(line.len());
        let mut at = 0;
        let mut iter = hidden.into_iter().peekable();
        while let Some((start, mut end)) = iter.next() {
            while let Some(&(s, e)) = iter.peek() {
                if s > end {
                    break;
                }
                end = end.max(e);
                iter.next();
            }
            out.push_str(&line[at..start]);
            out.push_str("***");
            at = end;
        }
        out.push_str(&line[at..]);
        out
    }
}

impl<E: Engine> Executor<'_, E> {
    /// Reads each declared secret on the host into a private directory that is
    /// mounted read-only for the setup container only.
    pub(super) fn secrets_dir(&mut self) -> Result<Option<SecretsDir>, BuildError> {
        let secrets = self.config().secrets.clone();
        if secrets.is_empty() {
            return Ok(None);
        }
        let temp = std::env::temp_dir();
        let dir = SecretsDir::create(&temp)
            .map_err(io_err("cannot create a directory for secrets in", &temp))?;
        for s in &secrets {
            let value = match (&s.env, &s.file) {
                (Some(env), _) => std::env::var(env).map_err(|_| {
                    BuildError::Usage(format!(
                        "secret `{}` reads the environment variable `{env}`, which is not set\nhint: `export {env}=...` before building",
                        s.id
                    ))
                })?,
                (None, Some(file)) => read_secret_file(&self.habitat.dir.join(file)).map_err(|e| {
                    BuildError::Usage(format!("secret `{}` cannot be read from `{file}`: {e}", s.id))
                })?,
                (None, None) => return Err(BuildError::Usage(format!("secret `{}` has no `env` or `file`", s.id))),
            };
            dir.write(&s.id, &value)?;
            self.secrets.add(&value);
        }
        Ok(Some(dir))
    }

    /// `line` with every secret value replaced by `***`.
    pub(super) fn redact(&self, line: &str) -> String {
        self.secrets.redact(line)
    }
}

/// A secret file's text. Opened without blocking and checked to be a
/// regular file: a fifo or a device put there would hang or feed the build.
fn read_secret_file(path: &Path) -> std::io::Result<String> {
    use rustix::fs::{Mode, OFlags};
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut file = std::fs::File::from(fd);
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("it is not a regular file"));
    }
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const PEM: &str = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU\r\nAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAt\n\n-----END OPENSSH PRIVATE KEY-----\n";

    /// A PEM file echoed by a command came out one line at a time, and the
    /// redaction looked for the whole file in each line: every line of the
    /// key was printed.
    #[test]
    fn regression_every_line_of_a_multi_line_secret_is_redacted() {
        let mut r = Redactor::default();
        r.add(PEM);
        for line in PEM.lines().filter(|l| !l.trim().is_empty()) {
            let out = r.redact(line);
            assert_eq!(out, "***", "{line:?}");
            let out = r.redact(&format!("key: {line} (end)"));
            assert_eq!(out, "key: *** (end)", "{line:?}");
        }
        assert_eq!(r.redact("nothing secret here"), "nothing secret here");
        assert_eq!(r.redact(""), "");
    }

    #[test]
    fn overlapping_and_starry_values_are_all_hidden() {
        let mut r = Redactor::default();
        r.add("abcd");
        r.add("cdef");
        r.add("x*y");
        r.add("*");
        assert_eq!(r.redact("..abcdef.."), "..***..");
        assert_eq!(r.redact("x*y and ab"), "*** and ab");
        assert_eq!(r.redact("aé*é"), "aé***é");
        let mut r = Redactor::default();
        r.add("aa");
        assert_eq!(r.redact("aaa b aa"), "*** b ***");
    }

    /// The directory was 0755 with 0444 files, readable by every user of
    /// the host, and a killed build left it there for ever.
    #[test]
    fn regression_the_secrets_dir_is_private_and_dead_builds_leftovers_are_swept() {
        let temp = tempfile::tempdir().unwrap();
        // Left by a build that is gone: this pid, but another start time.
        let me = crate::cache::owner::Owner::current();
        let dead = crate::cache::owner::Owner {
            start: me.start + 1,
            ..me
        };
        let left = temp
            .path()
            .join(format!("{DIR_PREFIX}{}.abc123", dead.token()));
        std::fs::create_dir_all(left.join(MOUNTED)).unwrap();
        std::fs::write(left.join(MOUNTED).join("tok"), "s3cret").unwrap();
        std::fs::set_permissions(left.join(MOUNTED).join("tok"), mode(0o444)).unwrap();
        // Left by an older kiln, without a pid in its name.
        let legacy = temp.path().join(format!("{DIR_PREFIX}Xy12Ab"));
        std::fs::create_dir(&legacy).unwrap();
        // A live build's (this process is alive) and something else.
        let live = temp
            .path()
            .join(format!("{DIR_PREFIX}{}.live00", me.token()));
        std::fs::create_dir(&live).unwrap();
        let other = temp.path().join("kiln-other");
        std::fs::create_dir(&other).unwrap();

        let dir = SecretsDir::create(temp.path()).unwrap();
        dir.write("tok", "value").unwrap();
        assert!(!left.exists(), "a dead build's secrets were kept");
        assert!(!legacy.exists(), "an old kiln's secrets were kept");
        assert!(live.exists(), "a live process's directory stays");
        assert!(other.exists());

        let perms = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let top = dir.mount_source().parent().unwrap().to_path_buf();
        assert!(
            top.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&crate::cache::scratch::named(DIR_PREFIX))
        );
        assert_eq!(perms(&top), 0o700, "the host side is private");
        assert_eq!(
            perms(&dir.mount_source()),
            0o755,
            "the container side is readable"
        );
        assert_eq!(perms(&dir.mount_source().join("tok")), 0o444);
        // A second build of this process keeps the first one's directory.
        let second = SecretsDir::create(temp.path()).unwrap();
        assert!(top.exists());
        drop(dir);
        drop(second);
        assert!(!top.exists(), "removed on drop");
    }

    #[test]
    fn a_secret_file_that_is_not_a_regular_file_is_refused() {
        let temp = tempfile::tempdir().unwrap();
        assert!(read_secret_file(temp.path()).is_err());
        std::fs::write(temp.path().join("s"), "v\n").unwrap();
        assert_eq!(read_secret_file(&temp.path().join("s")).unwrap(), "v\n");
    }
}
