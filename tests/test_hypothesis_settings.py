"""The property tests' settings (tests/conftest.py): never timed, under every profile."""

from __future__ import annotations

from hypothesis import HealthCheck, settings


def test_no_property_test_is_timed() -> None:
    """A loaded machine must not fail a property test: no per-example deadline, no "too slow" check."""
    assert settings.default.deadline is None
    assert HealthCheck.too_slow in settings.default.suppress_health_check
