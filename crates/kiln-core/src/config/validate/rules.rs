//! The rules of names, modes, ports and image paths that the meaning checks
//! apply to single values.

use std::path::PathBuf;

use crate::config::model::Port;

pub(super) const USER_NAME_RULE: &str =
    "a user or group name is `[a-z_][a-z0-9_-]*`, optionally ending in `$`, at most 32 characters";
pub(super) const ACCOUNT_FIELD_RULE: &str = "`/etc/passwd` keeps one account per line and its fields apart with `:`, so a field holds no `:` and no control character (a line break)";
pub(super) const ENV_NAME_RULE: &str =
    "a variable name is letters, digits and `_`, not starting with a digit";

pub(super) const HABITAT_NAME_RULE: &str = "images are `habitat-NAME`: lowercase letters and digits, separated by one `.`, one or two `_`, or `-`s, at most 247 characters";

/// The longest habitat name whose image, `habitat-NAME`, is still a valid
/// repository name (255 characters at most).
pub(super) const MAX_HABITAT_NAME: usize = 255 - "habitat-".len();

/// A path component of an image name, as Docker's reference grammar has it:
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`. (`habitat-` before it is fine.)
pub(crate) fn is_habitat_name(s: &str) -> bool {
    let mut separator = String::new();
    let mut started = false;
    for c in s.chars() {
        if matches!(c, 'a'..='z' | '0'..='9') {
            let ok = separator.is_empty()
                || matches!(separator.as_str(), "." | "_" | "__")
                || separator.bytes().all(|b| b == b'-');
            if !ok || (!started && !separator.is_empty()) {
                return false;
            }
            separator.clear();
            started = true;
        } else if matches!(c, '.' | '_' | '-') {
            separator.push(c);
        } else {
            return false;
        }
    }
    started && separator.is_empty()
}

pub(super) const IMAGE_REFERENCE_RULE: &str = "an image is `[REGISTRY/]NAME[:TAG][@sha256:DIGEST]`, its name in lowercase, e.g. `debian:bookworm-slim`";

/// An image reference as Docker parses one (`distribution/reference`):
/// `[DOMAIN[:PORT]/]PATH[:TAG][@ALGO:HEX]`, at most 255 characters of name.
pub(crate) fn is_image_reference(s: &str) -> bool {
    let (rest, digest) = match s.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (s, None),
    };
    if let Some(d) = digest {
        let Some((algo, hex)) = d.split_once(':') else {
            return false;
        };
        let hex_ok = hex.len() >= 32 && hex.bytes().all(|b| b.is_ascii_hexdigit());
        let algo_ok = algo.starts_with(|c: char| c.is_ascii_alphabetic())
            && algo
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_+.".contains(&b));
        if !hex_ok || !algo_ok || (algo == "sha256" && hex.len() != 64) {
            return false;
        }
    }
    // A tag follows the last `:` that comes after the last `/` (a port does not).
    let slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[slash..].rfind(':') {
        Some(i) => (&rest[..slash + i], Some(&rest[slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(t) = tag {
        let ok = t.len() <= 128
            && t.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        if !ok {
            return false;
        }
    }
    if name.is_empty() || name.len() > 255 {
        return false;
    }
    let mut parts: Vec<&str> = name.split('/').collect();
    if parts.len() > 1
        && (parts[0].contains(['.', ':'])
            || parts[0] == "localhost"
            || parts[0].chars().any(|c| c.is_ascii_uppercase()))
    {
        let domain = parts.remove(0);
        if !is_domain(domain) {
            return false;
        }
    }
    parts.iter().all(|p| is_habitat_name(p))
}

/// `host[.host]*[:port]`, each label letters, digits and inner `-`.
pub(crate) fn is_domain(s: &str) -> bool {
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (s, None),
    };
    if port.is_some_and(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit())) {
        return false;
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// A member's name: `[a-z0-9][a-z0-9_.-]*`, at most 64 characters, since it
/// is the container's hostname too.
pub(crate) fn is_member_name(s: &str) -> bool {
    let mut chars = s.chars();
    s.len() <= 64
        && matches!(chars.next(), Some('a'..='z' | '0'..='9'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_' | '.' | '-'))
}

/// `[a-z_][a-z0-9_-]*[$]?`, at most 32 characters, as useradd accepts.
pub(crate) fn is_user_name(s: &str) -> bool {
    let body = s.strip_suffix('$').unwrap_or(s);
    let mut chars = body.chars();
    s.len() <= 32
        && matches!(chars.next(), Some('a'..='z' | '_'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_' | '-'))
}

/// A value `/etc/passwd` (or `/etc/group`) can hold in one field: no `:`,
/// which separates fields, and no control character, of which a line break
/// would start another account.
pub(crate) fn is_account_field(s: &str) -> bool {
    !s.chars().any(|c| c == ':' || c.is_control())
}

pub(super) fn is_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some('A'..='Z' | 'a'..='z' | '_'))
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

pub(super) fn is_secret_id(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

pub(super) fn is_numeric(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && s.parse::<u32>().is_ok()
}

/// "0644", "755", "4755": three or four octal digits.
pub(crate) fn is_octal_mode(s: &str) -> bool {
    (3..=4).contains(&s.len()) && s.bytes().all(|b| (b'0'..=b'7').contains(&b))
}

pub(super) fn is_port(port: &Port) -> bool {
    let valid_number = |n: &str| n.parse::<u16>().is_ok_and(|n| n > 0);
    match port {
        Port::Number(n) => *n > 0,
        Port::Spec(s) => match s.split_once('/') {
            Some((n, proto)) => valid_number(n) && matches!(proto, "tcp" | "udp" | "sctp"),
            None => valid_number(s),
        },
    }
}

/// `/usr/local/bin/` and `/usr//local/./bin` are the same place as `/usr/local/bin`.
pub(super) fn normalize_image_path(p: &str) -> String {
    let parts: Vec<&str> = p
        .split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .collect();
    let mut out = PathBuf::from("/");
    out.extend(parts);
    out.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_rules() {
        assert!(is_habitat_name("discourse"));
        assert!(is_habitat_name("0a_b.c-d"));
        assert!(is_habitat_name("a--b__c"));
        assert!(!is_habitat_name("Discourse"));
        assert!(!is_habitat_name("-x"));
        assert!(!is_habitat_name("x-"));
        assert!(!is_habitat_name("x..y"));
        assert!(!is_habitat_name("x_-y"));
        assert!(!is_habitat_name("x___y"));
        assert!(!is_habitat_name(""));
        assert!(is_member_name("x-"));
        assert!(!is_member_name(&"a".repeat(65)));
        assert!(is_user_name("dev"));
        assert!(is_user_name("_apt"));
        assert!(is_user_name("host$"));
        assert!(!is_user_name("Dev"));
        assert!(!is_user_name("1dev"));
        assert!(!is_user_name(&"a".repeat(33)));
        assert!(is_user_name(&"a".repeat(32)));
        assert!(!is_user_name("dev\nroot"));
        assert!(!is_user_name("dev:x"));
        assert!(is_account_field("/bin/bash"));
        assert!(is_account_field("/home/a b"));
        for bad in [
            "/bin/sh\nevil::0:0::/:/bin/sh",
            "/bin:/sh",
            "/x\r",
            "/x\0",
            "/x\u{85}",
        ] {
            assert!(!is_account_field(bad), "{bad:?}");
        }
    }

    #[test]
    fn image_references_parse_as_docker_parses_them() {
        for good in [
            "debian",
            "debian:bookworm-slim",
            "kiln-test/busybox:latest",
            "library/debian",
            "127.0.0.1:5000/team/app:v1.2",
            "localhost/app",
            "ghcr.io/Org-Name/x".to_lowercase().as_str(),
            "registry.example.com:443/a/b/c",
            "debian@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "debian:12@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "Registry.Example.com/app",
        ] {
            assert!(is_image_reference(good), "{good}");
        }
        for bad in [
            "",
            "Debian",
            "debian::x",
            "debian:",
            "a b",
            "debian ",
            "debian@sha256:abc",
            "x-/y",
            "debian:-tag",
            "a//b",
            "/a",
            "host:port/a",
        ] {
            assert!(!is_image_reference(bad), "{bad}");
        }
    }

    #[test]
    fn mode_and_port_rules() {
        assert!(is_octal_mode("0644"));
        assert!(is_octal_mode("755"));
        assert!(!is_octal_mode("0888"));
        assert!(!is_octal_mode("64"));
        assert!(!is_octal_mode("rw-r--r--"));
        assert!(is_port(&Port::Number(3000)));
        assert!(!is_port(&Port::Number(0)));
        assert!(is_port(&Port::Spec("53/udp".into())));
        assert!(!is_port(&Port::Spec("53/xyz".into())));
        assert!(!is_port(&Port::Spec("http".into())));
    }

    #[test]
    fn image_paths_normalize() {
        assert_eq!(normalize_image_path("/usr//local/./bin/"), "/usr/local/bin");
        assert_eq!(normalize_image_path("/"), "/");
    }
}
