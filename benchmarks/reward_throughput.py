"""Cost of the RLT reward against its bound, and against the original's per-sample approach.

For explanations of about L tokens (default 128, 1k, 4k) and a batch of completions, three things are timed in
one run, interleaved, several repeats, medians reported:

  (a) bound    one no-grad forward of the student over the student chats plus one of the teacher over the teacher
               texts (full logits, nothing else), micro-batched by the same token budget as (b);
  (b) rlt      rlt's reward on the same rows (alignment, span-only log-probs, reduction);
  (c) original what the original code does (spec §2.4-2.5): re-tokenise decoded text, locate the spans by Python
               subsequence search with its trimming fallbacks, one forward per text with full-vocabulary
               log-softmax.

    python benchmarks/reward_throughput.py --lengths 128 1024 --batch 16 --repeats 3 \\
        --out benchmarks/results/reward_throughput_cpu.json

`--random-init` builds the student and teacher from the SmolLM2-135M config with random weights (same shapes and
cost, no weights needed), e.g. on a GPU machine without the embedded model.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import re
import statistics
import time
from pathlib import Path

import torch

from rlt.data import load_problems
from rlt.reward import RewardConfig, RLTReward, rlt_reward
from rlt.reward.formats import PADDING, STRATOS, student_text, teacher_prompt
from rlt.reward.logprobs import micro_batches, pad_right

GSM8K = Path(__file__).resolve().parents[2] / "shared" / "data" / "gsm8k" / "test.jsonl"
END = STRATOS.explanation[1]


def build_rows(tokenizer, n: int, length: int, source: Path = GSM8K) -> list[dict]:
    """GSM8K questions and solutions; the explanation is the rationale repeated to `length` tokens, then the tag."""
    problems, _ = load_problems(str(source), adapter="gsm8k", limit=n)
    rows = []
    for p in problems:
        unit = tokenizer(p.solution + "\n", add_special_tokens=False)["input_ids"]
        ids = (unit * (length // len(unit) + 1))[:length]
        rows.append({"question": p.question, "solution": p.solution,
                     "explanation": tokenizer.decode(ids) + PADDING + END})  # fmt: skip
    return rows


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


# ------------------------------------------------------------------------------------------------- (a) bound


@torch.no_grad()
def bound(student, teacher, sequences: dict[str, list[list[int]]], token_budget: int, device: str) -> None:
    for model, seqs in ((student, sequences["student"]), (teacher, sequences["teacher"])):
        for batch in micro_batches([len(s) for s in seqs], token_budget):
            ids, mask = pad_right([seqs[i] for i in batch])
            model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.sum().item()


# ------------------------------------------------------------------------------ (c) the original's approach


def find(seq: list[int], sub: list[int], last: bool = False) -> int:
    """Start of the first (or last) contiguous occurrence of sub in seq, by plain Python search; -1 if none."""
    starts = range(len(seq) - len(sub), -1, -1) if last else range(len(seq) - len(sub) + 1)
    for start in starts:
        if seq[start : start + len(sub)] == sub:
            return start
    return -1


def valid_subsequence(sub: list[int], seq: list[int]) -> list[int] | None:
    for candidate in (sub, sub[1:], sub[:-1], sub[1:-1]):
        if candidate and find(seq, candidate) >= 0:
            return candidate
    return None


@torch.no_grad()
def full_logprobs(model, ids: list[int], temperature: float, device: str) -> torch.Tensor:
    logits = model(torch.tensor([ids], device=device)).logits[0, :-1]
    logp = torch.log_softmax(logits / temperature, dim=-1)
    return logp.gather(-1, torch.tensor(ids[1:], device=device)[:, None])[:, 0].float().cpu()


def original(student, teacher, tokenizer, rows: list[dict], config: RewardConfig, device: str) -> list[float]:
    begin = STRATOS.explanation[0]
    pattern = re.compile(re.escape(begin) + "(.*?)" + re.escape(END), re.S)
    rewards = []
    for row in rows:
        completion = begin + PADDING + row["explanation"]
        match = pattern.search(completion)
        matched = match is not None
        if not matched:
            completion += END
            match = pattern.search(completion)
        thought = match.group(1)
        prompt = teacher_prompt(tokenizer, row["question"], row["solution"])
        teacher_ids = tokenizer(prompt[: -len(begin + PADDING)] + completion)["input_ids"]
        chat_ids = tokenizer(student_text(tokenizer, row["question"], thought.removeprefix(PADDING), row["solution"]))[
            "input_ids"
        ]
        thought_ids = valid_subsequence(tokenizer(thought, add_special_tokens=False)["input_ids"],
                                        tokenizer(completion, add_special_tokens=False)["input_ids"])  # fmt: skip
        solution_ids = valid_subsequence(tokenizer(row["solution"], add_special_tokens=False)["input_ids"], chat_ids)
        t_start, s_start = find(teacher_ids, thought_ids), find(chat_ids, thought_ids)
        sol_start = find(chat_ids, solution_ids, last=True)
        student_lp = full_logprobs(student, chat_ids, config.student_temperature, device)
        teacher_lp = full_logprobs(teacher, teacher_ids, config.teacher_temperature, device)
        n = len(thought_ids)
        rewards.append(rlt_reward(student_lp[sol_start - 1 : sol_start - 1 + len(solution_ids)],
                                  teacher_lp[t_start - 1 : t_start - 1 + n], student_lp[s_start - 1 : s_start - 1 + n],
                                  matched, config).reward)  # fmt: skip
        if device.startswith("cuda"):
            torch.cuda.empty_cache()  # as the original does after every sample
    return rewards


# ----------------------------------------------------------------------------------------------------- main


def measure(args, length: int, reward: RLTReward, rows: list[dict]) -> dict:
    """Time (a), (b) and (c) on the same rows, interleaved; medians and ratios."""
    student, teacher, tokenizer, config = reward.student, reward.teacher, reward.tokenizer, reward.config
    samples = reward.align_texts(rows)
    sequences = {"student": [s.student_input_ids for s in samples], "teacher": [s.teacher_input_ids for s in samples]}
    methods = {
        "bound": lambda: bound(student, teacher, sequences, args.token_budget, args.device),
        "rlt": lambda: reward.score_texts(rows),
    }
    if args.skip_original_above is None or length <= args.skip_original_above:
        methods["original"] = lambda: original(student, teacher, tokenizer, rows, config, args.device)
    times = {name: [] for name in methods}
    for repeat in range(args.repeats):
        order = list(methods)[repeat % len(methods) :] + list(methods)[: repeat % len(methods)]  # interleave
        for name in order:
            sync(args.device)
            start = time.perf_counter()
            methods[name]()
            sync(args.device)
            times[name].append(time.perf_counter() - start)
            print(f"L={length} repeat {repeat} {name}: {times[name][-1]:.2f} s", flush=True)
    medians = {name: statistics.median(t) for name, t in times.items()}
    entry = {
        "explanation_tokens": length,
        "completions": len(rows),
        "student_tokens": sum(map(len, sequences["student"])),
        "teacher_tokens": sum(map(len, sequences["teacher"])),
        "seconds": times,
        "median_seconds": medians,
        "rlt_over_bound": medians["rlt"] / medians["bound"],
    }
    if "original" in medians:
        entry["original_over_rlt"] = medians["original"] / medians["rlt"]
        # The same texts scored both ways; the original re-tokenises, so a span may differ by a boundary token.
        ours = [b.reward for b in reward.score_texts(rows[:2])[0]]
        theirs = original(student, teacher, tokenizer, rows[:2], config, args.device)
        entry["reward_difference_first_two"] = [abs(a - b) for a, b in zip(ours, theirs, strict=True)]
    print(json.dumps({k: v for k, v in entry.items() if k != "seconds"}), flush=True)
    return entry


def load_models(args):
    from rlt.models import load_model, load_tokenizer, resolve

    dtype = getattr(torch, args.dtype)
    if not args.random_init:
        model, tokenizer = load_model(args.model, dtype, args.device)
        return model.eval(), model.eval(), tokenizer
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(resolve(args.model))
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=dtype).to(args.device).eval()
    return model, model, load_tokenizer(args.model)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--random-init", action="store_true")
    parser.add_argument("--lengths", type=int, nargs="+", default=[128, 1024, 4096])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--skip-original-above",
        type=int,
        default=None,
        help="Do not time (c) for longer explanations (it can take very long on a CPU).",
    )
    parser.add_argument("--token-budget", type=int, default=RewardConfig().token_budget)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--data", default=str(GSM8K), help="GSM8K-format JSONL the rows are built from.")
    parser.add_argument("--out", default="benchmarks/results/reward_throughput.json")
    args = parser.parse_args()

    student, teacher, tokenizer = load_models(args)
    config = RewardConfig(token_budget=args.token_budget)
    reward = RLTReward(student, tokenizer, teacher, config)
    results = [
        measure(args, length, reward, build_rows(tokenizer, args.batch, length, Path(args.data)))
        for length in args.lengths
    ]

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    machine = {
        "device": args.device,
        "dtype": args.dtype,
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "cpu_count": __import__("os").cpu_count(),
    }
    if args.device.startswith("cuda"):
        machine["gpu"] = torch.cuda.get_device_name()
    out.write_text(json.dumps({"date": datetime.date.today().isoformat(), "machine": machine,
                               "args": vars(args), "results": results}, indent=2))  # fmt: skip
    print(f"-> {out}")


if __name__ == "__main__":
    main()
