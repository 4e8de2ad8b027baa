"""Fixtures for the converter tests."""

import numpy as np
import pytest


@pytest.fixture
def images() -> np.ndarray:
    return np.random.default_rng(42).random((64, 1, 8, 8))
