"""Settings shared by every test directory."""

from __future__ import annotations

from hypothesis import settings

# Property tests are judged by their examples, not by their speed: on a shared 2-core
# machine a slow example (an RSA signature under load) must not fail a test.
settings.register_profile("default", deadline=None)
settings.load_profile("default")
