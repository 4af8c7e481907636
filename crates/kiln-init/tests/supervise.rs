//! The supervision state machine driven by scripted events and times, with no
//! process: each case is a script of (time, event) and the actions expected.

use kiln_init::spec::{self, Check, Probe, Restart, Service, Spec, Stop};
use kiln_init::supervise::{Action, Event, Exit, Failure, Supervisor, Target, backoff};
use proptest::prelude::*;

fn svc(name: &str, after: &[&str]) -> Service {
    Service {
        name: name.to_string(),
        command: vec!["x".to_string()],
        user: None,
        workdir: None,
        env: Vec::new(),
        after: after.iter().map(|a| a.to_string()).collect(),
        oneshot: false,
        creates: None,
        ready: None,
        stop: Stop::default(),
        restart: Restart::No,
        max_restarts: spec::DEFAULT_MAX_RESTARTS,
    }
}

fn oneshot(name: &str, after: &[&str]) -> Service {
    Service {
        oneshot: true,
        ..svc(name, after)
    }
}

fn probed(name: &str, after: &[&str], timeout_ms: u64) -> Service {
    Service {
        ready: Some(Probe {
            check: Check::Tcp(5432),
            interval_ms: 100,
            timeout_ms,
        }),
        ..svc(name, after)
    }
}

fn sup(services: Vec<Service>, main: bool) -> Supervisor {
    Supervisor::new(
        Spec {
            version: 1,
            services,
            main: Default::default(),
        },
        main,
    )
    .unwrap()
}

/// Only the actions that do something (notes left out).
fn acts(actions: Vec<Action>) -> Vec<Action> {
    actions
        .into_iter()
        .filter(|a| !matches!(a, Action::Note(_)))
        .collect()
}

fn sig(target: Target, signal: i32) -> Action {
    Action::Signal { target, signal }
}

#[test]
fn boot_follows_after_readiness_and_oneshots_then_the_main_process() {
    // initdb (oneshot) -> postgres (probed) -> migrate (oneshot) -> main
    let mut s = sup(
        vec![
            oneshot("initdb", &[]),
            probed("postgres", &["initdb"], 1000),
            oneshot("migrate", &["postgres"]),
        ],
        true,
    );
    assert_eq!(acts(s.start(0)), vec![Action::Start(0)]);
    assert_eq!(
        acts(s.handle(
            5,
            Event::Exited {
                service: 0,
                status: Exit::Code(0)
            }
        )),
        vec![Action::Start(1), Action::Probe(1)]
    );
    assert!(!s.healthy());
    assert_eq!(acts(s.handle(6, Event::ProbeFailed(1))), vec![]);
    assert_eq!(s.deadline(), Some(106));
    assert_eq!(acts(s.handle(106, Event::Tick)), vec![Action::Probe(1)]);
    assert_eq!(
        acts(s.handle(107, Event::ProbePassed(1))),
        vec![Action::Start(2)]
    );
    assert_eq!(
        acts(s.handle(
            200,
            Event::Exited {
                service: 2,
                status: Exit::Code(0)
            }
        )),
        vec![Action::StartMain]
    );
    assert!(s.healthy());
    // The main process ends: its code, after the services stop in reverse order.
    assert_eq!(
        acts(s.handle(300, Event::MainExited(Exit::Code(7)))),
        vec![sig(Target::Service(1), 15)]
    );
    assert_eq!(
        acts(s.handle(
            310,
            Event::Exited {
                service: 1,
                status: Exit::Code(0)
            }
        )),
        vec![Action::SignalOrphans(15)]
    );
    assert_eq!(
        acts(s.handle(311, Event::NoChildren)),
        vec![Action::Exit(7)]
    );
    assert!(s.finished());
}

#[test]
fn a_skipped_oneshot_counts_as_done() {
    let mut s = sup(vec![oneshot("initdb", &[]), svc("app", &["initdb"])], false);
    s.start(0);
    assert_eq!(acts(s.handle(1, Event::Skipped(0))), vec![Action::Start(1)]);
    assert!(s.healthy());
}

#[test]
fn a_failed_oneshot_stops_everything_with_exit_1_naming_it() {
    let mut s = sup(vec![svc("db", &[]), oneshot("migrate", &["db"])], true);
    assert_eq!(acts(s.start(0)), vec![Action::Start(0), Action::Start(1)]);
    let out = acts(s.handle(
        5,
        Event::Exited {
            service: 1,
            status: Exit::Code(3),
        },
    ));
    assert_eq!(
        out,
        vec![
            Action::Report(Failure::OneshotFailed {
                service: "migrate".into(),
                status: Exit::Code(3)
            }),
            sig(Target::Service(0), 15),
        ]
    );
    s.handle(
        6,
        Event::Exited {
            service: 0,
            status: Exit::Signal(15),
        },
    );
    assert_eq!(acts(s.handle(7, Event::NoChildren)), vec![Action::Exit(1)]);
}

