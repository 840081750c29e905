# Shared by the ops/ scripts: install missing Debian packages, then build (Release).
# Sourced, not run.

OMNIROUTE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OMNIROUTE_BUILD="${OMNIROUTE_BUILD:-$OMNIROUTE_ROOT/build}"

# Debian 12 packages the build and the tests need.
OMNIROUTE_PACKAGES=(
  g++ cmake ninja-build pkg-config
  libcaf-dev librdkafka-dev librocksdb-dev nlohmann-json3-dev prometheus-cpp-dev
  doctest-dev libcpp-httplib-dev libcli11-dev libjemalloc-dev libsimdjson-dev libssl-dev
)

omniroute_log() { echo "omniroute: $*" >&2; }

# Installs whatever is missing; runs apt-get update only when something is.
omniroute_install() {
  local missing=()
  for pkg in "${OMNIROUTE_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  ((${#missing[@]} == 0)) && return 0
  omniroute_log "installing ${missing[*]}"
  local sudo=()
  [ "$(id -u)" -ne 0 ] && sudo=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# Configures (once) and builds; an up-to-date build does nothing.
omniroute_build() {
  if [ ! -f "$OMNIROUTE_BUILD/build.ninja" ]; then
    omniroute_log "configuring a Release build in $OMNIROUTE_BUILD"
    cmake -S "$OMNIROUTE_ROOT" -B "$OMNIROUTE_BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release >&2
  fi
  cmake --build "$OMNIROUTE_BUILD" >&2
}

omniroute_setup() {
  omniroute_install
  omniroute_build
}
