#!/usr/bin/env bash
# Writes bin/stubmod/go.mod and go.sum, used by `make assets` to build the stub: this module's
# go.mod with github.com/distribution/distribution/v3 replaced by a copy of the same version in
# which the files under scripts/stubmod/_distribution-<version>/ replace upstream's (the leading
# _ keeps them out of ./...). Tests and `go build ./...` use the unmodified module.
#
# Why: distribution's registry/handlers renders the body of its mail log hook with text/template.
# text/template calls reflect.Value.MethodByName with a computed name, and a program that can do
# that makes the linker keep every exported method of every type stored in an interface (the
# thousand commands of go-redis's client, ...): 6.6 MB of the 23.6 MB stub. The replacement
# hooks.go writes the same body with fmt; sealpack never configures a mail hook anyway. When
# distribution is bumped, port it to scripts/stubmod/_distribution-<new version>/ (and check with
# `go build -ldflags=-dumpdep ./cmd/stub 2>&1 | grep ReflectMethod` that nothing else reaches one).
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
mod=github.com/distribution/distribution/v3
version=$($GO list -m -f '{{.Version}}' "$mod")
files=scripts/stubmod/_distribution-$version
if [ ! -d "$files" ]; then
	echo "stubmod.sh: no $files for $mod $version: port the previous version's files (see $0)" >&2
	exit 1
fi
$GO mod download "$mod"
src=$($GO list -m -f '{{.Dir}}' "$mod")
out=bin/stubmod
rm -rf "$out"
mkdir -p "$out"
cp -R "$src" "$out/distribution"
chmod -R u+w "$out/distribution"
cp -R "$files/." "$out/distribution/"
cp go.sum "$out/go.sum"
cp go.mod "$out/go.mod.tmp"
$GO mod edit -replace "$mod=./$out/distribution" "$out/go.mod.tmp"
mv "$out/go.mod.tmp" "$out/go.mod"
