"""Users, passwords, sessions and tokens."""
