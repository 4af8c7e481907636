//! `Accounts`: the image's `/etc/passwd`, `/etc/group` and `/etc/shadow`, read
//! and edited as text. Users are created by editing these files rather than by
//! running `useradd`, so the users phase works the same on Debian, Alpine and
//! images with neither tool, and needs no started container.

use std::collections::BTreeSet;

use crate::config::User;

/// Where regular users' ids start, as in Debian's `/etc/login.defs`.
const FIRST_ID: u32 = 1000;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accounts {
    pub passwd: String,
    pub group: String,
    /// `None` when the image has no `/etc/shadow`.
    pub shadow: Option<String>,
}

/// One `/etc/passwd` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
    pub shell: String,
}

/// A user as the users phase created it, for making its home directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountsError {
    #[error("user `{name}` already exists in the base image with uid {existing}, not {wanted}")]
    UidConflict {
        name: String,
        existing: u32,
        wanted: u32,
    },
    #[error("uid {uid} for user `{name}` is already taken by `{owner}` in the base image")]
    UidTaken {
        name: String,
        uid: u32,
        owner: String,
    },
    #[error("no such user `{0}` in the image")]
    NoSuchUser(String),
    #[error("no such group `{0}` in the image")]
    NoSuchGroup(String),
    /// `check` refuses these first; this is the second line of defence,
    /// where the account files are written.
    #[error(
        "the {field} `{}` of user `{}` cannot be written to the account files: it holds a `:`, a `,` or a control character",
        .value.escape_debug(), .user.escape_debug()
    )]
    Unstorable {
        user: String,
        field: &'static str,
        value: String,
    },
}

/// Whether `value` fits one field of `/etc/passwd`, `/etc/group` or
/// `/etc/shadow`: a `:` would split it into more fields, a line break would
/// start another account.
fn storable(value: &str) -> bool {
    !value.chars().any(|c| c == ':' || c.is_control())
}

/// Whether `name` can name an account: storable, not empty, no `,` (which
/// separates a group's members), no leading `+` or `-` (NIS entries).
fn storable_name(name: &str) -> bool {
    storable(name) && !name.is_empty() && !name.contains(',') && !name.starts_with(['+', '-'])
}

/// Refuses a user whose fields would not stay in their own line and field.
fn check_storable(u: &User, home: &str, shell: &str) -> Result<(), AccountsError> {
    let bad = |field: &'static str, value: &str| AccountsError::Unstorable {
        user: u.name.clone(),
        field,
        value: value.to_string(),
    };
    if !storable_name(&u.name) {
        return Err(bad("name", &u.name));
    }
    if let Some(g) = u.groups.iter().find(|g| !storable_name(g)) {
        return Err(bad("group", g));
    }
    if !storable(home) {
        return Err(bad("home", home));
    }
    if !storable(shell) {
        return Err(bad("shell", shell));
    }
    Ok(())
}

fn fields(line: &str) -> Vec<&str> {
    line.split(':').collect()
}

impl Accounts {
    pub fn users(&self) -> Vec<PasswdEntry> {
        self.passwd
            .lines()
            .filter_map(|l| {
                let f = fields(l);
                (f.len() >= 7).then(|| PasswdEntry {
                    name: f[0].to_string(),
                    uid: f[2].parse().unwrap_or(u32::MAX),
                    gid: f[3].parse().unwrap_or(u32::MAX),
                    home: f[5].to_string(),
                    shell: f[6].to_string(),
                })
            })
            .collect()
    }

    /// `(name, gid, members)` of every group.
    pub fn groups(&self) -> Vec<(String, u32, Vec<String>)> {
        self.group
            .lines()
            .filter_map(|l| {
                let f = fields(l);
                (f.len() >= 4).then(|| {
                    let members = f[3]
                        .split(',')
                        .filter(|m| !m.is_empty())
                        .map(str::to_string)
                        .collect();
                    (f[0].to_string(), f[2].parse().unwrap_or(u32::MAX), members)
                })
            })
            .collect()
    }

