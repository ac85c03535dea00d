#!/usr/bin/env bash
# The whole test suite: installs what the tests need (nats-server >= 2.10), then
# runs every unit and integration test (and the Helm SDK that the differential
# rendering test compares against, in .venv-helm). Each integration test starts its own
# nats-server on a free port and the embedded Kubernetes API in-process; the
# crash, race and restart tests also start `tenant-worker run` processes, built
# with the `failpoints` feature so that crash tests can abort them at a named
# step boundary (the release binary has no failpoints).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-nats.sh
bash scripts/install-helm-sdk.sh
cargo test --locked --features failpoints "$@"
