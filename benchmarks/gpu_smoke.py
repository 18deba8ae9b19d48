"""A GPU smoke check of teacher RL: two GRPO steps in fp32 and in bf16, on CUDA, and how far the reward the trainer
used is from rlt's offline fp32 scoring of the same completions (without a GPU, the fp32 half runs on the CPU). On
tiny models, or on a model spec as teacher and student (e.g. smollm2-135m, real weights).

    python benchmarks/gpu_smoke.py --model smollm2-135m --out benchmarks/results/gpu_smoke.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from rlt.configs import RLTGRPOConfig
from rlt.data import Problem
from rlt.models import load_model
from rlt.reward import RLTReward
from rlt.testing import tiny_model, tiny_tokenizer
from rlt.train.trainer import RLTGRPOTrainer, rl_dataset

PROBLEMS = [Problem(f"What is {i} + {i + 1}?", f"{i} + {i + 1} = {2 * i + 1}.", str(2 * i + 1)) for i in range(8)]


def models(spec: str) -> tuple:
    """Fresh fp32 teacher and student (two copies: the policy trains) and their tokenizer."""
    if spec == "tiny":
        return tiny_model(1), tiny_model(0), tiny_tokenizer()
    (teacher, tokenizer), (student, _) = load_model(spec), load_model(spec)
    return teacher, student, tokenizer


def run(bf16: bool, workdir: Path, spec: str) -> dict:
    teacher, student, tokenizer = models(spec)
    config = RLTGRPOConfig(output_dir=str(workdir), max_steps=2, per_device_train_batch_size=4, num_generations=4,
                           max_completion_length=16, bf16=bf16, report_to="none", activation_checkpointing=False,
                           logging_steps=1, learning_rate=1e-3, save_strategy="no", seed=0)  # fmt: skip
    trainer = RLTGRPOTrainer(teacher, student, config, rl_dataset(PROBLEMS, tokenizer, "stratos"), tokenizer)
    student_device = str(next(trainer.rlt_reward.student.parameters()).device)
    trainer.train()
    samples = [json.loads(line) for line in (workdir / "completions.jsonl").read_text().splitlines()]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    teacher, student, _ = models(spec)  # the fp32 reference: the same weights as before training
    offline = RLTReward(student.to(device), tokenizer, teacher.to(device))
    deviations = []
    for s in samples:
        if s["step"] != 0 or s["reward"] is None:  # an unscoreable sample has no reward to compare
            continue
        aligned = offline.align_ids(s["question"], s["solution"], s["prompt_ids"], s["completion_ids"])
        deviations.append(abs(offline.score([aligned])[0].reward - s["reward"]))
    history = [h for h in trainer.state.log_history if "rlt/reward" in h]
    return {
        "bf16": bf16,
        "student_device": student_device,
        "steps_logged": len(history),
        "rewards": [h["rlt/reward"] for h in history],
        "max_reward_deviation_from_fp32_offline": max(deviations),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="benchmarks/results/gpu_smoke.json")
    parser.add_argument("--model", default="tiny", help="`tiny` or a model spec for teacher and student")
    args = parser.parse_args()
    results = []
    for bf16 in (False, True) if torch.cuda.is_available() else (False,):
        with tempfile.TemporaryDirectory() as tmp:
            results.append(run(bf16, Path(tmp), args.model))
            print(json.dumps(results[-1]), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(
        json.dumps(
            {
                "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
                "model": args.model,
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
