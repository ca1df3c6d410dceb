"""Pytest fixture for the scripted OpenAI-compatible server.

Not a ``conftest.py`` on purpose (so it does not clash with other conftest
files); use it by importing the fixture into a test module or conftest::

    from tests.conftest_openai import openai_server  # noqa: F401

or list ``"tests.conftest_openai"`` in the root conftest's ``pytest_plugins``.
"""

from __future__ import annotations

from typing import Iterator

import pytest

from tests.openai_stub import ScriptedOpenAI

__all__ = ["openai_server", "ScriptedOpenAI"]


@pytest.fixture
def openai_server() -> Iterator[ScriptedOpenAI]:
    """A running ScriptedOpenAI server, stopped when the test ends."""
    server = ScriptedOpenAI()
    server.start()
    try:
        yield server
    finally:
        server.stop()
