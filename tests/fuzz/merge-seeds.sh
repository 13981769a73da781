#!/usr/bin/env bash
# Writes the seed corpus of fuzz-merge into OUT: small attnbench databases made by
# `attnbench import` from the import corpus, vacuumed to page size 512 (about 10 KB, so a
# mutation mostly lands in a stored value or its type), plus one with a hostile variant
# name and one with a newer schema version. Made when fuzzing, so the repository holds
# no database. Usage: merge-seeds.sh ATTNBENCH OUT
set -euo pipefail
attnbench=${1:?usage: merge-seeds.sh ATTNBENCH OUT}
out=${2:?usage: merge-seeds.sh ATTNBENCH OUT}
corpus="$(dirname "$0")/corpus/import"

mkdir -p "$out"
for name in minimal two-cells export-speed export-fidelity; do
	"$attnbench" import --csv "$corpus/$name.csv" --db "$out/$name.db" >/dev/null
	sqlite3 "$out/$name.db" "PRAGMA journal_mode=DELETE; PRAGMA page_size=512; VACUUM;" \
		>/dev/null
done
cp "$out/minimal.db" "$out/bad-hostile-name.db"
sqlite3 "$out/bad-hostile-name.db" \
	"UPDATE cells SET variant = 'linear\" . system(\"touch x\") . \"'; VACUUM;"
cp "$out/minimal.db" "$out/bad-newer-schema.db"
sqlite3 "$out/bad-newer-schema.db" "PRAGMA user_version = 99;"
