#!/usr/bin/env bash
# Measures TCP throughput from terse-ns<A> to terse-ns<B> with python3 sockets (no nc/iperf on
# the machine): throughput.sh [SECONDS] [A] [B]; prints the receiver's Mbit/s.
# Needs the namespaces of `netns.sh up`.
set -euo pipefail
secs=${1:-3} a=${2:-0} b=${3:-1}
[[ $secs =~ ^[0-9]+$ ]] && ((secs >= 1)) || {
  echo "throughput.sh: error: SECONDS must be a positive integer, got '$secs'" >&2
  exit 2
}
for i in "$a" "$b"; do
  ip netns list | awk '{print $1}' | grep -qx "terse-ns$i" || {
    echo "throughput.sh: error: namespace terse-ns$i does not exist; run netns.sh up first" >&2
    exit 2
  }
done
py=$(command -v python3)
port=5201
dst=10.88.0.$((b + 1))
ip netns exec "terse-ns$b" "$py" -c '
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(1); s.settimeout(30)
c, _ = s.accept(); n = 0; t0 = None
while True:
    d = c.recv(1 << 20)
    if not d: break
    if t0 is None: t0 = time.monotonic()
    n += len(d)
t = time.monotonic() - t0
print("received %d bytes in %.2f s: %.1f Mbit/s" % (n, t, n * 8 / t / 1e6))
' "$port" &
srv=$!
sleep 0.5
ip netns exec "terse-ns$a" "$py" -c '
import socket, sys, time
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
buf = b"\0" * (1 << 16); end = time.monotonic() + float(sys.argv[3])
while time.monotonic() < end: c.sendall(buf)
c.close()
' "$dst" "$port" "$secs"
wait "$srv"
