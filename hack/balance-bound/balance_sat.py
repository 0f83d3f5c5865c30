#!/usr/bin/env python3
"""Can any member-only balanced placement keep moves within ceil(K/N)+1?

The question (internal/election/README.md, "Moves per event"): is there a
placement of K addresses over the alive nodes that
  (a) gives no node more than ceil(K/N) addresses,
  (b) is a function of the alive node set alone (no history, no talking), and
  (c) changes the owner of at most ceil(K/N)+1 addresses when one node joins
      or leaves?
A placement for all node names restricts to one for any finite universe U of
names, so if for some U and K no function f: nonempty S of U -> (K addresses
-> S) meets (a)-(c), no placement can. This script asks a SAT solver that
question for a given |U| and K.

Encoding. x[S,a,n] says node n (in S) owns address a when the alive set is S.
Exactly one owner per (S,a); at most ceil(K/|S|) addresses per (S,n). For
every S and n not in S, d[S,n,a] must be true when a's owner in S differs from
its owner in S+{n} (clause d or not x[S,a,m] or x[S+n,a,m] for m in S), and at
most B of the d[S,n,.] are true. Two readings of N in the bound B:
  small: B = ceil(K/|S|)+1      (N counts the smaller set: before a join,
                                 after a leave; the generous reading)
  large: B = ceil(K/(|S|+1))+1  (N counts the larger set)
Symmetry breaking (sound): nodes and addresses are interchangeable, so any
solution can be renamed so that, in one largest set S0 (U itself unless
--sizes), node loads are non-increasing in node index and owners are sorted
by address. S0's assignment is therefore one of a few canonical ones (one per
load vector); a selector variable per vector picks one.

Cardinality constraints use a sequential counter (--card seq) or a totalizer
(--card tot), two independent encodings. Solvers (Debian packages): cadical,
cryptominisat5, minisat, picosat. Every SAT answer is decoded and checked
against (a)-(c) in plain Python; an UNSAT answer should be confirmed with the
other encoding and another solver (--verify does both, plus cadical's own
internal proof checker).

Run (from the repository root; apt-get install -y cadical cryptominisat
minisat picosat):
  nice -n 19 python3 hack/balance-bound/balance_sat.py --u 4 --k 6 --reading small
  nice -n 19 python3 hack/balance-bound/balance_sat.py --u 4 --k 6 --reading small --verify
  nice -n 19 python3 hack/balance-bound/balance_sat.py --scan --umin 3 --umax 7 --timeout 300
  nice -n 19 python3 hack/balance-bound/balance_sat.py --u 3 --k 5 --reading large --show
  nice -n 19 python3 hack/balance-bound/balance_sat.py --u 10 --k 5 --reading large --sizes 4-5
--sizes LO-HI keeps only subsets of those sizes (a relaxation: UNSAT would
still be a proof, and it lets |U| grow); --dimacs FILE writes the formula
instead of solving it. cryptominisat solved |U|=7, K=15..21 (large reading)
where cadical timed out. Result so far: every case tried is SAT (see
rank_sat.py for why small universes cannot show the bound impossible, and for
the proof that it is, for names from an unbounded set).
"""

import argparse
import itertools
import os
import subprocess
import sys
import tempfile
import time


