//! Pull progress (issue 12) end to end on the real engine and a real
//! registry (Debian's `docker-registry` on loopback): a habitat pushed,
//! the engine emptied of it, then built with `--progress json` pulls its
//! deepest snapshot, and the pull's events count what the engine pulled.

use serde_json::Value;

use crate::remote::Remote;
use crate::support::{Habitat, docker};

/// Bytes that do not compress away, so the files layer has a size.
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// `kiln ARGS` with this registry's (empty) Docker config.
fn kiln(h: &Habitat, r: &Remote, args: &[&str]) -> crate::support::Run {
    h.kiln(args)
        .env(
            "DOCKER_CONFIG",
            &r.docker_config.path().display().to_string(),
        )
        .run()
}

fn u64_of(v: &Value, field: &str) -> u64 {
    v[field]
        .as_u64()
        .unwrap_or_else(|| panic!("`{field}` is no count: {v}"))
}

#[test]
fn a_build_from_the_registry_reports_its_pull_layer_by_layer() {
    let r = Remote::start(true);
    let h = Habitat::new("kpullp-build");
    std::fs::create_dir_all(h.dir().join("files")).expect("mkdir");
    std::fs::write(h.dir().join("files/blob"), noise(3_000_000)).expect("write");
    h.config(&format!(
        "name: @NAME@\nbuild:\n  base: {{ image: kiln-test/busybox:latest }}\n  env: [ A=1 ]\n  \
         files:\n    copies:\n      - {{ source: files/blob, dest: /data/blob }}\n  \
         final: {{ command: [sh] }}\nregistry:\n  repository: {}/kpullp/{}\n  tags: [latest]\n  cache: true\n",
        r.server.host, h.name
    ));
    kiln(&h, &r, &["build", "--progress", "json"]).assert_code(0);
    kiln(&h, &r, &["push", "--progress", "plain"]).assert_code(0);

    // An empty engine: every image of the habitat gone, the host cache too.
    crate::support::remove_habitat(&h.name);
    assert!(crate::support::images_of(&h.name).is_empty());
    let _ = std::fs::remove_dir_all(h.cache().join("made"));
    let warm = kiln(&h, &r, &["build", "--progress", "json"]);
    warm.assert_code(0);
    assert_eq!(warm.built(), Vec::<String>::new(), "{}", warm.stdout);
    let events = warm.events();
    let of = |kind: &str| -> Vec<&Value> { events.iter().filter(|e| e["event"] == kind).collect() };

    // One pull per pulled phase: the deepest snapshot, final.
    let (starts, ends) = (of("phase_pull"), of("pull_end"));
    assert_eq!(starts.len(), 1, "{}", warm.stdout);
    assert_eq!(ends.len(), 1, "{}", warm.stdout);
    let (start, end) = (starts[0], ends[0]);
    let tag = format!(
        "{}-{}",
        start["id"].as_str().unwrap_or_default(),
        start["phase"].as_str().unwrap_or_default()
    );
    assert_eq!(tag, "10-final", "{start}");
    assert_eq!(end["image"], tag.as_str(), "{end}");
    assert_eq!(end["reference"], start["reference"], "{end}");
    assert_eq!(end["status"], "ok", "{end}");
    assert_eq!(end["habitat"], h.name.as_str(), "{end}");

    // Layers done are the layers of the image the engine pulled.
    let reference = start["reference"].as_str().expect("reference");
    let layers: u64 = docker(&[
        "image",
        "inspect",
        "--format",
        "{{len .RootFS.Layers}}",
        reference,
    ])
    .trim()
    .parse()
    .expect("layer count");
    assert!(layers >= 2, "base and files: {layers}");
    assert_eq!(u64_of(end, "layers"), layers, "{end}");
    let layer_events = of("pull_layer");
    let last = layer_events.last().expect("pull_layer events");
    assert_eq!(u64_of(last, "layers_done"), layers, "{last}");
    assert_eq!(u64_of(last, "layers"), layers, "{last}");

    // Bytes came down, and no count ever went back.
    let mut before = (0, 0);
    for e in &layer_events {
        assert_eq!(e["image"], tag.as_str(), "{e}");
        let now = (u64_of(e, "bytes"), u64_of(e, "layers_done"));
        assert!(
            now.0 >= before.0 && now.1 >= before.1,
            "{before:?} then {e}"
        );
        assert!(now.0 <= u64_of(e, "bytes_total"), "{e}");
        before = now;
    }
    assert!(before.0 > 0, "bytes came down: {}", warm.stdout);
    assert_eq!(u64_of(end, "bytes"), before.0, "{end}");
    // The events sit between the phase_pull and the pulled phase's end.
    let at = |pred: &dyn Fn(&Value) -> bool| events.iter().position(pred).expect("event");
    let pull_at = at(&|e| e["event"] == "phase_pull");
    let end_at = at(&|e| e["event"] == "pull_end");
    let final_at = at(&|e| e["event"] == "phase_end" && e["phase"] == "final");
    assert!(pull_at < end_at && end_at < final_at, "{}", warm.stdout);

    // Plain says one line per layer pulled and one at the end, no flood.
    crate::support::remove_habitat(&h.name);
    let _ = std::fs::remove_dir_all(h.cache().join("made"));
    let plain = kiln(&h, &r, &["build", "--progress", "plain"]);
    plain.assert_code(0);
    let pulled: Vec<&str> = plain
        .stderr
        .lines()
        .filter(|l| l.trim_start().starts_with("10-final   pulled "))
        .collect();
    assert!(
        !pulled.is_empty() && pulled.len() as u64 <= layers,
        "{}",
        plain.stderr
    );
    assert!(
        plain.stderr.contains(&format!("pulled `{reference}` in ")),
        "{}",
        plain.stderr
    );
}

