#!/usr/bin/env bash
# Runs every check and test agencylink has, on a fresh machine with Rust and
# Python 3: formatting, clippy, unit, property and end-to-end tests over the
# real binary, the AWS suites against moto server on loopback, the
# infrastructure template's linters (cfn-lint, checkov, sam validate --lint),
# and a short coverage-guided fuzz run of every target (tests/fuzz.sh).
# Not here: the arm64 release build of the Lambda functions (infra/build.sh,
# about 20 minutes on 2 cores), which is the deployer's command.
# This is the README's test command, and .ci/run calls it.
set -euo pipefail
cd "$(dirname "$0")/.."

# A one-off build gains nothing from incremental state, which would add
# about a quarter to target/'s size.
if [ -n "${CI:-}" ]; then
    export CARGO_INCREMENTAL=0
fi

# The fuzz targets' instrumented build (and cargo-afl, the first time) in
# the background, at low priority: it takes about 5 minutes of CPU, which
# it mostly finds while this script waits on downloads and moto.
mkdir -p tests/artifacts
nice -n 19 tests/fuzz.sh build >tests/artifacts/fuzz-build.log 2>&1 &
FUZZ_BUILD_PID=$!
stop_fuzz_build() {
    kill "$FUZZ_BUILD_PID" 2>/dev/null || true
}
trap stop_fuzz_build EXIT

# The profile's HTML test opens the page in headless Chromium, and the
# workbench test drives the browser UI through chromedriver (Debian's
# packages); with CI set, those tests fail rather than skip without them.
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    echo "== installing chromium and chromedriver (headless browser tests)" >&2
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
    $SUDO apt-get update && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y chromium chromium-driver
fi

echo "== cargo fmt --check" >&2
cargo fmt --all --check

echo "== cargo clippy" >&2
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings
# The default CLI (no AWS backend) is what `demo` builds: lint it too.
cargo clippy -p agencylink-cli --all-targets --locked -- -D warnings

# moto server (AWS wire protocols on 127.0.0.1) and the template linters live
# in a virtualenv (.venv, gitignored); pinned so every machine tests the same.
echo "== python tools (.venv: moto server, cfn-lint, checkov, openapi-spec-validator)" >&2
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check \
    'moto[server]==5.2.5' 'cfn-lint==1.58.0' 'checkov==3.3.30' 'aws-sam-translator==1.115.0' \
    'openapi-spec-validator==0.9.0'

# The API's OpenAPI 3.1 document: generated from crates/http's route table
# (whose tests hold docs/openapi.json and the template's API events to it),
# validated here as a client generator would read it.
echo "== api: openapi-spec-validator docs/openapi.json" >&2
.venv/bin/openapi-spec-validator docs/openapi.json

echo "== infra: cfn-lint and checkov" >&2
.venv/bin/cfn-lint infra/template.yaml
.venv/bin/checkov --quiet --compact --skip-download --framework cloudformation \
    --file infra/template.yaml

# `sam validate --lint` (the SAM CLI's own check: the transform, then
# cfn-lint) as a deployer runs it. aws-sam-cli pins boto3 and friends in a
# way moto's and checkov's pins cannot share, so it has its own virtualenv,
# .venv-sam (gitignored). Offline; the region is only for the transform.
echo "== infra: sam validate --lint" >&2
if [ ! -x .venv-sam/bin/python ]; then
    python3 -m venv .venv-sam
fi
.venv-sam/bin/pip install --quiet --disable-pip-version-check 'aws-sam-cli==1.170.0'
SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=eu-west-2 AWS_REGION=eu-west-2 \
    .venv-sam/bin/sam validate --lint --template-file infra/template.yaml

# IAM proven, not assumed: the template after the SAM transform (offline,
# aws-sam-translator) through a real IAM policy evaluator (npm
# @cloud-copilot/iam-simulate, pinned by tests/iam/package-lock.json) over
# tests/iam/matrix.json; also fails when infra/README.md's table is stale.
echo "== infra: IAM matrix" >&2
command -v node >/dev/null 2>&1 || { echo "node (20 or later) and npm are needed for the IAM matrix" >&2; exit 1; }
(
    cd tests/iam
    # npm ci wipes node_modules: only when the lock file changed.
    if ! cmp -s package-lock.json node_modules/.agencylink-lock; then
        npm ci --no-audit --no-fund --loglevel=error
        cp package-lock.json node_modules/.agencylink-lock
    fi
)
.venv/bin/python tests/iam/check.py

echo "== moto server" >&2
mkdir -p tests/artifacts
MOTO_PORT=$(.venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
.venv/bin/moto_server -H 127.0.0.1 -p "$MOTO_PORT" >tests/artifacts/moto.log 2>&1 &
MOTO_PID=$!
stop_moto() {
    # moto takes over a second to exit: stop it by its PID and wait for it.
    kill "$MOTO_PID" 2>/dev/null || true
    wait "$MOTO_PID" 2>/dev/null || true
    stop_fuzz_build
}
trap stop_moto EXIT
.venv/bin/python - "$MOTO_PORT" <<'PY'
import sys, time, urllib.request
url = f"http://127.0.0.1:{sys.argv[1]}/moto-api/"
for _ in range(300):
    try:
        urllib.request.urlopen(url, timeout=1)
        sys.exit(0)
    except Exception:
        time.sleep(0.1)
sys.exit(f"moto server did not answer at {url}: see tests/artifacts/moto.log")
PY
export AWS_ENDPOINT_URL="http://127.0.0.1:$MOTO_PORT"
export AWS_REGION=eu-west-2 AWS_DEFAULT_REGION=eu-west-2
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
export AWS_EC2_METADATA_DISABLED=true
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_SECURITY_TOKEN
echo "moto server on $AWS_ENDPOINT_URL (pid $MOTO_PID)" >&2

echo "== cargo test" >&2
cargo test --workspace --all-features --locked

# Coverage-guided fuzzing, a short fixed run of every target (AFL++ through
# cargo-afl; the first run installs it). The long run is a documented
# command: tests/fuzz.sh 3600 [TARGET...].
echo "== fuzz (AFL++, 10 s a target)" >&2
if ! wait "$FUZZ_BUILD_PID"; then
    cat tests/artifacts/fuzz-build.log >&2
    echo "the fuzz targets did not build: see above" >&2
    exit 1
fi
tests/fuzz.sh 10
