-- An sqlite3 workload for libtemporal_slab.so. @ROWS@ is replaced by the row count.
CREATE TABLE t(id INTEGER PRIMARY KEY, k TEXT, v INTEGER, pad TEXT);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < @ROWS@)
INSERT INTO t(k, v, pad) SELECT printf('key-%d', x % 5000), x * 7 % 1000, printf('%0*d', x % 200, x) FROM c;
CREATE INDEX t_k ON t(k);
UPDATE t SET v = v + 1 WHERE id % 3 = 0;
DELETE FROM t WHERE id % 11 = 0;
SELECT count(*), sum(v), count(DISTINCT k), sum(length(pad)) FROM t;
SELECT k, sum(v) FROM t GROUP BY k ORDER BY sum(v) DESC, k LIMIT 3;
SELECT count(*) FROM t a JOIN t b ON a.k = b.k AND a.id < b.id WHERE a.id < 2000;
