import os

import pytest
import torch

# CI sets CI=true; the fast switch shrinks budgets everywhere.
if os.environ.get("CI"):
    os.environ.setdefault("QGAIT_FAST", "1")


@pytest.fixture(autouse=True)
def _seed_everything():
    torch.manual_seed(0)
    yield
