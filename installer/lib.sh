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

ensure_venv() {
  local extras="$1"
  local python="${APPLIANCE_PYTHON:-python3}"
  if [ ! -x "$VENV/bin/python" ]; then
    log "creating virtualenv $VENV"
    "$python" -m venv "$VENV"
  fi
  local stamp="$VENV/.installed-$extras"
  if [ ! -f "$stamp" ] || [ "$REPO_ROOT/pyproject.toml" -nt "$stamp" ]; then
    log "installing the appliance into $VENV ($extras)"
    "$VENV/bin/pip" install -q --upgrade pip
    "$VENV/bin/pip" install -q -e "$REPO_ROOT[$extras]"
    touch "$stamp"
  fi
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
