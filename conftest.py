"""Doctests (pytest --doctest-modules, set in pyproject.toml) run in a fresh folder each, as a
user would in a scratch directory: what an example writes goes there."""

import pytest


@pytest.fixture(autouse=True)
def _doctest_folder(request: pytest.FixtureRequest, tmp_path, monkeypatch) -> None:
    if isinstance(request.node, pytest.DoctestItem):
        monkeypatch.chdir(tmp_path)
