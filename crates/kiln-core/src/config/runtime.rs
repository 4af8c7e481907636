//! The runtime settings of `instances:` in their text form (ports, volumes)
//! parsed into data, and the settings of each member for the config check.
//! Pure: the config check reports what these reject, and `instances` resolves
//! members with them.

use std::net::Ipv4Addr;
use std::path::Path;

use super::{Config, Env, InstanceSpec};
use crate::engine::PortBinding;

/// `[HOST_IP:]HOST_PORT:CONTAINER_PORT[/PROTO]`; the host ip is `0.0.0.0`
/// (every interface) when left out.
pub fn parse_port(text: &str) -> Result<PortBinding, String> {
    let bad = |why: &str| format!("invalid port `{text}`: {why}");
    let (rest, protocol) = match text.rsplit_once('/') {
        Some((rest, proto)) if matches!(proto, "tcp" | "udp" | "sctp") => (rest, proto),
        Some(_) => return Err(bad("the protocol is `tcp`, `udp` or `sctp`")),
        None => (text, "tcp"),
    };
    let number = |s: &str| {
        s.parse::<u16>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| bad(&format!("`{s}` is not a port number (1 to 65535)")))
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let (ip, host, container) = match parts.as_slice() {
        [host, container] => ("0.0.0.0", *host, *container),
        [ip, host, container] => (*ip, *host, *container),
        _ => {
            return Err(bad(
                "write `HOST_PORT:CONTAINER_PORT` or `IP:HOST_PORT:CONTAINER_PORT`",
            ));
        }
    };
    if ip.parse::<Ipv4Addr>().is_err() {
        return Err(bad(&format!("`{ip}` is not an IPv4 address")));
    }
    Ok(PortBinding {
        host_ip: ip.to_string(),
        host_port: number(host)?,
        container_port: number(container)?,
        protocol: protocol.to_string(),
    })
}

/// Two bindings want the same host port (an unspecified ip takes every interface).
pub fn ports_clash(a: &PortBinding, b: &PortBinding) -> bool {
    a.host_port == b.host_port
        && a.protocol == b.protocol
        && (a.host_ip == b.host_ip || a.host_ip == "0.0.0.0" || b.host_ip == "0.0.0.0")
}

/// `SOURCE:DEST[:ro|:rw]` → (source, dest, readonly).
pub fn parse_volume(text: &str) -> Result<(String, String, bool), String> {
    let parts: Vec<&str> = text.split(':').collect();
    let (source, dest, readonly) = match parts.as_slice() {
        [s, d] => (*s, *d, false),
        [s, d, "ro"] => (*s, *d, true),
        [s, d, "rw"] => (*s, *d, false),
        _ => {
            return Err(format!(
                "invalid volume `{text}`: write `SOURCE:DEST`, `SOURCE:DEST:ro` or `SOURCE:DEST:rw`"
            ));
        }
    };
    if source.is_empty() {
        return Err(format!("invalid volume `{text}`: the source is empty"));
    }
    if !dest.starts_with('/') {
        return Err(format!(
            "invalid volume `{text}`: the destination `{dest}` must be an absolute path"
        ));
    }
    Ok((source.to_string(), dest.to_string(), readonly))
}

/// A volume source that looks like a path is a bind mount of that host path
/// (relative to the habitat); anything else names a volume.
pub fn volume_source(dir: &Path, source: &str) -> String {
    if source.starts_with('/') {
        source.to_string()
    } else if source.starts_with('.') || source.contains('/') {
        let joined = dir.join(source);
        // `./a/../b` → `DIR/b`: Docker wants a clean absolute path.
        let mut clean = std::path::PathBuf::new();
        for c in joined.components() {
            match c {
                std::path::Component::CurDir => {}
                std::path::Component::ParentDir => {
                    clean.pop();
                }
                other => clean.push(other),
            }
        }
        clean.display().to_string()
    } else {
        source.to_string()
    }
}

/// The settings of the defaults and one member, for callers that report on
/// the config itself (the config check).
pub fn specs(config: &Config) -> Vec<(Option<&str>, &InstanceSpec)> {
    let Some(i) = &config.instances else {
        return Vec::new();
    };
    static EMPTY: InstanceSpec = InstanceSpec {
        command: None,
        env: Env::List(Vec::new()),
        restart: None,
        persist: Vec::new(),
        ports: Vec::new(),
        volumes: Vec::new(),
    };
    std::iter::once((None, &i.defaults))
        .chain(
            i.members
                .iter()
                .map(|(n, s)| (Some(n.as_str()), s.as_ref().unwrap_or(&EMPTY))),
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_parse() {
        let cases = [
            ("8081:3000", Ok(("0.0.0.0", 8081, 3000, "tcp"))),
            ("127.0.0.1:8081:3000", Ok(("127.0.0.1", 8081, 3000, "tcp"))),
            ("53:53/udp", Ok(("0.0.0.0", 53, 53, "udp"))),
            ("3000", Err(())),
            ("0:3000", Err(())),
            ("x:1:2", Err(())),
            ("1:2/icmp", Err(())),
            ("70000:1", Err(())),
        ];
        for (text, want) in cases {
            let got = parse_port(text).map(|p| {
                (
                    p.host_ip.clone(),
                    p.host_port,
                    p.container_port,
                    p.protocol.clone(),
                )
            });
            match (got, want) {
                (Ok(g), Ok(w)) => {
                    assert_eq!(g, (w.0.to_string(), w.1, w.2, w.3.to_string()), "{text}")
                }
                (Err(_), Err(())) => {}
                (g, w) => panic!("{text}: got {g:?}, want {w:?}"),
            }
        }
    }

    #[test]
    fn clashes_account_for_every_interface() {
        let p = |s| parse_port(s).expect("port");
        assert!(ports_clash(&p("8081:1"), &p("127.0.0.1:8081:2")));
        assert!(ports_clash(&p("1.2.3.4:8081:1"), &p("1.2.3.4:8081:2")));
        assert!(!ports_clash(&p("1.2.3.4:8081:1"), &p("127.0.0.1:8081:2")));
        assert!(!ports_clash(&p("8081:1"), &p("8081:1/udp")));
        assert!(!ports_clash(&p("8081:1"), &p("8082:1")));
    }

    #[test]
    fn volumes_parse() {
        assert_eq!(
            parse_volume("./a:/b:ro"),
            Ok(("./a".into(), "/b".into(), true))
        );
        assert!(parse_volume("./a:b").is_err());
        assert!(parse_volume("a").is_err());
    }

    #[test]
    fn volume_sources_are_clean_paths_or_names() {
        assert_eq!(
            volume_source(Path::new("/hab"), "./x/../y"),
            "/hab/y".to_string()
        );
        assert_eq!(volume_source(Path::new("/hab"), "cache"), "cache");
    }
}
