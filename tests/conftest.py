import os

import pytest
import torch

# Imported here, at collection, because hypothesis's pytest plugin imports it only in the terminal
# summary, and CPython 3.11.7's parser can then fail the import with "SystemError: AST constructor
# recursion depth mismatch" (seen after the notebook-execution tests, whose asyncio tasks end in
# cancellations). Parsed early, the module is never parsed in that state.
import hypothesis  # noqa: F401,E402

# The tests run on the fast budget: `make test` sets QGAIT_FAST=1, and so does a bare `pytest`.
# (Only this switch shrinks a run; CI's own CI=true changes nothing.)
os.environ.setdefault("QGAIT_FAST", "1")


@pytest.fixture(autouse=True)
def _seed_everything():
    torch.manual_seed(0)
    yield
