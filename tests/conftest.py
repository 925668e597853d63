import os

import pytest
import torch

# The tests run on the fast budget: `make test` sets QGAIT_FAST=1, and so does a bare `pytest`.
# (Only this switch shrinks a run; CI's own CI=true changes nothing.)
os.environ.setdefault("QGAIT_FAST", "1")


@pytest.fixture(autouse=True)
def _seed_everything():
    torch.manual_seed(0)
    yield
