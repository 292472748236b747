"""Service functions: each takes ids or messages, does one job in short transactions,
and is safe to run twice. Actors, consumers and timers only call these."""
