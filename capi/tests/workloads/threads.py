"""A python3 workload for libtemporal_slab.so: threads that build, mutate and serialise dicts,
lists and strings (many small allocations, frees on other threads via the GIL hand-off).

usage: python3 threads.py [SCALE]   prints one JSON line of per-thread digests (deterministic).
"""
import hashlib
import json
import sys
import threading

SCALE = int(sys.argv[1]) if len(sys.argv) > 1 else 1


def work(seed, out):
    d = {}
    for i in range(30000 * SCALE):
        k = "k%d" % ((i * seed) % 5000)
        d.setdefault(k, []).append(str(i) * (1 + i % 5))
        if i % 7 == 0:
            d.pop("k%d" % ((i * 3) % 5000), None)
    rows = sorted((k, len(v), sum(len(s) for s in v)) for k, v in d.items())
    text = json.dumps(rows)
    out[seed] = hashlib.sha256(text.encode()).hexdigest()[:16]


out = {}
threads = [threading.Thread(target=work, args=(s, out)) for s in range(1, 5)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps(out, sort_keys=True))
