"""The benchmark harness: ``python -m bench.intake``, ``bench.pipeline``, ``bench.soak``,
``bench.plot`` and ``bench.run_all`` (what ``make bench`` runs).

Every script creates and drops its own PostgreSQL database, claims a Redis db number of its
own, starts and stops its own subprocesses and prints its figures next to a baseline measured
in the same run. Raw figures go to ``bench/results/raw/`` (not committed); ``bench.plot``
turns them into ``bench/results/results.md`` and ``bench/results/bench.png``.
"""
