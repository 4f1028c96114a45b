"""Real PostgreSQL and Redis-compatible servers from pip packages, for ``make run`` and for
tests on a machine without services. Each runs as a foreground child process of ours, so it
dies with us and leaves nothing behind; each sits behind one small module to be swappable."""
