#!/usr/bin/env bash
# Prepares everything the end-to-end suite (run.sh) needs, once per machine:
#   - apt packages: golang-1.19-go etcd-server rsync jq openssl
#   - kube-apiserver, kube-controller-manager and kubectl 1.20, built in one `make` from Debian's
#     `kubernetes` source package (all Go dependencies vendored, so no module download) and cached
#     under $PODGUARD_E2E_CACHE/bin (kubectl as kubectl-1.20: the suite's own kubectl is current;
#     the old one is for `kubectl debug`, whose request shape changed in 1.22)
#   - kubectl and helm, through scripts/tools.sh
#   - two fixes applied to the unpacked source before `make`, without which this 1.20 built with
#     Go 1.19 cannot serve custom resources (see patch_control_plane_source below)
# Idempotent: a second run finds the cached binary and returns in a second or two. Cached
# binaries whose $PODGUARD_E2E_CACHE/bin/build-id is not $build_id (older builds have none) are
# treated as missing and rebuilt.
# KUBE_APISERVER + KUBE_CONTROLLER_MANAGER + KUBECTL_1_20 / ETCD pointing at existing binaries
# skip the build / the etcd package. Prints `KUBE_APISERVER=...`, `KUBE_CONTROLLER_MANAGER=...`,
# `KUBECTL_1_20=...` and `ETCD=...` on stdout as its last lines; progress goes to stderr.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
cache="${PODGUARD_E2E_CACHE:-$HOME/.cache/podguard-e2e}"
log() { printf 'prepare: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

sudo_() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
# Other jobs on the machine may hold the apt/dpkg locks for a while; wait for them, not fail.
apt_() { sudo_ env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -q "$@"; }

mkdir -p "$cache/bin"
# The control-plane binaries this suite runs; all three come from one build.
binaries=(kube-apiserver kube-controller-manager kubectl)
# What the cached binaries were built from: the source package plus the fixes that
# patch_control_plane_source applies. Written to $cache/bin/build-id after a build; cached binaries
# with another (or no) build-id are rebuilt. Bump it whenever those fixes or the build change.
#   (none) the plain Debian source: crashes on custom resources, refuses "" in them
#   2      + reflect2 1.0.2 from Debian, kube-openapi's typeValidator zero-value check removed
build_id="podguard-e2e-2"
cached_build_id() { cat "$cache/bin/build-id" 2>/dev/null || true; }
cached() { [ -x "$cache/bin/$1" ] && [ "$(cached_build_id)" = "$build_id" ]; }
have_binaries() {
  { [ -n "${KUBE_APISERVER:-}" ] || cached kube-apiserver; } &&
    { [ -n "${KUBE_CONTROLLER_MANAGER:-}" ] || cached kube-controller-manager; } &&
    { [ -n "${KUBECTL_1_20:-}" ] || cached kubectl-1.20; }
}
# Two prepares at once (two CI jobs, or a developer and CI) must not both build for 7 minutes.
exec 9>"$cache/.lock"
flock -w 1800 9 || die "timed out waiting for another prepare.sh holding $cache/.lock"

# --- apt packages ---------------------------------------------------------------------------
need_pkgs=()
for p in golang-1.19-go golang-github-modern-go-reflect2-dev etcd-server rsync jq openssl; do
  case "$p" in
    etcd-server) [ -n "${ETCD:-}" ] && continue ;;
    golang-1.19-go | golang-github-modern-go-reflect2-dev)
      # The compiler and the reflect2 source are only needed when there is something to build.
      have_binaries && continue ;;
  esac
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || need_pkgs+=("$p")
done
if [ "${#need_pkgs[@]}" -gt 0 ]; then
  log "installing ${need_pkgs[*]}"
  apt_ update >&2 || apt_ update >&2
  apt_ install -y --no-install-recommends "${need_pkgs[@]}" >&2
fi

# --- kube-apiserver -------------------------------------------------------------------------
# Adds a deb-src twin of every `deb` stanza of the system's deb822 sources, so `apt-get source`
# finds the kubernetes source package. The mirror is read from the machine, never hard-coded.
enable_deb_src() {
  local sys=/etc/apt/sources.list.d/debian.sources
  local ours=/etc/apt/sources.list.d/podguard-e2e-src.sources
  [ -f "$ours" ] && return 0
  [ -f "$sys" ] || die "$sys not found: cannot derive a deb-src entry"
  log "adding deb-src entries derived from $sys"
  sed -e 's/^Types:.*$/Types: deb-src/' "$sys" | sudo_ tee "$ours" >/dev/null
  apt_ update >&2
}

