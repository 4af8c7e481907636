//! The rules of names, modes, ports and image paths that the meaning checks
//! apply to single values.

use std::path::PathBuf;

use crate::config::model::Port;

pub(super) const USER_NAME_RULE: &str =
    "a user or group name is `[a-z_][a-z0-9_-]*`, optionally ending in `$`, at most 32 characters";
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
