#!/bin/sh
# The layers point one way: variants/ <- tasks/ <- harness/. The build enforces it (each
# layer's library sees only its own and lower include directories); this check fails too
# when a layer's meson.build is given an upper include directory and a file then includes
# an upper header. Usage: check-layers.sh SOURCE_ROOT
root=${1:?usage: check-layers.sh SOURCE_ROOT}

# upward DIR ALLOWED...: prints each quoted include of DIR's files found in no ALLOWED dir
upward() {
	dir=$1
	shift
	for file in "$root/$dir"/*.[ch]; do
		for header in $(sed -n 's/^#include "\([^"]*\)".*/\1/p' "$file"); do
			found=
			for allowed in "$@"; do
				[ -f "$root/$allowed/$header" ] && found=1
			done
			[ -n "$found" ] || echo "$dir/${file##*/} includes \"$header\" (allowed: $*)"
		done
	done
}

bad=$(upward variants variants; upward tasks tasks variants)
if [ -n "$bad" ]; then
	echo "$bad"
	exit 1
fi
echo "layers: variants/ and tasks/ include nothing from above"
