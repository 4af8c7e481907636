//! URLs as kiln shows and keeps them. A repo or tool URL may carry a
//! credential (`https://TOKEN@host/…`, `https://user:pass@host/…`); it is
//! used for the fetch only, and stripped from everything kiln writes or
//! prints: cache keys and the `dev.kiln.inputs` label, the image's
//! `.git/config`, kiln's mirrors, logs, reasons and errors.

use std::borrow::Cow;

/// `url` without its credentials: the whole userinfo (`TOKEN@`,
/// `user:pass@`) of a `scheme://` URL, except that an `ssh://` URL keeps its
/// user name (it says who logs in, and is no secret) and loses only a
/// password. scp-like `user@host:path` and local paths are unchanged.
pub fn without_credentials(url: &str) -> Cow<'_, str> {
    match credentials_span(url) {
        Some((start, end)) => Cow::Owned(format!("{}{}", &url[..start], &url[end..])),
        None => Cow::Borrowed(url),
    }
}

/// The byte range of `url` that [`without_credentials`] removes.
fn credentials_span(url: &str) -> Option<(usize, usize)> {
    let (scheme, rest) = url.split_once("://")?;
    let start = scheme.len() + 3;
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let at = rest[..authority_end].rfind('@')?;
    let userinfo = &rest[..at];
    let ssh = matches!(
        scheme.to_ascii_lowercase().as_str(),
        "ssh" | "git+ssh" | "ssh+git"
    );
    match userinfo.find(':') {
        // `ssh://user:pass@`: only `:pass` goes.
        Some(colon) if ssh && colon > 0 => Some((start + colon, start + at)),
        None if ssh && !userinfo.is_empty() => None,
        _ => Some((start, start + at + 1)),
    }
}

/// `text` (a message from git or an HTTP client) with the credentials of
/// every `scheme://` URL in it removed, as [`without_credentials`] does.
pub fn credentials_hidden(text: &str) -> Cow<'_, str> {
    edit_urls(text, |url| without_credentials(url).into_owned())
}

/// `text` (a line of the user's `kiln.yaml`, shown under a diagnostic) with
/// every character of every URL's credentials replaced by `*`, so the
/// columns a diagnostic points at stay where they were.
pub fn credentials_masked(text: &str) -> Cow<'_, str> {
    edit_urls(text, |url| match credentials_span(url) {
        Some((start, end)) => {
            let stars = "*".repeat(url[start..end].chars().count());
            format!("{}{stars}{}", &url[..start], &url[end..])
        }
        None => url.to_string(),
    })
}

/// `text` with each `scheme://…` URL in it replaced by `edit(url)`.
fn edit_urls(text: &str, edit: impl Fn(&str) -> String) -> Cow<'_, str> {
    if !text.contains("://") {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        // The scheme: the letters, digits and `+.-` just before `://`.
        let scheme_start = rest[..i]
            .char_indices()
            .rfind(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '-')))
            .map_or(0, |(j, c)| j + c.len_utf8());
        out.push_str(&rest[..scheme_start]);
        let url_end = rest[i + 3..]
            .find(|c: char| {
                c.is_whitespace() || matches!(c, '\'' | '"' | '`' | '<' | '>' | ',' | '}' | ']')
            })
            .map_or(rest.len(), |j| i + 3 + j);
        out.push_str(&edit(&rest[scheme_start..url_end]));
        rest = &rest[url_end..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_stripped_and_nothing_else() {
        for (url, shown) in [
            ("https://TOKEN@host/o/r", "https://host/o/r"),
            ("https://me:tok@host/o/r", "https://host/o/r"),
            (
                "https://me:t@k@host:8443/o/r.git",
                "https://host:8443/o/r.git",
            ),
            (
                "http://x-access-token:ghp_1@github.com",
                "http://github.com",
            ),
            ("https://host/o/r?u=a@b", "https://host/o/r?u=a@b"),
            ("https://host/o/r", "https://host/o/r"),
            ("ssh://git@host/o/r", "ssh://git@host/o/r"),
            ("ssh://git:pw@host/o/r", "ssh://git@host/o/r"),
            ("ssh://:pw@host/o/r", "ssh://host/o/r"),
            ("git@host:o/r", "git@host:o/r"),
            ("/srv/repo", "/srv/repo"),
            ("file:///srv/repo", "file:///srv/repo"),
        ] {
            assert_eq!(without_credentials(url), shown, "{url}");
        }
    }

    #[test]
    fn regression_a_non_ascii_character_before_a_scheme_is_kept_whole() {
        // The scheme's start was the byte after the last non-scheme
        // character, which is inside that character when it is `é`.
        assert_eq!(credentials_hidden("éhttps://u:p@host/x"), "éhttps://host/x");
    }

    #[test]
    fn credentials_are_hidden_in_messages() {
        assert_eq!(
            credentials_hidden(
                "fatal: unable to access 'https://me:tok@host/r/': 401\nretry https://tok@h/x."
            ),
            "fatal: unable to access 'https://host/r/': 401\nretry https://h/x."
        );
        assert_eq!(credentials_hidden("no url here"), "no url here");
        let line = r#"    - { url: "https://me:tok@host/r", path: app }"#;
        assert_eq!(
            credentials_masked(line),
            r#"    - { url: "https://*******host/r", path: app }"#
        );
        assert_eq!(
            credentials_masked("  - { url: https://tok@h/r, path: x }"),
            "  - { url: https://****h/r, path: x }"
        );
        assert_eq!(credentials_hidden("a://"), "a://");
    }
}
