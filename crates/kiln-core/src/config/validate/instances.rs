//! The meaning checks of `instances:`: member names, the runtime settings
//! `config::runtime` parses, and host ports two members would both publish.

use super::Checker;
use super::rules::{ENV_NAME_RULE, is_env_name, is_member_name};
use crate::config::model::Config;
use crate::config::node::{Loc, Seg};
use crate::config::runtime::{parse_port, parse_volume, ports_clash, specs};
use crate::engine::PortBinding;

use Seg::{Index as I, Key as K};

impl Checker<'_, '_> {
    /// Member names, port and volume syntax, absolute persist paths, env
    /// names, and host ports two members would both publish.
    pub(super) fn instances(&mut self, config: &Config) {
        if config.instances.is_none() {
            return;
        }
        let mut published: Vec<(String, PortBinding, Loc)> = Vec::new();
        for (member, spec) in specs(config) {
            let base: Vec<Seg<'_>> = match member {
                Some(m) => vec![K("instances"), K("members"), K(m)],
                None => vec![K("instances"), K("defaults")],
            };
            let here = |rest: &[Seg<'static>]| -> Vec<Seg<'_>> {
                let mut p = base.clone();
                p.extend_from_slice(rest);
                p
            };
            let shown = member.map_or_else(
                || "instances.defaults".to_string(),
                |m| format!("instances.members.{m}"),
            );
            if let Some(m) = member
                && !is_member_name(m)
            {
                let loc = self.key_at(&base);
                self.error_hint(
                    loc,
                    format!("invalid member name `{m}`"),
                    "use lowercase letters, digits, `_`, `.` and `-`, starting with a letter or digit, at most 64 characters (it is the container's hostname)",
                );
            }
            for (i, text) in spec.ports.iter().enumerate() {
                let path = here(&[K("ports"), I(i)]);
                match parse_port(text) {
                    Err(e) => {
                        let loc = self.at(&path);
                        self.error_hint(
                            loc,
                            e,
                            "write a port as `\"HOST_PORT:CONTAINER_PORT\"` or `\"IP:HOST_PORT:CONTAINER_PORT[/udp]\"`",
                        );
                    }
                    Ok(p) => published.push((shown.clone(), p, self.at(&path))),
                }
            }
            for (i, text) in spec.volumes.iter().enumerate() {
                if let Err(e) = parse_volume(text) {
                    let loc = self.at(&here(&[K("volumes"), I(i)]));
                    self.error(loc, e);
                }
            }
            for (i, path) in spec.persist.iter().enumerate() {
                self.absolute(
                    path,
                    &here(&[K("persist"), I(i)]),
                    &format!("{shown}.persist[{i}]"),
                );
            }
            for (key, value) in spec.env.to_map() {
                if !is_env_name(&key) {
                    let loc = self.at(&here(&[K("env")]));
                    self.error_hint(
                        loc,
                        format!("invalid environment variable name `{key}`"),
                        ENV_NAME_RULE,
                    );
                }
                let loc = self.at(&here(&[K("env")]));
                self.exec_string(
                    key.len() + 1 + value.len(),
                    loc,
                    &format!("{shown}.env.{key}"),
                );
            }
            for (i, arg) in spec.command.iter().flatten().enumerate() {
                let loc = self.at(&here(&[K("command"), I(i)]));
                self.exec_string(arg.len(), loc, &format!("{shown}.command[{i}]"));
            }
        }
        if !self.complete {
            return;
        }
        for (i, (owner, port, loc)) in published.iter().enumerate() {
            if let Some((first, other, other_loc)) =
                published[..i].iter().find(|(_, p, _)| ports_clash(p, port))
            {
                let message = if owner == first {
                    format!(
                        "`{owner}` publishes host port {}/{} twice (`{other}` on line {})",
                        port.host_port, port.protocol, other_loc.line
                    )
                } else if first == "instances.defaults" || owner == "instances.defaults" {
                    format!(
                        "host port {}/{} is published by every member through `instances.defaults`",
                        port.host_port, port.protocol
                    )
                } else {
                    format!(
                        "duplicate host port {}/{} in `{owner}`: `{first}` publishes it too (line {})",
                        port.host_port, port.protocol, other_loc.line
                    )
                };
                self.error_hint(*loc, message, "give each member its own host port");
            }
        }
        // Defaults' ports are published by every member: two or more clash.
        let members = config.instances.as_ref().map_or(0, |i| i.members.len());
        if members > 1 {
            for (owner, port, loc) in &published {
                if owner == "instances.defaults" {
                    self.error_hint(
                        *loc,
                        format!(
                            "host port {}/{} in `instances.defaults` would be published by all {members} members",
                            port.host_port, port.protocol
                        ),
                        "publish host ports per member, in `instances.members`",
                    );
                }
            }
        }
    }
}
