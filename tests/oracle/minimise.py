"""Reduces a statement the oracle finds an under-claim in: delta debugging over the tokens
of sqltok (chunks of halving size), then list elements with their comma, balanced
parenthesised groups (or only their inside) and any 2–4 adjacent tokens, repeated until
nothing more goes. A candidate is kept only if PostgreSQL still runs it and the oracle still
finds an under-claim of the same kind on the same table. Each round's candidates are
decoded in one CLI call."""

from . import runner, sqltok


def _groups(toks):
    """(start, end) of every balanced parenthesised group, innermost last."""
    out, stack = [], []
    for i, t in enumerate(toks):
        if t == "(":
            stack.append(i)
        elif t == ")" and stack:
            out.append((stack.pop(), i + 1))
    return sorted(out, key=lambda se: se[0] - se[1])


def _elements(toks):
    """(start, end) spans of comma-separated list elements with one adjacent comma: each
    element with the comma after it, and each element with the comma before it."""
    out = []
    starts = [0]  # where the current element of each open parenthesis level began
    for i, t in enumerate(toks):
        if t == "(":
            starts.append(i + 1)
        elif t == ")":
            if len(starts) > 1:
                starts.pop()
        elif t == ",":
            out.append((starts[-1], i + 1))  # the element before, with this comma
            j, d = i + 1, 0  # the element after, with this comma
            while j < len(toks):
                if toks[j] == "(":
                    d += 1
                elif toks[j] == ")":
                    if d == 0:
                        break
                    d -= 1
                elif toks[j] == "," and d == 0:
                    break
                j += 1
            out.append((i, j))
            starts[-1] = i + 1
    return sorted(set(out), key=lambda se: se[0] - se[1])


def minimise(lab, sql, want=None, max_rounds=400, decoder=None):
    """The smallest statement found that still yields an under-claim matching `want`
    ((kind, table), default: the first under-claim `sql` yields). Returns (sql, findings).
    `decoder` (default: the CLI, runner.decode) maps a list of SQL to verdicts."""
    decoder = decoder or runner.decode
    verdict = decoder([sql])[0]
    eff = lab.measure(sql)
    found = runner.judge(sql, verdict, eff, lab.counts)
    if not found:
        return sql, []
    want = want or (found[0]["kind"], found[0]["table"])

    def failing(candidates):
        """Index and findings of the first candidate that still fails, else (None, None)."""
        verdicts = decoder(candidates)
        for i, (c, v) in enumerate(zip(candidates, verdicts)):
            if not v.get("ok"):
                continue
            e = lab.measure(c)
            if e.status != "ok":
                continue
            f = runner.judge(c, v, e, lab.counts)
            if any((x["kind"], x["table"]) == want for x in f):
                return i, f
        return None, None

    toks = sqltok.tokenize(sql)
    best_found = found
    rounds = 0
    changed = True
    while changed and rounds < max_rounds:
        changed = False
        # 1. delete chunks, halving the chunk size (ddmin)
        n = 2
        while len(toks) >= 2 and rounds < max_rounds:
            rounds += 1
            size = max(1, len(toks) // n)
            cands = []
            for start in range(0, len(toks), size):
                c = toks[:start] + toks[start + size:]
                if c:
                    cands.append(c)
            i, f = failing([sqltok.render(c) for c in cands])
            if i is not None:
                toks, best_found, changed = cands[i], f, True
                n = max(n - 1, 2)
                continue
            if size == 1:
                break
            n = min(n * 2, len(toks))
        # 2. delete list elements (with a comma), balanced groups, or keep only a group's inside;
        #    delete any 2–4 adjacent tokens (ddmin's chunks are aligned)
        cands = []
        for width in (4, 3, 2):
            cands += [toks[:i] + toks[i + width:] for i in range(0, len(toks) - width + 1)]
        for s, e in _elements(toks):
            cands.append(toks[:s] + toks[e:])
        for s, e in _groups(toks):
            cands.append(toks[:s] + toks[e:])
            cands.append(toks[:s] + toks[s + 1:e - 1] + toks[e:])
        if cands and rounds < max_rounds:
            rounds += 1
            i, f = failing([sqltok.render(c) for c in cands])
            if i is not None:
                toks, best_found, changed = cands[i], f, True
    return sqltok.render(toks), best_found
