"""`@pytest.mark.settings(name=value, ...)`: the test's settings (and so its `live_server`)
with those fields changed, e.g. `@pytest.mark.settings(env="production", rate_burst=3)`."""

from __future__ import annotations

import dataclasses

import pytest


def pytest_configure(config):
    config.addinivalue_line("markers", "settings(**fields): override fields of the test's Settings")


@pytest.fixture
def settings(settings, request):
    marker = request.node.get_closest_marker("settings")
    return dataclasses.replace(settings, **marker.kwargs) if marker else settings
