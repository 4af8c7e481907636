//! `services:` turned into the init's spec (`/.kiln/services.json`, SPEC §9):
//! durations to milliseconds, commands to argv, defaults filled in. Pure; the
//! meaning checks in `validate/services.rs` use the same parsers, so what
//! `check` accepts is what the init is given.

use kiln_init::spec::{self, Check, Main, Probe, Restart, Service, Spec, Stop};

use super::model::{Config, Env, ReadyConfig, ServiceConfig, ServiceRestart};

/// `250ms`, `30s`, `1.5s`, `2m`, `1h` → milliseconds.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (number, unit) = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .map_or((t, ""), |i| t.split_at(i));
    let factor = match unit {
        "ms" => 1.0,
        "s" => 1000.0,
        "m" => 60_000.0,
        "h" => 3_600_000.0,
        _ => {
            return Err(format!(
                "invalid duration `{text}`: give a number with a unit: `ms`, `s`, `m` or `h`"
            ));
        }
    };
    match number.parse::<f64>() {
        Ok(n) if n.is_finite() && n * factor < 1e12 => Ok((n * factor).round() as u64),
        _ => Err(format!(
            "invalid duration `{text}`: `{number}` is not a number"
        )),
    }
}

/// The probe's check, or why it has none: exactly one kind must be given.
pub fn check_of(ready: &ReadyConfig) -> Result<Check, String> {
    let mut kinds = Vec::new();
    if let Some(c) = &ready.command {
        kinds.push(Check::Command(c.argv()));
    }
    if let Some(port) = ready.tcp {
        match u16::try_from(port) {
            Ok(p) if p > 0 => kinds.push(Check::Tcp(p)),
            _ => return Err(format!("invalid tcp port `{port}`: use 1 to 65535")),
        }
    }
    if let Some(p) = &ready.unix {
        kinds.push(Check::Unix(p.clone()));
    }
    if let Some(u) = &ready.http {
        kinds.push(Check::Http(u.clone()));
    }
    if let Some(p) = &ready.file {
        kinds.push(Check::File(p.clone()));
    }
    match kinds.len() {
        1 => Ok(kinds.remove(0)),
        0 => Err("a `ready` probe needs one of `command`, `tcp`, `unix`, `http` or `file`".into()),
        _ => Err("a `ready` probe checks one thing: give only one of `command`, `tcp`, `unix`, `http` or `file`".into()),
    }
}

fn env_pairs(env: &Env) -> Vec<(String, String)> {
    match env {
        Env::List(items) => items
            .iter()
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (kv.clone(), String::new()),
            })
            .collect(),
        Env::Map(map) => map.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
    }
}

fn service(name: &str, s: &ServiceConfig) -> Service {
    let ready = s.ready.as_ref().and_then(|r| {
        Some(Probe {
            check: check_of(r).ok()?,
            interval_ms: r
                .interval
                .as_deref()
                .and_then(|d| parse_duration(d).ok())
                .unwrap_or(spec::DEFAULT_INTERVAL_MS),
            timeout_ms: r
                .timeout
                .as_deref()
                .and_then(|d| parse_duration(d).ok())
                .unwrap_or(spec::DEFAULT_TIMEOUT_MS),
        })
    });
    let stop = s.stop.clone().unwrap_or_default();
    Service {
        name: name.to_string(),
        command: s.command.argv(),
        user: s.user.clone(),
        workdir: s.workdir.clone(),
        env: env_pairs(&s.env),
        after: s.after.clone(),
        oneshot: s.oneshot,
        creates: s.creates.clone(),
        ready,
        stop: Stop {
            signal: stop
                .signal
                .filter(|sig| spec::signal_number(sig).is_some())
                .map(|sig| {
                    let upper = sig.to_ascii_uppercase();
                    if upper.starts_with("SIG") {
                        upper
                    } else {
                        format!("SIG{upper}")
                    }
                })
                .unwrap_or_else(|| "SIGTERM".into()),
            grace_ms: stop
                .grace
                .as_deref()
                .and_then(|d| parse_duration(d).ok())
                .unwrap_or(spec::DEFAULT_GRACE_MS),
        },
        restart: match s.restart {
            None | Some(ServiceRestart::No) => Restart::No,
            Some(ServiceRestart::OnFailure) => Restart::OnFailure,
            Some(ServiceRestart::Always) => Restart::Always,
        },
        max_restarts: s.max_restarts.unwrap_or(spec::DEFAULT_MAX_RESTARTS),
    }
}

/// The init's spec for a checked config (`None` without `services:`).
pub fn init_spec(config: &Config) -> Option<Spec> {
    if config.services.is_empty() {
        return None;
    }
    let user = config.build.final_.as_ref().and_then(|f| f.user.clone());
    Some(Spec {
        version: spec::SPEC_VERSION,
        services: config
            .services
            .iter()
            .map(|(name, s)| service(name, s))
            .collect(),
        main: Main {
            user,
            ..Main::default()
        },
    })
}

#[cfg(test)]
mod tests {
    use super::parse_duration;

    #[test]
    fn durations() {
        for (text, ms) in [
            ("250ms", 250),
            ("30s", 30_000),
            ("1.5s", 1500),
            ("2m", 120_000),
            ("1h", 3_600_000),
        ] {
            assert_eq!(parse_duration(text), Ok(ms), "{text}");
        }
        for bad in ["30", "s", "3 days", "-1s", "1.2.3s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
