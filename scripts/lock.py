"""Pin every distribution of a pip resolution report (``pip install --report``) in a constraints file."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

HEADER = """\
# Exact versions for `make run`, `make test`, `make lint` and CI, which install with
# `pip install -c constraints.txt ...`. Resolved on Linux, CPython {python}, by `make lock`
# (see the Makefile); regenerate it rather than edit it.
"""


def canonical(name: str) -> str:
    """PEP 503's normalized form of a distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(report: dict[str, Any]) -> list[str]:
    """``name==version`` for every distribution to install, except local (editable) ones."""
    found = {
        canonical(item["metadata"]["name"]): item["metadata"]["version"]
        for item in report["install"]
        if "dir_info" not in item.get("download_info", {})  # Bastion's own packages
    }
    return [f"{name}=={version}" for name, version in sorted(found.items())]


def main() -> None:
    report_path, output = (Path(arg) for arg in sys.argv[1:3])
    report = json.loads(report_path.read_text())
    python = report.get("environment", {}).get("python_full_version", "3")
    output.write_text(HEADER.format(python=python) + "\n".join(pins(report)) + "\n")
    print(f"{output}: {len(pins(report))} pins", file=sys.stderr)


if __name__ == "__main__":
    main()
