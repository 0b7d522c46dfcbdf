"""Pure decision code: signals, policies, controller, routing, queueing, cost.

Nothing here reads a clock, does I/O or uses asyncio; every function takes ``now`` in seconds.
``serve/`` (real clock) and ``sim/`` (event clock) are the only drivers.
"""
