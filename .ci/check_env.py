"""Fail when the environment holds a known-bad litellm or an unexpected start-up hook.

litellm 1.82.7 / 1.82.8 shipped a credential-stealing .pth file and 1.107.0 a `cook.pth` and a
sitecustomize.py: code that runs at every interpreter start. Cheap to check on every CI run.
"""

from __future__ import annotations

import site
import sys
from importlib import metadata
from pathlib import Path

BAD_LITELLM = {"1.82.7", "1.82.8", "1.107.0"}
PINNED = "1.106.2"
BAD_FILES = ("cook.pth", "sitecustomize.py")


def main() -> int:
    version = metadata.version("litellm")
    problems = []
    if version in BAD_LITELLM:
        problems.append(f"litellm {version} is a compromised release")
    elif version != PINNED:
        problems.append(f"litellm {version} installed, expected the pinned {PINNED}")
    for directory in {*site.getsitepackages(), site.getusersitepackages()}:
        path = Path(directory)
        problems += [
            f"unexpected start-up file {path / n}" for n in BAD_FILES if (path / n).exists()
        ]
        for pth in sorted(path.glob("*.pth")):  # listed for a human to glance at, not judged
            print(f"check_env: start-up file {pth.name}")
    for problem in problems:
        print(f"check_env: {problem}", file=sys.stderr)
    print(f"check_env: litellm {version}; {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
