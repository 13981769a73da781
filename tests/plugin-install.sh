#!/bin/sh
# A plugin as a user builds it: install attnbench (into a scratch DESTDIR), compile the
# template from examples/plugin with the one cc line and only what was installed
# (pkg-config), then check it, run a small suite with it and compare it against vanilla
# with the installed program. Arguments: the source root and the build directory.
set -eu
src=$1
build=$2
tmp=$(mktemp -d /tmp/attnbench-install-XXXXXX)
trap 'rm -rf "$tmp"' EXIT

meson install -C "$build" --destdir "$tmp/root" --no-rebuild --quiet >/dev/null
pc=$(find "$tmp/root" -name attnbench.pc)
bin=$(find "$tmp/root" -path '*/bin/attnbench')
test -n "$pc" && test -n "$bin"
export PKG_CONFIG_PATH="$(dirname "$pc")" PKG_CONFIG_SYSROOT_DIR="$tmp/root"

cd "$tmp"
cp "$src/examples/plugin/template.c" .
# shellcheck disable=SC2046 # the flags are words
cc -O2 -Wall -Werror -shared -fPIC template.c $(pkg-config --cflags --libs attnbench) \
	-o libtemplate.so
"$bin" check --plugin ./libtemplate.so template vanilla
"$bin" run --plugin ./libtemplate.so --suite quick --variants template,vanilla \
	--tasks fidelity,speed --patterns ns,cs --lengths 128 --db results.db -q
"$bin" compare --plugin ./libtemplate.so --db results.db --baseline vanilla template \
	--tasks speed
sqlite3 results.db "SELECT DISTINCT plugin_sha256 FROM results WHERE variant = 'template'" \
	> stored
sha256sum libtemplate.so | cut -d' ' -f1 | cmp - stored
echo "plugin-install: installed, built, checked, run, compared; sha256 stored"
