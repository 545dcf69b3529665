"""Wake-up floor of this machine: two processes pinned to CPU 0 and CPU 1 pass one byte back
and forth over a socket pair, with a pause between round trips so the CPUs go idle, as they do
between signaling messages at a moderate rate. Each round trip is two cross-CPU wake-ups (the
signaling round trip of the load tool has four). docs/signaling-load.md has the figures.

    python3 benches/wakeup_probe.py [round trips, default 5000] [pause in s, default 0.0005]
    QOS=1 python3 benches/wakeup_probe.py   # idle CPUs poll (/dev/cpu_dma_latency = 0; root)
"""
import os, socket, sys, time, struct
n = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
gap = float(sys.argv[2]) if len(sys.argv) > 2 else 0.001
qos = None
if os.environ.get("QOS") == "1":
    qos = open("/dev/cpu_dma_latency", "wb", buffering=0); qos.write(struct.pack("i", 0))
a, b = socket.socketpair()
pid = os.fork()
if pid == 0:
    os.sched_setaffinity(0, {0}); a.close()
    while True:
        d = b.recv(64)
        if not d: os._exit(0)
        b.send(d)
os.sched_setaffinity(0, {1}); b.close()
rtts = []
for i in range(n):
    t = time.perf_counter_ns(); a.send(b"x"); a.recv(64); rtts.append((time.perf_counter_ns() - t) / 1000)
    time.sleep(gap)
a.close(); os.waitpid(pid, 0)
rtts.sort()
print(f"qos={os.environ.get('QOS','0')} gap={gap*1e3}ms n={n} p50 {rtts[n//2]:.0f} us p90 {rtts[int(n*.9)]:.0f} p99 {rtts[int(n*.99)]:.0f} p99.9 {rtts[int(n*.999)]:.0f} max {rtts[-1]:.0f} us")