#[test]
fn a_probe_that_never_passes_times_out_with_its_name_and_probe() {
    let mut s = sup(vec![probed("db", &[], 300), svc("app", &["db"])], true);
    s.start(0);
    let mut t = 0;
    let mut report = None;
    while report.is_none() && t < 1000 {
        s.handle(t, Event::ProbeFailed(0));
        t = s.deadline().unwrap();
        for a in s.handle(t, Event::Tick) {
            if let Action::Report(f) = a {
                report = Some((t, f));
            }
        }
    }
    let (at, failure) = report.expect("a report");
    assert_eq!(at, 300);
    assert_eq!(
        failure.to_string(),
        "service `db` was not ready within 300ms: its probe (tcp 127.0.0.1:5432) never passed"
    );
}

#[test]
fn restarts_back_off_and_the_budget_fails_the_container() {
    let mut s = sup(
        vec![Service {
            restart: Restart::OnFailure,
            max_restarts: 3,
            ..svc("flaky", &[])
        }],
        false,
    );
    s.start(0);
    let mut now = 0;
    let mut waits = Vec::new();
    for _ in 0..3 {
        assert_eq!(
            acts(s.handle(
                now,
                Event::Exited {
                    service: 0,
                    status: Exit::Code(1)
                }
            )),
            vec![]
        );
        let at = s.deadline().unwrap();
        waits.push(at - now);
        now = at;
        assert_eq!(acts(s.handle(now, Event::Tick)), vec![Action::Start(0)]);
    }
    assert_eq!(waits, vec![backoff(0), backoff(1), backoff(2)]);
    assert_eq!(waits, vec![100, 200, 400]);
    let out = acts(s.handle(
        now,
        Event::Exited {
            service: 0,
            status: Exit::Code(1),
        },
    ));
    assert!(
        matches!(
            &out[0],
            Action::Report(Failure::RestartBudget { restarts: 3, .. })
        ),
        "{out:?}"
    );
}

/// Regression: a probed service that exits before its probe passes, and is
/// restarted, used to count as started while it waited (its backoff), so
/// what comes after it and the main process started before it was ready.
#[test]
fn regression_a_service_restarted_before_it_was_ready_holds_back_what_waits_for_it() {
    let mut s = sup(
        vec![
            Service {
                restart: Restart::Always,
                ..probed("db", &[], 30_000)
            },
            svc("app", &["db"]),
        ],
        true,
    );
    assert_eq!(acts(s.start(0)), vec![Action::Start(0), Action::Probe(0)]);
    let exited = Event::Exited {
        service: 0,
        status: Exit::Code(0),
    };
    assert_eq!(acts(s.handle(10, exited.clone())), vec![]);
    let at = s.deadline().unwrap();
    assert_eq!(
        acts(s.handle(at, Event::Tick)),
        vec![Action::Start(0), Action::Probe(0)]
    );
    // Ready now: `app` starts, then the main process.
    let out = acts(s.handle(at + 1, Event::ProbePassed(0)));
    assert_eq!(out, vec![Action::Start(1), Action::StartMain]);
    // A ready service that is restarted keeps what came after it running.
    assert_eq!(acts(s.handle(at + 2, exited)), vec![]);
}

#[test]
fn restarts_outside_the_window_do_not_count() {
    let mut s = sup(
        vec![Service {
            restart: Restart::Always,
            max_restarts: 1,
            ..svc("app", &[])
        }],
        false,
    );
    s.start(0);
    let mut now = 0;
    for _ in 0..4 {
        s.handle(
            now,
            Event::Exited {
                service: 0,
                status: Exit::Code(0),
            },
        );
        now = s.deadline().unwrap();
        assert_eq!(acts(s.handle(now, Event::Tick)), vec![Action::Start(0)]);
        now += spec::RESTART_WINDOW_MS;
    }
}

#[test]
fn on_failure_does_not_restart_a_clean_exit_and_no_fails_on_a_bad_one() {
    let mut s = sup(
        vec![
            Service {
                restart: Restart::OnFailure,
                ..svc("a", &[])
            },
            svc("b", &[]),
        ],
        false,
    );
    s.start(0);
    assert_eq!(
        acts(s.handle(
            1,
            Event::Exited {
                service: 0,
                status: Exit::Code(0)
            }
        )),
        vec![]
    );
    let out = acts(s.handle(
        2,
        Event::Exited {
            service: 1,
            status: Exit::Code(2),
        },
    ));
    assert!(
        matches!(&out[0], Action::Report(Failure::ServiceFailed { .. })),
        "{out:?}"
    );
}

