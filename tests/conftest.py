import os

import pytest
import torch

# Imported here, at collection, because hypothesis's pytest plugin imports it only in the terminal
# summary, and CPython 3.11.7's parser can then fail the import with "SystemError: AST constructor
# recursion depth mismatch" (seen after the notebook-execution tests, whose asyncio tasks end in
# cancellations). Parsed early, the module is never parsed in that state.
import hypothesis  # noqa: F401,E402

from qgait_lab.training.runtime import usable_cores  # noqa: E402

# The tests run on the fast budget: `make test` sets QGAIT_FAST=1, and so does a bare `pytest`.
# (Only this switch shrinks a run; CI's own CI=true changes nothing.)
os.environ.setdefault("QGAIT_FAST", "1")

# `make test` runs the files on pytest-xdist workers (`-n auto`: one per core, at most 4). Each
# worker then takes its share of the cores, for its own torch and for the kernels and subprocesses
# it starts: two workers of two OpenMP threads each on two cores ran the notebooks 1.14x faster
# than one worker, two workers of one thread 1.69x (2026-12-03, this machine).
def pytest_xdist_auto_num_workers(config):
    return min(4, usable_cores())


_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    _THREADS = max(1, usable_cores() // _WORKERS)
    for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[_name] = str(_THREADS)
    torch.set_num_threads(_THREADS)


@pytest.fixture(autouse=True)
def _seed_everything():
    torch.manual_seed(0)
    yield
