#!/usr/bin/env bash
# The whole test suite: installs what the tests need (nats-server >= 2.10, the
# Helm SDK that the differential rendering test compares against, in
# .venv-helm, and a real Kubernetes control plane, built once and cached, see
# scripts/install-control-plane.sh), then runs every unit and integration test
# of the workspace. Each integration test starts its own nats-server on a free
# port and the embedded Kubernetes API in-process, or, for the real-cluster
# tests, shares one etcd + kube-apiserver + kube-controller-manager per test
# binary (or uses TENANT_WORKER_TEST_KUBECONFIG's cluster). The crash, race and
# restart tests also start `tenant-worker run` processes, built with the
# `failpoints` feature so that crash tests can abort them at a named step
# boundary (the release binary has no failpoints).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-nats.sh
bash scripts/install-helm-sdk.sh
if [ -z "${TENANT_WORKER_TEST_KUBECONFIG:-}" ]; then
  bash scripts/install-control-plane.sh >/dev/null
fi
cargo test --locked --workspace --features failpoints,dev "$@"