# replace_line FILE OLD NEW: replaces the line of FILE that is exactly OLD by NEW; fails unless
# exactly one line is OLD, and checks the result, so a changed source is noticed, never half-patched.
replace_line() {
  local file=$1 old=$2 new=$3 n
  n=$(grep -cxF -- "$old" "$file" || true)
  [ "$n" = 1 ] || die "patching $file: expected exactly 1 line '$old', found $n (has the source changed?)"
  OLD=$old NEW=$new awk '$0 == ENVIRON["OLD"] { print ENVIRON["NEW"]; next } { print }' \
    "$file" >"$file.patched" || die "patching $file failed"
  mv -f "$file.patched" "$file"
  grep -qxF -- "$new" "$file" && ! grep -qxF -- "$old" "$file" || die "patching $file: no effect"
}

# patch_control_plane_source SRC: the two fixes this 1.20.2 needs when built with Go 1.19 to serve
# custom resources; without them the suite's custom resource scenario fails.
patch_control_plane_source() {
  local src=$1
  # 1. github.com/modern-go/reflect2 1.0.1 (used by json-iterator) reaches into the runtime with
  #    `//go:linkname mapiterinit reflect.mapiterinit` and the pre-Go-1.18 signature (it returns
  #    the iterator; since 1.18 the caller passes it in), so the API server dies (SIGSEGV, "fatal
  #    error: fault") on the first custom resource it decodes: the CRD handler's schema coercer
  #    marshals the resource's metadata map with json-iterator, which iterates maps through
  #    reflect2. 1.0.2 has go_above_118.go for the new signature; Debian packages it as
  #    golang-github-modern-go-reflect2-dev. Its files replace the vendored ones (--delete:
  #    1.0.1's go_below_19.go and the like would clash; LICENSE is kept, Debian ships it
  #    elsewhere; the package's go.mod is left out, vendor/ carries none).
  local r2=/usr/share/gocode/src/github.com/modern-go/reflect2
  local r2_version
  r2_version=$(dpkg-query -W -f='${Version}' golang-github-modern-go-reflect2-dev 2>/dev/null || true)
  [ -f "$r2/go_above_118.go" ] ||
    die "$r2/go_above_118.go missing: golang-github-modern-go-reflect2-dev ($r2_version) is not >= 1.0.2"
  [ -d "$src/vendor/github.com/modern-go/reflect2" ] || die "no vendored reflect2 in $src"
  log "replacing vendored reflect2 1.0.1 with Debian's $r2_version"
  rsync -a --delete --exclude=LICENSE --exclude=go.mod "$r2/" "$src/vendor/github.com/modern-go/reflect2/"
  # go.mod and vendor/modules.txt still say v1.0.1 and are left alone: the build runs in GOPATH
  # mode (hack/lib/init.sh exports GO111MODULE=off), which reads the vendor tree and neither
  # file, and there is no module-mode build to keep consistent (with Go 1.19 `go build
  # -mod=vendor` already refuses the unpatched tree: "updates to go.mod needed").
  # 2. The CRD schema validator (k8s.io/kube-openapi's fork of go-openapi/validate) treats a
  #    present "" as null, refusing `spec.x: Invalid value: "null": spec.x in body must be of
  #    type string`. Its typeValidator tests
  #        reflect.DeepEqual(reflect.Zero(reflect.TypeOf(data)), reflect.ValueOf(data))
  #    which compares the two reflect.Value structs (type, data pointer, flags), not the values
  #    they hold. Up to Go 1.15 reflect.Zero pointed at a fresh allocation, so this was never
  #    true: dead code. Since Go 1.16 reflect.Zero points small types at the runtime's shared
  #    zero buffer (runtime.zeroVal), which is also where the runtime boxes "" into an interface,
  #    so for "" the structs are identical and the value is taken for null (false and 0 are
  #    boxed from runtime.staticuint64s and happen to escape). A present zero value is a value:
  #    upstream removed the clause (kubernetes/kube-openapi#230, in Kubernetes 1.21), which
  #    restores exactly what 1.20 did when built with the Go 1.15 it was released with; only a
  #    real JSON null (data == nil) still needs `nullable`. The same code in
  #    vendor/github.com/go-openapi/validate is not imported by anything built here.
  replace_line "$src/vendor/k8s.io/kube-openapi/pkg/validation/validate/type.go" \
    $'\tif data == nil || reflect.DeepEqual(reflect.Zero(reflect.TypeOf(data)), reflect.ValueOf(data)) {' \
    $'\tif data == nil {'
}

