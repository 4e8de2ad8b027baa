"""Writes a comparison's files into a folder all at once, or not at all."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from neurohal.comparison.report import write_report
from neurohal.comparison.table import ComparisonTable
from neurohal.errors import NeurohalError

FILES = ("results.csv", "results.json", "report.html")


def check_writable(folder: str | os.PathLike) -> Path:
    """Fail early, before hours of work, when ``folder`` cannot be created or written."""
    folder = Path(folder)
    parent = folder if folder.exists() else folder.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if (folder.exists() and not folder.is_dir()) or not os.access(parent, os.W_OK | os.X_OK):
        raise NeurohalError(f"cannot write the output folder {folder}: choose a writable path")
    return folder


def write_all(table: ComparisonTable, folder: str | os.PathLike) -> dict[str, Path]:
    """CSV, JSON, figures (PNG, SVG) and the HTML report into ``folder``.

    Everything is written into a sibling staging folder first and moved in at the end, so an
    interrupted run never leaves a report that looks complete.
    """
    folder = check_writable(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{folder.name}.partial-", dir=folder.parent))
    try:
        table.to_csv(stage / "results.csv")
        table.to_json(stage / "results.json")
        figures = table.plot(stage / "figures")
        write_report(table, figures, stage / "report.html")
        folder.mkdir(exist_ok=True)
        (folder / "report.html").unlink(missing_ok=True)  # moved in last: present = complete
        for item in ("results.csv", "results.json", "figures", "report.html"):
            target = folder / item
            if target.is_dir():
                shutil.rmtree(target)
            os.replace(stage / item, target)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return {name: folder / name for name in (*FILES, "figures")}
