#!/bin/bash
# check-static.sh ROOTFS: every ELF file under ROOTFS is statically linked (no program interpreter,
# no NEEDED library), and ROOTFS holds no Debian package (.deb). Lists each ELF file with its size
# and, for Go programs, the module and version it was built from. Exit 1 naming each offender.
# Needs readelf (binutils) and go (go version -m reads the build information without running it).
set -euo pipefail
[ $# = 1 ] && [ -d "$1" ] || { echo "usage: check-static.sh ROOTFS" >&2; exit 2; }
for c in readelf go; do command -v $c >/dev/null || { echo "check-static.sh: $c not found (apt-get install binutils)" >&2; exit 1; }; done
R=$1; bad=0; n=0
while IFS= read -r -d '' f; do
  [ "$(head -c 4 "$f" | od -An -c | tr -d ' ')" = 177ELF ] || continue
  n=$((n + 1)); rel=${f#"$R"/}
  ver=$(go version -m "$f" 2>/dev/null | awk '
    NR == 1 { gov = $2 } $1 == "mod" { mod = $2 " " $3 }
    $1 == "build" && match($0, /gitVersion=[^ ]*/) { kv = substr($0, RSTART + 11, RLENGTH - 11) }
    END { if (mod != "") { if (kv != "") mod = mod " (" kv ")"; print mod ", " gov } }' || true)
  if readelf -lW "$f" 2>/dev/null | grep -q 'program interpreter' || readelf -dW "$f" 2>/dev/null | grep -q '(NEEDED)'; then
    echo "DYNAMIC  $rel: $(readelf -dW "$f" | awk '/NEEDED/ {printf "%s ", $NF}')$(readelf -lW "$f" | grep -o 'interpreter: [^]]*' || true)"
    bad=1
  else
    printf 'static   %-40s %7.1f MB  %s\n' "$rel" "$(( $(stat -c %s "$f") ))e-6" "${ver:-not a Go program}"
  fi
done < <(find "$R" -type f -print0 | sort -z)
debs=$(find "$R" -name '*.deb' | sed "s|^$R/||")
[ -z "$debs" ] || { echo "Debian packages in $R: $debs"; bad=1; }
[ "$n" -gt 0 ] || { echo "check-static.sh: no ELF file under $R"; exit 1; }
[ $bad = 0 ] || { echo "check-static.sh: FAIL: $R has dynamically linked programs or packages (above)"; exit 1; }
echo "check-static.sh: $n ELF files under $R, all statically linked; no .deb"
