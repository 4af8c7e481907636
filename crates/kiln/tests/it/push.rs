//! `kiln push` (SPEC §10) end to end: the real binary, the real engine and a
//! real registry (Debian's `docker-registry` on loopback). A push prints
//! `REPOSITORY@sha256:DIGEST`, puts the final image under its rendered tags
//! and every snapshot under `cache-KEY`, and the engine pulls it back; a
//! second push sends nothing; a registry that is down, or refuses the
//! credentials, exits 3 naming it with the `docker login` hint; a push
//! killed half-way (behind a slow proxy, so the kill lands mid-upload)
//! completes when run again, sending only what the first did not finish.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use kiln_core::registry::Registry;
use kiln_core::registry::oci::{Credentials, OciRegistry};
use kiln_core::testing::{LocalRegistry, RegistryOptions, write_docker_config};
use serde_json::Value;

use crate::support::{Habitat, docker, docker_output, events_of};

/// A habitat with a users phase, a copied file of `size` bytes and a final
/// command, pushing to `repository` with the SPEC's tag templates.
fn habitat(prefix: &str, repository: &str, size: usize, cache: bool) -> Habitat {
    let h = Habitat::new(prefix);
    h.config(&format!(
        "name: @NAME@\nbuild:\n  base: {{ image: \"{}\" }}\n  users:\n    - {{ name: dev, uid: 1000 }}\n  files:\n    copies:\n      - {{ source: data.bin, dest: /data/data.bin }}\n  final:\n    command: [\"sh\"]\nregistry:\n  repository: {repository}\n  tags: [\"{{branch}}-{{sha7}}\", \"pr-{{pr}}\", \"latest\"]\n  cache: {cache}\n",
        crate::support::BUSYBOX
    ));
    // Bytes that do not repeat, so the layer is as large as the file.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let data: Vec<u8> = (0..size)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    std::fs::write(h.dir().join("data.bin"), data).expect("write data");
    h
}

/// CI's variables for a push on `main` at a fixed commit.
const CI: &[(&str, &str)] = &[
    ("GITHUB_REF", "refs/heads/main"),
    ("GITHUB_REF_NAME", "main"),
    ("GITHUB_REF_TYPE", "branch"),
    ("GITHUB_SHA", "abc1234def5678abc1234def5678abc1234def56"),
    ("GITHUB_SERVER_URL", "https://github.com"),
    ("GITHUB_REPOSITORY", "acme/app"),
    // Unset (empty) whatever the machine running the tests has.
    ("GITHUB_HEAD_REF", ""),
    ("KILN_PR", ""),
];

fn push(h: &Habitat, progress: &str) -> crate::support::Run {
    let mut t = h.kiln(&["push", ".", "--progress", progress]);
    for (k, v) in CI {
        t = t.env(k, v);
    }
    t.run()
}

