#!/bin/bash
# usage: bench/cpu-per-message.sh <checkout> <port-offset 0..9> [abcast bench args...]
# e.g.  bench/cpu-per-message.sh . 0 --protocol binary --concurrency 128 --seconds 8
# (NODE_FLAGS="--max-semi-space-size=64" passes V8 flags to the node processes; WARM=10 runs
# the same load for 10 s first, unmeasured: a fresh cluster is still compiling its hot paths.)
# Starts a 3-node `abcast dev` cluster from <checkout> on its own ports, runs `abcast bench`
# against the leader's HTTP and binary ports (as bench:compare does: a node that is not the
# leader would forward every run, and its CPU would count as a follower's) and prints
# throughput plus CPU microseconds per acknowledged message for each node and the client
# (read from /proc: what a shared, loaded machine disturbs least; compare builds by running
# them alternately, twice each). Stops the cluster afterwards.
set -u
wt=$1; off=$2; shift 2
peer=$((17001 + off*100)); http=$((18001 + off*100)); bin=$((19001 + off*100))
data=$(mktemp -d /tmp/cpumsg.XXXX)
cd "$wt"
node ${NODE_FLAGS:-} --import tsx src/cli/main.ts dev --data "$data" --port $peer --http-port $http --binary-port $bin > "$data/dev.log" 2>&1 &
devpid=$!
# Stops the cluster however the script ends (a failed read below must not leave it running to
# disturb the next measurement).
cleanup() { kill -INT $devpid 2>/dev/null; wait $devpid 2>/dev/null; sleep 0.5; pkill -f -- "$data/n" 2>/dev/null; rm -rf "$data"; }
trap cleanup EXIT
for i in $(seq 1 60); do curl -sf "http://127.0.0.1:$http/v1/status" 2>/dev/null | grep -q '"leader":"n' && break; sleep 0.5; done
sleep 1
leader=$(curl -s "http://127.0.0.1:$http/v1/status" | grep -o '"leader":"n[0-9]"' | cut -d'"' -f4)
http=$((http + ${leader#n} - 1)); bin=$((bin + ${leader#n} - 1))
# The node processes alone: their command line names `start` and their data directory.
pids=$(pgrep -f -- "main.ts start .*$data/n" | tr '\n' ' ')
t() { for p in $pids; do awk '{print $14+$15}' /proc/$p/stat; done | tr '\n' ' '; }
[ -n "${WARM:-}" ] && node --import tsx src/cli/main.ts bench --node "http://127.0.0.1:$http" --binary-node "abcast://127.0.0.1:$bin" --json "$@" --seconds "$WARM" >/dev/null 2>&1
before=($(t))
out=$( /usr/bin/time -f "CLIENT %U %S" node --import tsx src/cli/main.ts bench --node "http://127.0.0.1:$http" --binary-node "abcast://127.0.0.1:$bin" --json "$@" 2>&1)
after=($(t))
echo "$out" | grep messagesPerSecond
msgs=$(echo "$out" | grep -o '"messagesPerSecond":[0-9.]*' | cut -d: -f2 | cut -d. -f1)
secs=$(echo "$@" | grep -o -- '--seconds [0-9]*' | awk '{print $2}'); secs=${secs:-10}
total=$((msgs*secs))
i=0; for p in $pids; do d=$(( ${after[$i]} - ${before[$i]} )); id=$(tr '\0' ' ' < /proc/$p/cmdline | grep -o 'id n[0-9]'); role=follower; [ "$id" = "id $leader" ] && role=leader; echo "node pid $p ($id, $role): cpu ${d}0 ms, us/msg $(echo "scale=2; $d*10000/($total+1)" | bc)"; i=$((i+1)); done
echo "$out" | grep CLIENT | awk -v n=$total '{printf "client: cpu %.0f ms, us/msg %.2f (includes start-up)\n", ($2+$3)*1000, ($2+$3)*1e6/(n+1)}'
# The bench's own reading of its CPU while the load ran: start-up (loading the CLI from
# source, about 0.4 s of CPU) left out.
echo "client while loading: us/msg $(echo "$out" | grep -o '"clientCpuMicrosPerMessage":[0-9.]*' | cut -d: -f2)"
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
