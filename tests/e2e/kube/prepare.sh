#!/usr/bin/env bash
# Prepares everything the end-to-end suite (run.sh) needs, once per machine:
#   - apt packages: golang-1.19-go etcd-server rsync jq openssl
#   - kube-apiserver, kube-controller-manager and kubectl 1.20, built in one `make` from Debian's
#     `kubernetes` source package (all Go dependencies vendored, so no module download) and cached
#     under $PODGUARD_E2E_CACHE/bin (kubectl as kubectl-1.20: the suite's own kubectl is current;
#     the old one is for `kubectl debug`, whose request shape changed in 1.22)
#   - kubectl and helm, through scripts/tools.sh
# Idempotent: a second run finds the cached binary and returns in a second or two.
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
# The control-plane binaries this suite runs; both come from one build.
binaries=(kube-apiserver kube-controller-manager kubectl)
have_binaries() {
  { [ -n "${KUBE_APISERVER:-}" ] || [ -x "$cache/bin/kube-apiserver" ]; } &&
    { [ -n "${KUBE_CONTROLLER_MANAGER:-}" ] || [ -x "$cache/bin/kube-controller-manager" ]; } &&
    { [ -n "${KUBECTL_1_20:-}" ] || [ -x "$cache/bin/kubectl-1.20" ]; }
}
# Two prepares at once (two CI jobs, or a developer and CI) must not both build for 7 minutes.
exec 9>"$cache/.lock"
flock -w 1800 9 || die "timed out waiting for another prepare.sh holding $cache/.lock"

# --- apt packages ---------------------------------------------------------------------------
need_pkgs=()
for p in golang-1.19-go etcd-server rsync jq openssl; do
  case "$p" in
    etcd-server) [ -n "${ETCD:-}" ] && continue ;;
    golang-1.19-go)
      # The compiler is only needed when there is something to build.
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
  for b in "${binaries[@]}"; do
    out="$build/src/_output/local/bin/linux/amd64/$b"
    [ -x "$out" ] || die "build finished but $out is missing"
    name=$b
    [ "$b" = kubectl ] && name=kubectl-1.20
    install -m 0755 "$out" "$cache/bin/$name.tmp"
    mv -f "$cache/bin/$name.tmp" "$cache/bin/$name"
  done
  log "built in $((SECONDS - start)) s; cached in $cache/bin"
  # The unpacked tree, objects and Go cache are large; only the binary is worth keeping.
  start=$SECONDS
  log "build tree: $(du -sh "$build" | cut -f1); removing it"
  rm -rf "$build"
  log "removed in $((SECONDS - start)) s"
}

have_binaries || build_control_plane
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
