#!/usr/bin/env bash
# A first side-by-side throughput figure (not yet the full issue-6 benchmark): one iperf3 TCP stream
# through client+server on loopback, Pigeon vs shadowsocks-libev (ss-tunnel + ss-server), same
# cipher, rounds interleaved; prints the median of each and the ratio. Needs: iperf3, shadowsocks-libev.
# Usage: bash bench/throughput-quick.sh [METHOD] [ROUNDS] [SECONDS] [PIGEON_METHOD]
#   PIGEON_METHOD (default METHOD) lets Pigeon run a 2022 method against libev's AEAD one.
set -euo pipefail
cd "$(dirname "$0")/.."
METHOD=${1:-aes-256-gcm}
ROUNDS=${2:-3}
SECS=${3:-4}
PMETHOD=${4:-$METHOD}
PW=bench-$RANDOM$RANDOM
case "$PMETHOD" in
  2022-blake3-aes-128-gcm) PPW=$(head -c 16 /dev/urandom | base64) ;;
  2022-*) PPW=$(head -c 32 /dev/urandom | base64) ;;
  *) PPW=$PW ;;
esac
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
IPERF=$(port); iperf3 -s -B 127.0.0.1 -p "$IPERF" >/dev/null 2>&1 & pids+=($!)
# Pigeon
PS=$(port); PC=$(port)
node bin/pigeon.js server --listen 127.0.0.1:$PS --method "$PMETHOD" --password "$PPW" --allow-private --no-qr >/dev/null 2>&1 & pids+=($!)
URI="ss://$(printf '%s' "$PMETHOD:$PPW" | base64 -w0 | tr '+/' '-_' | tr -d '=')@127.0.0.1:$PS"
node bin/pigeon.js client --server "$URI" --listen 127.0.0.1:$(port) --forward 127.0.0.1:$PC=127.0.0.1:$IPERF >/dev/null 2>&1 & pids+=($!)
# shadowsocks-libev
LS=$(port); LC=$(port)
ss-server -s 127.0.0.1 -p "$LS" -k "$PW" -m "$METHOD" >/dev/null 2>&1 & pids+=($!)
ss-tunnel -s 127.0.0.1 -p "$LS" -l "$LC" -b 127.0.0.1 -L 127.0.0.1:$IPERF -k "$PW" -m "$METHOD" >/dev/null 2>&1 & pids+=($!)
# Wait (at most 20 s) until every listener answers; a slow start must not abort the first round.
for p in "$PS" "$PC" "$LS" "$LC"; do
  for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && break; sleep 0.1; done
done
measure() { iperf3 -c 127.0.0.1 -p "$1" -t "$SECS" -J $2 | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const j=JSON.parse(s);console.log((j.end.sum_received.bits_per_second/1e6).toFixed(0))})'; }
declare -a pu pd lu ld
for r in $(seq "$ROUNDS"); do
  pu+=($(measure "$PC" "")); lu+=($(measure "$LC" ""))
  pd+=($(measure "$PC" "-R")); ld+=($(measure "$LC" "-R"))
done
med() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
P_UP=$(med "${pu[@]}"); L_UP=$(med "${lu[@]}"); P_DN=$(med "${pd[@]}"); L_DN=$(med "${ld[@]}")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo "| $PMETHOD vs $METHOD | upload | $P_UP | $L_UP | $(ratio "$P_UP" "$L_UP")× |"
echo "| $PMETHOD vs $METHOD | download | $P_DN | $L_DN | $(ratio "$P_DN" "$L_DN")× |"
