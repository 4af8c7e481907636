//! `services:` (SPEC §9): each bad entry gets its one located message, the
//! SPEC's example turns into the init's spec, and durations read as written.

use kiln_core::config::{self, services};
use kiln_init::spec::{self, Check, Restart};
use proptest::prelude::*;

use crate::config_cases::assert_rows;

const BAD: &[(&str, &str, &str, &str)] = &[
    (
        "unknown name in after",
        "name: x\nbuild:\n  base: { image: debian }\nservices:\n  a: { command: x, after: [b] }\n",
        "5:28: `a` starts after `b`, which is not a service",
        "services are: a",
    ),
    (
        "a cycle",
        "name: x\nbuild:\n  base: { image: debian }\nservices:\n  a: { command: x, after: [b] }\n  b: { command: x, after: [a] }\n",
        "5:20: services wait for each other: `a` -> `b` -> `a`",
        "remove one of these names from an `after`",
    ),
    (
        "unknown stop signal",
        "name: x\nbuild:\n  base: { image: debian }\nservices:\n  a: { command: x, stop: { signal: SIGFOO } }\n",
        "5:36: unknown stop signal `SIGFOO`",
        "use one of SIGHUP, SIGINT, SIGQUIT, SIGKILL, SIGUSR1, SIGUSR2, SIGTERM, SIGWINCH, SIGPWR",
    ),
    (
        "a grace without a unit",
        "name: x\nbuild:\n  base: { image: debian }\nservices:\n  a: { command: x, stop: { grace: 30x } }\n",
        "5:35: invalid duration `30x`: give a number with a unit: `ms`, `s`, `m` or `h`",
        "",
    ),
    (
        "a probe timeout that is not a number",
        "name: x\nbuild:\n  base: { image: debian }\nservices:\n  a: { command: x, ready: { file: /r, timeout: soons } }\n",
        "5:48: invalid duration `soons`: give a number with a unit: `ms`, `s`, `m` or `h`",
        "",
    ),
    (
        "a probe of two kinds",
        "name: x\nbuild:\n  base: { image: debian }\nservices:\n  a: { command: x, ready: { tcp: 80, file: /x } }\n",
        "5:27: a `ready` probe checks one thing: give only one of `command`, `tcp`, `unix`, `http` or `file`",
        "",
    ),
    (
        "a probe of no kind",
        "name: x\nbuild:\n  base: { image: debian }\nservices:\n  a: { command: x, ready: { timeout: 5s } }\n",
        "5:27: a `ready` probe needs one of `command`, `tcp`, `unix`, `http` or `file`",
        "",
    ),
    (
        "tcp port 0",
        "name: x\nbuild:\n  base: { image: debian }\nservices:\n  a: { command: x, ready: { tcp: 0 } }\n",
        "5:27: invalid tcp port `0`: use 1 to 65535",
        "",
    ),
    (
        "an http probe without http://",
        "name: x\nbuild:\n  base: { image: debian }\nservices:\n  a: { command: x, ready: { http: \"localhost:80\" } }\n",
        "5:35: invalid probe URL `localhost:80`: it must start with `http://`",
        "",
    ),
    (
        "a relative unix probe",
        "name: x\nbuild:\n  base: { image: debian }\nservices:\n  a: { command: x, ready: { unix: run/s.sock } }\n",
        "5:27: probe path `run/s.sock` must be absolute",
        "",
    ),
    (
        "an empty command",
        "name: x\nbuild:\n  base: { image: debian }\nservices:\n  a: { command: [] }\n",
        "5:17: service `a` has an empty `command`",
        "",
    ),
    (
        "creates on a long-running service",
        "name: x\nbuild:\n  base: { image: debian }\nservices:\n  a: { command: x, creates: /x }\n",
        "5:20: `creates` on `a`, which is not a oneshot",
        "`creates` skips a oneshot when its path exists; add `oneshot: true` or remove it",
    ),
    (
        "ready on a oneshot",
        "name: x\nbuild:\n  base: { image: debian }\nservices:\n  a: { command: x, oneshot: true, ready: { file: /x } }\n",
        "5:35: `ready` on oneshot `a`",
        "a oneshot is ready when it exits 0; remove `ready`",
    ),
    (
        "a service name with capitals",
        "name: x\nbuild:\n  base: { image: debian }\nservices:\n  Web: { command: x }\n",
        "5:3: invalid service name `Web`",
        "use lowercase letters, digits, `_`, `.` and `-`, starting with a letter or digit",
    ),
    (
        "an unknown restart policy",
        "name: x\nbuild:\n  base: { image: debian }\nservices:\n  a: { command: x, restart: sometimes }\n",
        "5:29: invalid value `sometimes` for `services.a.restart`: expected one of `no`, `on-failure`, `always`",
        "",
    ),
];

