//! `services:` baked into images (SPEC §9), on the real engine: kiln builds a
//! busybox habitat (the base is `docker import`ed from Debian's
//! busybox-static), and the image runs under the init kiln carries, as PID 1
//! of `docker run` and of `kiln up`'s members. Every container here is named
//! `svct-…` and labelled with its habitat, so the habitat's drop removes it.

use crate::instances::habitat;
use crate::support::{self, Habitat, docker, docker_output};

/// The habitat's config: busybox, `final` and `services` as given.
fn config(h: &Habitat, final_: &str, services: &str) {
    h.config(&format!(
        "name: \"@NAME@\"\nbuild:\n  base: {{ image: {} }}\n{final_}services:\n{services}",
        support::BUSYBOX
    ));
}

/// Builds the habitat; returns its `latest` reference.
fn build(h: &Habitat) -> String {
    h.build_ok(&[]);
    format!("habitat-{}:latest", h.name)
}

/// What a `docker run` printed, and how it ended.
struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn all(&self) -> String {
        format!(
            "--- code {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// `docker run --rm IMAGE ARGS...`, named `svct-…` and labelled as the habitat's.
fn run(h: &Habitat, image: &str, args: &[&str]) -> Ran {
    let name = format!("svct-{}-run", h.name);
    let label = format!("dev.kiln.habitat={}", h.name);
    let mut argv = vec!["run", "--rm", "--name", &name, "--label", &label, image];
    argv.extend_from_slice(args);
    let out = docker_output(&argv);
    Ran {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A small seeded generator (xorshift), so a failing case is found again.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A random boot graph: `n` services, each waiting for a random subset of
/// those declared before it (so no cycle), some of them oneshots. Names are
/// shuffled letters, so declaration order and name order say nothing.
fn random_graph(rng: &mut Rng, n: usize) -> Vec<(String, bool, Vec<usize>)> {
    let mut names: Vec<String> = ["kappa", "alpha", "zeta", "mu", "delta", "omega", "beta"]
        .iter()
        .take(n)
        .map(|s| s.to_string())
        .collect();
    for i in (1..names.len()).rev() {
        names.swap(i, rng.below(i as u64 + 1) as usize);
    }
    (0..n)
        .map(|i| {
            let deps = (0..i).filter(|_| rng.below(3) == 0).collect();
            (names[i].clone(), rng.below(3) == 0, deps)
        })
        .collect()
}

/// Each service records its start and checks that what it waits for is
/// ready (a long-running one touches its ready file a moment after it
/// starts; its probe waits for that file), then the main process prints the
/// order and every violation seen.
#[test]
fn services_start_in_dependency_order_once_each_dependency_is_ready() {
    let (_volumes, h) = habitat("svct-order");
    let mut rng = Rng(0x5eed_0011);
    for round in 0..3 {
        let graph = random_graph(&mut rng, 5 + round);
        let mut services = String::new();
        for (name, oneshot, deps) in &graph {
            let dep_names: Vec<&str> = deps.iter().map(|&d| graph[d].0.as_str()).collect();
            let checks: String = dep_names
                .iter()
                .map(|d| format!("test -e /tmp/{d}.ready || echo {name}-before-{d} >> /tmp/bad; "))
                .collect();
            let (body, ready) = if *oneshot {
                (format!("touch /tmp/{name}.ready"), String::new())
            } else {
                (
                    format!("sleep 0.3; touch /tmp/{name}.ready; exec sleep 1000"),
                    format!("    ready: {{ file: /tmp/{name}.ready, interval: 50ms }}\n"),
                )
            };
            services.push_str(&format!(
                "  {name}:\n    oneshot: {oneshot}\n    after: [{}]\n{ready}    stop: {{ grace: 1s }}\n    command: \"{checks}echo {name} >> /tmp/order; {body}\"\n",
                dep_names.join(", ")
            ));
        }
        config(
            &h,
            "  final:\n    command: [sh, -c, \"echo order: $(cat /tmp/order); echo bad: $(cat /tmp/bad 2>/dev/null)\"]\n",
            &services,
        );
        let ran = run(&h, &build(&h), &[]);
        assert_eq!(ran.code, 0, "round {round}\n{}", ran.all());
        let order_line = ran
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("order: "))
            .unwrap_or_else(|| panic!("no order line\n{}", ran.all()));
        let order: Vec<&str> = order_line.split_whitespace().collect();
        assert_eq!(
            order.len(),
            graph.len(),
            "every service ran once\n{}",
            ran.all()
        );
        for (name, _, deps) in &graph {
            let at = order.iter().position(|n| n == name).expect("it ran");
            for &d in deps {
                let dep_at = order.iter().position(|n| *n == graph[d].0).expect("it ran");
                assert!(
                    dep_at < at,
                    "`{name}` started before `{}`\n{}",
                    graph[d].0,
                    ran.all()
                );
            }
        }
        assert!(
            ran.stdout.lines().any(|l| l.trim() == "bad:"),
            "a service started before what it waits for was ready\n{}",
            ran.all()
        );
    }
}

/// A oneshot that fails stops the container with exit 1 before the main
/// process runs, naming the service and showing its last 20 lines.
#[test]
fn a_failing_oneshot_and_a_probe_timeout_are_reported_with_the_last_lines() {
    let (_volumes, h) = habitat("svct-fail");
    let main = "  final:\n    command: [sh, -c, \"echo MAIN RAN\"]\n";
    config(
        &h,
        main,
        "  migrate:\n    oneshot: true\n    command: \"for i in $(seq 1 25); do echo step $i; done; exit 3\"\n",
    );
    let ran = run(&h, &build(&h), &[]);
    assert_eq!(ran.code, 1, "{}", ran.all());
    assert!(!ran.stdout.contains("MAIN RAN"), "{}", ran.all());
    assert!(ran.stderr.contains("`migrate`"), "{}", ran.all());
    assert!(ran.stderr.contains("exit code 3"), "{}", ran.all());
    let report: Vec<&str> = ran
        .stderr
        .lines()
        .skip_while(|l| !l.contains("last 20 lines of `migrate`"))
        .skip(1)
        .collect();
    let steps: Vec<String> = (6..=25).map(|i| format!("migrate | step {i}")).collect();
    assert_eq!(
        report.iter().map(|l| l.trim()).collect::<Vec<_>>(),
        steps,
        "{}",
        ran.all()
    );

    config(
        &h,
        main,
        "  db:\n    command: \"echo listening nowhere; exec sleep 1000\"\n    ready: { unix: /run/db.sock, timeout: 400ms }\n    stop: { grace: 1s }\n",
    );
    let ran = run(&h, &build(&h), &[]);
    assert_eq!(ran.code, 1, "{}", ran.all());
    assert!(!ran.stdout.contains("MAIN RAN"), "{}", ran.all());
    assert!(
        ran.stderr.contains("service `db` was not ready within"),
        "{}",
        ran.all()
    );
    assert!(ran.stderr.contains("unix `/run/db.sock`"), "{}", ran.all());
    assert!(
        ran.stderr.contains("db | listening nowhere"),
        "{}",
        ran.all()
    );
}

/// A service that leaks orphans (each exits at once, its parent gone) leaves
/// no zombie: the init, PID 1, reaps what is reparented to it.
#[test]
fn orphans_a_service_leaks_are_reaped() {
    let (_volumes, h) = habitat("svct-zombie");
    let main = "until_ok() { n=0; while ! $1; do n=$((n+1)); [ $n -gt 300 ] && break; sleep 0.1; done; }; \
                orphans() { [ $(ls /tmp/orphan.* 2>/dev/null | wc -l) -ge 20 ]; }; \
                none() { ! ps -o stat | grep -q '^Z'; }; \
                until_ok orphans; until_ok none; \
                echo orphans: $(ls /tmp/orphan.* | wc -l); echo zombies: $(ps -o stat | grep -c '^Z')";
    config(
        &h,
        &format!("  final:\n    command: [sh, -c, \"{main}\"]\n"),
        "  leaker:\n    command: \"for i in $(seq 1 20); do (sh -c \\\"touch /tmp/orphan.$i\\\" &); done; exec sleep 1000\"\n    stop: { grace: 1s }\n",
    );
    let ran = run(&h, &build(&h), &[]);
    assert_eq!(ran.code, 0, "{}", ran.all());
    assert!(ran.stdout.contains("orphans: 20"), "{}", ran.all());
    assert!(ran.stdout.contains("zombies: 0"), "{}", ran.all());
}

/// `on-failure` restarts a failing service up to its budget, then stops the
/// container with exit 1; `always` restarts one that exits 0 until it stays.
#[test]
fn restart_policies_restart_within_the_budget() {
    let (_volumes, h) = habitat("svct-restart");
    config(
        &h,
        "  final:\n    command: [sleep, \"1000\"]\n",
        "  flaky:\n    command: \"echo run; exit 4\"\n    restart: on-failure\n    max_restarts: 2\n",
    );
    let ran = run(&h, &build(&h), &[]);
    assert_eq!(ran.code, 1, "{}", ran.all());
    assert_eq!(
        ran.stdout.matches("flaky | run").count(),
        3,
        "{}",
        ran.all()
    );
    assert!(
        ran.stderr
            .contains("service `flaky` exited with exit code 4 after 2 restarts"),
        "{}",
        ran.all()
    );

    config(
        &h,
        "  final:\n    command: [sh, -c, \"echo runs: $(cat /tmp/n)\"]\n",
        "  counter:\n    command: \"n=$(cat /tmp/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /tmp/n; [ $n -ge 3 ] && touch /tmp/ok && exec sleep 1000; exit 0\"\n    restart: always\n    ready: { file: /tmp/ok, timeout: 30s }\n    stop: { grace: 1s }\n",
    );
    let ran = run(&h, &build(&h), &[]);
    assert_eq!(ran.code, 0, "{}", ran.all());
    assert!(ran.stdout.contains("runs: 3"), "{}", ran.all());
    assert_eq!(
        ran.stderr
            .matches("`counter` exited with exit code 0; restarting")
            .count(),
        2,
        "{}",
        ran.all()
    );
}

/// The container exits with the main process's code, whatever it is; the
/// main process (a `docker run` command replaces the image's) runs under the
/// init, which is PID 1.
#[test]
fn the_main_process_exit_code_is_the_containers_and_the_init_is_pid_1() {
    let (_volumes, h) = habitat("svct-exit");
    config(
        &h,
        "  final:\n    command: [sh, -c, \"exit 0\"]\n",
        "  side:\n    command: \"exec sleep 1000\"\n    stop: { grace: 1s }\n",
    );
    let image = build(&h);
    let mut rng = Rng(0xc0de_0042);
    let mut codes: Vec<u64> = (0..4).map(|_| 1 + rng.below(125)).collect();
    codes.push(0);
    for code in codes {
        let ran = run(&h, &image, &["sh", "-c", &format!("exit {code}")]);
        assert_eq!(ran.code as u64, code, "{}", ran.all());
    }
    let ran = run(
        &h,
        &image,
        &[
            "sh",
            "-c",
            "tr '\\0' ' ' < /proc/1/cmdline; echo; echo pid $$",
        ],
    );
    assert_eq!(ran.code, 0, "{}", ran.all());
    assert!(
        ran.stdout.starts_with("/.kiln/init -- sh -c"),
        "{}",
        ran.all()
    );
    assert!(!ran.stdout.contains("pid 1\n"), "{}", ran.all());
}

fn inspect(container: &str, format: &str) -> String {
    docker(&["inspect", "--format", format, container])
        .trim()
        .to_string()
}

/// Waits (bounded; no timing is asserted) until `done` says so.
fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..600 {
        if done() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("{what} never happened");
}

/// A member of `kiln up` runs the init as PID 1 (no Docker init before it),
/// turns healthy in `docker inspect` once its services are ready, and on
/// `docker stop` (the member's own stop timeout, which covers every grace)
/// stops the services in reverse order with their signals, kills what
/// ignores its signal after its grace, and exits 0.
#[test]
fn a_member_is_healthy_and_stops_cleanly_within_its_graces() {
    let (_volumes, h) = habitat("svct-stop");
    config(
        &h,
        "",
        "  db:\n    command: \"trap 'echo db got TERM; exit 0' TERM; touch /tmp/db.ready; while :; do sleep 0.1; done\"\n    ready: { file: /tmp/db.ready }\n    stop: { grace: 5s }\n\
         \x20 app:\n    after: [db]\n    command: \"trap 'echo app got INT; exit 0' INT; (sleep 1000 &); touch /tmp/app.ready; while :; do sleep 0.1; done\"\n    ready: { file: /tmp/app.ready }\n    stop: { signal: SIGINT, grace: 5s }\n\
         \x20 stubborn:\n    after: [app]\n    command: \"trap 'echo stubborn ignores TERM' TERM; while :; do sleep 0.1; done\"\n    stop: { grace: 1s }\n\
         instances:\n  members:\n    one: {}\n",
    );
    h.kiln(&["up", "--progress", "plain"]).run().assert_code(0);
    let container = format!("{}-one", h.name);
    assert_eq!(
        inspect(&container, "{{.HostConfig.Init}}"),
        "<nil>",
        "no Docker init goes before kiln's"
    );
    // main 10 s + 5 + 5 + 1 + orphans 5 = 26 s; 2 s over, in whole seconds.
    assert_eq!(inspect(&container, "{{.Config.StopTimeout}}"), "28");
    let pid1 = docker(&["exec", &container, "cat", "/proc/1/cmdline"]);
    assert!(pid1.starts_with("/.kiln/init\0--"), "{pid1:?}");
    eventually("the member turning healthy", || {
        inspect(&container, "{{.State.Health.Status}}") == "healthy"
    });
    docker(&["stop", &container]);
    assert_eq!(inspect(&container, "{{.State.ExitCode}}"), "0");
    let logs = docker_output(&["logs", &container]);
    let logs = format!(
        "{}{}",
        String::from_utf8_lossy(&logs.stdout),
        String::from_utf8_lossy(&logs.stderr)
    );
    let at = |needle: &str| {
        logs.find(needle)
            .unwrap_or_else(|| panic!("no {needle:?} in\n{logs}"))
    };
    // Each service got its own signal (their lines are relayed by a thread
    // each, so their order across services is not kept)...
    at("stubborn | stubborn ignores TERM");
    at("app | app got INT");
    at("db | db got TERM");
    at("kiln-init: `stubborn` outlived its grace; killing it");
    // ...and the init, one thread, stopped them in reverse start order.
    assert!(
        at("kiln-init: stopping `stubborn`") < at("kiln-init: stopping `app`"),
        "{logs}"
    );
    assert!(
        at("kiln-init: stopping `app`") < at("kiln-init: stopping `db`"),
        "{logs}"
    );
    h.kiln(&["down"]).run().assert_code(0);
}