#[test]
fn up_image_reports_the_pull_of_the_image_it_runs() {
    let r = Remote::start(true);
    let h = Habitat::new("kpullp-up");
    let _volumes = crate::instances::Volumes(h.name.clone());
    std::fs::create_dir_all(h.dir().join("files")).expect("mkdir");
    std::fs::write(h.dir().join("files/blob"), noise(500_000)).expect("write");
    h.config(&format!(
        "name: @NAME@\nbuild:\n  base: {{ image: kiln-test/busybox:latest }}\n  \
         files:\n    copies:\n      - {{ source: files/blob, dest: /data/blob }}\n  \
         final: {{ command: [sh] }}\ninstances:\n  defaults:\n    command: [sleep, infinity]\n  \
         members:\n    web: {{}}\nregistry:\n  repository: {}/kpullp/{}\n  tags: [latest]\n",
        r.server.host, h.name
    ));
    kiln(&h, &r, &["push", "--progress", "plain"]).assert_code(0);
    crate::support::remove_habitat(&h.name);

    let up = kiln(&h, &r, &["up", "--image", "latest", "--progress", "json"]);
    up.assert_code(0);
    // stdout has the events, then `up`'s line per member.
    let events: Vec<Value> = up
        .stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    let reference = format!("{}/kpullp/{}:latest", r.server.host, h.name);
    assert_eq!(kinds.first(), Some(&"pull_start"), "{}", up.stdout);
    assert_eq!(events[0]["reference"], reference.as_str());
    assert_eq!(kinds.last(), Some(&"pull_end"), "{}", up.stdout);
    assert!(
        kinds[1..kinds.len() - 1].iter().all(|k| *k == "pull_layer"),
        "{kinds:?}"
    );
    let end = events.last().expect("pull_end");
    let layers: u64 = docker(&[
        "image",
        "inspect",
        "--format",
        "{{len .RootFS.Layers}}",
        &reference,
    ])
    .trim()
    .parse()
    .expect("layer count");
    assert_eq!(u64_of(end, "layers"), layers, "{end}");
    assert!(u64_of(end, "bytes") > 0, "{end}");
    assert_eq!(end["status"], "ok");
    assert!(
        up.stdout.contains(&format!("{}-web", h.name)),
        "{}",
        up.stdout
    );
    // Held now: a second `up` pulls nothing.
    let again = kiln(&h, &r, &["up", "--image", "latest", "--progress", "json"]);
    again.assert_code(0);
    assert!(!again.stdout.contains("pull_"), "{}", again.stdout);
    kiln(&h, &r, &["down"]).assert_code(0);
}
