"""Start-up: how long `reversenet --help` and `import reversenet` take, beside torch itself.

    python benchmarks/startup.py [--repeats 7] [--before REV]

Each row is a fresh interpreter (the wall time of the whole process, its median over the
repeats, the rows taken in turn so that load on a shared machine hits them alike). With
``--before REV`` the reversenet rows run a second time on that commit (a temporary git
worktree put first on PYTHONPATH), side by side. Targets (issue 18): `reversenet --help` and
`reversenet COMMAND --help` ≤ 0.5 s; `import reversenet` no more than torch and torchvision.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HELP = "import sys; sys.argv = {argv!r}\nfrom reversenet.cli import main\ntry:\n    main()\nexcept SystemExit:\n    pass"
ROWS = {
    "import torch": ("import torch", None),
    "import torch, torchvision": ("import torch, torchvision", None),
    "import reversenet": ("import reversenet", 1.0),
    "import reversenet; reversenet.Recording": ("import reversenet; reversenet.Recording", None),
    "reversenet --help": (HELP.format(argv=["reversenet", "--help"]), 0.5),
    "reversenet visualize --help": (HELP.format(argv=["reversenet", "visualize", "--help"]), 0.5),
    "reversenet segment --help": (HELP.format(argv=["reversenet", "segment", "--help"]), 0.5),
}


def seconds(code: str, path: Path | None) -> float:
    env = {**os.environ, "PYTHONPATH": str(path)} if path else dict(os.environ)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, timeout=300)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--before", default=None, help="a commit to compare with (a git worktree of it)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        trees: dict[str, Path | None] = {"now": ROOT}
        if args.before:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", f"{tmp}/before", args.before], check=True)
            trees["before"] = Path(tmp) / "before"
        try:
            times: dict[tuple[str, str], list[float]] = {}
            for _ in range(args.repeats):
                for row, (code, _) in ROWS.items():
                    for tree, path in trees.items():
                        if tree == "before" and "reversenet" not in row:
                            continue
                        times.setdefault((row, tree), []).append(seconds(code, path))
        finally:
            if args.before:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", f"{tmp}/before"], check=True)
    torch_tv = statistics.median(times["import torch, torchvision", "now"])
    print(f"{'':42} {'now':>8} {'before':>8}  target")
    for row, (_, target) in ROWS.items():
        now = statistics.median(times[row, "now"])
        before = statistics.median(times[row, "before"]) if (row, "before") in times else None
        goal = "" if target is None else f"≤ {target:.1f} s" if row != "import reversenet" else f"≤ {torch_tv:.2f} s (torch + torchvision)"
        met = "" if target is None else " ok" if now <= (torch_tv if row == "import reversenet" else target) else " MISSED"
        print(f"{row:42} {now:7.2f}s {'' if before is None else f'{before:7.2f}s':>8}  {goal}{met}")


if __name__ == "__main__":
    main()
