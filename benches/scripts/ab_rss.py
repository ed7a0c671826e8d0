# Summary of benches/scripts/ab_rss.sh output: per row, B/A median time with a bootstrap 95%
# interval, and median peak RSS of each build.
import sys,collections,statistics,random
d=collections.defaultdict(lambda: {'A':[], 'B':[]})
for l in open(sys.argv[1]):
    p=l.split()
    if len(p)<4: continue
    d[p[0]][p[1]].append((int(p[2]),int(p[3])))
def ci(a,b):
    rs=[]
    for _ in range(2000):
        aa=[random.choice(a) for _ in a]; bb=[random.choice(b) for _ in b]
        rs.append(statistics.median(bb)/statistics.median(aa))
    rs.sort(); return rs[50],rs[1950]
for k,v in d.items():
    at=[x[0] for x in v['A']]; bt=[x[0] for x in v['B']]
    ar=[x[1] for x in v['A']]; br=[x[1] for x in v['B']]
    if not at or not bt: continue
    lo,hi=ci(at,bt)
    print(f"{k:22s} n={len(at)} time B/A {statistics.median(bt)/statistics.median(at):.3f} [{lo:.2f},{hi:.2f}]  peakRSS A {statistics.median(ar)/1e6:.2f} B {statistics.median(br)/1e6:.2f} MB  B/A {statistics.median(br)/statistics.median(ar):.3f}")
