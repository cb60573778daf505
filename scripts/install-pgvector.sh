#!/usr/bin/env bash
# Builds and installs the pgvector extension for the local PostgreSQL server.
# Debian 12 (bookworm) does not package pgvector, so it is built from Debian 13 (trixie)'s source
# package against postgresql-server-dev. The trixie deb-src line lives in a private apt
# configuration under $WORK_DIR, so the system's apt sources are left untouched.
# Idempotent: prints one line and exits when the extension is already installed.
#
# Environment: PG_MAJOR (default: newest cluster under /etc/postgresql, else 15),
#              DEBIAN_MIRROR (default http://deb.debian.org/debian),
#              PGVECTOR_WORK_DIR (default /var/cache/atlas-pgvector).
set -euo pipefail

PG_MAJOR="${PG_MAJOR:-$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)}"
PG_MAJOR="${PG_MAJOR:-15}"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
WORK_DIR="${PGVECTOR_WORK_DIR:-/var/cache/atlas-pgvector}"
LOG="$WORK_DIR/install.log"
# The version-specific pg_config (from postgresql-server-dev) so a libpq-only /usr/bin/pg_config
# or another server version can't redirect the build.
PG_CONFIG="/usr/lib/postgresql/$PG_MAJOR/bin/pg_config"

say() { echo "install-pgvector: $*"; }
fail() {
  echo "install-pgvector: ERROR: $*" >&2
  exit 1
}

# Runs a step with its output in $LOG; on failure shows the step and the end of its output.
step() {
  local what="$1"
  shift
  say "$what"
  if ! "$@" >>"$LOG" 2>&1; then
    tail -n 25 "$LOG" >&2
    fail "$what failed (full log: $LOG)"
  fi
}

installed_version() {
  local sharedir libdir
  if [[ -x "$PG_CONFIG" ]]; then
    sharedir="$("$PG_CONFIG" --sharedir)"
    libdir="$("$PG_CONFIG" --pkglibdir)"
  else
    sharedir="/usr/share/postgresql/$PG_MAJOR"
    libdir="/usr/lib/postgresql/$PG_MAJOR/lib"
  fi
  [[ -f "$sharedir/extension/vector.control" && -f "$libdir/vector.so" ]] || return 1
  sed -n "s/^default_version *= *'\(.*\)'.*/\1/p" "$sharedir/extension/vector.control"
}

if version="$(installed_version)"; then
  say "pgvector $version already installed for PostgreSQL $PG_MAJOR"
  exit 0
fi

[[ "$(id -u)" == 0 ]] || fail "must run as root: it installs Debian packages and writes into PostgreSQL's directories"
[[ -d "/usr/lib/postgresql/$PG_MAJOR" ]] || fail "PostgreSQL $PG_MAJOR is not installed (apt-get install postgresql-$PG_MAJOR), or set PG_MAJOR"

mkdir -p "$WORK_DIR"
: >"$LOG"
export DEBIAN_FRONTEND=noninteractive

missing=()
for pkg in "postgresql-server-dev-$PG_MAJOR" build-essential dpkg-dev ca-certificates; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if ((${#missing[@]})); then
  step "updating apt package lists" apt-get update -q
  step "installing build dependencies: ${missing[*]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Private apt state: only the trixie source index, in its own lists and cache directories.
apt_dir="$WORK_DIR/apt"
rm -rf "$apt_dir"
mkdir -p "$apt_dir/lists/partial" "$apt_dir/sources.list.d" "$apt_dir/cache/archives/partial"
echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $DEBIAN_MIRROR trixie main" \
  >"$apt_dir/sources.list"
apt_private=(
  -o "Dir::Etc::SourceList=$apt_dir/sources.list"
  -o "Dir::Etc::SourceParts=$apt_dir/sources.list.d"
  -o "Dir::State::Lists=$apt_dir/lists"
  -o "Dir::Cache=$apt_dir/cache"
  # Downloads land in the root-owned build directory, which the _apt sandbox user cannot write.
  -o "APT::Sandbox::User=root"
)
step "fetching the trixie source index" apt-get "${apt_private[@]}" update -q

build_dir="$WORK_DIR/build"
rm -rf "$build_dir"
mkdir -p "$build_dir"
step "downloading the pgvector source package" \
  bash -c 'cd "$1" && shift && apt-get "$@" source pgvector' _ "$build_dir" "${apt_private[@]}"

src_dir="$(find "$build_dir" -mindepth 1 -maxdepth 1 -type d -name 'pgvector-*' | head -n 1)"
[[ -n "$src_dir" ]] || fail "apt-get source pgvector produced no pgvector-* directory in $build_dir (log: $LOG)"

# OPTFLAGS="" drops pgvector's default -march=native, so the library runs on any x86-64 CPU.
step "building $(basename "$src_dir")" make -C "$src_dir" PG_CONFIG="$PG_CONFIG" OPTFLAGS=""
step "installing into PostgreSQL $PG_MAJOR" make -C "$src_dir" PG_CONFIG="$PG_CONFIG" OPTFLAGS="" install

version="$(installed_version)" || fail "make install finished but vector.control or vector.so is missing (log: $LOG)"
rm -rf "$build_dir"
say "pgvector $version installed for PostgreSQL $PG_MAJOR"
