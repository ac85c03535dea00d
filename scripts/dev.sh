#!/usr/bin/env bash
# Runs the worker end to end on one machine: installs nats-server if needed,
# then `tenant-worker dev --demo` starts a child nats-server, the embedded
# Kubernetes API (kubeconfig in .dev/kubeconfig) and the worker, publishes a
# tenant.requested for tenant `demo` and prints the result. Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-nats.sh
exec cargo run --locked --quiet --features dev -- dev --demo "$@"