build_control_plane() {
  local build="$cache/build"
  rm -rf "$build"
  mkdir -p "$build/home"
  enable_deb_src
  log "downloading the kubernetes source package"
  # apt-get source drops privileges to _apt for the download; give it a directory it can write.
  chmod 0777 "$build"
  (cd "$build" && apt_ source --download-only kubernetes >&2)
  local orig
  orig=$(find "$build" -maxdepth 1 -name 'kubernetes_*.orig.tar.gz' | head -n1)
  [ -n "$orig" ] || die "apt-get source did not fetch kubernetes_*.orig.tar.gz"
  log "unpacking $(basename "$orig")"
  mkdir -p "$build/src"
  tar -xzf "$orig" -C "$build/src" --strip-components=1
  local version
  version=$(basename "$orig" | sed -E 's/^kubernetes_(.*)\.orig\.tar\.gz$/\1/; s/^.*really//')
  patch_control_plane_source "$build/src"
  # Debian's rules build inside a GOPATH whose k8s.io/kubernetes is the source root itself.
  mkdir -p "$build/src/.go/src/k8s.io"
  ln -sfn "$build/src" "$build/src/.go/src/k8s.io/kubernetes"
  log "building ${binaries[*]} v$version (several minutes; log: $build/make.log)"
  local start=$SECONDS
  (
    cd "$build/src/.go/src/k8s.io/kubernetes"
    # A private HOME and Go cache keep the build from touching the user's; no .git, so the
    # version comes from KUBE_GIT_VERSION.
    env GOPATH="$build/src/.go" PATH="/usr/lib/go-1.19/bin:$PATH" CGO_ENABLED=0 \
      HOME="$build/home" GOCACHE="$build/home/go-build" \
      KUBE_GIT_VERSION="v$version" KUBE_GIT_TREE_STATE=clean KUBE_VERBOSE=1 \
      make WHAT="cmd/kube-apiserver cmd/kube-controller-manager cmd/kubectl"
  ) >"$build/make.log" 2>&1 || { tail -n 40 "$build/make.log" >&2; die "control-plane build failed"; }
  local b out name
  # No build-id while the binaries are being replaced: an interrupted install is rebuilt.
  rm -f "$cache/bin/build-id"
  for b in "${binaries[@]}"; do
    out="$build/src/_output/local/bin/linux/amd64/$b"
    [ -x "$out" ] || die "build finished but $out is missing"
    name=$b
    [ "$b" = kubectl ] && name=kubectl-1.20
    install -m 0755 "$out" "$cache/bin/$name.tmp"
    mv -f "$cache/bin/$name.tmp" "$cache/bin/$name"
  done
  echo "$build_id" >"$cache/bin/build-id.tmp"
  mv -f "$cache/bin/build-id.tmp" "$cache/bin/build-id"
  log "built in $((SECONDS - start)) s; cached in $cache/bin"
  # The unpacked tree, objects and Go cache are large; only the binary is worth keeping.
  start=$SECONDS
  log "build tree: $(du -sh "$build" | cut -f1); removing it"
  rm -rf "$build"
  log "removed in $((SECONDS - start)) s"
}

if ! have_binaries; then
  old_id=$(cached_build_id)
  if [ -x "$cache/bin/kube-apiserver" ] && [ "$old_id" != "$build_id" ]; then
    log "cached binaries are build-id '${old_id:-none}', this script builds '$build_id': rebuilding"
  fi
  build_control_plane
fi
apiserver="${KUBE_APISERVER:-$cache/bin/kube-apiserver}"
controller_manager="${KUBE_CONTROLLER_MANAGER:-$cache/bin/kube-controller-manager}"
kubectl_old="${KUBECTL_1_20:-$cache/bin/kubectl-1.20}"
for b in "$apiserver" "$controller_manager" "$kubectl_old"; do
  [ -x "$b" ] || die "$b is not an executable"
done
etcd="${ETCD:-$(command -v etcd || true)}"
if [ -z "$etcd" ] || [ ! -x "$etcd" ]; then die "etcd not found (install etcd-server or set ETCD)"; fi

# --- kubectl and helm -------------------------------------------------------------------------
# shellcheck source=scripts/tools.sh
source "$repo/scripts/tools.sh"
for tool in kubectl helm; do command -v "$tool" >/dev/null || die "$tool missing after tools.sh"; done

log "kube-apiserver: $("$apiserver" --version 2>&1 | head -n1)"
log "kube-controller-manager: $("$controller_manager" --version 2>&1 | head -n1)"
log "kubectl-1.20: $("$kubectl_old" version --client --short 2>&1 | head -n1)"
log "etcd: $("$etcd" --version 2>&1 | head -n1)"
echo "KUBE_APISERVER=$apiserver"
echo "KUBE_CONTROLLER_MANAGER=$controller_manager"
echo "KUBECTL_1_20=$kubectl_old"
echo "ETCD=$etcd"