    pub fn user(&self, name: &str) -> Option<PasswdEntry> {
        self.users().into_iter().find(|u| u.name == name)
    }

    /// Resolves an owner given as a name or a number to `(uid, gid)`; a
    /// numeric owner not in the image keeps its number as its gid.
    pub fn resolve_owner(&self, owner: Option<&str>) -> Result<(u32, u32), AccountsError> {
        let owner = match owner {
            // root is uid 0 in every image: no lookup needed.
            None | Some("root") => return Ok((0, 0)),
            Some(o) => o,
        };
        if let Ok(uid) = owner.parse::<u32>() {
            let gid = self
                .users()
                .into_iter()
                .find(|u| u.uid == uid)
                .map_or(uid, |u| u.gid);
            return Ok((uid, gid));
        }
        self.user(owner)
            .map(|u| (u.uid, u.gid))
            .ok_or_else(|| AccountsError::NoSuchUser(owner.to_string()))
    }

    pub fn resolve_group(&self, group: &str) -> Result<u32, AccountsError> {
        if group == "root" {
            return Ok(0);
        }
        if let Ok(gid) = group.parse::<u32>() {
            return Ok(gid);
        }
        self.groups()
            .into_iter()
            .find(|g| g.0 == group)
            .map(|g| g.1)
            .ok_or_else(|| AccountsError::NoSuchGroup(group.to_string()))
    }

    /// Adds `users` (and their primary and supplementary groups, created when
    /// missing). A user that already exists with the same uid is updated in
    /// place, so re-running the phase on its own output is harmless.
    pub fn add_users(&mut self, users: &[User]) -> Result<Vec<CreatedUser>, AccountsError> {
        for u in users {
            let home = u.home.clone().unwrap_or_default();
            let shell = u.shell.clone().unwrap_or_default();
            check_storable(u, &home, &shell)?;
        }
        let mut created = Vec::new();
        for u in users {
            let existing = self.user(&u.name);
            let uid = match (&existing, u.uid) {
                (Some(e), Some(w)) if e.uid != w => {
                    return Err(AccountsError::UidConflict {
                        name: u.name.clone(),
                        existing: e.uid,
                        wanted: w,
                    });
                }
                (Some(e), _) => e.uid,
                (None, Some(w)) => {
                    if let Some(owner) = self.users().into_iter().find(|x| x.uid == w) {
                        return Err(AccountsError::UidTaken {
                            name: u.name.clone(),
                            uid: w,
                            owner: owner.name,
                        });
                    }
                    w
                }
                (None, None) => self.next_free_uid(),
            };
            if let Some(e) = &existing {
                // A user the base has: only the fields given change; its
                // primary group, home, shell, gecos and groups stay, and its
                // home is neither made again nor filled from `/etc/skel`
                // (unless the config moves it somewhere new).
                created.extend(self.update_existing(u, e));
            } else {
                let home = u
                    .home
                    .clone()
                    .unwrap_or_else(|| format!("/home/{}", u.name));
                let gid = self.primary_group(u, uid);
                let shell = u.shell.clone().unwrap_or_else(|| "/bin/sh".to_string());
                let line = format!("{}:x:{uid}:{gid}::{home}:{shell}", u.name);
                self.passwd = replace_or_push(&self.passwd, &u.name, &line);
                created.push(CreatedUser {
                    name: u.name.clone(),
                    uid,
                    gid,
                    home,
                });
            }
            if let Some(shadow) = &self.shadow
                && !shadow.lines().any(|l| l.split(':').next() == Some(&u.name))
            {
                // Locked password, never expires: log in with keys or `su`.
                self.shadow = Some(push_line(
                    shadow,
                    &format!("{}:!:19000:0:99999:7:::", u.name),
                ));
            }
            let wanted: BTreeSet<&String> = u.groups.iter().collect();
            for g in wanted {
                if !self.groups().iter().any(|x| &x.0 == g) {
                    let gid = self.next_free_system_gid();
                    self.push_group(g, gid);
                }
                self.add_member(g, &u.name);
            }
        }
        Ok(created)
    }

