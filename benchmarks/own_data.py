"""The README's "Your own data, end to end" block, run as written, each command timed (wall time, peak RSS).

The block is read from README.md and run by bash in a work directory holding `mine.jsonl`, `recipes/` (the
repository's) and a `.venv/bin/rlt` that runs this Python's rlt under a meter; `--model` replaces the block's
`MODEL=` line. Here `mine.jsonl` is the first --rows problems of the GSM8K test split in `../shared/data/gsm8k`
(rationale as the solution, the number after "####" as the answer), which is for benchmarks only and never
committed. `tests/test_recipes.py` runs the same block through `run_block` with tiny models.

    python benchmarks/own_data.py --out benchmarks/results/own_data.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEADING = "### Your own data, end to end"

# Runs rlt as .venv/bin/rlt would, appending "command seconds peak_kb" to $RLT_TIMES. The peak is that one process's
# (os.wait4): the shell's children's maximum (RUSAGE_CHILDREN) would carry an earlier command's into a later one's
# when bash runs the block's last command in its own process.
METER = f"""#!{sys.executable}
import os, subprocess, sys, time
started = time.time()
child = subprocess.Popen([{sys.executable!r}, "-m", "rlt.cli", *sys.argv[1:]])
_, status, usage = os.wait4(child.pid, 0)
with open(os.environ["RLT_TIMES"], "a") as times:
    times.write(f"{{sys.argv[1]}} {{time.time() - started:.1f}} {{usage.ru_maxrss}}\\n")
sys.exit(os.waitstatus_to_exitcode(status))
"""


def readme_block() -> str:
    """The bash block under the README's own-data heading."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.search(re.escape(HEADING) + r".*?```bash\n(.*?)```", readme, re.S)[1]


def run_block(workdir: Path, rows: list[dict], model: str | None = None, timeout: float | None = None) -> list[dict]:
    """Run the block in `workdir` on `rows` as mine.jsonl (with `model` for the block's MODEL); each command's name,
    wall seconds and peak RSS in GB. A failing command stops the block and raises, with its output."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "mine.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    if not (workdir / "recipes").exists():
        (workdir / "recipes").symlink_to(ROOT / "recipes")
    rlt = workdir / ".venv" / "bin" / "rlt"
    rlt.parent.mkdir(parents=True, exist_ok=True)
    rlt.write_text(METER)
    rlt.chmod(0o755)
    block = readme_block()
    if model is not None:
        block = re.sub(r"^MODEL=\S+", f"MODEL={model}", block, count=1, flags=re.M)
    times = workdir / "times.txt"
    times.unlink(missing_ok=True)
    env = {**os.environ, "RLT_TIMES": str(times), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=workdir, env=env, capture_output=True,
                          text=True, timeout=timeout)  # fmt: skip
    if done.returncode:
        raise RuntimeError(f"the README block failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return [{"command": name, "seconds": float(seconds), "peak_rss_gb": round(int(kb) / 2**20, 2)}
            for name, seconds, kb in (line.split() for line in times.read_text().splitlines())]  # fmt: skip


def gsm8k_rows(count: int) -> list[dict]:
    """The first `count` GSM8K test problems as generic rows (question, solution, answer)."""
    source = ROOT.parent / "shared" / "data" / "gsm8k" / "test.jsonl"
    rows = []
    for line in source.read_text().splitlines()[:count]:
        row = json.loads(line)
        rationale, answer = row["answer"].split("####")
        rows.append({"question": row["question"], "solution": re.sub(r"<<[^>]*>>", "", rationale).strip(),
                     "answer": answer.strip().replace(",", "")})  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=40)
    parser.add_argument("--workdir", default="runs/bench/own_data")
    parser.add_argument("--out", default="benchmarks/results/own_data.json")
    args = parser.parse_args()
    started = time.time()
    steps = run_block(Path(args.workdir).resolve(), gsm8k_rows(args.rows))
    evaluation = json.loads((Path(args.workdir) / "runs" / "mine" / "eval.json").read_text())
    evaluation.pop("records")  # the questions' text: GSM8K is for benchmarks here, never committed
    record = {"command": f"python benchmarks/own_data.py --rows {args.rows}", "threads": torch_threads(),
              "steps": steps, "seconds": round(time.time() - started, 1), "eval": evaluation}  # fmt: skip
    Path(args.out).write_text(json.dumps(record, indent=1))
    print(json.dumps(steps, indent=1))


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


if __name__ == "__main__":
    main()
