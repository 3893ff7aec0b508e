"""The SQL decoder's effect oracle: generated and regression statements are run on a real
PostgreSQL (inside transactions that are rolled back), what they really did is measured
(audit triggers, sequences, EXPLAIN plans) and compared with the operations the decoder
(`scopegate sql --batch`) claims. Anything PostgreSQL did that the operations do not say is
an under-claim. See runner.judge for the rules, generator for the statements, minimise for
the reducer, and `python -m oracle --help` (with tests/ on sys.path) for the long run."""
