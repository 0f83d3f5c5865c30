#!/usr/bin/env python3
"""Rank-based placements: the ceil(K/N)+1 question for every cluster size.

A rank-based placement sorts the alive names and gives address a, in a set of
s nodes, to the member of rank r_s(a) (1 = smallest). It is a function of the
alive set alone (rule b), so a rank table r_1..r_m that keeps loads within
ceil(K/s) (rule a) and moves at most B addresses per join or leave (rule c) is
a real placement for clusters of up to m nodes, whatever the names.

What this proves, for names from an unbounded set (any algorithm that accepts
arbitrary strings). Take any member-only placement f, fix an order on names,
and colour each (s+1)-set of names by its rank pattern (which rank owns each
address): finitely many colours. Ramsey's theorem gives an infinite set H of
names whose (s+1)-sets all have one pattern rho (applied for s = 1..m in
turn, f restricted to H is rank-based, so a rank table exists: UNSAT here
means no placement at all). Directly: take s+2 names of H, z0 < ... < z(s+1),
S = the s middle ones. Joining z0 and joining z(s+1) give S+z0 and
S+z(s+1) the same pattern rho. An address keeping its owner x in both
would give x rank rho(a) in both sets, but x's rank in S+z0 is one more
than in S+z(s+1). So the two joins keep disjoint sets of addresses and
together move at least K: some join into an s-node set moves at least
ceil(K/2) addresses, for every s and every member-only placement (balanced
or not). The issue's bound ceil(K/N)+1 is below ceil(K/2) as soon as
K > 2(ceil(K/N)+1), e.g. K >= 5 with N >= K; for K <= 4 a rank table exists
(checked to 40 nodes; e.g. min, 2nd, 2nd-largest, largest for N >= 4). The
SAT answers here agree with this rule for every K and m tried. A finite
name universe forcing the same needs Ramsey-size (tower-size) numbers, which
is why balance_sat.py finds every small universe satisfiable.

Join semantics: a node joining a set of s nodes with p of them below it takes
rank p+1; an old member of rank r keeps rank r if r <= p, else r+1. Address a
keeps its owner iff r_{s+1}(a) == r_s(a) + [r_s(a) > p]. Readings of B as in
balance_sat.py: small = ceil(K/s)+1, large = ceil(K/(s+1))+1.

Encoding: one-hot y[s,a,r]; at most ceil(K/s) per (s,r); d[s,p,a] is forced
true when a changes owner for join position p; at most B of d[s,p,.]. Sound
symmetry breaking: addresses are interchangeable, so they are sorted by their
rank path (r_2(a), ..., r_m(a)) (lexicographic), which any solution can be
renamed to meet.

Run (apt-get install -y cadical cryptominisat minisat picosat):
  nice -n 19 python3 hack/balance-bound/rank_sat.py --k 4 --m 9 --reading large --show --cross
  nice -n 19 python3 hack/balance-bound/rank_sat.py --k 5 --m 5 --reading large --verify
  nice -n 19 python3 hack/balance-bound/rank_sat.py --k 5 --m 6 --reading small --verify
  nice -n 19 python3 hack/balance-bound/rank_sat.py --k 8 --m 16 --slack 3   # SAT: B = ceil(K/2)
  nice -n 19 python3 hack/balance-bound/rank_sat.py --scan --kmin 2 --kmax 14 --m 15 --timeout 120
SAT answers are checked in plain Python, and with --cross also turned into a
placement over a universe of min(m,7) names and checked by balance_sat.py's
checker. UNSAT answers are confirmed by --verify (other encoding, other
solvers, no symmetry breaking).
"""

import argparse
import itertools
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import balance_sat as bs  # noqa: E402

ceil_div = bs.ceil_div


def bound(K, s, reading, slack=1):
    if reading == "small":
        return ceil_div(K, s) + slack
    return ceil_div(K, s + 1) + slack


def build(K, m, reading, card, symmetry=True, slack=1):
    cnf = bs.CNF()
    atmost = bs.ATMOST[card]
    y = {}
    for s in range(1, m + 1):
        for a in range(K):
            for r in range(1, s + 1):
                y[s, a, r] = cnf.var()
    for s in range(1, m + 1):
        for a in range(K):
            cnf.add([y[s, a, r] for r in range(1, s + 1)])
            for r, q in itertools.combinations(range(1, s + 1), 2):
                cnf.add([-y[s, a, r], -y[s, a, q]])
        for r in range(1, s + 1):
            atmost(cnf, [y[s, a, r] for a in range(K)], ceil_div(K, s))
    for s in range(1, m):
        B = bound(K, s, reading, slack)
        if B >= K:
            continue
        for p in range(0, s + 1):
            d = []
            for a in range(K):
                v = cnf.var()
                d.append(v)
                for r in range(1, s + 1):
                    cnf.add([v, -y[s, a, r], y[s + 1, a, r + (1 if r > p else 0)]])
            atmost(cnf, d, B)
    if symmetry:
        # Addresses sorted by rank path, lexicographically over s = 2..m.
        for a in range(K - 1):
            eq = None  # None: the paths agree on all earlier levels (level 1)
            for s in range(2, m + 1):
                guard = [] if eq is None else [-eq]
                for r in range(1, s + 1):
                    cnf.add(guard + [-y[s, a, r]] + [y[s, a + 1, q] for q in range(r, s + 1)])
                if s == m:
                    break
                e = cnf.var()
                for r in range(1, s + 1):
                    cnf.add(guard + [-y[s, a, r], -y[s, a + 1, r], e])
                eq = e
    return cnf, y


