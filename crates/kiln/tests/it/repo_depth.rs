//! `depth: N` (SPEC §2.1) on the real engine: the image's checkout keeps N
//! commits of history, on its branch; changing `depth` rebuilds from repos.

use crate::support::{Habitat, docker, sh};

#[test]
fn a_shallow_repo_lands_with_depth_commits_of_history() {
    let h = Habitat::new("ignt-depth");
    let repo = h.root().join("repo");
    std::fs::create_dir(&repo).expect("repo dir");
    sh(
        &repo,
        "git init -q -b main . && for n in 1 2 3; do echo $n > N && git add N && \
         git -c user.name=t -c user.email=t@t commit -qm $n; done",
    );
    let tip = sh(&repo, "git rev-parse HEAD");
    h.config(
        "name: @NAME@\nbuild:\n  base: { image: \"kiln-test/busybox:latest\" }\n  repos:\n    - { url: \"@ROOT@/repo\", path: /work/app, ref: main, depth: 1 }\n",
    );
    h.build_ok(&[]);
    let image = format!("habitat-{}:latest", h.name);
    let show = |script: &str| {
        docker(&[
            "run",
            "--rm",
            "--entrypoint",
            "/bin/sh",
            &image,
            "-c",
            script,
        ])
    };
    assert_eq!(
        show("cat /work/app/.git/shallow /work/app/.git/HEAD /work/app/N"),
        format!("{tip}\nref: refs/heads/main\n3\n"),
        "one commit of history, on the local branch"
    );
    h.edit("depth: 1", "depth: 2");
    let run = h.build_ok(&[]);
    assert_eq!(
        run.built().first().map(String::as_str),
        Some("repos"),
        "{}",
        run.stdout
    );
    h.edit(", depth: 2", "");
    h.build_ok(&[]);
    assert_eq!(
        show("test -e /work/app/.git/shallow || echo whole"),
        "whole\n"
    );
}
