#!/usr/bin/env bash
# Regenerates app.bundle: a git bundle of a tiny repository that the
# quickstart habitat clones into /work/app. A bundle is a single file that
# `git ls-remote` and `git clone` read like a remote, so the example needs no
# network and no server. The author and dates are fixed, so the bundle (and
# the commit kiln resolves) is the same every time this runs.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

export GIT_AUTHOR_NAME="kiln quickstart" GIT_AUTHOR_EMAIL="quickstart@kiln.invalid"
export GIT_COMMITTER_NAME="$GIT_AUTHOR_NAME" GIT_COMMITTER_EMAIL="$GIT_AUTHOR_EMAIL"
export GIT_AUTHOR_DATE="2025-01-01T00:00:00Z" GIT_COMMITTER_DATE="2025-01-01T00:00:00Z"

git -c init.defaultBranch=main init --quiet "$work/app"
cd "$work/app"
cat > README.md <<'MD'
# app

A tiny repository for kiln's quickstart habitat.
MD
cat > hello.sh <<'SH'
#!/bin/sh
echo "hello from the app repository"
SH
chmod 0755 hello.sh
git add README.md hello.sh
git -c commit.gpgsign=false commit --quiet -m "app: first commit"
# HEAD too, so a clone (and kiln without `ref:`) knows the default branch.
git bundle create --quiet "$here/app.bundle" HEAD main
echo "wrote $here/app.bundle ($(git rev-parse HEAD))"
