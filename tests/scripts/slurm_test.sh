#!/usr/bin/env bash
# Issue #21 on a real Slurm: a single-node cluster started here (munge as user munge, slurmctld and
# slurmd as root with a generated slurm.conf, state and spool in a temporary folder, ports of their
# own), the job-array script of scripts/slurm/ submitted with --array=0-3 and the merge job depending
# on it; the merged file must equal the unsharded run's bit for bit. Every daemon started is stopped,
# by PID. Needs root and Debian's slurm-wlm and munge (scripts/install-deps.sh); exits 77 (skipped)
# without them.
set -eu
CLI=$(realpath "$1")
SRC=$(realpath "$2")
SHARED=${HEADLAB_SHARED:-$(cd "$SRC/.." && pwd)/shared}
[[ $(id -u) -eq 0 ]] || { echo "skipped: starting slurmctld/slurmd needs root"; exit 77; }
for b in munged mungekey slurmctld slurmd sbatch squeue sinfo; do
  command -v $b >/dev/null || [[ -x /usr/sbin/$b ]] || { echo "skipped: $b not installed (scripts/install-deps.sh)"; exit 77; }
done
export PATH=$PATH:/usr/sbin
tmp=$(mktemp -d /tmp/headlab-slurm.XXXXXX)
pids=()
stop() {
  [[ -f "$tmp/munge/run/munged.pid" ]] && pids+=($(cat "$tmp/munge/run/munged.pid"))   # munged itself, under runuser
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done; kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap stop EXIT
chmod 755 "$tmp"
# munge: its own key, socket and files, run as user munge.
mkdir -p "$tmp/munge/etc" "$tmp/munge/lib" "$tmp/munge/log" "$tmp/munge/run"
mungekey --create --keyfile "$tmp/munge/etc/munge.key" --force
chown -R munge:munge "$tmp/munge"
chmod 755 "$tmp/munge" "$tmp/munge/run"   # the socket's folder: open to every client
chmod 700 "$tmp/munge/etc" "$tmp/munge/lib" "$tmp/munge/log"
runuser -u munge -- munged --foreground --key-file "$tmp/munge/etc/munge.key" --socket "$tmp/munge/run/munge.sock" \
  --pid-file "$tmp/munge/run/munged.pid" --log-file "$tmp/munge/log/munged.log" --seed-file "$tmp/munge/lib/munged.seed" \
  >"$tmp/munged.out" 2>&1 &
pids+=($!)
for _ in $(seq 50); do [[ -S "$tmp/munge/run/munge.sock" ]] && break; sleep 0.1; done
# A cluster that cannot start here (no hostname resolution, ports taken) skips the test, loudly, with
# the daemons' own words; a wrong result once it runs fails it.
[[ -S "$tmp/munge/run/munge.sock" ]] || { echo "skipped: munged did not start:"; cat "$tmp/munged.out"; exit 77; }
host=$(hostname -s)
port=$((20000 + RANDOM % 20000))
mkdir -p "$tmp/state" "$tmp/spool"
cat > "$tmp/slurm.conf" <<CONF
ClusterName=headlab-test
SlurmctldHost=$host
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$tmp/munge/run/munge.sock
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
StateSaveLocation=$tmp/state
SlurmdSpoolDir=$tmp/spool
SlurmctldPidFile=$tmp/slurmctld.pid
SlurmdPidFile=$tmp/slurmd.pid
SlurmctldLogFile=$tmp/slurmctld.log
SlurmdLogFile=$tmp/slurmd.log
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MpiDefault=none
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
NodeName=$host CPUs=$(nproc) State=UNKNOWN
PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF=$tmp/slurm.conf
slurmctld -D -i -f "$SLURM_CONF" >"$tmp/slurmctld.out" 2>&1 &
pids+=($!)
slurmd -D -f "$SLURM_CONF" >"$tmp/slurmd.out" 2>&1 &
pids+=($!)
for _ in $(seq 100); do sinfo -h -o %t 2>/dev/null | grep -q idle && break; sleep 0.2; done
sinfo -h -o %t | grep -q idle || { echo "skipped: the node never became idle:"; tail -5 "$tmp/slurmctld.log" "$tmp/slurmd.log"; exit 77; }
# The experiment: six pairs, the heads sweep, whole here and as a 4-task array on the cluster.
cd "$tmp"
cp "$SRC/tests/scripts/six_pairs.jsonl" pairs.jsonl
M=$SHARED/models/stories260k/stories260K.gguf
# One thread, as each task runs (--cpus-per-task=1): bit-identical results need the same thread count.
"$CLI" patch --model "$M" --pairs pairs.jsonl --sweep heads --threads 1 --out whole.h5 >/dev/null 2>&1
export HEADLAB_CLI=$CLI MODEL=$M PAIRS=$tmp/pairs.jsonl OUTDIR=$tmp/run SWEEP=heads
jid=$(sbatch --parsable --array=0-3 "$SRC/scripts/slurm/headlab-array.sbatch")
sbatch --parsable --dependency=afterok:$jid "$SRC/scripts/slurm/headlab-merge.sbatch" >/dev/null
for _ in $(seq 600); do [[ -z "$(squeue -h 2>/dev/null)" ]] && break; sleep 0.2; done
[[ -z "$(squeue -h)" ]] || { echo "FAIL jobs still queued after 120 s:"; squeue; exit 1; }
[[ -f run/merged.h5 ]] || { echo "FAIL no merged file"; cat slurm-*.out; tail -5 "$tmp/slurmctld.log"; exit 1; }
ls run/shard-{0,1,2,3}.h5 >/dev/null
/usr/bin/python3 - <<'PY'
import h5py
def datasets(f):
    out = {}
    f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return out
with h5py.File("whole.h5", "r") as w, h5py.File("run/merged.h5", "r") as m:
    dw, dm = datasets(w), datasets(m)
    assert sorted(dw) == sorted(dm)
    for k in dw:
        assert dw[k].tobytes() == dm[k].tobytes() and dw[k].shape == dm[k].shape, k
    assert m["probes/patching_pairs"].attrs["pairs_total"] == 6
print("Slurm array of 4 tasks + merge job = the unsharded run, bit for bit in %d datasets" % len(dw))
PY
echo "ok   slurm"
