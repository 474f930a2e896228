"""Fixtures for the chart tests: the two rendered value sets the checks use."""

from __future__ import annotations

import os

import pytest

from tests.deploy.chart import FULL_VALUES, MONITORING_API, Manifest, render


@pytest.fixture(scope="session")
def default_manifests() -> list[Manifest]:
    """The chart rendered with its default values."""
    return render()


@pytest.fixture(scope="session")
def full_manifests() -> list[Manifest]:
    """The chart rendered with ci/full-values.yaml where the Prometheus Operator's API exists."""
    return render([FULL_VALUES], api_versions=[MONITORING_API])


@pytest.fixture(params=["default", "full"])
def manifests(request: pytest.FixtureRequest) -> list[Manifest]:
    """Each rendered value set in turn."""
    fixture: list[Manifest] = request.getfixturevalue(f"{request.param}_manifests")
    return fixture


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No EMITTER_*, TELEGRAM_* or OTEL_* variables of the caller leak into settings under test."""
    for name in list(os.environ):
        if name.upper().startswith(("EMITTER_", "TELEGRAM_", "OTEL_")):
            monkeypatch.delenv(name)
