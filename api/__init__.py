"""The HTTP intake API: parse, authorise, call one service, serialise."""