def decode(model, y, K, m):
    ranks = {}
    for s in range(1, m + 1):
        row = []
        for a in range(K):
            rs = [r for r in range(1, s + 1) if y[s, a, r] in model]
            row.append(rs[0] if len(rs) == 1 else None)
        ranks[s] = row
    return ranks


def check_ranks(ranks, K, m, reading, slack=1):
    bad = []
    for s in range(1, m + 1):
        row = ranks[s]
        if any(r is None or not 1 <= r <= s for r in row):
            bad.append("size %d: bad ranks %s" % (s, row))
            continue
        for r in range(1, s + 1):
            if row.count(r) > ceil_div(K, s):
                bad.append("size %d: rank %d owns %d" % (s, r, row.count(r)))
    for s in range(1, m):
        for p in range(s + 1):
            moved = sum(1 for a in range(K)
                        if ranks[s + 1][a] != ranks[s][a] + (1 if ranks[s][a] > p else 0))
            if moved > bound(K, s, reading, slack):
                bad.append("size %d join at %d moves %d" % (s, p, moved))
    return bad


def cross_check(ranks, K, m, reading):
    """Turn the rank table into a placement over u names; use balance_sat's checker."""
    u = min(m, 7)
    f = {}
    for r in range(1, u + 1):
        for S in itertools.combinations(range(u), r):
            mem = sorted(S)
            f[frozenset(S)] = [mem[ranks[r][a] - 1] for a in range(K)]
    return bs.check_placement(f, u, K, reading)


def run(K, m, reading, card, solver, timeout, symmetry=True, slack=1, cross=False):
    t0 = time.monotonic()
    cnf, y = build(K, m, reading, card, symmetry, slack)
    status, model, _ = bs.solve(cnf, solver, timeout)
    info = {"vars": cnf.nv, "clauses": len(cnf.clauses), "total_s": time.monotonic() - t0}
    ranks = None
    if status == "SAT":
        ranks = decode(model, y, K, m)
        bad = check_ranks(ranks, K, m, reading, slack)
        if bad:
            raise RuntimeError("model fails the plain check: %s" % bad[:5])
        if cross:
            bs.SLACK = slack
            bad = cross_check(ranks, K, m, reading)
            if bad:
                raise RuntimeError("placement fails balance_sat's check: %s" % bad[:5])
    return status, info, ranks


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--k", type=int)
    ap.add_argument("--m", type=int, help="largest cluster size")
    ap.add_argument("--reading", choices=["small", "large"], default="small")
    ap.add_argument("--card", choices=sorted(bs.ATMOST), default="seq")
    ap.add_argument("--solver", choices=sorted(bs.SOLVERS), default="cadical")
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--slack", type=int, default=1, help="bound is ceil(K/N)+slack (the issue: 1)")
    ap.add_argument("--no-symmetry", action="store_true")
    ap.add_argument("--cross", action="store_true", help="also check a SAT table with balance_sat.py's checker")
    ap.add_argument("--verify", action="store_true")
    ap.add_argument("--show", action="store_true")
    ap.add_argument("--dimacs")
    ap.add_argument("--scan", action="store_true", help="K = kmin..kmax, sizes 1..m, both readings")
    ap.add_argument("--kmin", type=int, default=2)
    ap.add_argument("--kmax", type=int, default=24)
    ap.add_argument("--readings", default="small,large")
    a = ap.parse_args()
    sym = not a.no_symmetry

    if a.dimacs:
        cnf, _ = build(a.k, a.m, a.reading, a.card, sym, a.slack)
        cnf.dimacs(a.dimacs)
        print("wrote %s: %d vars, %d clauses" % (a.dimacs, cnf.nv, len(cnf.clauses)))
        return

    if a.scan:
        print("| K | sizes | reading | result | seconds | vars | clauses |")
        print("|---|---|---|---|---|---|---|")
        sys.stdout.flush()
        for K in range(a.kmin, a.kmax + 1):
            for reading in a.readings.split(","):
                st, info, _ = run(K, a.m, reading, a.card, a.solver, a.timeout, sym, a.slack, a.cross)
                print("| %d | 1..%d | %s | %s | %.1f | %d | %d |" % (
                    K, a.m, reading, st, info["total_s"], info["vars"], info["clauses"]))
                sys.stdout.flush()
        return

    st, info, ranks = run(a.k, a.m, a.reading, a.card, a.solver, a.timeout, sym, a.slack, a.cross)
    print("K=%d sizes 1..%d reading=%s card=%s solver=%s slack=%d: %s in %.1fs (%d vars, %d clauses)" % (
        a.k, a.m, a.reading, a.card, a.solver, a.slack, st, info["total_s"], info["vars"], info["clauses"]))
    if ranks is not None:
        print("rank table checked against (a)-(c) in Python: ok%s" % (
            "; as a placement over %d names: ok" % min(a.m, 7) if a.cross else ""))
        if a.show:
            for s in range(1, a.m + 1):
                print("  %2d nodes: %s" % (s, " ".join(str(r) for r in ranks[s])))
    if a.verify:
        results = {(a.card, a.solver, sym): st}
        for card in sorted(bs.ATMOST):
            for solver in ["cadical-check", "cryptominisat", "minisat", "picosat"]:
                for s in [sym, False] if st == "UNSAT" else [sym]:
                    st2, inf, _ = run(a.k, a.m, a.reading, card, solver, a.timeout, s, a.slack)
                    print("  verify card=%s solver=%s symmetry=%s: %s in %.1fs" % (card, solver, s, st2, inf["total_s"]))
                    sys.stdout.flush()
                    results[(card, solver, s)] = st2
        done = {v for v in results.values() if v != "TIMEOUT"}
        print("verify: %s" % ("agree: " + done.pop() if len(done) == 1 else "DISAGREE or all timed out: %s" % results))


if __name__ == "__main__":
    main()
