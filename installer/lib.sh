# Shared by installer/dev-up and installer/run-tests: idempotent set-up steps for Debian 12.
# shellcheck shell=bash

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${APPLIANCE_VENV:-$REPO_ROOT/.venv}"

# Debian packages the appliance and its tests use. Keep in sync with docs/install.md.
APT_PACKAGES=(
  python3 python3-venv python3-dev gcc
  softhsm2 opensc
  slapd ldap-utils
  poppler-utils
  openssl ca-certificates curl
  fonts-lxgw-wenkai
)
APT_TEST_PACKAGES=(chromium fonts-wqy-microhei postgresql postgresql-client libnss3-tools nginx nftables wireguard-tools iproute2 redis-server)

log() { printf '\033[1m==> %s\033[0m\n' "$*"; }

need_root() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "run this as root (it installs Debian packages)" >&2
    exit 1
  fi
}

install_apt_packages() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  # Packages such as slapd start a daemon on install; we run our own instances on
  # loopback instead, so forbid service starts during the install.
  local added_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    added_policy=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
  [ "$added_policy" -eq 1 ] && rm -f /usr/sbin/policy-rc.d
  return 0
}

# The venv holds exactly requirements/<lock>.lock (hash-checked), then the appliance itself
# as an editable install without dependencies, built with the locked setuptools.
ensure_venv() {
  local lock="$REPO_ROOT/requirements/$1.lock"
  local python="${APPLIANCE_PYTHON:-python3}"
  if [ ! -x "$VENV/bin/python" ]; then
    log "creating virtualenv $VENV"
    "$python" -m venv "$VENV"
  fi
  local stamp="$VENV/.installed-$1"
  if [ ! -f "$stamp" ] || ! cmp -s "$lock" "$stamp" || [ "$REPO_ROOT/pyproject.toml" -nt "$stamp" ]; then
    log "installing requirements/$1.lock and the appliance into $VENV"
    pip_locked "$VENV/bin/pip" install -q -r "$lock"
    "$VENV/bin/pip" install -q --no-deps --no-build-isolation -e "$REPO_ROOT"
    cp "$lock" "$stamp"
  fi
}

# pip with every file hash-checked against a lock. Only the package index counts: a
# find-links folder or extra index in the host's pip settings could hold other builds.
pip_locked() {
  local pip="$1"; shift
  env -u PIP_FIND_LINKS -u PIP_EXTRA_INDEX_URL PIP_CONFIG_FILE=/dev/null \
    "$pip" "$@" --require-hashes --disable-pip-version-check
}

# Start PostgreSQL if it is not answering on 127.0.0.1:5432, and make sure the test
# role and database exist. Prints the SQLAlchemy URL for the tests.
ensure_postgres() {
  if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    log "starting PostgreSQL"
    local version
    version="$(ls /etc/postgresql | sort -V | tail -n 1)"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
  fi
  runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 <<'SQL' >/dev/null
SELECT 'CREATE ROLE appliance_test LOGIN PASSWORD ''appliance_test'''
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'appliance_test')\gexec
SELECT 'CREATE DATABASE appliance_test OWNER appliance_test'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'appliance_test')\gexec
SQL
  echo "postgresql+psycopg://appliance_test:appliance_test@127.0.0.1:5432/appliance_test"
}

# Every file of the runtime, build and controller locks for Debian's python3 (the one the
# Ansible role installs with), hash-checked, in one folder: the Ansible real-run test
# builds the offline bundle from it without the network. Prints the folder.
ensure_locked_wheelhouse() {
  local folder="${APPLIANCE_TEST_WHEELHOUSE:-$REPO_ROOT/var/wheelhouse}"
  local stamp="$folder/.locks"
  local locks=("$REPO_ROOT"/requirements/{runtime,build,controller}.lock)
  if [ ! -f "$folder/SHA256SUMS" ] || ! cat "${locks[@]}" | cmp -s - "$stamp"; then
    log "downloading the locked wheels for /usr/bin/python3 into $folder" >&2
    rm -rf "$folder"
    mkdir -p "$folder"
    /usr/bin/python3 -m venv "$folder/.venv"
    local requirements=()
    for lock in "${locks[@]}"; do requirements+=(-r "$lock"); done
    pip_locked "$folder/.venv/bin/pip" download -q --only-binary=:all: --dest "$folder" "${requirements[@]}" >&2
    rm -rf "$folder/.venv"
    (cd "$folder" && sha256sum ./*.whl > SHA256SUMS)
    cat "${locks[@]}" > "$stamp"
  fi
  echo "$folder"
}
