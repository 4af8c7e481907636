//! A credential in a repo URL (`http://user:TOKEN@host/…`), on the real
//! engine against a local git server that wants it: the fetch uses it, and
//! nothing kiln writes or prints shows it (output in every mode, the
//! snapshot labels, the image's `.git/config`, `kiln plan`'s reasons, kiln's
//! cache, a failure's message).

use std::path::{Path, PathBuf};

use crate::support::{self, Habitat, docker, sh};

const TOKEN: &str = "tok-Qx7-cr3d3nt1al";

/// Every file under `dir` whose name or content shows `needle`.
fn files_showing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.to_string_lossy().contains(needle) {
            found.push(p.clone());
        }
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            found.extend(files_showing(&p, needle));
        } else if meta.is_file()
            && std::fs::read(&p)
                .is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes()))
        {
            found.push(p);
        }
    }
    found
}

fn run_in(name: &str, image: &str, cmd: &str) -> String {
    docker(&[
        "run",
        "--rm",
        "--label",
        &format!("dev.kiln.habitat={name}"),
        "--entrypoint",
        "/bin/sh",
        image,
        "-c",
        cmd,
    ])
}

#[test]
fn regression_credentials_in_a_repo_url_reach_no_label_log_image_or_reason() {
    let h = Habitat::new("cred");
    let repo = h.root().join("repo");
    let served = h.root().join("srv");
    std::fs::create_dir_all(&repo).expect("mkdir");
    std::fs::create_dir_all(&served).expect("mkdir");
    sh(
        &repo,
        "git init -q -b main . && echo one > README && git add README && \
         git -c user.name=t -c user.email=t@t commit -qm one",
    );
    sh(
        &served,
        &format!(
            "git clone -q --bare {} app.git && git -C app.git update-server-info",
            repo.display()
        ),
    );
    let server = kiln_core::testing::serve_git_http(&served, "kiln", TOKEN).expect("serve");
    let host = server.base.trim_start_matches("http://").to_string();
    let plain = format!("{}/app.git", server.base);
    h.config(&format!(
        r#"name: @NAME@
build:
  base: {{ image: "kiln-test/busybox:latest" }}
  repos:
    - {{ url: "http://kiln:{TOKEN}@{host}/app.git", path: /work/app, ref: main }}
  final:
    command: ["sh"]
"#
    ));

    let run = h.build_ok(&[]);
    let shown = |what: &str, text: &str| {
        assert!(
            !text.contains(TOKEN),
            "{what} shows the credential:\n{text}"
        );
    };
    shown("the json output", &format!("{}{}", run.stdout, run.stderr));
    assert!(
        run.stdout.contains(&format!("{plain} @ ")),
        "the repos log names the URL:\n{}",
        run.stdout
    );
    for (tag, labels) in support::tags_of(&h.name).into_iter().map(|t| {
        let labels = support::labels_of(&format!("habitat-{}:{t}", h.name));
        (t, labels)
    }) {
        shown(&format!("the labels of {tag}"), &format!("{labels:?}"));
    }
    let inputs = support::labels_of(&format!("habitat-{}:7-repos", h.name))
        .remove("dev.kiln.inputs")
        .expect("inputs label");
    assert!(inputs.contains(&plain), "{inputs}");
    let latest = format!("habitat-{}:latest", h.name);
    let config = run_in(&h.name, &latest, "cat /work/app/.git/config");
    shown("the image's .git/config", &config);
    assert!(config.contains(&format!("url = {plain}")), "{config}");

    // A moved branch: `plan` and a plain build give the reason, URL stripped.
    sh(
        &repo,
        "echo two > README && git -c user.name=t -c user.email=t@t commit -qam two",
    );
    sh(
        &served,
        &format!(
            "git -C app.git fetch -q {} main:main && git -C app.git update-server-info",
            repo.display()
        ),
    );
    let plan = h.kiln(&["plan", "."]).run();
    plan.assert_code(0);
    shown("kiln plan", &format!("{}{}", plan.stdout, plan.stderr));
    assert!(
        plan.stdout.contains(&format!("repo {plain} moved from")),
        "{}",
        plan.stdout
    );
    let build = h.kiln(&["build", ".", "--progress", "plain"]).run();
    build.assert_code(0);
    shown(
        "the plain output",
        &format!("{}{}", build.stdout, build.stderr),
    );

    // A refused fetch fails without showing the (wrong) credential.
    h.edit(TOKEN, &format!("WRONG{TOKEN}"));
    let failed = h.build(&[]);
    assert_ne!(failed.code, 0, "{}", failed.stderr);
    shown("a failure", &format!("{}{}", failed.stdout, failed.stderr));
    assert!(failed.stderr.contains(&plain), "{}", failed.stderr);

    assert_eq!(
        files_showing(&h.cache(), TOKEN),
        Vec::<PathBuf>::new(),
        "the credential is in kiln's cache"
    );
}
