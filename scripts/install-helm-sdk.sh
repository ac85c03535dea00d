#!/usr/bin/env bash
# Ensures a Python virtualenv at .venv-helm (repository root) with
# helm-python-sdk, which embeds Helm v4's own Go renderer as a shared library
# (no helm binary). tests/helm_diff.rs renders every test chart with it and
# with tenant-worker's renderer and compares the results.
#
# Idempotent: does nothing when the venv already has the pinned version.
# Installs python3-venv with apt-get when `python3 -m venv` cannot run.
set -euo pipefail
cd "$(dirname "$0")/.."

version=0.2.2
venv=.venv-helm
python="$venv/bin/python"

installed() {
  [ -x "$python" ] || return 1
  local v
  v=$("$python" -c 'import importlib.metadata as m; print(m.version("helm-python-sdk"))' 2>/dev/null) || return 1
  [ "$v" = "$version" ] && "$python" -c 'import helm_python.chart' 2>/dev/null
}

if installed; then
  echo "helm-python-sdk $version is installed in $venv"
  exit 0
fi

if ! command -v python3 >/dev/null 2>&1; then
  echo "error: python3 is required to install helm-python-sdk (the reference Helm renderer of tests/helm_diff.rs)" >&2
  exit 1
fi

make_venv() {
  rm -rf "$venv"
  python3 -m venv "$venv"
}

if ! make_venv 2>/dev/null; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "error: \`python3 -m venv\` failed and this is not a Debian/Ubuntu machine; install Python's venv module" >&2
    exit 1
  fi
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  pyver=$(python3 -c 'import sys; print(f"{sys.version_info.major}.{sys.version_info.minor}")')
  $SUDO apt-get update -qq
  # Debian names the package after the minor version on some releases.
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv \
    || $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "python${pyver}-venv"
  make_venv
fi

"$python" -m pip install --quiet --disable-pip-version-check "helm-python-sdk==${version}"

if ! installed; then
  echo "error: helm-python-sdk ${version} did not install into ${venv}" >&2
  exit 1
fi
echo "installed helm-python-sdk ${version} (Helm $("$python" -c 'from helm_python import _native; print(_native.helm_sdk_version())')) in ${venv}"
