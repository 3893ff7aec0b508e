"""A small PostgreSQL tokenizer: enough to split a request into statements at top-level
semicolons, to find the statement under an EXPLAIN, and to let the minimiser delete tokens
and balanced groups. Comments are kept as tokens (`EXPLAIN /* x */ ANALYZE` matters)."""

import re

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<comment>--[^\n]*)
  | (?P<dollar>\$(?P<tag>[A-Za-z_][A-Za-z_0-9]*)?\$)
  | (?P<estr>[EeUu]&?'(?:[^'\\]|\\.|'')*')
  | (?P<str>'(?:[^']|'')*')
  | (?P<qident>"(?:[^"]|"")*")
  | (?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<param>\$\d+)
  | (?P<word>[A-Za-z_\x80-\uffff][A-Za-z_0-9$\x80-\uffff]*)
  | (?P<op>::|<=|>=|<>|!=|\|\||=>|:=|[-+*/<>=~!@#%^&|`?]+)
  | (?P<punct>[(),;.\[\]:])
""", re.X)


class Token(str):
    """A token's text, with its kind ('word', 'str', 'op', 'punct', 'comment', …)."""
    kind = ""

    def __new__(cls, text, kind):
        t = str.__new__(cls, text)
        t.kind = kind
        return t


def tokenize(sql):
    out, i, n = [], 0, len(sql)
    while i < n:
        if sql.startswith("/*", i):  # nested block comments
            depth, j = 1, i + 2
            while j < n and depth:
                if sql.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif sql.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(Token(sql[i:j], "comment"))
            i = j
            continue
        m = _TOKEN.match(sql, i)
        if not m:
            out.append(Token(sql[i], "other"))
            i += 1
            continue
        kind = m.lastgroup if m.lastgroup != "tag" else "dollar"
        if m.group("dollar") is not None:
            delim = m.group("dollar")
            end = sql.find(delim, m.end())
            j = n if end < 0 else end + len(delim)
            out.append(Token(sql[i:j], "str"))
            i = j
            continue
        if kind != "ws":
            out.append(Token(m.group(0), "str" if kind == "estr" else kind))
        i = m.end()
    return out


def render(tokens):
    """Joins tokens back into SQL with single spaces, tightened around `.`, `::`, `(`, `)`, `,`."""
    out = ""
    prev = None
    for t in tokens:
        if prev is None:
            out = t
        elif t.kind == "comment" or prev.kind == "comment":
            out += ("\n" if prev.kind == "comment" and prev.startswith("--") else " ") + t
        elif t.kind == "str" and prev.kind == "str":
            out += "\n" + t  # adjacent literals: PostgreSQL joins them only across a newline
        elif t in (".", "::", ",", ")", "]", ";") or prev in (".", "::", "(", "["):
            out += t
        elif t in ("(", "[") and prev.kind in ("word", "qident") and prev.upper() not in _SPACE_BEFORE_PAREN:
            out += t
        else:
            out += " " + t
        prev = t
    return out


_SPACE_BEFORE_PAREN = {"AND", "OR", "NOT", "IN", "EXISTS", "FROM", "JOIN", "VALUES", "AS", "SELECT", "WHERE",
                       "USING", "ON", "SET", "EXPLAIN", "ANY", "ALL", "SOME", "WITH", "LATERAL", "INTO", "THEN",
                       "RETURNING", "BY", "UNION", "EXCEPT", "INTERSECT", "WHEN", "ELSE", "IS", "LIKE", "CASE",
                       "UPDATE", "DELETE", "INSERT", "MERGE", "TABLE", "BETWEEN"}


def split_statements(sql):
    """The statements of a request (top-level `;`), as token lists without the `;`."""
    parts, cur, depth = [], [], 0
    for t in tokenize(sql):
        if t == "(":
            depth += 1
        elif t == ")":
            depth -= 1
        if t == ";" and depth <= 0:
            if any(x.kind != "comment" for x in cur):
                parts.append(cur)
            cur = []
        else:
            cur.append(t)
    if any(x.kind != "comment" for x in cur):
        parts.append(cur)
    return parts


def first_word(tokens):
    for t in tokens:
        if t.kind != "comment":
            return t.upper()
    return ""


def strip_explain(tokens):
    """(options tokens, inner statement tokens) of `EXPLAIN [options] stmt`, else None."""
    toks = [t for t in tokens if t.kind != "comment"]
    if not toks or toks[0].upper() != "EXPLAIN":
        return None
    i = 1
    opts = []
    if i < len(toks) and toks[i] == "(":
        depth = 0
        for j in range(i, len(toks)):
            if toks[j] == "(":
                depth += 1
            elif toks[j] == ")":
                depth -= 1
                if depth == 0:
                    opts = toks[i:j + 1]
                    i = j + 1
                    break
    else:
        while i < len(toks) and toks[i].upper() in ("ANALYZE", "ANALYSE", "VERBOSE"):
            opts.append(toks[i])
            i += 1
    return opts, toks[i:]


_NOT_ALIAS = {"WHERE", "ORDER", "GROUP", "HAVING", "LIMIT", "OFFSET", "FETCH", "FOR", "UNION", "EXCEPT", "INTERSECT",
              "WINDOW", "JOIN", "LEFT", "RIGHT", "FULL", "INNER", "CROSS", "NATURAL", "ON", "USING", "TABLESAMPLE",
              "RETURNING", "OUTER"}
_END_FROM = {"WHERE", "GROUP", "HAVING", "WINDOW", "ORDER", "LIMIT", "OFFSET", "FETCH", "FOR", "UNION", "EXCEPT",
             "INTERSECT"}
_JOIN_WORDS = {"JOIN", "LEFT", "RIGHT", "FULL", "INNER", "CROSS", "NATURAL", "OUTER"}


def _skip_group(toks, k):
    """Index after the balanced group starting at toks[k] == '('."""
    d = 0
    while k < len(toks):
        d += 1 if toks[k] == "(" else -1 if toks[k] == ")" else 0
        k += 1
        if d == 0:
            break
    return k


def _is_join_word(toks, k):
    return toks[k].upper() in _JOIN_WORDS and not (k + 1 < len(toks) and toks[k + 1] == "(")


def _unquote(t):
    return t[1:-1].replace('""', '"') if t.kind == "qident" else t.lower()


def from_tables(toks, i_from, i_end, ctes=()):
    """The exposed names of the plain tables among the FROM items in toks[i_from+1:i_end]
    (comma lists and JOINs; derived tables, functions, parenthesised joins and references
    to the CTEs named in `ctes` are skipped)."""
    out = []
    k = i_from + 1
    while k < i_end:
        if toks[k].upper() == "LATERAL":
            k += 1
        if toks[k].upper() == "ONLY":
            k += 1
        exposed = None
        if toks[k] == "(":
            k = _skip_group(toks, k)
            name = None
        else:
            name = []
            while k < i_end and toks[k].kind in ("word", "qident"):
                name.append(toks[k])
                if k + 1 < i_end and toks[k + 1] == ".":
                    k += 2
                else:
                    k += 1
                    break
            if not name:
                return None
            if k < i_end and toks[k] == "(":  # a function in FROM
                k = _skip_group(toks, k)
                name = None
            elif k < i_end and toks[k] == "*":
                k += 1
        alias = None
        if k < i_end and toks[k].upper() == "AS":
            alias, k = toks[k + 1], k + 2
        elif k < i_end and toks[k].kind in ("word", "qident") and toks[k].upper() not in _NOT_ALIAS:
            alias, k = toks[k], k + 1
        if alias is not None and k < i_end and toks[k] == "(":
            k = _skip_group(toks, k)
        if name and not (len(name) == 1 and _unquote(name[0]) in ctes):
            exposed = alias or name[-1]
            out.append(str(exposed))
        # TABLESAMPLE …, ON <expr>, USING (…): up to the next item
        while k < i_end and toks[k] != "," and not _is_join_word(toks, k):
            if toks[k] == "(":
                k = _skip_group(toks, k)
            else:
                k += 1
        if k < i_end and toks[k] == ",":
            k += 1
        else:
            while k < i_end and _is_join_word(toks, k):
                k += 1
    return out


def read_probe(tokens, ctes=()):
    """For `SELECT … FROM <items> <tail>` (no set operation at the top level): the same
    query selecting each plain table item's `tableoid` and `ctid` instead of the
    projection — the rows the query reads from its tables. Else None."""
    toks = [t for t in tokens if t.kind != "comment"]
    if not toks or toks[0].upper() != "SELECT":
        return None
    depth, i_from, i_end = 0, None, len(toks)
    for i, t in enumerate(toks):
        if t == "(":
            depth += 1
        elif t == ")":
            depth -= 1
        elif depth == 0 and t.upper() in ("UNION", "EXCEPT", "INTERSECT", "INTO"):
            return None
        elif depth == 0 and t.upper() == "FROM" and i_from is None:
            i_from = i
        elif depth == 0 and i_from is not None and t.upper() in _END_FROM and i_end == len(toks):
            i_end = i
    if i_from is None:
        return None
    try:
        names = from_tables(toks, i_from, i_end, ctes)
    except IndexError:
        return None
    if not names:
        return None
    cols = ", ".join(f"{n}.tableoid::regclass::text, {n}.ctid" for n in names)
    return render([Token("SELECT", "word"), Token(cols, "word"), Token("FROM", "word")] + toks[i_from + 1:])


def dml_probe(tokens, ctes=()):
    """For `DELETE FROM t … USING <items> [WHERE …]` and `UPDATE t … SET … FROM <items>
    [WHERE …]`: a SELECT over the same join (`FROM t, <items> WHERE …`) of the plain table
    items' `tableoid` and `ctid` — the rows the statement reads from its other FROM items.
    Else None."""
    toks = [t for t in tokens if t.kind != "comment"]
    if len(toks) < 4:
        return None
    head = toks[0].upper()
    if head == "DELETE" and toks[1].upper() == "FROM":
        start, split_word = 2, "USING"
    elif head == "UPDATE":
        start, split_word = 1, "SET"
    else:
        return None
    depth, marks = 0, {}
    for i in range(start, len(toks)):
        t = toks[i]
        if t == "(":
            depth += 1
        elif t == ")":
            depth -= 1
        elif depth == 0:
            u = t.upper()
            if u in (split_word, "FROM", "WHERE", "RETURNING") and u not in marks:
                marks[u] = i
    if split_word not in marks:
        return None
    target = toks[start:marks[split_word]]
    if head == "DELETE":
        i_items = marks["USING"]
    else:
        if "FROM" not in marks or marks["FROM"] < marks["SET"]:
            return None
        i_items = marks["FROM"]
    end = min([marks[w] for w in ("WHERE", "RETURNING") if w in marks and marks[w] > i_items] + [len(toks)])
    try:
        names = from_tables(toks, i_items, end, ctes)
    except IndexError:
        return None
    if not names:
        return None
    where_end = marks.get("RETURNING", len(toks))
    where = toks[marks["WHERE"]:where_end] if "WHERE" in marks and marks["WHERE"] > i_items else []
    cols = ", ".join(f"{n}.tableoid::regclass::text, {n}.ctid" for n in names)
    return render([Token("SELECT", "word"), Token(cols, "word"), Token("FROM", "word")] + target +
                  [Token(",", "punct")] + toks[i_items + 1:end] + where)


_SETOPS = {"UNION", "EXCEPT", "INTERSECT"}


def _strip_parens(toks):
    while len(toks) >= 2 and toks[0] == "(" and _skip_group(toks, 0) == len(toks):
        toks = toks[1:-1]
    return toks


def probes(tokens, ctes=()):
    """Row probes (see read_probe, dml_probe) for a statement and its parts: each arm of a
    top-level UNION/EXCEPT/INTERSECT, each CTE body on its own, and the main query of a
    WITH with its WITH clause kept."""
    toks = _strip_parens([t for t in tokens if t.kind != "comment"])
    if not toks:
        return []
    if toks[0].upper() == "WITH":
        k = 1
        recursive = k < len(toks) and toks[k].upper() == "RECURSIVE"
        k += 1 if recursive else 0
        bodies, names = [], set(ctes)
        while k < len(toks):
            names.add(_unquote(toks[k]))
            k += 1  # the CTE's name
            if k < len(toks) and toks[k] == "(":
                k = _skip_group(toks, k)
            while k < len(toks) and toks[k].upper() in ("AS", "NOT", "MATERIALIZED"):
                k += 1
            if k >= len(toks) or toks[k] != "(":
                return []
            end = _skip_group(toks, k)
            bodies.append(toks[k + 1:end - 1])
            k = end
            if k < len(toks) and toks[k] == ",":
                k += 1
                continue
            break
        out = [] if recursive else [p for b in bodies for p in probes(b, ctes)]
        prefix = render(toks[:k])
        return out + [prefix + " " + p for p in probes(toks[k:], names) if p.startswith("SELECT")]
    arms, cur, depth = [], [], 0
    for t in toks:
        if t == "(":
            depth += 1
        elif t == ")":
            depth -= 1
        if depth == 0 and t.upper() in _SETOPS:
            arms.append(cur)
            cur = []
            continue
        if depth == 0 and not cur and t.upper() in ("ALL", "DISTINCT") and arms:
            continue
        cur.append(t)
    arms.append(cur)
    if len(arms) > 1:
        # an arm in parentheses stands alone (a trailing ORDER BY/LIMIT belongs to the whole)
        arms = [a[1:_skip_group(a, 0) - 1] if a and a[0] == "(" else a for a in arms]
        return [p for a in arms for p in probes(a, ctes)]
    p = read_probe(toks, ctes) or dml_probe(toks, ctes)
    return [p] if p else []
