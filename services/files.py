"""Writing a file so that a reader never sees half of it: write a temporary file, then rename.

A rename within one folder is atomic: a reader (the load generator polling its rate file,
`make clean` reading a state file, a report being rewritten) sees the old file or the new.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_atomic(path: Path, text: str) -> None:
    """Replace `path` with `text` in one step."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def write_json(path: Path, data: Any) -> None:
    """`data` as indented JSON, with a final newline, replacing `path` in one step."""
    write_atomic(path, json.dumps(data, indent=2) + "\n")