    /// The primary group of a new user: the group named after it (Debian's
    /// USERGROUPS_ENAB), made with `gid` (else the uid, else the next free
    /// id) when missing.
    fn primary_group(&mut self, u: &User, uid: u32) -> u32 {
        if let Some(g) = self.groups().into_iter().find(|g| g.0 == u.name) {
            return g.1;
        }
        let gid = u.gid.filter(|g| !self.gid_taken(*g)).unwrap_or_else(|| {
            if self.gid_taken(uid) {
                self.next_free_gid()
            } else {
                uid
            }
        });
        self.push_group(&u.name, gid);
        gid
    }

    /// Rewrites the passwd line of the existing user `e` with the fields
    /// `u` gives (gid, home, shell), every other field as it was; the user
    /// comes back when its home moved, so the new one is made.
    fn update_existing(&mut self, u: &User, e: &PasswdEntry) -> Option<CreatedUser> {
        let line = self
            .passwd
            .lines()
            .find(|l| l.split(':').next() == Some(e.name.as_str()))
            .unwrap_or_default()
            .to_string();
        let mut f: Vec<String> = line.split(':').map(str::to_string).collect();
        f.resize(f.len().max(7), String::new());
        if let Some(gid) = u.gid {
            if !self.gid_taken(gid) {
                self.push_group(&u.name, gid);
            }
            f[3] = gid.to_string();
        }
        if let Some(home) = &u.home {
            f[5] = home.clone();
        }
        if let Some(shell) = &u.shell {
            f[6] = shell.clone();
        }
        self.passwd = replace_or_push(&self.passwd, &u.name, &f.join(":"));
        let moved = u.home.as_ref().filter(|h| **h != e.home)?;
        Some(CreatedUser {
            name: u.name.clone(),
            uid: e.uid,
            gid: f[3].parse().unwrap_or(e.gid),
            home: moved.clone(),
        })
    }

    fn gid_taken(&self, gid: u32) -> bool {
        self.groups().iter().any(|g| g.1 == gid)
    }

    fn next_free_uid(&self) -> u32 {
        let used: BTreeSet<u32> = self.users().iter().map(|u| u.uid).collect();
        (FIRST_ID..).find(|i| !used.contains(i)).unwrap_or(FIRST_ID)
    }

    fn next_free_gid(&self) -> u32 {
        let used: BTreeSet<u32> = self.groups().iter().map(|g| g.1).collect();
        (FIRST_ID..).find(|i| !used.contains(i)).unwrap_or(FIRST_ID)
    }

    /// System groups (like `sudo` on an image without it) take ids below 1000.
    fn next_free_system_gid(&self) -> u32 {
        let used: BTreeSet<u32> = self.groups().iter().map(|g| g.1).collect();
        (100..FIRST_ID)
            .rev()
            .find(|i| !used.contains(i))
            .unwrap_or_else(|| self.next_free_gid())
    }

    fn push_group(&mut self, name: &str, gid: u32) {
        self.group = push_line(&self.group, &format!("{name}:x:{gid}:"));
    }

    fn add_member(&mut self, group: &str, user: &str) {
        let lines: Vec<String> = self
            .group
            .lines()
            .map(|l| {
                let f = fields(l);
                if f.len() >= 4 && f[0] == group && !f[3].split(',').any(|m| m == user) {
                    let members = if f[3].is_empty() {
                        user.to_string()
                    } else {
                        format!("{},{user}", f[3])
                    };
                    format!("{}:{}:{}:{members}", f[0], f[1], f[2])
                } else {
                    l.to_string()
                }
            })
            .collect();
        self.group = lines.join("\n") + "\n";
    }
}

