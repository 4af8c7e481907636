//! `examples/app-with-postgres` end to end (issue 11): PostgreSQL from
//! Debian's packages and a visit counter in one container under kiln's init.
//! One `kiln up` serves it with a persisted data volume; a stop is clean
//! (PostgreSQL says "database system is shut down", and the next start runs
//! no recovery); the count survives `down`/`up` and an image upgrade; the
//! image alone works with `docker run -p`.
//!
//! Slow on a cold machine (debootstrap, then PostgreSQL and Python from
//! Debian's mirror: about 4 minutes), so it is ignored in the suite;
//! `scripts/test` (CI) runs it after the suite, once the quickstart test has
//! made the same bootstrap base (about 75 s then):
//! `cargo test -p kiln --test it -- --ignored app_with_postgres`. The
//! example is copied under a name of its own (`kt-svct-pg-…`) with its own
//! cache; the bootstrap base is the engine's, shared by its parameters.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use crate::instances::habitat;
use crate::support::{docker, docker_output};

fn example_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/app-with-postgres")
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// `GET /` on 127.0.0.1:`port`: the status and body, or `None` while nothing answers.
fn get(port: u16) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

/// The first answer `GET /` gets (bounded at 3 minutes; no timing is asserted).
fn first_answer(port: u16) -> (u16, String) {
    for _ in 0..1800 {
        if let Some(answer) = get(port) {
            return answer;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("nothing answered on port {port}");
}

fn logs(container: &str) -> String {
    let out = docker_output(&["logs", container]);
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn exit_code(container: &str) -> String {
    docker(&["inspect", "--format", "{{.State.ExitCode}}", container])
        .trim()
        .to_string()
}

#[test]
#[ignore = "slow: debootstrap and PostgreSQL from Debian's mirror; run with --ignored"]
fn app_with_postgres_serves_stops_cleanly_and_keeps_its_data() {
    // Volumes first, so they are removed after the containers.
    let (_volumes, h) = habitat("svct-pg");
    let port = free_port();
    for rel in ["kiln.yaml", "app/web.py", "app/setup-db.sh"] {
        let text = std::fs::read_to_string(example_dir().join(rel)).expect("example file");
        let text = text
            .replace("\nname: app-with-postgres\n", "\nname: \"@NAME@\"\n")
            .replace("127.0.0.1:8000:8000", &format!("127.0.0.1:{port}:8000"));
        if rel == "kiln.yaml" {
            h.config(&text);
        } else {
            h.write(rel, &text);
        }
    }
    let container = format!("{}-web", h.name);

    h.kiln(&["up", "--progress", "plain"]).run().assert_code(0);
    assert_eq!(first_answer(port), (200, "visits: 1\n".to_string()));
    assert_eq!(get(port), Some((200, "visits: 2\n".to_string())));
    // Docker asks the init every 2 s; no timing is asserted, only the answer.
    let health = || {
        docker(&[
            "inspect",
            "--format",
            "{{.State.Health.Status}}",
            &container,
        ])
        .trim()
        .to_string()
    };
    let mut status = health();
    for _ in 0..600 {
        if status != "starting" {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        status = health();
    }
    assert_eq!(status, "healthy");

    // `docker stop` with the member's own stop timeout: PostgreSQL gets its
    // SIGINT and the time to shut down, and the container exits 0.
    docker(&["stop", &container]);
    let first = logs(&container);
    assert!(first.contains("database system is shut down"), "{first}");
    assert_eq!(exit_code(&container), "0", "{first}");

    // Down and up again: the data volume stays, initdb is skipped, and the
    // database starts without recovery.
    h.kiln(&["down"]).run().assert_code(0);
    h.kiln(&["up", "--progress", "plain"]).run().assert_code(0);
    assert_eq!(first_answer(port), (200, "visits: 3\n".to_string()));
    let second = logs(&container);
    assert!(second.contains("`initdb` skipped"), "{second}");
    assert!(!second.contains("automatic recovery"), "{second}");
    assert!(!second.contains("not properly shut down"), "{second}");

    // An image upgrade (a service edited: final is rebuilt) recreates the
    // member on the same data.
    h.edit(
        "stop: { signal: SIGINT, grace: 30s }",
        "stop: { signal: SIGINT, grace: 25s }",
    );
    let up = h.kiln(&["up", "--progress", "plain"]).run();
    up.assert_code(0);
    assert!(up.stdout.contains("recreated"), "{}", up.stdout);
    assert_eq!(first_answer(port), (200, "visits: 4\n".to_string()));
    let third = logs(&container);
    assert!(!third.contains("automatic recovery"), "{third}");
    h.kiln(&["down"]).run().assert_code(0);

    // The image alone, as anyone would run it: fresh data in the container.
    let alone = format!("svct-{}-alone", h.name);
    let label = format!("dev.kiln.habitat={}", h.name);
    let published = format!("127.0.0.1:{port}:8000");
    let image = format!("habitat-{}:latest", h.name);
    docker(&[
        "run", "-d", "--name", &alone, "--label", &label, "-p", &published, &image,
    ]);
    assert_eq!(first_answer(port), (200, "visits: 1\n".to_string()));
    docker(&["stop", "--time", "40", &alone]);
    let alone_logs = logs(&alone);
    assert!(
        alone_logs.contains("database system is shut down"),
        "{alone_logs}"
    );
    assert_eq!(exit_code(&alone), "0", "{alone_logs}");
}
