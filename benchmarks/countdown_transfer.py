"""Zero-shot teaching of a new task: can a teacher trained on math teach countdown? (spec §7, the paper's transfer)

The teacher (RL-trained on CHAMP by `make demo`) never saw countdown. It is shown each train problem with its
answer expression ("The answer is 22 + 10 + 1.") and writes an explanation (`rlt traces`); SmolLM2-135M students
start from the same base model and learn countdown (3-4 numbers, `--dataset countdown`) in one of these ways:

    not trained               the base model
    teacher traces            distilled on the math teacher's zero-shot countdown explanations
    generator solutions       distilled on the generator's own worked solutions (an expert's traces)
    RL only                   `rlt coldstart` on countdown from the base model (the paper's "direct RL")
    teacher traces + RL       `rlt coldstart` from the teacher-traces student (the cold start of Table 2)

Distillation uses recipes/cpu/distill.yaml and RL recipes/cpu/coldstart.yaml, as the documented commands do. Each
student is measured on held-out countdown problems (`--holdout 100` of the generated 1000, the first
`--problems` of them) by the exact checker, pass@k from `--thoughts` sampled answers per problem, and by the
continuous measure of the teaching benchmark: the mean log-prob of the reference answer statement after the
student's own sampled thought (`rlt.measure.evaluate.solution_logprob_after_own_thought`), paired per problem with 95 %
bootstrap intervals. Results are written after every student, so an interrupted run keeps what it measured.

    python benchmarks/countdown_transfer.py --teacher runs/demo/rl --out benchmarks/results/countdown_transfer.json
"""

from __future__ import annotations

import gc
import json
import time
from pathlib import Path

from teaching_distill import (  # a sibling script: run from benchmarks/ or as a path
    distill_students,
    measure_student,
    paired_differences,
    run_header,
    student_benchmark_parser,
)
from trl import ModelConfig

from rlt.configs import ColdStartConfig, DataArguments, FormatArguments, parse
from rlt.models import load_model
from rlt.reward import RewardConfig, RLTReward
from rlt.reward.formats import student_messages
from rlt.sampling.generation import SamplingConfig
from rlt.sampling.traces import collect_traces
from rlt.train.coldstart import run_coldstart

RECIPES = Path(__file__).resolve().parents[1] / "recipes" / "cpu"
PAIRS = [("teacher traces", "not trained"), ("generator solutions", "not trained"), ("RL only", "not trained"),
         ("teacher traces", "RL only"), ("teacher traces", "generator solutions"),
         ("teacher traces + RL", "teacher traces")]  # fmt: skip


def main() -> None:
    parser = student_benchmark_parser(__doc__, "countdown_transfer", "countdown_transfer.json", thought_tokens=160)
    parser.add_argument("--teacher", default="runs/demo/rl", help="A teacher trained on math (CHAMP or GSM8K).")
    parser.add_argument("--dataset", default="countdown", help="countdown (3-4 numbers) or countdown:N-M.")
    parser.add_argument("--train-problems", type=int, default=64, help="Train problems the teacher explains.")
    parser.add_argument("--problems", type=int, default=64, help="Held-out problems measured.")
    parser.add_argument("--rl-steps", type=int, default=None, help="Override the coldstart recipe's max_steps.")
    args = parser.parse_args()

    began, seconds = time.perf_counter(), {}
    work = Path(args.work_dir)
    split = {"dataset": args.dataset, "holdout": 100, "search_traces": False}  # framed by answer, as in §8
    train, _, _ = DataArguments(**split, max_problems=args.train_problems).load()
    _, held_out, _ = DataArguments(**split, max_problems=args.problems).load()
    result = {
        **run_header(args, train, held_out),
        "held_out_sizes": {n: sum(len(p.countdown.numbers) == n for p in held_out) for n in range(2, 9)},
        "students": {},
        "seconds": seconds,
    }

    # traces: the math teacher explains countdown answers it was never trained on
    teacher, tokenizer = load_model(args.teacher)
    student, student_tokenizer = load_model(args.student)
    reward = RLTReward(student, tokenizer, teacher, RewardConfig(teacher_temperature=0.7),
                       student_tokenizer=student_tokenizer)  # fmt: skip
    sampling = SamplingConfig(args.explanation_tokens, 0.7, 1.0, args.batch_size, 42)
    t = time.perf_counter()
    teacher_rows = collect_traces(train, teacher, reward, work / "traces_teacher.jsonl", sampling)
    seconds["traces: teacher"] = time.perf_counter() - t
    result["teacher_trace_reward_mean"] = sum(r["reward"] for r in teacher_rows) / len(teacher_rows)
    result["teacher_trace_examples"] = [r["explanation"] for r in sorted(teacher_rows, key=lambda r: r["index"])[:3]]
    del teacher, student, reward
    gc.collect()

    traces = {
        "teacher traces": sorted(teacher_rows, key=lambda r: r["index"]),
        "generator solutions": [
            {"index": i, "messages": student_messages(p.question, p.reasoning_trace, p.solution)}
            for i, p in enumerate(train)
        ],
    }
    students = {"not trained": args.student, **distill_students(traces, args.student, work, seconds)}

    for name, start in (("RL only", args.student), ("teacher traces + RL", students["teacher traces"])):
        out_dir = work / f"rl_{name.split()[0]}"
        argv = ["--config", str(RECIPES / "coldstart.yaml"), "--model_name_or_path", start, "--dataset", args.dataset,
                "--output_dir", str(out_dir), "--report_to", "none"]  # fmt: skip
        if args.rl_steps:
            argv += ["--max_steps", str(args.rl_steps)]
        students[name] = str(out_dir)
        configs = parse((ModelConfig, DataArguments, FormatArguments, ColdStartConfig), argv)
        t = time.perf_counter()
        trainer = run_coldstart(*configs)
        seconds[f"coldstart: {name}"] = time.perf_counter() - t
        if trainer is not None:
            history = trainer.state.log_history
            result[f"coldstart: {name}"] = {
                key: [h[key] for h in history if key in h]
                for key in ("rewards/correctness/mean", "rewards/format/mean")
            }
        del trainer
        gc.collect()
        if name == "RL only":  # measure the required arms first; the cold-start arm is the longest
            measure(students, held_out, args, result, seconds, only=list(students)[:4])

    measure(students, held_out, args, result, seconds)
    result["seconds"]["total"] = time.perf_counter() - began
    write(result, args.out)
    for name, m in result["students"].items():
        s = m["solution_logprob_after_own_thought"]
        passes = " ".join(f"pass@{k} {m[f'pass@{k}']:.3f}" for k in range(1, args.thoughts + 1))
        print(f"{name}: {s['mean']:.3f} [{s['low']:.3f}, {s['high']:.3f}] {passes} ({m['solved']} solved)")


def measure(students: dict, held_out: list, args, result: dict, seconds: dict, only: list | None = None) -> None:
    """Measure each student not measured yet; write the results after each."""
    sampling = SamplingConfig(args.thought_tokens, 0.7, 1.0, args.batch_size, 42)
    for name, spec in students.items():
        if name in result["students"] or (only is not None and name not in only):
            continue
        t = time.perf_counter()
        record, thoughts = measure_student(spec, held_out, args.thoughts, sampling)
        seconds[f"measure: {name}"] = time.perf_counter() - t
        result["students"][name] = {**record, "sample_thoughts": [thought[-200:] for thought in thoughts[:3]]}
        result["paired_solution_logprob_after_own_thought"] = paired_differences(result["students"], PAIRS)
        write(result, args.out)


def write(result: dict, out: str) -> None:
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
