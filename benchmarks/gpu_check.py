"""Every GPU path that fits one machine, run with no network, on tiny models or on the embedded default's real
weights: bf16 GRPO with the student on the GPU, the offloaded student, ZeRO-3 in one process (student whole and
sharded), traces and evaluation (through vLLM when it is installed, else transformers), each as the user would run
it (`rlt ...`, `accelerate launch ...`).

Per check: exit code, seconds, the peak GPU memory nvidia-smi saw, and the output's last lines on failure.

    python benchmarks/gpu_check.py --model smollm2-135m --out benchmarks/results/gpu_check.json
    bash benchmarks/gpu_check.sh setup|run      # on a lent GPU machine, in two calls
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROWS = [{"question": f"What is {i} + {i + 1}?", "solution": f"{i} + {i + 1} = {2 * i + 1}.", "answer": str(2 * i + 1)}
        for i in range(16)]  # fmt: skip
TRAIN = ["--per_device_train_batch_size", "4", "--num_generations", "4", "--max_completion_length", "16",
         "--max_steps", "2", "--learning_rate", "1e-3", "--report_to", "none", "--logging_steps", "1",
         "--save_strategy", "no", "--activation_checkpointing", "false", "--seed", "0"]  # fmt: skip


def peak_gpu_memory(stop: threading.Event, peak: list[int]) -> None:
    """Poll nvidia-smi's used memory (MiB) until stopped; the largest reading goes to peak[0]."""
    while not stop.is_set():
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True, timeout=10).stdout  # fmt: skip
            peak[0] = max(peak[0], max(int(v) for v in out.split()))
        except (OSError, ValueError, subprocess.TimeoutExpired):
            return
        stop.wait(0.5)


def run_check(name: str, command: list[str], timeout: int) -> dict:
    stop, peak = threading.Event(), [0]
    poller = threading.Thread(target=peak_gpu_memory, args=(stop, peak), daemon=True)
    poller.start()
    start = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        code, output = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as e:
        code, output = "timeout", f"{e.stdout or ''}{e.stderr or ''}"
    stop.set()
    poller.join()
    result = {"check": name, "ok": code == 0, "exit": code, "seconds": round(time.perf_counter() - start, 1),
              "peak_gpu_memory_mib": peak[0] or None, "command": " ".join(command)}  # fmt: skip
    if code != 0:
        result["output_tail"] = output if isinstance(output, str) and len(output) < 3000 else str(output)[-3000:]
    print(json.dumps({k: v for k, v in result.items() if k != "output_tail"}), flush=True)
    return result


def checks(root: Path, device: str, teacher: str, student: str) -> list[tuple[str, list[str], int]]:
    rlt, launch = [sys.executable, "-m", "rlt.cli"], [sys.executable, "-m", "accelerate.commands.launch"]
    models = ["--model_name_or_path", teacher, "--student", student, "--dataset", str(root / "rows.jsonl")]
    # the recipe's bf16 where the GPU has it; a CPU rehearsal in fp32
    precision = ["--mixed_precision", "no"] if device == "cpu" else []
    zero3 = [*launch, "--config_file", "recipes/accelerate/zero3.yaml", "--num_processes", "1", *precision,
             "-m", "rlt.cli"]  # fmt: skip
    scored = ["--teacher", teacher, "--student", student, "--dataset", str(root / "rows.jsonl"), "--device", device]
    # fmt: off
    listed = [
        ("bf16 GRPO, student on the GPU", [*rlt, "train", *models, "--output_dir", str(root / "bf16"), *TRAIN], 300),
        ("offloaded student", [*rlt, "train", *models, "--output_dir", str(root / "offload"), "--offload_student",
                               "true", *TRAIN], 300),
        ("ZeRO-3, one process, student whole", [*zero3, "train", *models, "--output_dir", str(root / "z3"), *TRAIN],
         420),
        ("ZeRO-3, one process, student sharded", [*zero3, "train", *models, "--output_dir", str(root / "z3s"),
                                                  "--shard_student", "true", *TRAIN], 420),
        ("traces", [*rlt, "traces", *scored, "--out", str(root / "traces.jsonl"), "--num_samples", "4",
                    "--max_new_tokens", "64"], 300),
        ("teacher eval", [*rlt, "eval", *scored, "--out", str(root / "teacher_eval.json"), "--part", "all",
                          "--max_new_tokens", "64"], 300),
        ("student eval, greedy", [*rlt, "eval", "--model", student, "--dataset",
                                  str(root / "rows.jsonl"), "--part", "all", "--max_new_tokens", "2048",
                                  "--batch_size", "16", "--device", device,
                                  "--out", str(root / "student_eval.json")], 600),
    ]
    # fmt: on
    return listed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="benchmarks/results/gpu_check.json")
    parser.add_argument("--only", nargs="*", help="Run the checks whose names contain one of these words.")
    parser.add_argument("--model", default="tiny", help="Teacher and student: `tiny` (random weights, a small "
                        "vocabulary) or a model spec, e.g. smollm2-135m (real weights).")  # fmt: skip
    args = parser.parse_args()
    import torch

    from rlt.testing import save_tiny

    device = "cuda" if torch.cuda.is_available() else "cpu"
    environment = {"gpu": torch.cuda.get_device_name() if device == "cuda" else None, "torch": torch.__version__,
                   "model": args.model,
                   **{name: importlib.util.find_spec(name) is not None for name in ("vllm", "deepspeed")}}  # fmt: skip
    print(json.dumps(environment), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if args.model == "tiny":
            teacher, student = str(save_tiny(root / "teacher", seed=1)), str(save_tiny(root / "student", seed=0))
        else:
            teacher = student = args.model
        (root / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        listed = checks(root, device, teacher, student)
        results = [run_check(name, command, timeout) for name, command, timeout in listed
                   if not args.only or any(word in name for word in args.only)]  # fmt: skip
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"environment": environment, "checks": results}, indent=2))


if __name__ == "__main__":
    main()
