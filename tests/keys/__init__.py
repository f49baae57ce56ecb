"""API keys: the access decision, model rules, expiry, rolling, usage, sealed values, staleness,
the decision caches, shared counters and client addresses."""
