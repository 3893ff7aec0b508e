"""The long oracle run (`make oracle`) and the minimiser, from the command line:

    PYTHONPATH=tests .venv/bin/python -m oracle [--seed S] [--statements N] [--dsn DSN]
    PYTHONPATH=tests .venv/bin/python -m oracle --minimise "SQL" ["SQL" ...]
    PYTHONPATH=tests .venv/bin/python -m oracle --regressions

Without --dsn a throw-away PostgreSQL is started (tests/harness.py). The seed is printed
first: `--seed S` reproduces a run. Exit status 1 when an under-claim was found.
Environment: ORACLE_SEED, ORACLE_STATEMENTS, SCOPEGATE_CLI.
"""

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import harness  # noqa: E402

from . import generator, minimise, regressions, runner  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m oracle", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=int(os.environ.get("ORACLE_SEED") or 0) or None)
    ap.add_argument("--statements", type=int, default=int(os.environ.get("ORACLE_STATEMENTS") or 50000))
    ap.add_argument("--chunk", type=int, default=5000, help="statements decoded per CLI call")
    ap.add_argument("--dsn", help="an existing server's admin DSN (dbname=postgres); default: start one")
    ap.add_argument("--show", type=int, default=20, help="under-claims to print")
    ap.add_argument("--minimise-found", type=int, default=5, help="under-claims to minimise at the end")
    ap.add_argument("--minimise", nargs="+", metavar="SQL", help="only minimise these statements")
    ap.add_argument("--regressions", action="store_true", help="only judge tests/oracle/regressions.sql")
    args = ap.parse_args(argv)
    seed = args.seed if args.seed is not None else int(time.time() * 1000) % 2**31
    pg = None
    if args.dsn:
        dsn = args.dsn
    else:
        pg = harness.Postgres().start()
        dsn = pg.dsn
    try:
        lab = runner.Lab(dsn)
        cli_mtime = os.path.getmtime(runner.cli_path())
        print(f"oracle: decoder {runner.cli_path()} (modified {time.ctime(cli_mtime)})")
        if args.minimise:
            for sql in args.minimise:
                small, found = minimise.minimise(lab, sql)
                print(f"-- class: {found[0]['class'] if found else '?'}\n{small};" if found else f"-- (no under-claim) {sql}")
                for f in found:
                    print(f"--   {f['kind']} {f['table']}: {f['why']}")
            return 0
        if args.regressions:
            entries = regressions.load()
            report = runner.run(lab, [e.sql for e in entries])
            classes = {e.sql: e.cls for e in entries}
            for sql, _, _, found in report.under:  # the file's hand-checked class
                for f in found:
                    f["class"] = int(classes[sql]) if classes.get(sql, "").isdigit() else f["class"]
            print("regressions: " + report.summary())
            for item in report.under[:args.show]:
                print(runner.describe(*item))
            return 1 if report.under else 0
        print(f"oracle: seed {seed}, {args.statements} statements (reproduce: make oracle ORACLE_SEED={seed} "
              f"ORACLE_STATEMENTS={args.statements})", flush=True)
        gen = generator.Generator(seed)
        report = runner.Report()
        done = 0
        while done < args.statements:
            n = min(args.chunk, args.statements - done)
            runner.run(lab, gen.statements(n), report)
            done += n
            print(f"  {done}: {report.summary()}", flush=True)
        print("oracle: " + report.summary())
        print("PostgreSQL errors (most frequent): " + "; ".join(f"{k} x{v}" for k, v in report.top_errors()))
        for item in report.under[:args.show]:
            print(runner.describe(*item) + "\n")
        if report.under and args.minimise_found:
            print("minimised (append to tests/oracle/regressions.sql):")
            seen = set()
            for sql, _, _, found in report.under:
                key = (found[0]["class"], found[0]["kind"])
                if key in seen:
                    continue
                seen.add(key)
                small, f = minimise.minimise(lab, sql, (found[0]["kind"], found[0]["table"]))
                print(f"-- class: {found[0]['class']} ({found[0]['kind']}; seed {seed})\n{small};")
                if len(seen) >= args.minimise_found:
                    break
        if os.path.getmtime(runner.cli_path()) != cli_mtime:
            print(f"oracle: WARNING: {runner.cli_path()} was rebuilt during the run; chunks were judged "
                  "against different decoders (rerun with the same seed)")
        print(f"oracle: seed {seed}: {'FAILED' if report.under else 'passed'}")
        return 1 if report.under else 0
    finally:
        if pg is not None:
            pg.stop()


sys.exit(main())
