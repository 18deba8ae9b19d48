"""The micro-world base's build (BENCHMARKS §12a): time, peak RSS, parameters, corpus and what the base knows.

Builds `countdown-tiny`'s recipe (`rlt.micro.base.RECIPES`) from scratch into --dir, exactly as the first use of the
name does, and writes its record (`build.json`: recipe, parameters, corpus size, the share of the world's facts the
base predicts, final loss, seconds, peak RSS) to --out.

    python benchmarks/micro_build.py --out benchmarks/results/micro_build.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rlt.micro.base import RECIPES, build


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", default="countdown-tiny")
    parser.add_argument("--dir", default="runs/bench/micro_build")
    parser.add_argument("--out", default="benchmarks/results/micro_build.json")
    args = parser.parse_args()
    record = build(RECIPES[args.name], Path(args.dir))
    command = " ".join(["python benchmarks/micro_build.py", *sys.argv[1:]])
    Path(args.out).write_text(json.dumps({"command": command, **record}, indent=1))
    print(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
