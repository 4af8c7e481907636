//! What a tool's archive is, read off its name, and whether a path inside
//! it stays inside: pure, shared by `check` and the tools phase, so both
//! refuse the same sources and the same member paths.

/// The archive formats `extract: true` unpacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveKind {
    Tar,
    TarGz,
    TarXz,
    Zip,
}

impl ArchiveKind {
    /// The kind of the archive `source` names (a URL's query and fragment
    /// left out), by its extension, case-insensitive.
    pub fn of(source: &str) -> Option<ArchiveKind> {
        let name = source
            .split(['?', '#'])
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        [
            (".tar.gz", ArchiveKind::TarGz),
            (".tgz", ArchiveKind::TarGz),
            (".tar.xz", ArchiveKind::TarXz),
            (".tar", ArchiveKind::Tar),
            (".zip", ArchiveKind::Zip),
        ]
        .into_iter()
        .find(|(ext, _)| name.ends_with(ext))
        .map(|(_, kind)| kind)
    }
}

/// `path` as a path inside an archive, its parts joined by `/` with `.`
/// and empty parts dropped; `None` when it is absolute, holds `..` or names
/// nothing, so that no member can land outside where it is unpacked.
pub fn member_path(path: &str) -> Option<String> {
    if path.starts_with('/') || path.contains('\0') {
        return None;
    }
    let mut parts = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => return None,
            p => parts.push(p),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_come_from_the_name() {
        let cases = [
            ("https://x/jq-1.7.tar.gz", Some(ArchiveKind::TarGz)),
            ("tools/a.TGZ", Some(ArchiveKind::TarGz)),
            ("a.tar.xz?token=1", Some(ArchiveKind::TarXz)),
            ("a.tar", Some(ArchiveKind::Tar)),
            ("a.zip#frag", Some(ArchiveKind::Zip)),
            ("a.gz", None),
            ("a.tar.bz2", None),
            ("jq-linux64", None),
        ];
        for (source, want) in cases {
            assert_eq!(ArchiveKind::of(source), want, "{source}");
        }
    }

    #[test]
    fn member_paths_stay_inside() {
        let cases = [
            ("bin/jq", Some("bin/jq")),
            ("./a//b/", Some("a/b")),
            ("a/./b", Some("a/b")),
            ("/etc/passwd", None),
            ("a/../../b", None),
            ("..", None),
            ("", None),
            ("./", None),
        ];
        for (path, want) in cases {
            assert_eq!(member_path(path).as_deref(), want, "{path}");
        }
    }
}
