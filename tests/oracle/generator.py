"""A seeded, grammar-based generator of PostgreSQL statements over the oracle fixture,
aimed at the classes of /tmp/sql-rules.md and mixed with ordinary agent statements:

* names: aliases hiding a table's name, self-joins, UPDATE … FROM / DELETE … USING naming
  the target table again, derived tables, VALUES lists, alias column lists, CTEs (also named
  like real tables) and writable CTEs, schema-qualified / quoted / upper-case names, columns
  that bind to another FROM item or outwards from a subquery;
* proofs: casts on both sides (varchar(n), char(n), numeric(p,s), text, int), COLLATE
  (deterministic and not), functions around either side, IN lists, ANY(ARRAY[…]);
* scope: ranges, <>, LIKE, BETWEEN, IS [NOT] NULL, tautologies, complementary ranges joined
  by OR, NOT;
* writes: UPDATE SET from literals / columns / subqueries / functions / DEFAULT / tuples,
  INSERT … VALUES / SELECT / DEFAULT VALUES, ON CONFLICT DO NOTHING / DO UPDATE (EXCLUDED,
  literals, columns), MERGE, RETURNING, TRUNCATE, writes through the view;
* EXPLAIN in every option spelling (ANALYZE/ANALYSE keywords, parenthesised lists with and
  without values, plan-only forms, comments in between);
* sequences (nextval, setval, serial defaults), the writing function and procedure, pure
  functions.

Only literals (no `$n`: the CLI passes no parameters). `Generator(seed).statements(n)`.
"""

import random

TEXT, INT, NUM = "text", "int", "numeric"

# table -> {column: type}; the first column is the key.
TABLES = {
    "docs": {"id": TEXT, "tenant_id": TEXT, "title": TEXT, "body": TEXT, "n": INT},
    "items": {"id": INT, "tenant_id": TEXT, "qty": INT, "label": TEXT, "price": NUM},
    "owners": {"id": INT, "doc_id": TEXT, "tenant_id": TEXT, "name": TEXT},
    "notes": {"id": INT, "doc_id": TEXT, "note": TEXT},
    "recent": {"id": INT, "tenant_id": TEXT, "title": TEXT},
    "archive.docs": {"id": TEXT, "tenant_id": TEXT, "title": TEXT, "body": TEXT, "n": INT},
    "acme_docs": {"id": TEXT, "tenant_id": TEXT, "title": TEXT, "n": INT},
}
WRITABLE = ["docs", "items", "owners", "notes", "recent", "archive.docs", "acme_docs"]
WRITE_WEIGHTS = [30, 25, 12, 10, 12, 5, 6]

DOC_IDS = ["a", "A", "a ", "b", "alpha", "al", "d1", "d2", "d3", "10", "9"]
TENANTS = ["acme", "globex", "initech", "ACME", "acme ", "nobody"]
POOLS = {
    ("docs", "id"): DOC_IDS + ["zz"],
    ("*", "tenant_id"): TENANTS,
    ("docs", "title"): ["Alpha", "Beta", "Long", "x", "D1", "Upper A"],
    ("docs", "body"): ["first", "case", "x", "long id"],
    ("docs", "n"): [1, 2, 3, 4, 7, 10, 0],
    ("items", "id"): [1, 2, 3, 10, 11, 20, -1, 0, 5],
    ("items", "qty"): [5, 0, 7, 1, 3, -4, 2],
    ("items", "label"): ["abc", "ab", "abcdefghij", "ABC", "x", "zero", "neg"],
    ("items", "price"): ["1.50", "1.5", "1.54", "2", "2.00", "10.25", "0.05", "9.99", "1.45"],
    ("owners", "id"): [1, 2, 3, 4, 5, 6, 7],
    ("*", "doc_id"): ["a", "b", "A", "alpha", "d1", "zz"],
    ("owners", "name"): ["Ada", "Bob", "Cy", "Di", "Ed", "Flo", "ADA", "bob"],
    ("notes", "id"): [1, 2, 3, 4, 5, 6],
    ("notes", "note"): ["n1", "n2", "n3", "n4", "n5"],
    ("recent", "id"): [1, 2, 3, 4, 5],
    ("recent", "title"): ["r1", "r2", "r3", "r4"],
}

EXPLAIN_EXEC = [
    "EXPLAIN ANALYZE", "EXPLAIN ANALYSE", "EXPLAIN ANALYZE VERBOSE", "EXPLAIN ANALYSE VERBOSE", "explain analyze",
    "Explain Analyse", "EXPLAIN (ANALYZE)", "EXPLAIN (ANALYSE)", "EXPLAIN (ANALYZE true)", "EXPLAIN (ANALYSE true)",
    "EXPLAIN (ANALYZE on)", "EXPLAIN (ANALYZE ON)", "EXPLAIN (ANALYZE 1)", "EXPLAIN (ANALYZE TRUE)",
    "EXPLAIN (ANALYZE 'on')", "EXPLAIN (ANALYZE 'true')", "EXPLAIN (ANALYZE \"on\")", "EXPLAIN (VERBOSE, ANALYZE)",
    "EXPLAIN (FORMAT JSON, ANALYSE)", "EXPLAIN (ANALYZE, FORMAT JSON)", "EXPLAIN (ANALYZE, FORMAT YAML)",
    "EXPLAIN (ANALYZE, FORMAT XML)", "EXPLAIN (BUFFERS, ANALYZE)", "EXPLAIN (ANALYZE, TIMING false)",
    "EXPLAIN (ANALYZE, COSTS off, SUMMARY off)", "EXPLAIN (SETTINGS, ANALYZE)", "EXPLAIN (WAL, ANALYZE)",
    "EXPLAIN (COSTS false, ANALYZE, VERBOSE true)", "EXPLAIN /* plan */ ANALYZE", "EXPLAIN -- why\nANALYZE",
    "EXPLAIN (analyze, verbose)", "EXPLAIN ( ANALYZE , BUFFERS true )", "EXPLAIN (ANALYZE false, ANALYZE)",
]
EXPLAIN_PLAN = [
    "EXPLAIN", "EXPLAIN VERBOSE", "EXPLAIN (ANALYZE false)", "EXPLAIN (ANALYZE off)", "EXPLAIN (ANALYZE 0)",
    "EXPLAIN (ANALYSE false)", "EXPLAIN (COSTS off)", "EXPLAIN (FORMAT JSON)", "EXPLAIN (VERBOSE, COSTS false)",
    "EXPLAIN (ANALYZE 'off')", "EXPLAIN (SETTINGS true)", "explain",
]


def q(s):
    return "'" + str(s).replace("'", "''") + "'"