fn push_line(text: &str, line: &str) -> String {
    let mut s = text.to_string();
    if !s.is_empty() && !s.ends_with('\n') {
        s.push('\n');
    }
    s.push_str(line);
    s.push('\n');
    s
}

fn replace_or_push(text: &str, name: &str, line: &str) -> String {
    if text.lines().any(|l| l.split(':').next() == Some(name)) {
        text.lines()
            .map(|l| {
                if l.split(':').next() == Some(name) {
                    line
                } else {
                    l
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
            + "\n"
    } else {
        push_line(text, line)
    }
}

/// Whether an owner or group names an account that must be looked up in the
/// image (a name other than root); numbers and `root` need no lookup.
pub fn names_an_account(owner: Option<&str>) -> bool {
    owner.is_some_and(|o| o != "root" && o.parse::<u32>().is_err())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn debian() -> Accounts {
        Accounts {
            passwd: "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n".into(),
            group: "root:x:0:\nsudo:x:27:\nnogroup:x:65534:\n".into(),
            shadow: Some("root:*:19000:0:99999:7:::\n".into()),
        }
    }

    fn user(name: &str) -> User {
        User {
            name: name.into(),
            uid: None,
            gid: None,
            groups: vec![],
            shell: None,
            home: None,
        }
    }

    #[test]
    fn adds_a_user_with_group_home_and_shadow() {
        let mut a = debian();
        let u = User {
            uid: Some(1000),
            groups: vec!["sudo".into()],
            shell: Some("/bin/bash".into()),
            ..user("dev")
        };
        let created = a.add_users(&[u]).unwrap();
        assert_eq!(
            created,
            vec![CreatedUser {
                name: "dev".into(),
                uid: 1000,
                gid: 1000,
                home: "/home/dev".into()
            }]
        );
        assert!(a.passwd.contains("dev:x:1000:1000::/home/dev:/bin/bash\n"));
        assert!(a.group.contains("dev:x:1000:\n"));
        assert!(a.group.contains("sudo:x:27:dev\n"));
        assert!(a.shadow.unwrap().contains("dev:!:"));
        assert_eq!(
            Accounts {
                passwd: a.passwd.clone(),
                ..Default::default()
            }
            .resolve_owner(Some("dev"))
            .unwrap(),
            (1000, 1000)
        );
    }

    #[test]
    fn missing_supplementary_groups_are_created_and_ids_allocated() {
        let mut a = Accounts {
            passwd: "root:x:0:0::/root:/bin/sh\n".into(),
            group: "root:x:0:\n".into(),
            shadow: None,
        };
        let created = a
            .add_users(&[
                User {
                    groups: vec!["docker".into()],
                    ..user("a")
                },
                user("b"),
            ])
            .unwrap();
        assert_eq!((created[0].uid, created[1].uid), (1000, 1001));
        assert!(a.group.contains("docker:x:999:a\n"));
    }

    #[test]
    fn reapplying_is_harmless_and_conflicts_are_named() {
        let mut a = debian();
        let u = User {
            uid: Some(1000),
            ..user("dev")
        };
        a.add_users(std::slice::from_ref(&u)).unwrap();
        let once = a.clone();
        a.add_users(std::slice::from_ref(&u)).unwrap();
        assert_eq!(a, once);
        let err = a
            .add_users(&[User {
                uid: Some(1001),
                ..user("dev")
            }])
            .unwrap_err();
        assert!(err.to_string().contains("uid 1000"));
        let err = a
            .add_users(&[User {
                uid: Some(1000),
                ..user("other")
            }])
            .unwrap_err();
        assert!(err.to_string().contains("taken by `dev`"));
    }

    /// A shell or home with a line break wrote a second account, here a
    /// passwordless uid 0, into `/etc/passwd`: refused where it is written
    /// too, whatever `check` let through, and nothing is changed.
    #[test]
    fn regression_account_fields_cannot_write_extra_lines() {
        let evil = "\nevil::0:0::/root:/bin/sh";
        let cases = [
            User {
                shell: Some(format!("/bin/sh{evil}")),
                ..user("dev")
            },
            User {
                home: Some(format!("/home/dev{evil}")),
                ..user("dev")
            },
            User {
                shell: Some("/bin/sh:x".into()),
                ..user("dev")
            },
            user(&format!("dev{evil}")),
            user("+dev"),
            User {
                groups: vec![format!("sudo{evil}")],
                ..user("dev")
            },
            User {
                groups: vec!["sudo,root".into()],
                ..user("dev")
            },
        ];
        for u in cases {
            let mut a = debian();
            let err = a.add_users(std::slice::from_ref(&u)).unwrap_err();
            assert!(
                matches!(err, AccountsError::Unstorable { .. }),
                "{u:?}: {err}"
            );
            assert_eq!(a, debian(), "{u:?}: the accounts changed");
            assert!(!err.to_string().contains('\n'), "{err}");
        }
    }

    /// Declaring a user the base has wiped its home (made again from
    /// `/etc/skel`) and reset its shell, gecos and primary group.
    #[test]
    fn regression_a_user_the_base_has_keeps_what_the_config_does_not_give() {
        let base = Accounts {
            passwd:
                "root:x:0:0:root:/root:/bin/bash\nnode:x:1000:1000:Node User:/home/node:/bin/bash\n"
                    .into(),
            group: "root:x:0:\nstaff:x:50:node\nusers:x:1000:\nsudo:x:27:\n".into(),
            shadow: Some("root:*:1::::::\nnode:$6$x:19000:0:99999:7:::\n".into()),
        };
        // (fields given, passwd line after, home made again)
        let cases: Vec<(User, &str, Option<&str>)> = vec![
            (
                user("node"),
                "node:x:1000:1000:Node User:/home/node:/bin/bash",
                None,
            ),
            (
                User {
                    groups: vec!["sudo".into()],
                    ..user("node")
                },
                "node:x:1000:1000:Node User:/home/node:/bin/bash",
                None,
            ),
            (
                User {
                    shell: Some("/bin/sh".into()),
                    uid: Some(1000),
                    ..user("node")
                },
                "node:x:1000:1000:Node User:/home/node:/bin/sh",
                None,
            ),
            (
                User {
                    home: Some("/srv/node".into()),
                    ..user("node")
                },
                "node:x:1000:1000:Node User:/srv/node:/bin/bash",
                Some("/srv/node"),
            ),
            (
                User {
                    home: Some("/home/node".into()),
                    ..user("node")
                },
                "node:x:1000:1000:Node User:/home/node:/bin/bash",
                None,
            ),
        ];
        for (u, line, made) in cases {
            let mut a = base.clone();
            let created = a.add_users(std::slice::from_ref(&u)).unwrap();
            assert!(a.passwd.lines().any(|l| l == line), "{u:?}: {}", a.passwd);
            assert_eq!(created.first().map(|c| c.home.as_str()), made, "{u:?}");
            // Its groups stay, its password stays, no group named after it appears.
            assert!(a.group.contains("staff:x:50:node\n"), "{u:?}: {}", a.group);
            assert!(!a.group.contains("node:x:"), "{u:?}: {}", a.group);
            assert!(a.shadow.as_deref().unwrap().contains("node:$6$x:"));
            for g in &u.groups {
                assert!(
                    a.groups()
                        .iter()
                        .any(|x| &x.0 == g && x.2.contains(&u.name))
                );
            }
        }
    }

    #[test]
    fn owners_resolve_by_name_or_number() {
        let a = debian();
        assert_eq!(a.resolve_owner(None).unwrap(), (0, 0));
        assert_eq!(a.resolve_owner(Some("nobody")).unwrap(), (65534, 65534));
        assert_eq!(a.resolve_owner(Some("4242")).unwrap(), (4242, 4242));
        assert!(a.resolve_owner(Some("ghost")).is_err());
        assert_eq!(a.resolve_group("sudo").unwrap(), 27);
    }
}
