# Shared by the phase scripts: where they leave evidence on the host.
OUT=/etc/sealpack-test
mkdir -p "$OUT"
record() { echo "$*" >> "$OUT/log"; }
