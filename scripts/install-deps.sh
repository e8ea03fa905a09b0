#!/usr/bin/env bash
# Installs what Quantrac needs to build, run and test on Debian 12, only what is missing.
# Idempotent: a second run does nothing but check.
set -euo pipefail

APT_PACKAGES=(pkg-config gcc libc6-dev libmodbus-dev libserialport-dev libcurl4-openssl-dev libsqlite3-dev socat mbpoll
              openssh-server openssh-client openssl
              systemd dpkg-dev binutils
              chromium fonts-dejavu-core)
# chromium (headless) renders the status page in Tests/IntegrationTests/StatusPageTests.swift;
# fonts-dejavu-core gives it glyphs for Vietnamese.
PIP_PACKAGES=("pymodbus==3.16.1" "pyftpdlib==2.2.0" "pyserial==3.5" "pyopenssl")
# `--bench` (make bench) adds the benchmark peers: collectd (footprint), lftp, vsftpd and curl (backlog drain).
# Not needed by make test.
if [ "${1:-}" = "--bench" ]; then
  APT_PACKAGES+=(collectd-core lftp vsftpd curl)
fi

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-deps: installing apt packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if ! "$PY" - <<'PY' 2>/dev/null
import importlib.metadata as m
want = {"pymodbus": "3.16.1", "pyftpdlib": "2.2.0", "pyserial": "3.5"}
for name, ver in want.items():
    assert m.version(name) == ver, name
import OpenSSL  # noqa: F401
PY
then
  echo "install-deps: installing pip packages: ${PIP_PACKAGES[*]}"
  "$PY" -m pip install -q --disable-pip-version-check "${PIP_PACKAGES[@]}"
fi

command -v swift >/dev/null || { echo "install-deps: swift is not on PATH (expected the Swift 6 toolchain, e.g. /opt/swift/usr/bin)" >&2; exit 1; }
echo "install-deps: all dependencies present"
