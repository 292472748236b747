"""End-to-end tests run the whole stack as processes (see devtools.devstack).

Their shared helpers are in tests/support (`tests.support.events`).
"""
