#!/bin/bash
# A real single-node Slurm cluster on this machine, and `attnbench slurm` run on it:
# installs Debian's slurm-wlm and munge (as root), starts munged (as the munge user),
# slurmctld and slurmd with a minimal slurm.conf naming this host and its CPUs, submits
# the generated script for a suite in shards, waits, and checks that the merged database
# holds exactly the cells of an unsharded run of the same suite (same keys, same
# statuses) and that its report was written. Then one shard's database is deleted and
# the same script submitted again: only that shard runs, and the merge is whole again.
# The merged database holds the suite as one run, each shard's machine in table shards.
#
#   bash tests/slurm-cluster.sh [BUILD_DIR] [SUITE] [SHARDS]   (defaults: build quick 4)
#
# Prints a summary: cells compared, per-shard estimated cost and measured time. Exit 0
# when every check passed. Leaves the daemons stopped and the packages installed.
set -euo pipefail

build=$(realpath "${1:-build}")
suite=${2:-quick}
shards=${3:-4}
attnbench="$build/attnbench"
work=$(mktemp -d /tmp/attnbench-slurm.XXXXXX)
host=$(hostname -s)
fail() { echo "slurm-cluster: FAILED: $*" >&2; exit 1; }

[ -x "$attnbench" ] || fail "no $attnbench: build first (meson compile -C build)"
[ "$(id -u)" = 0 ] || fail "needs root: it installs and starts the Slurm daemons"

echo "== installing slurm-wlm and munge"
if ! command -v slurmctld > /dev/null || ! command -v munged > /dev/null; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -q slurm-wlm munge > "$work/apt.log" 2>&1 ||
		{ apt-get update -qq && apt-get install -y -q slurm-wlm munge > "$work/apt.log" 2>&1; } ||
		fail "apt-get install slurm-wlm munge (see $work/apt.log)"
fi

stop_daemons() {
	scancel --user=root 2> /dev/null || true
	pkill -x slurmd 2> /dev/null || true
	pkill -x slurmctld 2> /dev/null || true
	pkill -x munged 2> /dev/null || true
	sleep 1
}
trap stop_daemons EXIT
stop_daemons

echo "== munge: a key in /etc/munge, munged as the munge user"
mkdir -p /etc/munge /run/munge /var/lib/munge /var/log/munge
if [ ! -s /etc/munge/munge.key ]; then
	dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge
chmod 0700 /etc/munge /var/lib/munge /var/log/munge
chmod 0400 /etc/munge/munge.key
chmod 0755 /run/munge
runuser -u munge -- /usr/sbin/munged
munge -n | unmunge > /dev/null || fail "munge cannot encode and decode a credential"

