//! The prune policy (`cache/prune.rs`), pure: tables of hand-made habitats
//! (a current chain and the chains old edits left, branching off it) and
//! generated forests of chains, checked against what SPEC §11 promises:
//! nothing in use or current goes, levels nest, and what is freed is
//! what no image left holds.

use std::collections::{BTreeMap, BTreeSet};

use kiln_core::Phase;
use kiln_core::cache::prune::{self, Holdings, Level, Root, Snapshot, State, StepOf};
use proptest::prelude::*;

fn snap(id: &str, phase: Phase, key: &str, parent: &str, layers: &[&str]) -> Snapshot {
    Snapshot {
        id: id.to_string(),
        phase,
        key: key.to_string(),
        parent: parent.to_string(),
        verified: None,
        layers: layers.iter().map(|l| l.to_string()).collect(),
        tags: Vec::new(),
        containers: Vec::new(),
        created: Some(1000),
        last_used: None,
        build_ms: Some(100),
        step: None,
    }
}

/// A habitat `web` as a day of edits leaves it: the current chain A
/// (base, users, env, files, setup, final; habitat, repos, tools and verify
/// unconfigured, so final's parent key leads through links), chain B
/// branching at setup (a changed script), chain C at files (a changed copy).
fn web() -> Holdings {
    use Phase::*;
    let mut s = vec![
        snap("b1", Base, "kb1", "", &["L0"]),
        snap("u1", Users, "ku1", "kb1", &["L0", "Lu"]),
        snap("e1", Env, "ke1", "ku1", &["L0", "Lu"]),
        snap("f1", Files, "kf1", "kh1", &["L0", "Lu", "Lf1"]),
        snap("s1", Setup, "ks1", "kf1", &["L0", "Lu", "Lf1", "Ls1"]),
        snap("z1", Final, "kz1", "kv1", &["L0", "Lu", "Lf1", "Ls1"]),
        snap("s2", Setup, "ks2", "kf1", &["L0", "Lu", "Lf1", "Ls2"]),
        snap("z2", Final, "kz2", "kv2", &["L0", "Lu", "Lf1", "Ls2"]),
        snap("f3", Files, "kf3", "kh1", &["L0", "Lu", "Lf3"]),
        snap("s3", Setup, "ks3", "kf3", &["L0", "Lu", "Lf3", "Ls3"]),
        snap("z3", Final, "kz3", "kv3", &["L0", "Lu", "Lf3", "Ls3"]),
    ];
    s[5].verified = Some("kv1".into());
    s[5].tags = vec![
        "habitat-web:latest".into(),
        "habitat-web:final-aaaaaaaaaaaa".into(),
    ];
    s[7].tags = vec!["habitat-web:final-bbbbbbbbbbbb".into()];
    let links = [
        ("kh1", "ke1"),
        ("kr1", "ks1"),
        ("kt1", "kr1"),
        ("kv1", "kt1"),
        ("kr2", "ks2"),
        ("kt2", "kr2"),
        ("kv2", "kt2"),
        ("kr3", "ks3"),
        ("kt3", "kr3"),
        ("kv3", "kt3"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    let current = [
        (Base, "kb1", true),
        (Users, "ku1", true),
        (Env, "ke1", true),
        (Habitat, "kh1", false),
        (Files, "kf1", true),
        (Setup, "ks1", true),
        (Repos, "kr1", false),
        (Tools, "kt1", false),
        (Verify, "kv1", true),
        (Final, "kz1", true),
    ]
    .into_iter()
    .map(|(p, k, present)| (p, k.to_string(), present))
    .collect();
    let layer_sizes = [
        ("L0", 5_000),
        ("Lu", 10),
        ("Lf1", 300),
        ("Ls1", 2_000),
        ("Ls2", 2_100),
        ("Lf3", 310),
        ("Ls3", 2_200),
    ]
    .into_iter()
    .map(|(l, n)| (l.to_string(), n))
    .collect();
    Holdings {
        habitat: "web".into(),
        snapshots: s,
        current,
        current_steps: Vec::new(),
        links,
        layer_sizes,
        external_layers: BTreeSet::new(),
    }
}

fn ids(h: &Holdings, idx: &[usize]) -> Vec<String> {
    idx.iter().map(|&i| h.snapshots[i].id.clone()).collect()
}

fn find(h: &Holdings, id: &str) -> usize {
    h.snapshots.iter().position(|s| s.id == id).unwrap()
}

#[test]
fn each_level_removes_its_set_children_first() {
    let h = web();
    let table: &[(Level, usize, &[&str])] = &[
        (Level::Soft, 0, &["z2", "z3", "s2", "s3", "f3"]),
        (Level::Soft, 5, &[]),
        (Level::Medium, 5, &["z2", "z3", "s2", "s3", "f3"]),
        (
            Level::Hard,
            5,
            &["z1", "z2", "z3", "s1", "s2", "s3", "f1", "f3", "e1", "u1"],
        ),
        (
            Level::Nuke,
            5,
            &[
                "z1", "z2", "z3", "s1", "s2", "s3", "f1", "f3", "e1", "u1", "b1",
            ],
        ),
    ];
    for (level, keep, want) in table {
        let p = prune::plan(&h, *level, *keep);
        assert_eq!(ids(&h, &p.remove), *want, "{level:?} keep {keep}");
    }
}

#[test]
fn soft_keeps_the_most_recently_used_chains_besides_the_current_one() {
    let mut h = web();
    let z3 = find(&h, "z3");
    h.snapshots[z3].last_used = Some(5_000);
    let z2 = find(&h, "z2");
    h.snapshots[z2].last_used = Some(4_000);
    let p = prune::plan(&h, Level::Soft, 1);
    assert_eq!(ids(&h, &p.remove), ["z2", "s2"], "chain C was used last");
    // Only chain B's own layer goes: the rest is chain A's too.
    assert_eq!(p.frees, 2_100);
    assert_eq!(p.shared, 5_000 + 10 + 300);
    assert!(p.rerun.is_empty(), "the current chain stays whole");
}

#[test]
fn states_and_roots_are_named_with_what_holds_them() {
    let mut h = web();
    let z2 = find(&h, "z2");
    h.snapshots[z2].tags.push("myapp:v1".into());
    let z3 = find(&h, "z3");
    h.snapshots[z3].containers.push("web-dev".into());
    let a = prune::assess(&h);
    let state = |id: &str| a[find(&h, id)].state;
    assert_eq!(state("z1"), State::Current);
    assert_eq!(state("b1"), State::InUse, "z3's container holds the base");
    assert_eq!(state("z2"), State::Tagged);
    assert_eq!(state("s2"), State::Tagged, "built on by a tagged image");
    assert_eq!(state("f3"), State::InUse);
    let roots = &a[find(&h, "s2")].roots;
    assert_eq!(roots.len(), 1);
    assert_eq!(roots[0].root, Root::Tag("myapp:v1".into()));
    assert_eq!(roots[0].via.as_deref(), Some("z2"));
    // Kiln's own tags are no root.
    assert!(
        !a[find(&h, "z1")]
            .roots
            .iter()
            .any(|r| matches!(r.root, Root::Tag(_)))
    );
    // Own sizes: the bytes over the parent's layers; env and final add none.
    let own = |id: &str| a[find(&h, id)].own_bytes;
    assert_eq!(
        (
            own("b1"),
            own("u1"),
            own("e1"),
            own("f1"),
            own("s1"),
            own("z1")
        ),
        (5_000, 10, 0, 300, 2_000, 0)
    );

    let soft = prune::plan(&h, Level::Soft, 0);
    assert!(
        soft.remove.is_empty(),
        "tagged and in-use chains are no soft prey"
    );
    let medium = prune::plan(&h, Level::Medium, 0);
    assert_eq!(ids(&h, &medium.remove), ["z2", "s2"]);
    let in_use: Vec<(String, Vec<String>)> = medium
        .in_use
        .iter()
        .map(|(i, c)| (h.snapshots[*i].id.clone(), c.clone()))
        .collect();
    assert!(
        in_use.contains(&("z3".into(), vec!["web-dev".into()])),
        "{in_use:?}"
    );
    let nuke = prune::plan(&h, Level::Nuke, 0);
    for kept in ["z3", "s3", "f3", "u1", "b1"] {
        assert!(!ids(&h, &nuke.remove).contains(&kept.to_string()), "{kept}");
    }
}

#[test]
fn the_next_build_costs_what_the_removed_current_phases_took() {
    let mut h = web();
    for (id, ms) in [
        ("b1", 50),
        ("u1", 700),
        ("e1", 20),
        ("f1", 300),
        ("s1", 9_000),
        ("z1", 40),
    ] {
        let i = find(&h, id);
        h.snapshots[i].build_ms = Some(ms);
    }
    let hard = prune::plan(&h, Level::Hard, 5);
    use Phase::*;
    assert_eq!(hard.rerun, [Users, Env, Files, Setup, Verify, Final]);
    assert_eq!(hard.rerun_ms, 700 + 20 + 300 + 9_000 + 40);
    assert_eq!(
        hard.rerun_unknown,
        [Verify],
        "verify commits no image to time"
    );
    let nuke = prune::plan(&h, Level::Nuke, 5);
    assert_eq!(nuke.rerun.first(), Some(&Base));
    assert_eq!(nuke.rerun_ms, hard.rerun_ms + 50);
    // Nuke frees every layer.
    assert_eq!(nuke.frees, h.layer_sizes.values().sum::<u64>());
    assert_eq!(nuke.shared, 0);
    // A base image the engine holds besides keeps its layers.
    h.external_layers.insert("L0".into());
    assert_eq!(prune::plan(&h, Level::Nuke, 5).frees, nuke.frees - 5_000);
}

#[test]
fn a_habitat_never_built_here_has_no_current_chain() {
    let mut h = web();
    h.current.clear();
    let soft = prune::plan(&h, Level::Soft, 0);
    assert_eq!(soft.remove.len(), h.snapshots.len());
    assert!(soft.rerun.is_empty());
}

/// A habitat `app` whose setup runs three root commands in steps (SPEC §5),
/// the third edited twice: steps 1 and 2 (`p1`, `p2`) are shared by the
/// three chains, each chain's step 3 is its setup snapshot (`a3`, `b3`,
/// `c3`), and chain C is current.
fn app() -> Holdings {
    use Phase::*;
    let step = |mut s: Snapshot, number: usize, key: &str, ms: u64| {
        s.step = Some(StepOf {
            number,
            key: key.to_string(),
            ms: Some(ms),
        });
        s
    };
    let pure = |id: &str, number: usize, key: &str, layers: &[&str], ms: u64| {
        // An earlier step's image: keyed by its step, its parent by links.
        let mut s = step(snap(id, Setup, key, "", layers), number, key, ms);
        s.build_ms = Some(ms);
        s
    };
    let s = vec![
        snap("b", Base, "kb", "", &["L0"]),
        pure("p1", 1, "S1", &["L0", "L1"], 1_000),
        pure("p2", 2, "S2", &["L0", "L1", "L2"], 2_000),
        step(
            snap("a3", Setup, "ksa", "kb", &["L0", "L1", "L2", "La"]),
            3,
            "S3a",
            3_000,
        ),
        snap("za", Final, "kza", "ksa", &["L0", "L1", "L2", "La"]),
        step(
            snap("b3", Setup, "ksb", "kb", &["L0", "L1", "L2", "Lb"]),
            3,
            "S3b",
            3_100,
        ),
        snap("zb", Final, "kzb", "ksb", &["L0", "L1", "L2", "Lb"]),
        step(
            snap("c3", Setup, "ksc", "kb", &["L0", "L1", "L2", "Lc"]),
            3,
            "S3c",
            3_200,
        ),
        snap("zc", Final, "kzc", "ksc", &["L0", "L1", "L2", "Lc"]),
    ];
    let links = [
        ("S1", "kb"),
        ("S2", "S1"),
        ("S3a", "S2"),
        ("S3b", "S2"),
        ("S3c", "S2"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    let layer_sizes = [
        ("L0", 5_000),
        ("L1", 100),
        ("L2", 200),
        ("La", 30),
        ("Lb", 31),
        ("Lc", 32),
    ]
    .into_iter()
    .map(|(l, n)| (l.to_string(), n))
    .collect();
    Holdings {
        habitat: "app".into(),
        snapshots: s,
        current: vec![
            (Base, "kb".into(), true),
            (Setup, "ksc".into(), true),
            (Final, "kzc".into(), true),
        ],
        current_steps: vec![
            (Setup, 1, "S1".into()),
            (Setup, 2, "S2".into()),
            (Setup, 3, "S3c".into()),
        ],
        links,
        layer_sizes,
        external_layers: BTreeSet::new(),
    }
}

#[test]
fn steps_are_listed_under_their_phase_and_held_by_the_current_step_chain() {
    let h = app();
    let a = prune::assess(&h);
    let state = |id: &str| a[find(&h, id)].state;
    let tag = |id: &str| h.snapshots[find(&h, id)].tag();
    assert_eq!(
        (tag("p1"), tag("p2")),
        ("6-setup.1".into(), "6-setup.2".into())
    );
    assert_eq!(tag("c3"), "6-setup", "the last step's image is the phase's");
    assert_eq!(state("p1"), State::Current, "on the current step chain");
    assert_eq!(state("p2"), State::Current);
    assert_eq!((state("a3"), state("za")), (State::Old, State::Old));
    // A step's own size is over the step before it.
    let own = |id: &str| a[find(&h, id)].own_bytes;
    assert_eq!((own("p1"), own("p2"), own("a3")), (100, 200, 30));
}

#[test]
fn each_level_removes_steps_like_snapshots_children_first() {
    let h = app();
    let table: &[(Level, &[&str])] = &[
        (Level::Soft, &["za", "zb", "a3", "b3"]),
        (Level::Medium, &["za", "zb", "a3", "b3"]),
        (
            Level::Hard,
            &["za", "zb", "zc", "a3", "b3", "c3", "p2", "p1"],
        ),
        (
            Level::Nuke,
            &["za", "zb", "zc", "a3", "b3", "c3", "p2", "p1", "b"],
        ),
    ];
    for (level, want) in table {
        let p = prune::plan(&h, *level, 0);
        assert_eq!(ids(&h, &p.remove), *want, "{level:?}");
    }
    // Soft and medium leave the current chain whole, steps and all.
    let soft = prune::plan(&h, Level::Soft, 0);
    assert!(soft.rerun.is_empty() && soft.rerun_steps.is_empty());
    assert_eq!(soft.frees, 30 + 31);
}

#[test]
fn a_step_a_kept_snapshot_is_built_on_stays() {
    let mut h = app();
    // Chain A's final is tagged by the user: its setup and the steps
    // below stay at soft, though no longer current.
    h.current_steps.clear();
    let za = find(&h, "za");
    h.snapshots[za].tags.push("app:v1".into());
    let p = prune::plan(&h, Level::Soft, 0);
    let removed = ids(&h, &p.remove);
    for kept in ["za", "a3", "p2", "p1", "b"] {
        assert!(!removed.contains(&kept.to_string()), "{kept}: {removed:?}");
    }
    let a = prune::assess(&h);
    assert_eq!(
        a[find(&h, "p1")].state,
        State::Current,
        "c3 is still current"
    );
    // A container on an earlier step keeps it and the step before.
    let mut h = app();
    let p2 = find(&h, "p2");
    h.snapshots[p2].containers.push("debug".into());
    let nuke = prune::plan(&h, Level::Nuke, 0);
    let removed = ids(&h, &nuke.remove);
    for kept in ["p2", "p1", "b"] {
        assert!(!removed.contains(&kept.to_string()), "{kept}: {removed:?}");
    }
    assert!(removed.contains(&"c3".to_string()));
}

#[test]
fn the_next_build_resumes_after_the_deepest_step_left_and_costs_its_steps() {
    use Phase::*;
    let mut h = app();
    let zc = find(&h, "zc");
    h.snapshots[zc].build_ms = Some(40);
    // Hard takes every step: setup runs whole, each step at its time.
    let hard = prune::plan(&h, Level::Hard, 0);
    assert_eq!(hard.rerun, [Setup, Final]);
    assert_eq!(hard.rerun_steps, [(Setup, 1), (Setup, 2), (Setup, 3)]);
    assert_eq!(hard.rerun_ms, 1_000 + 2_000 + 3_200 + 40);
    assert!(hard.rerun_unknown.is_empty());
    // The config's third command edited again, not yet built: setup
    // resumes at step 3, which no image has timed.
    h.current[1].1 = "ksd".into();
    h.current[2].1 = "kzd".into();
    h.current_steps[2].2 = "S3d".into();
    let soft = prune::plan(&h, Level::Soft, 0);
    assert_eq!(soft.rerun, [Setup, Final]);
    assert_eq!(soft.rerun_steps, [(Setup, 3)]);
    assert_eq!(soft.rerun_unknown, [Setup, Final]);
    // The old chains' third steps are old now; steps 1 and 2 stay current.
    assert_eq!(ids(&h, &soft.remove), ["za", "zb", "zc", "a3", "b3", "c3"]);
    // Back to a config an old chain holds: nothing runs again.
    h.current[1].1 = "ksb".into();
    h.current[2].1 = "kzb".into();
    h.current_steps[2].2 = "S3b".into();
    assert!(prune::plan(&h, Level::Soft, 0).rerun.is_empty());
    // With the phase snapshot gone but an image of its last step left,
    // setup makes a config-only image: no step runs, and only final costs.
    let mut h = app();
    let c3 = find(&h, "c3");
    h.snapshots[c3].key = "S3c".into();
    assert_eq!(h.snapshots[c3].tag(), "6-setup.3");
    let soft = prune::plan(&h, Level::Soft, 0);
    assert_eq!(soft.rerun, [Setup, Final]);
    assert!(soft.rerun_steps.is_empty());
    assert_eq!(soft.rerun_ms, 100);
}

#[test]
fn levels_parse_by_name() {
    for l in Level::ALL {
        assert_eq!(l.as_str().parse::<Level>(), Ok(l));
    }
    let e = "gentle".parse::<Level>().unwrap_err();
    assert!(e.contains("soft, medium, hard, nuke"), "{e}");
}

/// A generated habitat: chains of one phase list, each branching off an
/// earlier one at a random phase or step, with random tags, containers, use
/// times and config-only phases; setup, when listed, runs in 1 to 3 steps
/// (SPEC §5), its earlier steps' images keyed by their steps.
#[derive(Debug, Clone)]
struct Forest {
    holdings: Holdings,
    /// The chain each snapshot index belongs to first (its maker).
    parent_of: BTreeMap<usize, usize>,
}

struct Gen {
    /// Each image a chain makes: its phase, and for setup in steps its
    /// step's number and whether it is the last.
    slots: Vec<(Phase, Option<(usize, bool)>)>,
    marks: Vec<(bool, u8, Option<u64>, u64)>,
    snaps: Vec<Snapshot>,
    chains: Vec<Vec<usize>>,
    parent_of: BTreeMap<usize, usize>,
    sizes: BTreeMap<String, u64>,
    links: BTreeMap<String, String>,
}

impl Gen {
    /// A chain that shares chain `c`'s first `from` snapshots and makes the
    /// rest, on `prev`.
    fn chain(&mut self, c: usize, from: usize, mut prev: Option<usize>) {
        let mut chain: Vec<usize> = self.chains.get(c).map_or(vec![], |ch| ch[..from].to_vec());
        for (n, (phase, step)) in self.slots.clone().into_iter().enumerate().skip(from) {
            let i = self.snaps.len();
            let (config_only, mark, used, size) = self.marks[i % self.marks.len()];
            let mut s = snap(&format!("i{i}"), phase, &format!("k{i}"), "", &[]);
            s.layers = prev.map_or(vec![], |p| self.snaps[p].layers.clone());
            if !config_only || n == 0 {
                s.layers.push(format!("L{i}"));
                self.sizes.insert(format!("L{i}"), size);
            }
            let below = prev.map_or(String::new(), |p| {
                let p = &self.snaps[p];
                p.step.as_ref().map_or(p.key.clone(), |st| st.key.clone())
            });
            s.parent = prev.map_or(String::new(), |p| self.snaps[p].key.clone());
            s.last_used = used;
            s.build_ms = (mark != 5).then_some(size);
            if let Some((number, last)) = step {
                let key = if last { format!("s{i}") } else { s.key.clone() };
                if !below.is_empty() {
                    self.links.insert(key.clone(), below.clone());
                }
                s.step = Some(StepOf {
                    number,
                    key,
                    ms: s.build_ms,
                });
            }
            match mark {
                1 => s.tags.push(format!("user/app:{i}")),
                2 => s.tags.push("habitat-gen:latest".into()),
                3 if i.is_multiple_of(3) => s.containers.push(format!("c{i}")),
                _ => {}
            }
            if let Some(p) = prev {
                self.parent_of.insert(i, p);
            }
            self.snaps.push(s);
            chain.push(i);
            prev = Some(i);
        }
        self.chains.push(chain);
    }
}

fn forest() -> impl Strategy<Value = Forest> {
    // Verify commits no image of its own (its pass is a mark on the final).
    let imaged: Vec<Phase> = Phase::ALL[1..]
        .iter()
        .copied()
        .filter(|p| *p != Phase::Verify)
        .collect();
    let phases = proptest::sample::subsequence(imaged, 1..=8);
    (
        phases,
        1usize..=3,
        proptest::collection::vec((any::<u16>(), any::<u16>()), 0..8),
        proptest::collection::vec(
            (
                any::<bool>(),
                0u8..6,
                proptest::option::of(0u64..100),
                1u64..1000,
            ),
            64,
        ),
        proptest::option::of(0usize..8),
    )
        .prop_map(|(mut phases, setup_steps, branches, marks, current)| {
            phases.insert(0, Phase::Base);
            let slots = phases
                .iter()
                .flat_map(|&p| match p {
                    Phase::Setup if setup_steps > 1 => (1..=setup_steps)
                        .map(|n| (p, Some((n, n == setup_steps))))
                        .collect::<Vec<_>>(),
                    _ => vec![(p, None)],
                })
                .collect();
            let mut g = Gen {
                slots,
                marks,
                snaps: Vec::new(),
                chains: Vec::new(),
                parent_of: BTreeMap::new(),
                sizes: BTreeMap::new(),
                links: BTreeMap::new(),
            };
            g.chain(0, 0, None);
            for (c, cut) in branches {
                let c = c as usize % g.chains.len();
                let len = g.chains[c].len();
                let from = 1 + cut as usize % len;
                if from >= len {
                    continue;
                }
                let prev = Some(g.chains[c][from - 1]);
                g.chain(c, from, prev);
            }
            let Gen {
                snaps,
                chains,
                parent_of,
                sizes,
                links,
                ..
            } = g;
            let chain = current.filter(|c| *c < chains.len()).map(|c| &chains[c]);
            let current = chain
                .map(|ch| {
                    ch.iter()
                        .filter(|&&i| snaps[i].is_phase_snapshot())
                        .map(|&i| (snaps[i].phase, snaps[i].key.clone(), true))
                        .collect()
                })
                .unwrap_or_default();
            let current_steps = chain
                .map(|ch| {
                    ch.iter()
                        .filter_map(|&i| {
                            let st = snaps[i].step.as_ref()?;
                            Some((snaps[i].phase, st.number, st.key.clone()))
                        })
                        .collect()
                })
                .unwrap_or_default();
            Forest {
                holdings: Holdings {
                    habitat: "gen".into(),
                    snapshots: snaps,
                    current,
                    current_steps,
                    links,
                    layer_sizes: sizes,
                    external_layers: BTreeSet::new(),
                },
                parent_of,
            }
        })
}

/// The current chain's keys, phases' and steps'.
fn current_keys(h: &Holdings) -> BTreeSet<&str> {
    h.current
        .iter()
        .map(|(_, k, _)| k.as_str())
        .chain(h.current_steps.iter().map(|(_, _, k)| k.as_str()))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn no_level_removes_what_is_in_use_or_what_a_kept_image_is_built_on(
        f in forest(), keep in 0usize..4,
    ) {
        let h = &f.holdings;
        let current = current_keys(h);
        let mut removed_before: BTreeSet<usize> = BTreeSet::new();
        let mut freed_before = 0;
        for level in Level::ALL {
            let p = prune::plan(h, level, keep);
            let removed: BTreeSet<usize> = p.remove.iter().copied().collect();
            prop_assert_eq!(removed.len(), p.remove.len(), "no index twice");
            for &i in &removed {
                let s = &h.snapshots[i];
                prop_assert!(s.containers.is_empty(), "{level:?} removed in-use {}", s.id);
                if level <= Level::Medium {
                    prop_assert!(!s.keys().any(|k| current.contains(k)), "{level:?} removed current {}", s.id);
                }
                if level == Level::Hard {
                    prop_assert!(!(s.keys().any(|k| current.contains(k)) && s.phase == Phase::Base));
                }
            }
            for (child, parent) in &f.parent_of {
                prop_assert!(
                    !removed.contains(parent) || removed.contains(child),
                    "{level:?} removed {} but kept its child {}", parent, child
                );
            }
            // A child goes before its parent.
            for (n, i) in p.remove.iter().enumerate() {
                if let Some(parent) = f.parent_of.get(i) {
                    let at = p.remove.iter().position(|r| r == parent);
                    prop_assert!(at.is_none_or(|at| at > n));
                }
            }
            prop_assert!(removed_before.is_subset(&removed), "{level:?} does not hold the level below");
            prop_assert!(p.frees >= freed_before);
            let union: BTreeSet<&String> = removed.iter().flat_map(|&i| &h.snapshots[i].layers).collect();
            let total: u64 = union.iter().map(|l| h.layer_sizes.get(*l).copied().unwrap_or(0)).sum();
            prop_assert_eq!(p.frees + p.shared, total);
            if level <= Level::Medium {
                prop_assert!(p.rerun.is_empty(), "{level:?} leaves the current chain whole");
                prop_assert!(p.rerun_steps.is_empty());
            }
            // Steps run again only in phases that run again, in order.
            for (phase, _) in &p.rerun_steps {
                prop_assert!(p.rerun.contains(phase));
            }
            prop_assert!(p.rerun_steps.windows(2).all(|w| w[0] < w[1]));
            removed_before = removed;
            freed_before = p.frees;
        }
        // Keeping as many chains as there are leaves keeps everything at soft.
        let soft = prune::plan(h, Level::Soft, h.snapshots.len());
        prop_assert!(soft.remove.is_empty());
        // With no container, nuke removes everything.
        if h.snapshots.iter().all(|s| s.containers.is_empty()) {
            prop_assert_eq!(prune::plan(h, Level::Nuke, keep).remove.len(), h.snapshots.len());
        }
    }

    #[test]
    fn states_say_which_roots_hold_a_snapshot(f in forest()) {
        let h = &f.holdings;
        let current = current_keys(h);
        for a in prune::assess(h) {
            let s = &h.snapshots[a.index];
            let direct_user_tag = s.tags.iter().any(|t| !t.starts_with("habitat-gen:"));
            if !s.containers.is_empty() {
                prop_assert_eq!(a.state, State::InUse);
            } else if s.keys().any(|k| current.contains(k)) {
                prop_assert!(a.state >= State::Current);
            } else if direct_user_tag {
                prop_assert!(a.state >= State::Tagged);
            }
            prop_assert_eq!(a.state == State::Old, a.roots.is_empty());
        }
    }

    #[test]
    fn layer_sizes_add_up_to_each_chains_images(f in forest()) {
        // Every image's size is the sum of its layers', so sizes derived
        // back from images are the sizes the layers were given.
        let h = &f.holdings;
        let totals: Vec<(Vec<String>, u64)> = h
            .snapshots
            .iter()
            .map(|s| (s.layers.clone(), s.layers.iter().map(|l| h.layer_sizes[l]).sum()))
            .collect();
        let input: Vec<(&[String], u64)> = totals.iter().map(|(l, n)| (&l[..], *n)).collect();
        prop_assert_eq!(prune::layer_sizes(&input), h.layer_sizes.clone());
    }
}