#[test]
fn each_bad_service_gets_its_message_at_its_place() {
    assert_rows(BAD);
}

const SPEC_EXAMPLE: &str = r#"name: app
build:
  base: { image: debian }
  users: [{ name: app }]
  final: { user: app, command: ["/app/bin/serve"] }
services:
  initdb:
    oneshot: true
    creates: /var/lib/postgresql/data/PG_VERSION
    user: postgres
    command: "/usr/lib/postgresql/15/bin/initdb -D /var/lib/postgresql/data"
  postgres:
    after: [initdb]
    user: postgres
    command: ["/usr/lib/postgresql/15/bin/postgres", "-D", "/var/lib/postgresql/data",
              "-c", "listen_addresses=", "-k", "/run/postgresql"]
    ready: { command: "pg_isready -q -h /run/postgresql", timeout: 60s }
    stop: { signal: SIGINT, grace: 30s }
    restart: on-failure
  migrate:
    oneshot: true
    after: [postgres]
    command: "/app/bin/migrate"
"#;

#[test]
fn the_spec_example_becomes_the_inits_spec() {
    let dir = tempfile::tempdir().unwrap();
    let config = config::parse("kiln.yaml", SPEC_EXAMPLE, dir.path()).expect("valid");
    let spec = services::init_spec(&config).expect("services");
    assert_eq!(spec.main.user.as_deref(), Some("app"));
    let names: Vec<&str> = spec.services.iter().map(|s| s.name.as_str()).collect();
    let order: Vec<Vec<&str>> = spec::boot_order(&spec.services)
        .unwrap()
        .into_iter()
        .map(|stage| stage.into_iter().map(|i| names[i]).collect())
        .collect();
    assert_eq!(
        order,
        vec![vec!["initdb"], vec!["postgres"], vec!["migrate"]]
    );
    let pg = spec.services.iter().find(|s| s.name == "postgres").unwrap();
    assert_eq!(pg.stop.signal, "SIGINT");
    assert_eq!(pg.stop.grace_ms, 30_000);
    assert_eq!(pg.restart, Restart::OnFailure);
    let ready = pg.ready.as_ref().unwrap();
    assert_eq!(
        ready.check,
        Check::Command(vec![
            "/bin/sh".into(),
            "-c".into(),
            "pg_isready -q -h /run/postgresql".into()
        ])
    );
    assert_eq!((ready.interval_ms, ready.timeout_ms), (100, 60_000));
    let initdb = spec.services.iter().find(|s| s.name == "initdb").unwrap();
    assert!(initdb.oneshot);
    assert_eq!(
        initdb.command[..2],
        ["/bin/sh".to_string(), "-c".to_string()]
    );
    // What kiln writes is what the init reads.
    let back: spec::Spec = serde_json::from_str(&serde_json::to_string(&spec).unwrap()).unwrap();
    assert_eq!(back, spec);
    assert_eq!(spec.stop_budget_ms(), 10_000 + 3 * 10_000 + 20_000 + 5_000);
}

proptest! {
    /// A duration written in any unit reads back as its milliseconds.
    #[test]
    fn generated_durations_read_as_written(n in 0u64..100_000, unit in 0usize..4) {
        let (suffix, factor) = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000)][unit];
        prop_assert_eq!(services::parse_duration(&format!("{n}{suffix}")), Ok(n * factor));
    }
}