echo "== slurm.conf for $host (addressed as 127.0.0.1: no name service needed)"
# the node line as slurmd sees this machine (CPUs, sockets, cores, memory)
node=$(slurmd -C | head -n 1)
case "$node" in NodeName=*) ;; *) fail "slurmd -C printed '$node'" ;; esac
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
cat > /etc/slurm/slurm.conf <<EOF
ClusterName=attnbench
SlurmctldHost=$host(127.0.0.1)
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
ReturnToService=2
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmdSpoolDir=/var/spool/slurmd
StateSaveLocation=/var/spool/slurmctld
SlurmUser=root
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
rm -rf /var/spool/slurmctld/* /var/spool/slurmd/*
slurmctld
slurmd
for _ in $(seq 60); do
	sinfo -h -o %t 2> /dev/null | grep -qx idle && break
	sleep 1
done
sinfo -h -o %t | grep -qx idle || fail "the node did not come up: $(sinfo 2>&1 | tail -n 2)"
cpus=$(sinfo -h -o %c | head -n 1)
per_task=$((cpus >= 2 * shards ? 2 : 1))
echo "node $host: $cpus CPUs; $shards shards of suite '$suite', $per_task CPU(s) each"

# Waits (up to 30 minutes) until no job of ours is pending or running.
wait_for_jobs() {
	for _ in $(seq 1800); do
		[ -z "$(squeue -h -u root 2> /dev/null)" ] && return 0
		sleep 1
	done
	fail "jobs still queued after 30 minutes: $(squeue -u root)"
}

# Every cell's key and status, sorted: one line each.
cell_lines() {
	"$attnbench" query --db "$1" --csv "SELECT variant, task, pattern, ifnull(regime, ''),
		n, m, d, heads, kv_heads, batch, params, seed, threads, status FROM cells
		ORDER BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12" | tail -n +2
}

echo "== submitting the generated script"
"$attnbench" slurm --suite "$suite" --shards "$shards" --cpus-per-task "$per_task" \
	--out "$work/out" --time 30:00 > "$work/job.sbatch"
started=$(date +%s)
sbatch "$work/job.sbatch"
sleep 2
wait_for_jobs
echo "array and merge done in $(( $(date +%s) - started )) s"
[ -s "$work/out/attnbench.db" ] || fail "no merged database ($(ls "$work/out"); $(tail -n 5 "$work"/out/slurm-*.out))"
[ -s "$work/out/report.md" ] || fail "no report"

echo "== the same suite unsharded, $per_task thread(s)"
"$attnbench" run --suite "$suite" --threads "$per_task" --db "$work/whole.db" -q || [ $? -eq 1 ]

cell_lines "$work/out/attnbench.db" > "$work/sharded.txt"
cell_lines "$work/whole.db" > "$work/whole.txt"
diff -u "$work/whole.txt" "$work/sharded.txt" > "$work/cells.diff" ||
	fail "the merged shards differ from the unsharded run: $(head -n 20 "$work/cells.diff")"
ids=$("$attnbench" query --db "$work/out/attnbench.db" --csv \
	"SELECT count(*) || ' ' || sum(status = 'complete') || ' ' || max(shards) || ' ' ||
	 (SELECT count(*) FROM shards) || ' ' || (SELECT count(DISTINCT shard) FROM cells)
	 FROM runs" | tail -n 1 | tr -d '\r')
whole_id=$("$attnbench" query --db "$work/whole.db" --csv "SELECT suite_id FROM runs" |
	tail -n 1 | tr -d '\r')
shard_id=$("$attnbench" query --db "$work/out/attnbench.db" --csv \
	"SELECT min(suite_id) FROM runs" | tail -n 1 | tr -d '\r')
[ "$ids" = "1 1 $shards $shards $shards" ] ||
	fail "the merged database: '$ids' (runs, complete, shards of the run, rows of shards, shards of cells)"
[ "$whole_id" = "$shard_id" ] || fail "suite identity $shard_id of the shards, $whole_id unsharded"
echo "merged: one run of suite ${shard_id:0:12} from $shards shards, $(wc -l < "$work/sharded.txt") cells, the same keys and statuses as the unsharded run"

echo "== per shard: estimated cost (nominal s) and measured time (s)"
grep '^# [0-9]' "$work/job.sbatch" | sed 's/^# /estimate: /'
"$attnbench" query --db "$work/out/attnbench.db" \
	"SELECT s.shard, count(c.id) AS cells, round((julianday(s.finished) -
	 julianday(s.started)) * 86400, 1) AS seconds, s.hostname, s.threads, s.cpu_model
	 FROM shards s JOIN cells c ON c.run_id = s.run_id AND c.shard = s.shard
	 GROUP BY s.shard ORDER BY s.shard"
"$attnbench" list runs --db "$work/out/attnbench.db"
head -n 6 "$work/out/report.md"

echo "== one shard lost, the same script again"
rm -f "$work/out/shard-2.db"
sbatch "$work/job.sbatch"
sleep 2
wait_for_jobs
cell_lines "$work/out/attnbench.db" > "$work/again.txt"
diff -u "$work/whole.txt" "$work/again.txt" > /dev/null ||
	fail "after the second submission the merge differs from the unsharded run"
grep -h "nothing to do" "$work"/out/slurm-*_*.out | sort | uniq -c || true
echo "resubmitted: shard 2 ran again, the others had nothing to do; the merge is whole"
echo "slurm-cluster: passed ($work)"