/// The digests of the blobs `events` say went up.
fn uploaded(events: &[Value]) -> BTreeSet<String> {
    events
        .iter()
        .filter(|e| e["event"] == "push_blob" && e["state"] == "uploaded")
        .map(|e| e["digest"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn push_end(events: &[Value]) -> &Value {
    events
        .iter()
        .find(|e| e["event"] == "push_end")
        .expect("a push_end event")
}

fn final_digest(events: &[Value]) -> String {
    events
        .iter()
        .rfind(|e| e["event"] == "push_image" && e["image"] == "final")
        .and_then(|e| e["digest"].as_str())
        .expect("the final image's push_image")
        .to_string()
}

#[test]
fn a_push_tags_the_final_image_and_snapshots_and_the_engine_pulls_it() {
    let server = LocalRegistry::start(&RegistryOptions::default()).expect("docker-registry");
    let repo = "pusht/app";
    let repository = format!("{}/{repo}", server.host);
    let h = habitat("pusht", &repository, 300_000, true);

    let run = push(&h, "plain");
    run.assert_code(0);
    let printed = run.stdout.trim();
    let digest = printed
        .strip_prefix(&format!("{repository}@"))
        .unwrap_or_else(|| panic!("stdout is REPOSITORY@DIGEST: {printed:?}"));
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{digest}"
    );
    assert!(
        run.stderr
            .contains("note: tag `pr-{pr}` skipped: `{pr}` is unset"),
        "{}",
        run.stderr
    );

    let registry = OciRegistry::with_credentials(&server.host, Credentials::Anonymous);
    let tags = registry.tags(repo).expect("tags");
    assert!(tags.contains(&"main-abc1234".to_string()), "{tags:?}");
    assert!(tags.contains(&"latest".to_string()), "{tags:?}");
    assert!(!tags.iter().any(|t| t.starts_with("pr-")), "{tags:?}");
    // One `cache-KEY` per configured phase: base, users, files, final.
    let cache: Vec<&String> = tags.iter().filter(|t| t.starts_with("cache-")).collect();
    assert_eq!(cache.len(), 4, "{tags:?}");
    assert!(
        cache.iter().all(|t| t.len() == "cache-".len() + 64),
        "{cache:?}"
    );
    for tag in ["latest", "main-abc1234"] {
        let m = registry
            .manifest_get(repo, tag)
            .expect("get")
            .expect("manifest");
        assert_eq!(m.digest, digest, "{tag}");
    }

    // The engine pulls what was pushed; its config carries the OCI labels.
    let reference = format!("{repository}@{digest}");
    docker(&["pull", "-q", &reference]);
    let labels = crate::support::labels_of(&reference);
    assert_eq!(
        labels
            .get("org.opencontainers.image.revision")
            .map(String::as_str),
        Some("abc1234def5678abc1234def5678abc1234def56")
    );
    assert_eq!(
        labels
            .get("org.opencontainers.image.source")
            .map(String::as_str),
        Some("https://github.com/acme/app")
    );
    assert!(labels.contains_key("org.opencontainers.image.created"));
    let files = docker(&[
        "run",
        "--rm",
        "--label",
        &format!("dev.kiln.habitat={}", h.name),
        &reference,
        "sh",
        "-c",
        "wc -c < /data/data.bin; id -u dev",
    ]);
    assert_eq!(
        files.split_whitespace().collect::<Vec<_>>(),
        ["300000", "1000"]
    );

    // Again: no phase runs, nothing goes up, the same digest.
    let again = push(&h, "json");
    again.assert_code(0);
    let events = events_of(&again.stdout);
    assert!(
        events
            .iter()
            .filter(|e| e["event"] == "phase_end")
            .all(|e| e["status"] == "cached"),
        "{}",
        again.stdout
    );
    assert_eq!(uploaded(&events), BTreeSet::new(), "{}", again.stdout);
    let end = push_end(&events);
    assert_eq!(end["blobs_uploaded"], 0);
    assert_eq!(end["bytes_uploaded"], 0);
    assert_eq!(end["habitat"], h.name.as_str());
    assert_eq!(final_digest(&events), digest);
    let _ = docker_output(&["rmi", &reference]);
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

#[test]
fn a_registry_that_is_down_exits_3_naming_it_with_the_login_hint() {
    let host = format!("127.0.0.1:{}", closed_port());
    let h = habitat("pusht", &format!("{host}/pusht/down"), 1000, false);
    let run = push(&h, "plain");
    run.assert_code(3);
    assert_eq!(run.stdout, "", "nothing on stdout");
    let error = run
        .stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("an error line: {}", run.stderr));
    assert!(
        error.starts_with(&format!("error: registry `{host}` does not answer (")),
        "{error}"
    );
    assert!(
        run.stderr.contains(&format!(
            "hint: check that `{host}` is up and reachable, then `docker login {host}`"
        )),
        "{}",
        run.stderr
    );
}

#[test]
fn wrong_credentials_exit_3_with_the_login_hint_and_never_show_the_password() {
    const PASSWORD: &str = "pw-Zr8-never-shown";
    let options = RegistryOptions {
        deletes: false,
        user: Some(("kiln".to_string(), "right-password".to_string())),
    };
    let server = LocalRegistry::start(&options).expect("docker-registry");
    let h = habitat("pusht", &format!("{}/pusht/auth", server.host), 1000, false);
    let docker_config = h.root().join("docker");
    std::fs::create_dir_all(&docker_config).expect("mkdir");
    write_docker_config(&docker_config, &server.host, "kiln", PASSWORD).expect("config.json");
    let mut t = h.kiln(&["push", ".", "--progress", "plain"]);
    t = t.env("DOCKER_CONFIG", &docker_config.display().to_string());
    let run = t.run();
    run.assert_code(3);
    assert!(
        run.stderr.contains(&format!(
            "error: registry `{}` refused the credentials (",
            server.host
        )),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains(&format!("hint: log in with `docker login {}`", server.host)),
        "{}",
        run.stderr
    );
    for out in [&run.stdout, &run.stderr] {
        assert!(!out.contains(PASSWORD), "the password shows: {out}");
    }

    // The right password pushes.
    write_docker_config(&docker_config, &server.host, "kiln", "right-password")
        .expect("config.json");
    let mut t = h.kiln(&["push", ".", "--progress", "plain"]);
    t = t.env("DOCKER_CONFIG", &docker_config.display().to_string());
    t.run().assert_code(0);
}

/// A TCP proxy to `upstream` that forwards what the client sends at about
/// `rate` bytes a second, so a large upload takes seconds; stops with the
/// returned flag.
fn slow_proxy(upstream: String, rate: usize) -> (String, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    listener.set_nonblocking(true).expect("nonblocking");
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    std::thread::spawn(move || {
        while !stopped.load(Ordering::Relaxed) {
            let Ok((client, _)) = listener.accept() else {
                std::thread::sleep(std::time::Duration::from_millis(20));
                continue;
            };
            let _ = client.set_nonblocking(false);
            let Ok(server) = TcpStream::connect(&upstream) else {
                continue;
            };
            let (mut c_read, mut s_write) = (
                client.try_clone().expect("clone"),
                server.try_clone().expect("clone"),
            );
            let (mut s_read, mut c_write) = (server, client);
            let chunk = (rate / 20).max(1);
            std::thread::spawn(move || {
                let mut buf = vec![0u8; chunk];
                while let Ok(n) = c_read.read(&mut buf) {
                    if n == 0 || s_write.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                let _ = s_write.shutdown(std::net::Shutdown::Write);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut s_read, &mut c_write);
                let _ = c_write.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    (addr, stop)
}

#[test]
fn a_push_killed_half_way_completes_when_run_again_sending_only_what_was_missing() {
    let server = LocalRegistry::start(&RegistryOptions::default()).expect("docker-registry");
    // 8 MB through a proxy passing about 4 MB/s: the large layer is still
    // going up when the small blobs are done.
    let (proxy, stop) = slow_proxy(server.host.clone(), 4 << 20);
    let repository = format!("{proxy}/pusht/killed");
    let h = habitat("pusht", &repository, 8 << 20, true);
    h.build_ok(&[]);

    let mut t = h.kiln(&["push", ".", "--progress", "json"]);
    for (k, v) in CI {
        t = t.env(k, v);
    }
    let mut child = t.spawn();
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("line");
        // Killed once the final image's config is up (a small blob, sent
        // while the large layer still goes up).
        let up = line.contains("\"event\":\"push_blob\"")
            && line.contains("\"state\":\"uploaded\"")
            && line.contains("\"image\":\"final\"");
        lines.push(line);
        if up {
            child.kill().expect("kill");
            break;
        }
    }
    let _ = child.wait();
    let first = events_of(&lines.join("\n"));
    assert!(
        first.iter().all(|e| e["event"] != "push_end"),
        "the kill came after the push ended: {lines:#?}"
    );
    let done_before = uploaded(&first);
    assert!(!done_before.is_empty());
    // Every blob a push will send is named (`uploading`, nothing sent yet)
    // before the first goes up.
    let planned: BTreeSet<String> = first
        .iter()
        .filter(|e| e["event"] == "push_blob" && e["state"] == "uploading" && e["sent"] == 0)
        .map(|e| e["digest"].as_str().unwrap_or_default().to_string())
        .collect();

    // Into the next second, so a creation time taken again would differ.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let again = push(&h, "json");
    again.assert_code(0);
    let events = events_of(&again.stdout);
    let sent_again = uploaded(&events);
    assert!(!sent_again.is_empty(), "the large layer was missing");
    assert_eq!(
        done_before.intersection(&sent_again).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "a blob the killed push finished went up again"
    );
    // Regression: the final config's creation time was recorded only after
    // the push, so a retry made a new config (a new digest) and sent it too.
    let missing: BTreeSet<String> = planned.difference(&done_before).cloned().collect();
    assert!(
        sent_again.is_subset(&missing),
        "the retry sent what the first push had not planned or had finished: {:?}",
        sent_again.difference(&missing).collect::<Vec<_>>()
    );
    let present = push_end(&events)["blobs_present"].as_u64().unwrap_or(0);
    assert!(present >= done_before.len() as u64, "{}", again.stdout);

    // Complete: a third push sends nothing and names the same manifest.
    let third = push(&h, "json");
    third.assert_code(0);
    let events3 = events_of(&third.stdout);
    assert_eq!(uploaded(&events3), BTreeSet::new());
    assert_eq!(final_digest(&events3), final_digest(&events));
    stop.store(true, Ordering::Relaxed);
}