def ceil_div(a, b):
    return -(-a // b)


class CNF:
    def __init__(self):
        self.nv = 0
        self.clauses = []

    def var(self):
        self.nv += 1
        return self.nv

    def add(self, clause):
        self.clauses.append(clause)

    def dimacs(self, path):
        with open(path, "w") as f:
            f.write("p cnf %d %d\n" % (self.nv, len(self.clauses)))
            for c in self.clauses:
                f.write(" ".join(map(str, c)))
                f.write(" 0\n")


def atmost_seq(cnf, lits, k):
    """Sinz's sequential counter: at most k of lits are true."""
    n = len(lits)
    if k >= n:
        return
    if k == 0:
        for l in lits:
            cnf.add([-l])
        return
    # s[i][j]: at least j+1 of lits[0..i] are true (one direction).
    s = [[cnf.var() for _ in range(k)] for _ in range(n - 1)]
    cnf.add([-lits[0], s[0][0]])
    for j in range(1, k):
        cnf.add([-s[0][j]])
    for i in range(1, n - 1):
        cnf.add([-lits[i], s[i][0]])
        cnf.add([-s[i - 1][0], s[i][0]])
        for j in range(1, k):
            cnf.add([-lits[i], -s[i - 1][j - 1], s[i][j]])
            cnf.add([-s[i - 1][j], s[i][j]])
        cnf.add([-lits[i], -s[i - 1][k - 1]])
    cnf.add([-lits[n - 1], -s[n - 2][k - 1]])


def atmost_tot(cnf, lits, k):
    """Totalizer (Bailleux and Boufkhad): at most k of lits are true."""
    n = len(lits)
    if k >= n:
        return
    if k == 0:
        for l in lits:
            cnf.add([-l])
        return

    def build(part):
        # Returns unary outputs o[0..]: o[j] true if at least j+1 of part
        # are true (implied from the inputs), counted up to k+1.
        if len(part) == 1:
            return [part[0]]
        mid = len(part) // 2
        a = build(part[:mid])
        b = build(part[mid:])
        m = min(len(a) + len(b), k + 1)
        r = [cnf.var() for _ in range(m)]
        for i in range(len(a) + 1):
            for j in range(len(b) + 1):
                if i + j == 0:
                    continue
                t = min(i + j, m)
                c = [r[t - 1]]
                if i > 0:
                    c.append(-a[i - 1])
                if j > 0:
                    c.append(-b[j - 1])
                cnf.add(c)
        return r

    out = build(list(lits))
    cnf.add([-out[k]])


ATMOST = {"seq": atmost_seq, "tot": atmost_tot}


SLACK = 1  # the "+1" of the bound; --slack changes it for experiments


def bound(K, s, reading):
    """Move bound for a join to / leave from a set of s nodes."""
    if reading == "small":
        return ceil_div(K, s) + SLACK
    return ceil_div(K, s + 1) + SLACK


def load_vectors(u, K):
    """Non-increasing load vectors of length u, each <= ceil(K/u), sum K."""
    c = ceil_div(K, u)
    out = []

    def rec(prefix, left, top):
        if len(prefix) == u:
            if left == 0:
                out.append(tuple(prefix))
            return
        for v in range(min(top, left), -1, -1):
            rec(prefix + [v], left - v, v)

    rec([], K, c)
    return out


def build(u, K, reading, card, symmetry=True, sizes=None):
    """sizes=(lo, hi) keeps only subsets with lo <= |S| <= hi: a relaxation
    (a placement for all subsets restricts to one for these), so UNSAT for
    some sizes is UNSAT for all."""
    cnf = CNF()
    atmost = ATMOST[card]
    nodes = tuple(range(u))
    lo, hi = sizes or (1, u)
    subsets = [frozenset(c) for r in range(lo, hi + 1) for c in itertools.combinations(nodes, r)]
    present = set(subsets)
    x = {}
    for S in subsets:
        for a in range(K):
            for n in sorted(S):
                x[S, a, n] = cnf.var()
    for S in subsets:
        mem = sorted(S)
        for a in range(K):
            cnf.add([x[S, a, n] for n in mem])
            for n, m in itertools.combinations(mem, 2):
                cnf.add([-x[S, a, n], -x[S, a, m]])
        c = ceil_div(K, len(S))
        for n in mem:
            atmost(cnf, [x[S, a, n] for a in range(K)], c)
    for S in subsets:
        for n in nodes:
            if n in S or S | {n} not in present:
                continue
            T = S | {n}
            B = bound(K, len(S), reading)
            if B >= K:
                continue
            d = []
            for a in range(K):
                v = cnf.var()
                d.append(v)
                for m in S:
                    cnf.add([v, -x[S, a, m], x[T, a, m]])
            atmost(cnf, d, B)
    # Symmetry breaking on one largest subset S0 = {0..hi-1}: renaming its
    # members among themselves (a permutation of U) makes their loads
    # non-increasing, then renaming addresses sorts its owners.
    vectors = load_vectors(hi, K)
    if symmetry:
        S0 = frozenset(range(hi))
        sel = []
        for vec in vectors:
            p = cnf.var()
            sel.append(p)
            a = 0
            for n, load in enumerate(vec):
                for _ in range(load):
                    cnf.add([-p, x[S0, a, n]])
                    a += 1
        cnf.add(sel)
    return cnf, x, subsets, vectors


SOLVERS = {
    "cadical": lambda f: ["cadical", "-q", f],
    "cadical-check": lambda f: ["cadical", "-q", "--check=true", "--checkproof=true", f],
    "cryptominisat": lambda f: ["cryptominisat5", "--verb", "0", f],
    "minisat": lambda f: ["minisat", "-verb=0", f, f + ".out"],
    "picosat": lambda f: ["picosat", f],
}


def solve(cnf, solver, timeout):
    fd, path = tempfile.mkstemp(suffix=".cnf", prefix="balance-")
    os.close(fd)
    try:
        cnf.dimacs(path)
        t0 = time.monotonic()
        try:
            p = subprocess.run(SOLVERS[solver](path), capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return "TIMEOUT", None, time.monotonic() - t0
        dt = time.monotonic() - t0
        if p.returncode == 20:
            return "UNSAT", None, dt
        if p.returncode != 10:
            raise RuntimeError("%s exited %d: %s %s" % (solver, p.returncode, p.stdout[-500:], p.stderr[-500:]))
        text = p.stdout
        if solver == "minisat":
            with open(path + ".out") as f:
                text = "v " + " ".join(f.read().split()[1:])
        model = set()
        for line in text.splitlines():
            if line.startswith("v "):
                for tok in line.split()[1:]:
                    v = int(tok)
                    if v > 0:
                        model.add(v)
        return "SAT", model, dt
    finally:
        for p in (path, path + ".out"):
            if os.path.exists(p):
                os.remove(p)


def decode(model, x, subsets, K):
    f = {}
    for S in subsets:
        owners = []
        for a in range(K):
            own = [n for n in sorted(S) if x[S, a, n] in model]
            owners.append(own[0] if len(own) == 1 else None)
        f[S] = owners
    return f


def check_placement(f, u, K, reading):
    """Plain check of rules (a)-(c) on a decoded placement (over the subsets
    it has); returns problems."""
    bad = []
    for S, owners in f.items():
        if any(o is None or o not in S for o in owners):
            bad.append("owner not unique or not a member in %s" % sorted(S))
            continue
        c = ceil_div(K, len(S))
        for n in S:
            if owners.count(n) > c:
                bad.append("load of %d in %s above %d" % (n, sorted(S), c))
    for S in f:
        for n in range(u):
            if n in S or S | {n} not in f:
                continue
            T = S | {n}
            moved = sum(1 for a in range(K) if f[S][a] != f[T][a])
            if moved > bound(K, len(S), reading):
                bad.append("%s +%d moves %d" % (sorted(S), n, moved))
    return bad


def run_case(u, K, reading, card, solver, timeout, symmetry=True, sizes=None):
    t0 = time.monotonic()
    cnf, x, subsets, _ = build(u, K, reading, card, symmetry, sizes)
    status, model, dt = solve(cnf, solver, timeout)
    info = {"vars": cnf.nv, "clauses": len(cnf.clauses), "solve_s": dt, "total_s": time.monotonic() - t0}
    f = None
    if status == "SAT":
        f = decode(model, x, subsets, K)
        bad = check_placement(f, u, K, reading)
        if bad:
            raise RuntimeError("model fails the plain check: %s" % bad[:5])
    return status, info, f


def show(f, u, K):
    for S in sorted(f, key=lambda s: (len(s), sorted(s))):
        name = "{" + ",".join(str(n) for n in sorted(S)) + "}"
        print("  %-16s %s" % (name, " ".join(str(o) for o in f[S])))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--u", type=int, help="number of node names in the universe")
    ap.add_argument("--k", type=int, help="number of addresses")
    ap.add_argument("--reading", choices=["small", "large"], default="small")
    ap.add_argument("--card", choices=sorted(ATMOST), default="seq")
    ap.add_argument("--solver", choices=sorted(SOLVERS), default="cadical")
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--no-symmetry", action="store_true", help="drop the symmetry breaking")
    ap.add_argument("--verify", action="store_true",
                    help="also solve with the other encoding and other solvers; all must agree")
    ap.add_argument("--show", action="store_true", help="print a placement found")
    ap.add_argument("--dimacs", help="write the formula to this file and exit")
    ap.add_argument("--scan", action="store_true", help="scan u=umin..umax, K=kmin..kfactor*u, both readings")
    ap.add_argument("--umin", type=int, default=3)
    ap.add_argument("--umax", type=int, default=7)
    ap.add_argument("--kfactor", type=int, default=3, help="scan K up to kfactor*u")
    ap.add_argument("--kmin", type=int, default=2)
    ap.add_argument("--kmax", type=int, default=0, help="scan K up to this instead of kfactor*u")
    ap.add_argument("--readings", default="small,large")
    ap.add_argument("--sizes", help="LO-HI: only subsets of these sizes (a relaxation; UNSAT stays a proof)")
    ap.add_argument("--slack", type=int, default=1, help="bound is ceil(K/N)+slack (the issue: 1)")
    a = ap.parse_args()
    sym = not a.no_symmetry
    global SLACK
    SLACK = a.slack
    sizes = tuple(int(v) for v in a.sizes.split("-")) if a.sizes else None

    if a.dimacs:
        cnf, _, _, _ = build(a.u, a.k, a.reading, a.card, sym, sizes)
        cnf.dimacs(a.dimacs)
        print("wrote %s: %d vars, %d clauses" % (a.dimacs, cnf.nv, len(cnf.clauses)))
        return

    if a.scan:
        print("| |U| | K | reading | result | seconds | vars | clauses |")
        print("|---|---|---|---|---|---|---|")
        sys.stdout.flush()
        for u in range(a.umin, a.umax + 1):
            for reading in a.readings.split(","):
                for K in range(a.kmin, (a.kmax or a.kfactor * u) + 1):
                    status, info, _ = run_case(u, K, reading, a.card, a.solver, a.timeout, sym)
                    print("| %d | %d | %s | %s | %.1f | %d | %d |" % (
                        u, K, reading, status, info["total_s"], info["vars"], info["clauses"]))
                    sys.stdout.flush()
        return

    status, info, f = run_case(a.u, a.k, a.reading, a.card, a.solver, a.timeout, sym, sizes)
    print("u=%d K=%d sizes=%s reading=%s card=%s solver=%s slack=%d: %s in %.1fs (%d vars, %d clauses)" % (
        a.u, a.k, a.sizes or "1-%d" % a.u, a.reading, a.card, a.solver, a.slack, status, info["total_s"],
        info["vars"], info["clauses"]))
    if f is not None:
        print("model checked against (a)-(c) in Python: ok")
        if a.show:
            show(f, a.u, a.k)
    if a.verify:
        results = {(a.card, a.solver): status}
        for card in sorted(ATMOST):
            for solver in ["cadical-check", "cryptominisat", "minisat", "picosat"]:
                for s in [sym, False] if status == "UNSAT" else [sym]:
                    st, inf, _ = run_case(a.u, a.k, a.reading, card, solver, a.timeout, s, sizes)
                    print("  verify card=%s solver=%s symmetry=%s: %s in %.1fs" % (card, solver, s, st, inf["total_s"]))
                    sys.stdout.flush()
                    results[(card, solver, s)] = st
        done = {v for v in results.values() if v != "TIMEOUT"}
        print("verify: %s" % ("agree: " + done.pop() if len(done) == 1 else "DISAGREE or all timed out: %s" % results))


if __name__ == "__main__":
    main()
