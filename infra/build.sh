#!/usr/bin/env bash
# Builds the three Lambda functions the way infra/template.yaml deploys them:
# `cargo lambda build --release --arm64`, cross-compiled offline with zig,
# zipped to target/lambda/<function>/bootstrap.zip where the template's
# CodeUris point. cargo-lambda and ziglang come from PyPI into .venv-lambda
# (gitignored), pinned; the aarch64 standard library comes from rustup.
#
# This is the deployer's command, not part of tests/run-all.sh: a release
# build of the AWS SDK for another architecture takes about 20 minutes on
# 2 cores (infra/README.md has the measurements), which would push CI past
# its time for a build whose code the test suite already runs natively.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv-lambda
if [ ! -x "$VENV/bin/cargo-lambda" ]; then
    echo "== installing cargo-lambda and zig into $VENV" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check \
        'cargo-lambda==1.9.2' 'ziglang==0.17.1'
fi
if command -v rustup >/dev/null 2>&1 \
    && ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
    rustup target add aarch64-unknown-linux-gnu
fi

# The workspace's release profile keeps line tables for the CLI; the
# functions ship without symbols (17 MB instead of 92 MB per binary).
PATH="$PWD/$VENV/bin:$PATH" CARGO_PROFILE_RELEASE_STRIP=symbols \
    cargo lambda build --release --arm64 --output-format zip --locked \
    -p agencylink-fn-ingest -p agencylink-fn-api -p agencylink-fn-profile "$@"

target=${CARGO_TARGET_DIR:-target}
for f in agencylink-ingest agencylink-api agencylink-profile; do
    ls -l "$target/lambda/$f/bootstrap.zip" >&2
done