class Item:
    """A FROM item: the name it exposes, the table it reads (None for derived/VALUES) and
    its columns {name: type}."""

    def __init__(self, exposed, table, cols, aliased=False, src=None):
        self.exposed, self.table, self.cols, self.aliased = exposed, table, cols, aliased
        self.src = src or table  # the table whose values it holds (value pools)


class Generator:
    def __init__(self, seed):
        self.r = random.Random(seed)
        self.serial = 0

    # -- helpers --------------------------------------------------------------------

    def p(self, prob):
        return self.r.random() < prob

    def pick(self, seq, weights=None):
        return self.r.choices(seq, weights)[0] if weights else self.r.choice(seq)

    def value(self, table, col, typ=None):
        base = table.split(".")[-1] if table else "*"
        if base == "acme_docs":
            base = "docs"
        pool = POOLS.get((base, col)) or POOLS.get(("*", col))
        typ = typ or (TABLES.get(table) or {}).get(col, TEXT)
        is_price = (base, col) == ("items", "price")
        fits = pool is not None and (is_price if typ == NUM else
                                     isinstance(pool[0], int) if typ == INT else isinstance(pool[0], str) and not is_price)
        if not fits:
            pool = {TEXT: ["x", "a", "acme", "b"], INT: [1, 2, 3, 0], NUM: ["1.5", "2"]}[typ]
        return self.pick(pool)

    def fresh(self, table, col):
        """A key value that is not in the fixture (an INSERT that does not conflict)."""
        self.serial += 1
        typ = TABLES[table][col]
        if typ == TEXT:
            return self.pick(["new", "n", "zz", "x"]) + str(self.serial)
        return 100 + self.serial

    def name(self, table):
        """The table's name as written: plain, schema-qualified, quoted, upper-case."""
        if table == "archive.docs":
            return self.pick(["archive.docs", "archive.docs", '"archive"."docs"', "ARCHIVE.DOCS", "archive.\"docs\""])
        return self.pick([table] * 6 + [f"public.{table}", f'"{table}"', table.upper(), f'public."{table}"',
                          f'"public".{table}'])

    def alias(self, table):
        return self.pick(["t", "x", "d", "a", "s", "o", "src", "tgt", "t1", "t2", "docs", "items", "recent",
                          "notes", table.split(".")[-1][0]])

    def lit(self, v, typ):
        """A literal of `typ` for value v."""
        if typ == TEXT:
            return q(v)
        if typ == NUM:
            return str(v)
        return str(v)

    # -- expressions ----------------------------------------------------------------

    def ref(self, item, col, scope):
        """A column reference: qualified with the item's exposed name, unqualified (mostly
        only when no other FROM item has that column), or (sometimes) with the table's real
        name even when an alias hides it."""
        clash = any(o is not item and col in o.cols for o in scope)
        roll = self.r.random()
        if item.exposed is None or (roll < 0.45 and (not clash or self.p(0.1))):
            return col
        if roll < 0.93 or not (item.table and item.aliased):
            if not item.aliased and item.table and self.p(0.04):
                return f"{item.table if '.' in item.table else 'public.' + item.table}.{col}"
            return f"{item.exposed}.{col}"
        return f"{item.table.split('.')[-1]}.{col}"  # the name the alias hides

    def col_side(self, r, typ):
        """(expression, its type) around a column reference."""
        if self.p(0.68):
            return r, typ
        if typ == TEXT:
            forms = [(f"{r}::text", TEXT), (f"{r}::varchar", TEXT), (f"{r}::varchar(2)", TEXT), (f"{r}::char(3)", TEXT),
                     (f"CAST({r} AS varchar(3))", TEXT), (f"lower({r})", TEXT), (f"upper({r})", TEXT),
                     (f"trim({r})", TEXT), (f"norm({r})", TEXT), (f'{r} COLLATE "C"', TEXT), (f'{r} COLLATE "POSIX"', TEXT),
                     (f"{r} COLLATE ci", TEXT), (f'{r} COLLATE "und-x-icu"', TEXT), (f'{r} COLLATE "default"', TEXT),
                     (f"({r})", TEXT), (f"coalesce({r}, '')", TEXT), (f"{r} || ''", TEXT), (f"{r}::char(1)", TEXT),
                     (f"({r})::text", TEXT), (f"{r} COLLATE ucs_basic", TEXT)]
        elif typ == INT:
            forms = [(f"{r}::int", INT), (f"{r}::bigint", INT), (f"{r}::text", TEXT), (f"{r}::numeric(3,1)", NUM),
                     (f"add_one({r})", INT), (f"abs({r})", INT), (f"({r})", INT), (f"{r} + 0", INT), (f"{r}::smallint", INT),
                     (f"CAST({r} AS text)", TEXT)]
        else:
            forms = [(f"{r}::int", INT), (f"{r}::numeric(3,1)", NUM), (f"round({r}, 1)", NUM), (f"{r}::text", TEXT),
                     (f"({r})", NUM), (f"{r}::numeric", NUM), (f"{r}::float8", NUM)]
        return self.pick(forms)

    def lit_side(self, v, typ):
        """A literal (maybe dressed) of `typ`."""
        if typ == TEXT:
            s = str(v)
            if self.p(0.7):
                return q(s)
            return self.pick([f"{q(s)}::text", f"{q(s)}::varchar", f"{q(s)}::varchar(2)", f"{q(s)}::char(3)",
                              f"CAST({q(s)} AS text)", f"lower({q(s.upper())})", f"upper({q(s)})",
                              f'{q(s)} COLLATE "C"', f"{q(s)} COLLATE ci", f'{q(s)} COLLATE "POSIX"', f"({q(s)})",
                              "E" + q(s), f"{q(s)} || ''", f"trim({q(' ' + s + ' ')})", f"concat({q(s)})",
                              f"norm({q(s)})", f"{q(s)}::char(1)", f"{q(s + '  ')}", self.spelled(s), self.spelled(s)])
        if typ == INT:
            try:
                n = int(v)
            except (TypeError, ValueError):
                n = 1
            if self.p(0.7):
                return str(n)
            return self.pick([q(n), f"{n}::int", f"{q(n)}::int", f"{n}.4::int", f"{n}.0", f"({n})", f"add_one({n - 1})",
                              f"+{n}", f"{n}::numeric(3,1)", q(f"0{n}") if n >= 0 else q(n), f"{n}::bigint",
                              f"abs({n})", f"{n}.6::int"])
        s = str(v)
        if self.p(0.7):
            return s
        return self.pick([q(s), f"{s}::numeric(3,1)", f"{s}::int", f"{s}::numeric", f"round({s}, 1)", f"({s})"])

    def spelled(self, s):
        """The same string in another spelling PostgreSQL accepts: E'' escapes, U&'' escapes,
        dollar quotes, or two literals separated by a newline (which PostgreSQL joins)."""
        if not s:
            return "''"
        roll = self.r.random()
        if roll < 0.25:
            c = s[0]
            return "E'" + self.pick([f"\\x{ord(c):02x}", f"\\{ord(c):03o}", f"\\u{ord(c):04x}"]) + s[1:].replace("'", "''") + "'"
        if roll < 0.45:
            return "U&'" + "".join(f"\\{ord(c):04x}" for c in s) + "'"
        if roll < 0.65:
            return self.pick([f"$${s}$$", f"$q${s}$q$"])
        cut = self.r.randint(0, len(s))
        return q(s[:cut]) + self.pick(["\n", " \n ", "\n-- joined\n"]) + q(s[cut:])

    def pick_col(self, items, prefer=0.7):
        """(item, column, type) from the FROM items: the first (the target) preferred."""
        item = items[0] if (self.p(prefer) or len(items) == 1) else self.pick(items[1:])
        col = self.pick(list(item.cols))
        return item, col, item.cols[col]

    def comparison(self, items):
        item, col, typ = self.pick_col(items)
        r = self.ref(item, col, items)
        expr, etyp = self.col_side(r, typ)
        table = item.src or "*"
        v = self.value(table, col, typ)
        if etyp == TEXT and typ != TEXT:
            v = str(v)
        kind = self.pick(["eq"] * 10 + ["in"] * 4 + ["range", "range", "neq", "like", "between", "isnull", "taut",
                                                      "taut", "comp", "anyarr", "notin", "distinct", "bool", "row", "twice"])
        if kind == "twice":
            # the same value twice, spelled differently (PostgreSQL compares values, not spellings)
            lit = self.lit_side(v, etyp)
            if etyp == TEXT:
                alt = self.spelled(str(v))
            else:
                alt = self.pick([f"'{v}'", f"{v}.0", f"+{v}", f"'0{v}'" if not str(v).startswith("-") else f"'{v}'",
                                 f"{v}e0", f"{v}0" if "." in str(v) else f"{v}.00", f"({v})"])
            first, second = (lit, alt) if self.p(0.5) else (alt, lit)
            if self.p(0.3):
                return f"{expr} IN ({first}, {self.lit(self.value(table, col, typ), etyp) if etyp != TEXT else q(self.value(table, col, typ))}) AND {expr} = {second}"
            return f"{expr} = {first} AND {expr} = {second}"
        if kind == "bool":
            lit = self.lit_side(v, etyp)
            cmp = f"{expr} = {lit}"
            return self.pick([f"({cmp}) IS NOT FALSE", f"({cmp}) IS TRUE", f"({cmp}) = true", f"({cmp}) IS NOT TRUE",
                              f"({cmp}) = ({self.comparison(items)})", f"coalesce({cmp}, true)", f"NOT ({expr} <> {lit})",
                              f"CASE WHEN {cmp} THEN true ELSE {self.pick(['false', 'true', 'NULL'])} END",
                              f"({cmp}) IS UNKNOWN", f"({cmp}) <> false", f"{cmp} AND true", f"({cmp} OR NULL)"])
        if kind == "row":
            others = [c for c in item.cols if c != col]
            lit = self.lit_side(v, etyp)
            if others and self.p(0.6):
                o = self.pick(others)
                ov = self.value(table, o, item.cols[o])
                return (f"({expr}, {self.ref(item, o, items)}) {self.pick(['=', '=', '<>', 'IS NOT DISTINCT FROM'])} "
                        f"({lit}, {self.lit(ov, item.cols[o])})")
            return self.pick([f"ROW({expr}) = ROW({lit})", f"({expr}) IN (({lit}))", f"{expr} IN (VALUES ({lit}))",
                              f"{expr} = ANY('{{{str(v).strip() or 'x'}}}')" if etyp == TEXT and "," not in str(v) else f"{expr} = {lit}"])
        if kind == "eq":
            lit = self.lit_side(v, etyp)
            return f"{lit} = {expr}" if self.p(0.15) else f"{expr} = {lit}"
        if kind == "in":
            vals = [self.lit_side(str(self.value(table, col, typ)) if etyp == TEXT else self.value(table, col, typ), etyp)
                    for _ in range(self.r.randint(1, 4))]
            return f"{expr} IN ({', '.join(vals)})"
        if kind == "notin":
            return f"{expr} NOT IN ({self.lit_side(v, etyp)})"
        if kind == "anyarr":
            vals = [self.lit(str(self.value(table, col, typ)) if etyp == TEXT else self.value(table, col, typ), etyp)
                    for _ in range(self.r.randint(1, 3))]
            return f"{expr} = ANY(ARRAY[{', '.join(vals)}])"
        if kind == "range":
            return f"{expr} {self.pick(['<', '>', '<=', '>='])} {self.lit_side(v, etyp)}"
        if kind == "neq":
            return f"{expr} {self.pick(['<>', '!='])} {self.lit_side(v, etyp)}"
        if kind == "like":
            if etyp != TEXT:
                return f"{expr}::text LIKE '%'"
            return f"{expr} {self.pick(['LIKE', 'ILIKE', 'NOT LIKE', '~', 'SIMILAR TO'])} {q(str(v)[:1] + '%')}"
        if kind == "between":
            w = self.value(table, col, typ)
            if etyp == TEXT:
                w = str(w)
            return f"{expr} BETWEEN {self.lit(v, etyp)} AND {self.lit(w, etyp)}"
        if kind == "isnull":
            return f"{expr} IS {self.pick(['NULL', 'NOT NULL'])}"
        if kind == "distinct":
            return f"{expr} IS {self.pick(['', 'NOT '])}DISTINCT FROM {self.lit_side(v, etyp)}"
        if kind == "taut":
            if etyp == TEXT:
                forms = [f"{expr} >= ''", f"{expr} = {expr}", f"{r} = {r}", "1 = 1", "true", f"{expr} IS NOT NULL OR {expr} IS NULL",
                         "'a' = 'a'", f"{expr} <> ''", "NOT false", f"{expr} LIKE '%'"]
            else:
                forms = [f"{expr} > -1000", f"{expr} = {expr}", f"{r} = {r}", "1 = 1", "true", f"{expr} >= {expr}",
                         f"{expr} IS NULL OR {expr} IS NOT NULL", f"{expr} > 0 OR {expr} <= 0"]
            return self.pick(forms)
        # complementary: ranges or an equality and its negation joined by OR
        lit = self.lit(v, etyp)
        return self.pick([f"({expr} < {lit} OR {expr} >= {lit})", f"({expr} = {lit} OR {expr} <> {lit})",
                          f"{expr} = {lit} OR {expr} IS NULL OR {expr} <> {lit}"])

    def subquery_pred(self, items, depth):
        """IN / EXISTS / scalar subqueries, sometimes correlated, sometimes with unqualified
        columns that bind outwards (notes has no tenant_id)."""
        item, col, typ = self.pick_col(items)
        r = self.ref(item, col, items)
        other = self.pick(["docs", "items", "owners", "notes", "recent"])
        ocols = TABLES[other]
        same = [c for c, t in ocols.items() if t == typ]
        roll = self.r.random()
        if roll < 0.35 and same:
            oc = self.pick(same)
            inner = self.where([Item(other if self.p(0.6) else None, other, ocols)], depth + 1) if self.p(0.6) else None
            sel = f"SELECT {oc} FROM {self.name(other)}" + (f" WHERE {inner}" if inner else "")
            return f"{r} {self.pick(['IN', 'NOT IN', '= ANY'])} ({sel})"
        if roll < 0.75:
            # EXISTS with a correlated or outward-binding predicate
            outer_tenant = "tenant_id" in item.cols
            preds = []
            if other == "notes" and outer_tenant and self.p(0.5):
                preds.append(f"tenant_id = {q(self.pick(TENANTS))}")  # binds to the outer query
            if self.p(0.5):
                oc = self.pick(list(ocols))
                preds.append(f"{oc} = {self.lit(self.value(other, oc), ocols[oc])}")
            if same and self.p(0.5):
                preds.append(f"{self.pick(same)} = {r}")
            if self.p(0.3):
                preds.append(self.comparison([Item(None, other, ocols)] + items))
            w = " AND ".join(preds)
            return f"{'NOT ' if self.p(0.2) else ''}EXISTS (SELECT 1 FROM {self.name(other)}" + (f" WHERE {w})" if w else ")")
        if same:
            oc = self.pick(same)
            return f"{r} = (SELECT {oc} FROM {self.name(other)} WHERE id = {self.lit(self.value(other, 'id'), ocols['id'])})"
        return self.comparison(items)

    def where(self, items, depth=0):
        roll = self.r.random()
        if depth < 2 and roll < 0.14:
            return f"{self.where(items, depth + 1)} AND {self.where(items, depth + 1)}"
        if depth < 2 and roll < 0.22:
            a, b = self.where(items, depth + 1), self.where(items, depth + 1)
            return f"({a} OR {b})" if self.p(0.7) else f"{a} OR {b}"
        if depth < 2 and roll < 0.25:
            return f"NOT ({self.where(items, depth + 1)})"
        if depth < 2 and roll < 0.33:
            return self.subquery_pred(items, depth)
        return self.comparison(items)

    # -- FROM items -----------------------------------------------------------------

    def table_item(self, table, alias_prob=0.35, must_alias=False, used=()):
        """(sql, Item) for a table, aliased or not; never exposing a name in `used`."""
        base = table.split(".")[-1]
        if must_alias or base in used or self.p(alias_prob):
            a = self.alias(table)
            while a in used:
                a = a + str(self.r.randint(2, 9))
            return f"{self.name(table)} {self.pick(['AS ', ''])}{a}", Item(a, table, TABLES[table], aliased=True)
        return self.name(table), Item(base, table, TABLES[table])

    def derived_item(self, used=()):
        roll = self.r.random()
        a = self.pick(["s", "v", "sub", "d", "docs", "x"])
        while a in used:
            a = a + str(self.r.randint(2, 9))
        if roll < 0.4:
            t = self.pick(["docs", "items", "owners", "recent"])
            cols = TABLES[t]
            inner_from, inner_item = self.table_item(t)
            w = self.where([inner_item]) if self.p(0.6) else None
            return (f"(SELECT * FROM {inner_from}" + (f" WHERE {w}" if w else "") + f") AS {a}", Item(a, None, cols, src=t))
        if roll < 0.75:
            n = self.r.randint(1, 3)
            names = self.pick([["id"], ["x"], ["id", "tenant_id"], ["x", "y"], ["tenant_id"]])
            rows = []
            for _ in range(n):
                vals = [q(self.pick(DOC_IDS if c in ("id", "x") else TENANTS)) for c in names]
                rows.append("(" + ", ".join(vals) + ")")
            return (f"(VALUES {', '.join(rows)}) AS {a}({', '.join(names)})", Item(a, None, {c: TEXT for c in names}))
        # alias column list over a real table: renames columns
        t = self.pick(["docs", "recent", "owners"])
        cols = list(TABLES[t])
        renamed = list(reversed(cols[:2])) + cols[2:] if self.p(0.6) else [f"c{i}" for i in range(len(cols))]
        types = list(TABLES[t].values())
        return (f"{self.name(t)} AS {a}({', '.join(renamed)})", Item(a, None, dict(zip(renamed, types)), src="*"))

    def from_items(self, n, first=None, used=()):
        """n FROM items (comma-joined or JOINed), as (sql, [Item])."""
        used = set(used)
        out, items = "", []
        for i in range(n):
            if i == 0 and first:
                s, it = first
            elif self.p(0.7):
                t = self.pick(["docs", "items", "owners", "notes", "recent", "archive.docs", "acme_docs"],
                              [30, 20, 12, 10, 12, 6, 6])
                s, it = self.table_item(t, alias_prob=0.6 if items else 0.35, used=used)
            else:
                s, it = self.derived_item(used)
            used.add(it.exposed)
            if items and self.p(0.5):
                a = items[-1]
                common = [c for c in a.cols if c in it.cols and a.cols[c] == it.cols[c]]
                if common:
                    c = self.pick(common)
                    out += f" {self.pick(['JOIN', 'LEFT JOIN', 'INNER JOIN'])} {s} ON {a.exposed}.{c} = {it.exposed}.{c}"
                    items.append(it)
                    continue
            out += (", " if items else "") + s
            items.append(it)
        return out, items

    # -- statements -----------------------------------------------------------------

    def statements(self, n):
        return [self.statement() for _ in range(n)]

    def statement(self):
        kinds = ["agent", "select", "update", "delete", "insert", "upsert", "merge", "wcte", "explain", "truncate",
                 "function", "multi", "prepare", "insert_select_upsert"]
        weights = [14, 12, 16, 12, 8, 8, 7, 7, 9, 2, 5, 3, 1, 2]
        kind = self.pick(kinds, weights)
        return getattr(self, "gen_" + kind)()

    def gen_agent(self):
        t = self.pick(["docs", "items", "owners", "recent", "notes"])
        cols = TABLES[t]
        key = "id"
        roll = self.r.random()
        col = self.pick([key, key, "tenant_id" if "tenant_id" in cols else key])
        v = self.lit(self.value(t, col), cols[col])
        if roll < 0.35:
            proj = self.pick(["*", ", ".join(list(cols)[:2]), "count(*)"])
            return f"SELECT {proj} FROM {t} WHERE {col} = {v}" + (" LIMIT 10" if self.p(0.3) else "")
        if roll < 0.6:
            c = self.pick([c for c in cols if c != key])
            return f"UPDATE {t} SET {c} = {self.lit(self.value(t, c), cols[c])} WHERE {col} = {v}"
        if roll < 0.8:
            return f"DELETE FROM {t} WHERE {col} = {v}"
        names = [c for c in cols if t != "notes" or c != "id"]
        vals = [self.lit(self.fresh(t, c) if c == key else self.value(t, c), cols[c]) for c in names]
        return f"INSERT INTO {t} ({', '.join(names)}) VALUES ({', '.join(vals)})"

    def projection(self, items):
        roll = self.r.random()
        if roll < 0.35:
            return "*"
        if roll < 0.5:
            return "count(*)"
        cols = []
        for _ in range(self.r.randint(1, 3)):
            it = self.pick(items)
            c = self.pick(list(it.cols))
            cols.append(f"{it.exposed}.{c}" if it.exposed and (len(items) > 1 or self.p(0.4)) else c)
        if self.p(0.15):
            cols.append(self.pick(["add_one(1)", "norm('X')", "now()", "upper('a')",
                                   f"(SELECT count(*) FROM {self.name(self.pick(['notes', 'owners']))})"]))
        return ", ".join(cols)

    def select_core(self, allow_lock=True):
        n = self.pick([1, 1, 1, 2, 2, 3])
        fsql, items = self.from_items(n)
        s = f"SELECT {self.projection(items)} FROM {fsql}"
        if self.p(0.75):
            s += f" WHERE {self.where(items)}"
        if self.p(0.1):
            s += " ORDER BY 1"
        if self.p(0.1):
            s += f" LIMIT {self.r.randint(1, 5)}"
        if allow_lock and n == 1 and self.p(0.05):
            s += " FOR UPDATE"
        return s

    def gen_select(self):
        roll = self.r.random()
        if roll < 0.55:
            return self.select_core()
        if roll < 0.63:
            t1, t2 = self.pick(["docs", "recent", "owners", "archive.docs"]), self.pick(["docs", "recent", "owners", "items"])
            return (f"SELECT tenant_id FROM {self.name(t1)} WHERE {self.where([Item(None, t1, TABLES[t1])])} "
                    f"{self.pick(['UNION', 'UNION ALL', 'EXCEPT', 'INTERSECT'])} SELECT tenant_id FROM {self.name(t2)}")
        if roll < 0.73:
            name = self.pick(["docs", "recent", "items", "x", "c", "notes"])
            src = self.pick(["docs", "items", "recent", "owners"])
            body_from, body_item = self.table_item(src)
            body = f"SELECT * FROM {body_from}" + (f" WHERE {self.where([body_item])}" if self.p(0.5) else "")
            mat = self.pick(["", "", "MATERIALIZED ", "NOT MATERIALIZED "])
            outer = self.pick([f"SELECT * FROM {name}", f"SELECT count(*) FROM {name}",
                               f"SELECT * FROM {name} WHERE id IN (SELECT id FROM {name})",
                               f"SELECT * FROM {name} JOIN {self.name('recent')} r ON r.tenant_id = {name}.tenant_id"
                               if "tenant_id" in TABLES[src] else f"SELECT * FROM {name}",
                               f"SELECT * FROM {self.name(name) if name in TABLES else name}"])
            return f"WITH {name} AS {mat}({body}) {outer}"
        if roll < 0.8:
            return self.pick(["SELECT 1", "SELECT now()", "VALUES (1), (2)", "SELECT * FROM (VALUES ('a')) v(x)",
                              "SELECT add_one(1)", "SELECT norm(' A ')", f"TABLE {self.name(self.pick(['docs', 'recent', 'items']))}",
                              "SELECT * FROM generate_series(1, 3) g", "SELECT upper('x'), length('abc')",
                              "WITH c AS (SELECT 1 AS x) SELECT x FROM c", f"SELECT * FROM acme_docs WHERE id = {q(self.pick(DOC_IDS))}",
                              "SELECT count(*) FROM pg_class", "SELECT pg_typeof(1)", "SELECT '{\"a\":1}'::jsonb -> 'a'"])
        if roll < 0.9:
            # subquery in the select list or LATERAL
            t = self.pick(["docs", "owners", "recent"])
            f, it = self.table_item(t, alias_prob=0.8)
            e = it.exposed
            return self.pick([
                f"SELECT {e}.id, (SELECT count(*) FROM {self.name('notes')} WHERE doc_id = {e}.id::text) FROM {f}",
                f"SELECT * FROM {f}, LATERAL (SELECT * FROM {self.name('items')} i WHERE i.tenant_id = {e}.tenant_id) l"
                if "tenant_id" in it.cols else f"SELECT * FROM {f}",
                f"SELECT * FROM {f} WHERE {self.subquery_pred([it], 0)}",
            ])
        # self-join
        t = self.pick(["docs", "items", "recent"])
        a, b = self.pick([("a", "b"), ("x", "y"), (t, "t2"), ("d1", t)])
        return (f"SELECT {a}.id FROM {self.name(t)} {a} JOIN {self.name(t)} {b} ON {a}.id = {b}.id "
                f"WHERE {self.where([Item(b, t, TABLES[t], True), Item(a, t, TABLES[t], True)])}")

    def set_value(self, table, col, typ, items, target_exposed):
        roll = self.r.random()
        if roll < 0.5:
            v = self.value(table, col)
            if col == "tenant_id" and self.p(0.5):
                v = self.pick(TENANTS)
            if typ == TEXT and self.p(0.06):
                return self.pick([f"{q(v)}::varchar(2)", f"{q(str(v) + '           ')}", f"{q(v)}::char(2)", f"lower({q(v)})"])
            if typ == INT and self.p(0.1):
                return self.pick([f"{v}.6", f"{q(v)}", f"{v}.4"])
            if typ == NUM and self.p(0.2):
                return self.pick([f"{v}1", "1.555", f"{q(v)}"])
            return self.lit(v, typ)
        others = [c for c, t in items[0].cols.items() if t == typ and c != col]
        if roll < 0.62 and others:
            o = self.pick(others)
            return self.pick([o, f"{target_exposed}.{o}" if target_exposed else o])
        if roll < 0.7:
            return col if self.p(0.5) else f"{col}" + (" || 'x'" if typ == TEXT else " + 1")
        if roll < 0.78:
            other = self.pick(["docs", "owners", "recent", "items"])
            oc = [c for c, t in TABLES[other].items() if t == typ]
            if oc:
                return (f"(SELECT {self.pick(oc)} FROM {self.name(other)} WHERE id = "
                        f"{self.lit(self.value(other, 'id'), TABLES[other]['id'])})")
        if roll < 0.86:
            if typ == TEXT:
                return self.pick([f"lower({q(self.pick(TENANTS))})", f"upper({col})", f"concat({q('a')}, {q('cme')})",
                                  f"norm({q(' ACME ')})", f"coalesce({col}, 'acme')"])
            return self.pick([f"add_one({self.value(table, col) if typ != NUM else 1})", f"abs({col})", "1 + 1"])
        if roll < 0.9:
            return "DEFAULT"
        if len(items) > 1:
            o = items[1]
            same = [c for c, t in o.cols.items() if t == typ]
            if same and o.exposed:
                return f"{o.exposed}.{self.pick(same)}"
        return self.lit(self.value(table, col), typ)

    def assignments(self, table, items, target_exposed, allow_key=0.05):
        cols = TABLES[table]
        choices = [c for c in cols if c != "id" or self.p(allow_key)]
        n = min(len(choices), self.pick([1, 1, 1, 2, 2, 3]))
        chosen = self.r.sample(choices, n)
        if self.p(0.08) and n >= 2:
            vals = [self.set_value(table, c, cols[c], items, target_exposed) for c in chosen]
            if self.p(0.3):
                other = self.pick(["docs", "owners", "recent"])
                sub = [self.pick([c for c, t in TABLES[other].items() if t == cols[x]] or ["id"]) for x in chosen]
                return (f"({', '.join(chosen)}) = (SELECT {', '.join(sub)} FROM {self.name(other)} "
                        f"WHERE id = {self.lit(self.value(other, 'id'), TABLES[other]['id'])})")
            return f"({', '.join(chosen)}) = {self.pick(['', 'ROW'])}({', '.join(vals)})"
        return ", ".join(f"{c} = {self.set_value(table, c, cols[c], items, target_exposed)}" for c in chosen)

    def returning(self):
        return self.pick(["", "", "", "", " RETURNING *", " RETURNING id", " RETURNING 1"])

    def again(self, table, target):
        """Half the time, the first FROM/USING item of an UPDATE/DELETE is the target table
        again: under an alias, or under its own name when the target is aliased."""
        if not self.p(0.5):
            return None
        if target.aliased and self.p(0.5):
            return self.name(table), Item(table.split(".")[-1], table, TABLES[table])
        return self.table_item(table, must_alias=True, used={target.exposed})

    def gen_update(self, table=None):
        table = table or self.pick(WRITABLE, WRITE_WEIGHTS)
        tsql, target = self.table_item(table, alias_prob=0.3)
        items = [target]
        from_sql = ""
        if self.p(0.3) and table != "acme_docs":
            fsql, extra = self.from_items(self.pick([1, 1, 2]), self.again(table, target), used={target.exposed})
            from_sql = " FROM " + fsql
            items += extra
        only = "ONLY " if self.p(0.05) and table != "acme_docs" else ""
        s = f"UPDATE {only}{tsql} SET {self.assignments(table, items, target.exposed)}{from_sql}"
        if self.p(0.9):
            s += f" WHERE {self.where(items)}"
        return s + self.returning()

    def gen_delete(self, table=None):
        table = table or self.pick(WRITABLE, WRITE_WEIGHTS)
        tsql, target = self.table_item(table, alias_prob=0.3)
        items = [target]
        using = ""
        if self.p(0.3) and table != "acme_docs":
            fsql, extra = self.from_items(self.pick([1, 1, 2]), self.again(table, target), used={target.exposed})
            using = " USING " + fsql
            items += extra
        s = f"DELETE FROM {'ONLY ' if self.p(0.05) and table != 'acme_docs' else ''}{tsql}{using}"
        if self.p(0.92):
            s += f" WHERE {self.where(items)}"
        return s + self.returning()

    def insert_values(self, table, conflict=False):
        cols = TABLES[table]
        names = [c for c in cols if c != "id"]
        chosen = self.r.sample(names, self.r.randint(0, len(names)))
        if table != "notes" or self.p(0.3):
            chosen = ["id"] + chosen
        if self.p(0.5):
            self.r.shuffle(chosen)
        rows = []
        for _ in range(self.pick([1, 1, 1, 2, 3])):
            vals = []
            for c in chosen:
                if c == "id":
                    v = self.value(table, c) if (conflict and self.p(0.8)) or self.p(0.08) else self.fresh(table, c)
                else:
                    v = self.value(table, c)
                roll = self.r.random()
                if roll < 0.08:
                    vals.append(self.set_value(table, c, cols[c], [Item(None, table, cols)], None)
                                if c != "id" else self.lit(v, cols[c]))
                elif roll < 0.12 and cols[c] == TEXT:
                    vals.append(self.pick([f"{q(v)}::varchar(2)", f"{q(str(v) + '           ')}", f"upper({q(v)})"]))
                elif roll < 0.15 and cols[c] == INT and c != "id":
                    vals.append(f"{v}.6")
                else:
                    vals.append(self.lit(v, cols[c]))
            rows.append("(" + ", ".join(vals) + ")")
        if not chosen:
            return "DEFAULT VALUES", chosen
        if self.p(0.1) and len(chosen) == len(cols) and list(chosen) == list(cols):
            return "VALUES " + ", ".join(rows), chosen
        return f"({', '.join(chosen)}) VALUES " + ", ".join(rows), chosen

    def gen_insert(self):
        table = self.pick(WRITABLE, WRITE_WEIGHTS)
        cols = TABLES[table]
        if self.p(0.15) and table != "acme_docs":
            src = self.pick([t for t in TABLES if t != "acme_docs" and TABLES[t]["id"] == cols["id"]])
            scols = TABLES[src]
            common = [c for c in cols if c in scols and scols[c] == cols[c]]
            sel = ", ".join(f"{c} || 'x'" if c == "id" and cols[c] == TEXT else
                            (f"{c} + 1000" if c == "id" else c) for c in common)
            fsql, it = self.table_item(src)
            w = f" WHERE {self.where([it])}" if self.p(0.7) else ""
            return f"INSERT INTO {self.name(table)} ({', '.join(common)}) SELECT {sel} FROM {fsql}{w}" + self.returning()
        body, _ = self.insert_values(table)
        alias = f" AS {self.alias(table)}" if self.p(0.1) else ""
        return f"INSERT INTO {self.name(table)}{alias} {body}" + self.returning()

    def gen_upsert(self):
        table = self.pick(["docs", "items", "owners", "recent", "archive.docs", "notes"], [30, 25, 10, 12, 5, 5])
        body, chosen = self.insert_values(table, conflict=True)
        if "id" not in chosen:
            body, chosen = self.insert_values(table, conflict=True)
        alias = self.alias(table) if self.p(0.35) else None
        ref = alias or table.split(".")[-1]
        head = f"INSERT INTO {self.name(table)}" + (f" AS {alias}" if alias else "") + f" {body}"
        target = self.pick(["(id)", "(id)", "(id)", f"ON CONSTRAINT {table.split('.')[-1]}_pkey", ""])
        if table == "owners" and self.p(0.5):
            # conflicts on another unique key: the row updated is not the id inserted
            names = [self.pick(POOLS[("owners", "name")]) for _ in range(self.r.randint(1, 2))]
            rows = ", ".join(f"({self.fresh('owners', 'id')}, {q(n)}, {q(self.pick(TENANTS))})" for n in dict.fromkeys(names))
            head = (f"INSERT INTO {self.name(table)}" + (f" AS {alias}" if alias else "") +
                    f" (id, name, tenant_id) VALUES {rows}")
            target = self.pick(["(name)", "ON CONSTRAINT owners_name", "(lower(name))"])
        if self.p(0.15):
            return f"{head} ON CONFLICT {target} DO NOTHING".replace("  ", " ") + self.returning()
        if not target:
            target = "(id)"
        cols = TABLES[table]
        sets = []
        for c in self.r.sample([c for c in cols if c != "id"], self.r.randint(1, min(3, len(cols) - 1))):
            roll = self.r.random()
            if roll < 0.4:
                sets.append(f"{c} = {self.pick(['EXCLUDED', 'excluded'])}.{c}")
            elif roll < 0.65:
                v = self.value(table, c)
                sets.append(f"{c} = {self.lit(v, cols[c])}")
            elif roll < 0.8:
                same = [o for o, t in cols.items() if t == cols[c]]
                sets.append(f"{c} = {self.pick([ref + '.', '', 'EXCLUDED.'])}{self.pick(same)}")
            else:
                sets.append(f"{c} = {self.set_value(table, c, cols[c], [Item(ref, table, cols)], ref)}")
        s = f"{head} ON CONFLICT {target} DO UPDATE SET {', '.join(sets)}"
        if self.p(0.25):
            s += f" WHERE {self.where([Item(ref, table, cols), Item('excluded', table, cols)])}"
        return s + self.returning()

    def gen_merge(self):
        table = self.pick(["docs", "items", "owners", "recent", "archive.docs"], [35, 25, 10, 20, 10])
        cols = TABLES[table]
        tsql, target = self.table_item(table, alias_prob=0.7)
        t = target.exposed
        roll = self.r.random()
        if roll < 0.45:
            n = self.r.randint(1, 3)
            ids = self.r.sample(POOLS[(table.split(".")[-1], "id")], n)
            if self.p(0.4):
                ids[-1] = self.fresh(table, "id")
            rows = ", ".join(f"({self.lit(i, cols['id'])}, {q(self.pick(TENANTS))})" for i in ids)
            src, s_item = f"(VALUES {rows}) AS s(id, tenant_id)", Item("s", None, {"id": cols["id"], "tenant_id": TEXT})
        elif roll < 0.75:
            other = self.pick([x for x in ("docs", "items", "owners", "recent", "archive.docs") if TABLES[x]["id"] == cols["id"]])
            src_from, s_item = self.table_item(other, must_alias=True)
            if s_item.exposed == t:
                s_item.exposed += "s"
                src_from += "s"
            src = src_from
        else:
            other = self.pick([x for x in ("docs", "items", "recent") if TABLES[x]["id"] == cols["id"]])
            fr, it = self.table_item(other)
            src = f"(SELECT * FROM {fr} WHERE {self.where([it])}) AS s"
            s_item = Item("s", None, TABLES[other], src=other)
        s = s_item.exposed
        on = f"{t}.id = {s}.id"
        if self.p(0.2):
            on += f" AND {self.where([target, s_item])}"
        whens = []
        for _ in range(self.r.randint(1, 3)):
            cond = f" AND {self.where([target, s_item])}" if self.p(0.3) else ""
            if self.p(0.6):
                act = self.r.random()
                if act < 0.55:
                    sets = []
                    for c in self.r.sample([c for c in cols if c != "id"], self.r.randint(1, 2)):
                        if c in s_item.cols and s_item.cols[c] == cols[c] and self.p(0.4):
                            sets.append(f"{c} = {s}.{c}")
                        else:
                            sets.append(f"{c} = {self.set_value(table, c, cols[c], [target], t)}")
                    whens.append(f"WHEN MATCHED{cond} THEN UPDATE SET {', '.join(sets)}")
                elif act < 0.85:
                    whens.append(f"WHEN MATCHED{cond} THEN DELETE")
                else:
                    whens.append(f"WHEN MATCHED{cond} THEN DO NOTHING")
            else:
                src_cols = [c for c in s_item.cols if c in cols and s_item.cols[c] == cols[c]]
                if "id" in src_cols and self.p(0.85):
                    vals = [f"{s}.{c}" if self.p(0.6) else self.lit(self.value(table, c), cols[c]) if c != "id" else f"{s}.id"
                            for c in src_cols]
                    whens.append(f"WHEN NOT MATCHED{cond.replace(t + '.', s + '.') if cond else ''} THEN INSERT "
                                 f"({', '.join(src_cols)}) VALUES ({', '.join(vals)})")
                else:
                    whens.append("WHEN NOT MATCHED THEN DO NOTHING")
        # An unconditional WHEN [NOT] MATCHED must be the last of its kind.
        ordered = []
        for kind in ("WHEN MATCHED", "WHEN NOT MATCHED"):
            mine = [w for w in whens if w.startswith(kind + " ")]
            cond = [w for w in mine if w.startswith(kind + " AND")]
            plain = [w for w in mine if not w.startswith(kind + " AND")]
            ordered += cond + plain[:1]
        self.r.shuffle(ordered) if self.p(0.2) else None
        return f"MERGE INTO {tsql} USING {src} ON {on} " + " ".join(ordered)

    def gen_wcte(self):
        roll = self.r.random()
        name = self.pick(["d", "u", "i", "x", "docs", "recent", "moved", "items"])
        if roll < 0.35:
            inner = self.gen_delete()
        elif roll < 0.65:
            inner = self.gen_update()
        elif roll < 0.8:
            inner = self.gen_insert()
        else:
            # a read-only CTE named like a table, then a write whose target is the real table
            t = self.pick(["docs", "recent", "items"])
            src = self.pick(["docs", "items", "recent"])
            body = f"SELECT * FROM {self.name(src)}" + (f" WHERE {self.where([Item(None, src, TABLES[src])])}" if self.p(0.5) else "")
            write = self.pick([self.gen_delete, self.gen_update])(t)
            return f"WITH {t} AS ({body}) {write}"
        if "RETURNING" not in inner:
            inner += " RETURNING *"
        outer = self.pick([f"SELECT count(*) FROM {name}", f"SELECT * FROM {name}", "SELECT 1",
                           f"SELECT * FROM {name} LIMIT 1",
                           f"DELETE FROM {self.name('notes')} WHERE doc_id IN (SELECT id::text FROM {name})",
                           f"SELECT * FROM {self.name('docs')} WHERE id IN (SELECT id::text FROM {name})"])
        mat = self.pick(["", "", "MATERIALIZED "])
        return f"WITH {name} AS {mat}({inner}) {outer}"

    def gen_explain(self):
        inner = self.pick([self.gen_update, self.gen_delete, self.gen_insert, self.gen_upsert, self.gen_merge,
                           self.gen_select, self.gen_wcte, self.gen_agent, self.gen_function],
                          [16, 14, 8, 6, 6, 10, 8, 8, 5])()
        if inner.upper().startswith(("CALL", "EXPLAIN", "TRUNCATE")) or ";" in inner:
            inner = self.gen_delete()
        form = self.pick(EXPLAIN_EXEC) if self.p(0.7) else self.pick(EXPLAIN_PLAN)
        return f"{form} {inner}"

    def gen_truncate(self):
        tables = self.r.sample(["docs", "items", "owners", "notes", "recent", "archive.docs"], self.pick([1, 1, 1, 2]))
        return (f"TRUNCATE {self.pick(['', 'TABLE '])}{self.pick(['', '', 'ONLY '])}"
                f"{', '.join(self.name(t) for t in tables)}"
                f"{self.pick(['', '', ' RESTART IDENTITY', ' CONTINUE IDENTITY'])}{self.pick(['', '', ' CASCADE', ' RESTRICT'])}")

    def gen_function(self):
        d = q(self.pick(DOC_IDS))
        return self.pick([
            f"SELECT touch_doc({d})", "SELECT nextval('ticket_seq')", "SELECT setval('ticket_seq', 42)",
            f"CALL archive_doc({d})", f"SELECT * FROM touch_doc({d})", "SELECT id FROM docs WHERE touch_doc(id) > 0",
            "SELECT nextval('public.ticket_seq'::regclass)", "SELECT pg_catalog.nextval('ticket_seq')",
            "VALUES (nextval('ticket_seq'))", "SELECT * FROM docs WHERE n < nextval('ticket_seq')",
            f"SELECT \"touch_doc\"({d})", f"SELECT TOUCH_DOC({d})", f"SELECT public.touch_doc(p => {d})",
            "SELECT currval('ticket_seq')", "SELECT lastval()",
            f"WITH f AS (SELECT touch_doc({d}) AS k) SELECT k FROM f", "SELECT add_one(41)", "SELECT norm(title) FROM docs",
            f"INSERT INTO notes (doc_id, note) VALUES ({d}, 'auto')", "INSERT INTO notes DEFAULT VALUES",
            f"UPDATE items SET qty = nextval('ticket_seq') WHERE id = {self.pick([1, 2, 3])}",
            f"SELECT * FROM items WHERE id = {self.pick([1, 2])} AND touch_doc({d}) >= 0",
            f"SELECT CASE WHEN id = 'a' THEN touch_doc(id) END FROM docs WHERE id = {d}",
            "SELECT setval('ticket_seq', nextval('ticket_seq') + 1, false)",
            f"SELECT id FROM docs WHERE id = {d} AND norm(title) = 'alpha'",
            f"SELECT 1 FROM docs d WHERE d.id = {d} AND add_one(d.n) > 0",
        ])

    def gen_prepare(self):
        roll = self.r.random()
        if roll < 0.4:
            inner = self.pick([self.gen_update, self.gen_delete, self.gen_insert, self.gen_agent])()
            run = self.pick(["EXECUTE p", "EXPLAIN ANALYZE EXECUTE p", "EXPLAIN EXECUTE p", "EXECUTE p; EXECUTE p"])
            return f"PREPARE p AS {inner}; {run}"
        d = self.pick(DOC_IDS)
        return self.pick([
            f"PREPARE p(text) AS DELETE FROM docs WHERE id = $1; EXECUTE p({q(d)})",
            f"PREPARE p(text) AS UPDATE docs SET tenant_id = $1 WHERE id = {q(d)}; EXECUTE p({q(self.pick(TENANTS))})",
            f"PREPARE p(int) AS UPDATE items SET qty = $1 WHERE id = {self.pick([1, 2, 3])}; EXECUTE p(5)",
            f"PREPARE p(text, text) AS INSERT INTO docs (id, tenant_id) VALUES ($1, $2); EXECUTE p('p1', {q(self.pick(TENANTS))})",
            f"PREPARE p(text) AS SELECT * FROM docs WHERE tenant_id = $1; EXECUTE p({q(self.pick(TENANTS))})",
            f"PREPARE p AS SELECT touch_doc({q(d)}); EXECUTE p",
            f"PREPARE p(text) AS DELETE FROM docs WHERE id = $1; EXPLAIN ANALYZE EXECUTE p({q(d)})",
        ])

    def gen_insert_select_upsert(self):
        table = self.pick(["docs", "recent", "items"])
        cols = TABLES[table]
        src = self.pick([t for t in ("docs", "archive.docs", "recent", "items", "owners") if TABLES[t]["id"] == cols["id"]])
        common = [c for c in cols if c in TABLES[src] and TABLES[src][c] == cols[c]]
        fsql, it = self.table_item(src)
        w = f" WHERE {self.where([it])}" if self.p(0.7) else ""
        sets = ", ".join(f"{c} = {self.pick(['EXCLUDED.' + c, 'EXCLUDED.' + self.pick(common), self.lit(self.value(table, c), cols[c])])}"
                         for c in self.r.sample([c for c in common if c != "id"] or ["id"], 1))
        return (f"INSERT INTO {self.name(table)} ({', '.join(common)}) SELECT {', '.join(common)} FROM {fsql}{w} "
                f"ON CONFLICT (id) DO UPDATE SET {sets}")

    def gen_multi(self):
        if self.p(0.5):
            # two writes on one table, often under the same WHERE: one operation each
            table = self.pick(["docs", "items", "recent", "owners"])
            _, it = self.table_item(table, alias_prob=0)
            w = self.where([it])
            make = [lambda: f"UPDATE {table} SET {self.assignments(table, [it], None)} WHERE {w}",
                    lambda: f"DELETE FROM {table} WHERE {w}",
                    lambda: f"UPDATE {table} SET {self.assignments(table, [it], None)}"]
            return f"{self.pick(make)()}; {self.pick(make)()}"
        a = self.pick([self.gen_agent, self.gen_select, self.gen_function, self.gen_update])()
        b = self.pick([self.gen_agent, self.gen_delete, self.gen_update, self.gen_insert])()
        return f"{a}; {b}"
