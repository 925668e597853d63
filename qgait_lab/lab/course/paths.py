"""Finding the repository folders the course tools need (``notebooks/``, ``instructor/``, ``data_samples/``)."""
from __future__ import annotations

import os
from pathlib import Path

import qgait_lab

#: The folder that holds the package: the repository, for an editable install.
PACKAGE_PARENT = Path(qgait_lab.__file__).resolve().parent.parent


def find_folder(name: str, env: str | None = None, explicit: str | Path | None = None) -> Path:
    """``explicit``, else ``$env``, else ``name/`` in the working directory or a parent, else next to the package.

    Raises ``FileNotFoundError`` naming every place it looked.
    """
    if explicit is not None:
        folder = Path(explicit).expanduser()
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder} is not a folder")
        return folder
    candidates: list[Path] = []
    if env and os.environ.get(env):
        candidates.append(Path(os.environ[env]).expanduser())
    cwd = Path.cwd().resolve()
    candidates += [p / name for p in (cwd, *cwd.parents)]
    candidates.append(PACKAGE_PARENT / name)
    for folder in candidates:
        if folder.is_dir():
            return folder
    hint = f" (or set {env})" if env else ""
    raise FileNotFoundError(f"{name}/ not found; looked in " + ", ".join(str(c) for c in candidates) + hint)
