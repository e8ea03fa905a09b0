#!/usr/bin/env bash
# Builds the Debian package quantrac_<version>_<arch>.deb with dpkg-deb from a staging tree:
#   /usr/bin/quantracd, quantrac, quantrac-sim        release build, Swift runtime linked in (--static-swift-stdlib)
#   /lib/systemd/system/quantracd.service             Systemd/quantracd.service
#   /lib/udev/rules.d/99-quantrac-rs485.rules         Boards/udev/99-quantrac-rs485.rules
#   /etc/quantrac/station.toml                        conffile, from Boards/stations/wastewater.toml
#   /usr/share/quantrac/{stations,boards}/            the station templates and board profiles
#   /usr/share/doc/quantrac/                          README.md, Boards/README.md
# Depends: computed from the binaries' shared libraries (dpkg-shlibdeps).
#
# Environment: SWIFT (swift), SCRATCH (.build: SwiftPM scratch path), OUT (SCRATCH/deb: where the .deb goes),
# VERSION (0.1.0), MAINTAINER. Prints the path of the package on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."
SWIFT=${SWIFT:-swift}
SCRATCH=${SCRATCH:-.build}
VERSION=${VERSION:-0.1.0}
MAINTAINER=${MAINTAINER:-Quantrac maintainers <quantrac@localhost>}
ARCH=$(dpkg --print-architecture)
OUT=$(realpath -m "${OUT:-$SCRATCH/deb}")
PKG=quantrac_${VERSION}_${ARCH}
STAGE=$OUT/$PKG

for tool in dpkg-deb dpkg-shlibdeps; do
  command -v "$tool" >/dev/null || { echo "build-deb: $tool is missing (apt-get install dpkg-dev)" >&2; exit 1; }
done

echo "build-deb: swift build -c release --static-swift-stdlib (takes a few minutes)" >&2
"$SWIFT" build -c release --static-swift-stdlib --scratch-path "$SCRATCH" >&2
BIN=$("$SWIFT" build -c release --static-swift-stdlib --scratch-path "$SCRATCH" --show-bin-path)

rm -rf "$STAGE"
install -d "$STAGE/DEBIAN" "$STAGE/usr/bin" "$STAGE/lib/systemd/system" "$STAGE/lib/udev/rules.d" \
  "$STAGE/etc/quantrac" "$STAGE/usr/share/quantrac/stations" "$STAGE/usr/share/quantrac/boards" \
  "$STAGE/usr/share/doc/quantrac/Boards"

for b in quantracd quantrac quantrac-sim; do
  # Debug sections off (most of the size); the symbol table stays for readable crash backtraces.
  objcopy --strip-debug "$BIN/$b" "$STAGE/usr/bin/$b"
  chmod 0755 "$STAGE/usr/bin/$b"
  if ldd "$STAGE/usr/bin/$b" | grep -E 'not found|libswift|libFoundation|lib_Foundation|libdispatch|libBlocksRuntime'; then
    echo "build-deb: $b still needs the Swift toolchain's libraries (see above)" >&2
    exit 1
  fi
done
install -m 0644 Systemd/quantracd.service "$STAGE/lib/systemd/system/"
install -m 0644 Boards/udev/99-quantrac-rs485.rules "$STAGE/lib/udev/rules.d/"
install -m 0644 Boards/stations/wastewater.toml "$STAGE/etc/quantrac/station.toml"
for f in Boards/stations/*.toml; do
  [ "$(basename "$f")" = demo.toml ] || install -m 0644 "$f" "$STAGE/usr/share/quantrac/stations/"
done
install -m 0644 Boards/boards/*.toml "$STAGE/usr/share/quantrac/boards/"
install -m 0644 README.md "$STAGE/usr/share/doc/quantrac/"
install -m 0644 Boards/README.md "$STAGE/usr/share/doc/quantrac/Boards/"
install -m 0755 packaging/postinst packaging/prerm packaging/postrm "$STAGE/DEBIAN/"
echo /etc/quantrac/station.toml > "$STAGE/DEBIAN/conffiles"

# Shared libraries → package dependencies, as Debian's own packages compute them.
SHLIB=$(mktemp -d)
trap 'rm -rf "$SHLIB"' EXIT
mkdir -p "$SHLIB/debian"
printf 'Source: quantrac\n\nPackage: quantrac\nArchitecture: any\n' > "$SHLIB/debian/control"
if ! SHLIBDEPS=$(cd "$SHLIB" && dpkg-shlibdeps -O "$STAGE/usr/bin/quantracd" "$STAGE/usr/bin/quantrac" "$STAGE/usr/bin/quantrac-sim"); then
  echo "build-deb: dpkg-shlibdeps failed" >&2
  exit 1
fi
DEPENDS=$(sed -n 's/^shlibs:Depends=//p' <<< "$SHLIBDEPS")
[ -n "$DEPENDS" ] || { echo "build-deb: dpkg-shlibdeps found no dependencies" >&2; exit 1; }

cat > "$STAGE/DEBIAN/control" <<CONTROL
Package: quantrac
Version: $VERSION
Architecture: $ARCH
Maintainer: $MAINTAINER
Section: misc
Priority: optional
Installed-Size: $(du -sk --exclude=DEBIAN "$STAGE" | cut -f1)
Depends: $DEPENDS, passwd, util-linux
Description: data logger for automatic environmental monitoring stations (Vietnam)
 Quantrac polls the analyzers of an automatic, continuous monitoring station
 (ambient air, surface water, wastewater, stack gas) over Modbus TCP and
 Modbus RTU, stores every reading with its instrument status, builds the
 5-minute records and delivers the regulator's files (Circular 10/2021/TT-BTNMT)
 over FTP, oldest first after an outage, nothing lost.
 .
 The quantracd service runs as the quantrac user under a hardened systemd unit.
 The configuration is /etc/quantrac/station.toml; templates for the four
 station kinds and gateway board profiles are in /usr/share/quantrac.
CONTROL

dpkg-deb --root-owner-group -Zxz -z2 --build "$STAGE" "$OUT/$PKG.deb" >&2
echo "$OUT/$PKG.deb"