#[test]
fn sigterm_stops_main_then_services_in_reverse_with_their_signal_and_grace() {
    let mut s = sup(
        vec![
            Service {
                stop: Stop {
                    signal: "SIGINT".into(),
                    grace_ms: 1000,
                },
                ..svc("db", &[])
            },
            svc("cache", &[]),
            svc("web", &["db", "cache"]),
        ],
        true,
    );
    s.start(0);
    assert_eq!(
        acts(s.handle(10, Event::Signal(15))),
        vec![sig(Target::Main, 15)]
    );
    // The main process outlives its grace (10 s by default): SIGKILL.
    assert_eq!(s.deadline(), Some(10 + spec::DEFAULT_GRACE_MS));
    assert_eq!(
        acts(s.handle(10 + spec::DEFAULT_GRACE_MS, Event::Tick)),
        vec![sig(Target::Main, 9)]
    );
    let t = 10_020;
    assert_eq!(
        acts(s.handle(t, Event::MainExited(Exit::Signal(9)))),
        vec![sig(Target::Service(2), 15)]
    );
    assert_eq!(
        acts(s.handle(
            t + 1,
            Event::Exited {
                service: 2,
                status: Exit::Code(0)
            }
        )),
        vec![sig(Target::Service(1), 15)]
    );
    assert_eq!(
        acts(s.handle(
            t + 2,
            Event::Exited {
                service: 1,
                status: Exit::Code(0)
            }
        )),
        vec![sig(Target::Service(0), 2)]
    );
    // db takes longer than its 1 s grace.
    assert_eq!(
        acts(s.handle(t + 1002, Event::Tick)),
        vec![sig(Target::Service(0), 9)]
    );
    assert_eq!(
        acts(s.handle(
            t + 1003,
            Event::Exited {
                service: 0,
                status: Exit::Signal(9)
            }
        )),
        vec![Action::SignalOrphans(15)]
    );
    // Orphans that ignore SIGTERM get SIGKILL 5 s later.
    assert_eq!(
        acts(s.handle(t + 1003 + spec::ORPHAN_GRACE_MS, Event::Tick)),
        vec![Action::SignalOrphans(9)]
    );
    // A clean stop: exit 0 although the main process was killed.
    assert_eq!(
        acts(s.handle(t + 6010, Event::NoChildren)),
        vec![Action::Exit(0)]
    );
}

#[test]
fn a_signal_before_anything_is_ready_cancels_what_has_not_started() {
    let mut s = sup(vec![probed("db", &[], 60_000), svc("web", &["db"])], true);
    s.start(0);
    assert_eq!(
        acts(s.handle(5, Event::Signal(2))),
        vec![sig(Target::Service(0), 15)]
    );
    assert_eq!(
        acts(s.handle(
            6,
            Event::Exited {
                service: 0,
                status: Exit::Code(0)
            }
        )),
        vec![Action::SignalOrphans(15)]
    );
    assert_eq!(acts(s.handle(7, Event::NoChildren)), vec![Action::Exit(0)]);
}

#[test]
fn cycles_and_unknown_names_are_refused() {
    let spec = |services| Spec {
        version: 1,
        services,
        main: Default::default(),
    };
    let err = Supervisor::new(
        spec(vec![svc("a", &["c"]), svc("b", &["a"]), svc("c", &["b"])]),
        false,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "services wait for each other: `a` -> `b` -> `c` -> `a`"
    );
    let err = Supervisor::new(spec(vec![svc("a", &["nope"])]), false).unwrap_err();
    assert_eq!(
        err.to_string(),
        "`a` starts after `nope`, which is not a service"
    );
}

proptest! {
    /// Any acyclic graph of services that start and become ready at once boots
    /// each service only after everything in its `after`, and starts main last.
    #[test]
    fn generated_graphs_start_in_dependency_order(edges in proptest::collection::vec((0usize..8, 0usize..8), 0..20), n in 1usize..8) {
        let names: Vec<String> = (0..n).map(|i| format!("s{i}")).collect();
        let services: Vec<Service> = (0..n).map(|i| {
            // Only edges to a lower index, so the graph is acyclic.
            let after: Vec<&str> = edges.iter().filter(|(a, b)| *a == i && *b < i).map(|(_, b)| names[*b].as_str()).collect();
            let mut after = after; after.dedup();
            oneshot(&names[i], &after)
        }).collect();
        let mut s = sup(services.clone(), true);
        let mut queue = s.start(0);
        let mut order = Vec::new();
        let mut t = 0;
        while let Some(a) = queue.pop() {
            t += 1;
            match a {
                Action::Start(i) => { order.push(i); queue.extend(s.handle(t, Event::Exited { service: i, status: Exit::Code(0) })); }
                Action::StartMain => order.push(usize::MAX),
                _ => {}
            }
        }
        prop_assert_eq!(order.len(), n + 1);
        prop_assert_eq!(*order.last().unwrap(), usize::MAX);
        for (pos, &i) in order.iter().enumerate().take(n) {
            for dep in &services[i].after {
                let d: usize = dep[1..].parse().unwrap();
                prop_assert!(order[..pos].contains(&d));
            }
        }
    }
}
