#!/usr/bin/env bash
# Runs every check and test agencylink has, on a fresh machine with Rust:
# formatting, clippy, unit, property and end-to-end tests over the real binary.
# This is the README's test command, and .ci/run calls it.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt --check" >&2
cargo fmt --all --check

echo "== cargo clippy" >&2
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== cargo test" >&2
cargo test --workspace --locked
