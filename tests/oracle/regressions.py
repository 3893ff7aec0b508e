"""tests/oracle/regressions.sql: every under-claim the oracle ever found, minimised.

Format: entries end with `;` (at the end of a line, outside quotes) or with a blank line;
`-- class: N` (and any other `--` lines) before an entry annotate it."""

import re
from dataclasses import dataclass
from pathlib import Path

from . import sqltok

FILE = Path(__file__).resolve().parent / "regressions.sql"


@dataclass
class Entry:
    sql: str
    cls: str
    note: str
    line: int


def load(path=FILE):
    entries, buf, notes, cls, start = [], [], [], "", 0
    lines = Path(path).read_text().splitlines()

    def close():
        nonlocal buf, notes, cls
        text = "\n".join(buf).strip()
        if text:
            toks = sqltok.tokenize(text)
            if toks and toks[-1] == ";":
                text = text[:text.rstrip().rfind(";")].rstrip()
            entries.append(Entry(text, cls, " ".join(notes), start))
        buf, notes, cls = [], [], ""

    for no, line in enumerate(lines, 1):
        stripped = line.strip()
        if not buf and stripped.startswith("--"):
            m = re.match(r"--\s*class:\s*(\S+)", stripped)
            if m:
                cls = m.group(1)
            notes.append(stripped[2:].strip())
            continue
        if not stripped:
            close()
            continue
        if not buf:
            start = no
        buf.append(line)
        toks = sqltok.tokenize("\n".join(buf))
        depth = sum(1 if t == "(" else -1 if t == ")" else 0 for t in toks)
        if toks and toks[-1] == ";" and depth <= 0:
            close()
    close()
    return entries
