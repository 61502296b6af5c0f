"""Fixtures for the collaborative-filtering tests; the data itself lives in cf_fixtures.py."""

from __future__ import annotations

import pytest
from cf_fixtures import SmallWorld, block_matrix, build_small_world

from overdrive.models.collaborative_filtering.matrix import InteractionMatrix


@pytest.fixture
def blocks() -> InteractionMatrix:
    return block_matrix()


@pytest.fixture(scope="session")
def small_world() -> SmallWorld:
    return build_small_world()
