//! The meaning checks of `services:` (SPEC §9): names, commands, `after`
//! (unknown names and cycles), probes, signals and durations, each located.

use kiln_init::spec::{self, OrderError};

use super::Checker;
use super::rules::is_member_name;
use crate::config::model::Config;
use crate::config::node::Seg;
use crate::config::services::{check_of, init_spec, parse_duration};

use Seg::{Index as I, Key as K};

impl Checker<'_, '_> {
    pub(super) fn services(&mut self, config: &Config) {
        for (name, s) in &config.services {
            let base = [K("services"), K(name.as_str())];
            let here = |rest: &[Seg<'static>]| -> Vec<Seg<'_>> {
                let mut p = base.to_vec();
                p.extend_from_slice(rest);
                p
            };
            if !is_member_name(name) {
                let loc = self.key_at(&base);
                self.error_hint(
                    loc,
                    format!("invalid service name `{name}`"),
                    "use lowercase letters, digits, `_`, `.` and `-`, starting with a letter or digit",
                );
            }
            if s.command.argv().first().is_none_or(|p| p.trim().is_empty()) {
                let loc = self.at(&here(&[K("command")]));
                self.error(loc, format!("service `{name}` has an empty `command`"));
            }
            for (i, dep) in s.after.iter().enumerate() {
                if !config.services.contains_key(dep) {
                    let loc = self.at(&here(&[K("after"), I(i)]));
                    let known: Vec<&str> = config.services.keys().map(String::as_str).collect();
                    self.error_hint(
                        loc,
                        format!("`{name}` starts after `{dep}`, which is not a service"),
                        format!("services are: {}", known.join(", ")),
                    );
                }
            }
            if s.creates.is_some() && !s.oneshot {
                let loc = self.key_at(&here(&[K("creates")]));
                self.error_hint(
                    loc,
                    format!("`creates` on `{name}`, which is not a oneshot"),
                    "`creates` skips a oneshot when its path exists; add `oneshot: true` or remove it",
                );
            }
            if let Some(ready) = &s.ready {
                if s.oneshot {
                    let loc = self.key_at(&here(&[K("ready")]));
                    self.error_hint(
                        loc,
                        format!("`ready` on oneshot `{name}`"),
                        "a oneshot is ready when it exits 0; remove `ready`",
                    );
                }
                match check_of(ready) {
                    Err(e) => {
                        let loc = self.at(&here(&[K("ready")]));
                        self.error(loc, e);
                    }
                    Ok(spec::Check::Http(url)) if !url.starts_with("http://") => {
                        let loc = self.at(&here(&[K("ready"), K("http")]));
                        self.error(
                            loc,
                            format!("invalid probe URL `{url}`: it must start with `http://`"),
                        );
                    }
                    Ok(spec::Check::Unix(p) | spec::Check::File(p)) if !p.starts_with('/') => {
                        let loc = self.at(&here(&[K("ready")]));
                        self.error(loc, format!("probe path `{p}` must be absolute"));
                    }
                    Ok(_) => {}
                }
                for (field, value) in [("interval", &ready.interval), ("timeout", &ready.timeout)] {
                    self.duration(&here(&[K("ready"), K(field)]), value.as_deref());
                }
            }
            if let Some(stop) = &s.stop {
                if let Some(sig) = &stop.signal
                    && spec::signal_number(sig).is_none()
                {
                    let loc = self.at(&here(&[K("stop"), K("signal")]));
                    let names: Vec<&str> = spec::SIGNALS.iter().map(|(n, _)| *n).collect();
                    self.error_hint(
                        loc,
                        format!("unknown stop signal `{sig}`"),
                        format!("use one of {}", names.join(", ")),
                    );
                }
                self.duration(&here(&[K("stop"), K("grace")]), stop.grace.as_deref());
            }
        }
        if let Some(spec) = init_spec(config)
            && let Err(OrderError::Cycle(names)) = spec::boot_order(&spec.services)
        {
            let loc = self.key_at(&[K("services"), K(names[0].as_str()), K("after")]);
            self.error_hint(
                loc,
                OrderError::Cycle(names).to_string(),
                "remove one of these names from an `after`",
            );
        }
    }

    fn duration(&mut self, path: &[Seg<'_>], value: Option<&str>) {
        if let Some(text) = value
            && let Err(e) = parse_duration(text)
        {
            let loc = self.at(path);
            self.error(loc, e);
        }
    }
}
