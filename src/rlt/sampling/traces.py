"""Trace collection (spec §5): the teacher explains each (question, solution); the explanations become student
distillation data, each row scored with the RLT reward.

Output rows, one per (question, sample), in JSONL: the student-format chat (`messages`: system, question, and the
explanation in the think section before the tagged solution), the raw completion, the parsed explanation and the
reward components. Writing is crash-safe and resumable: each row is appended with one write and the file synced
per batch; a rerun drops a torn last line, skips every (question, sample) already written, and writes the rest.
Rows are keyed by content (`key`: question + solution), and `OUT.provenance.json` records the teacher, student,
reward and sampling settings: a rerun with other settings, or on a file holding other questions, is an error
(`fresh` starts the file over). With `best_of` > 1, `selected.jsonl` beside it keeps each question's
highest-reward sample.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import ClassVar

from tqdm.auto import tqdm

from rlt.configs import DeviceArguments
from rlt.data import DataError, Problem
from rlt.errors import UsageError
from rlt.provenance import check_settings, content_key, describe, model_identity, sidecar, write_record
from rlt.records import JsonlAppender, recover_jsonl, write_rows
from rlt.reward import RLTReward
from rlt.reward.align import encode
from rlt.reward.formats import student_messages, teacher_prompt
from rlt.reward.students import MultiStudentReward, reward_identity, student_rewards
from rlt.sampling.generation import Sampler, SamplingConfig, hf_sampler, prompt_seeds

logger = logging.getLogger(__name__)


@dataclass
class TracesArguments(DeviceArguments):
    #: Least value of each numeric flag (`check_ranges`).
    MINIMUMS: ClassVar[dict[str, int]] = {"num_samples": 1, "max_new_tokens": 1}

    def __post_init__(self):
        if not 0 < self.top_p <= 1:
            raise UsageError(f"--top_p must be in (0, 1], got {self.top_p}")
        if not Path(self.out).is_dir() and Path(self.out).suffix not in (".jsonl", ".parquet"):
            raise UsageError(f"--out {self.out}: traces are written as .jsonl or .parquet")

    teacher: str = field(
        default="runs/cpu/train",
        metadata={"help": "Teacher: Hub id, local path or smollm2-135m; or dataset:trace / dataset:solution, the "
                  "dataset's own reasoning trace or worked solution as the explanation (no model, unscored)."},
    )  # fmt: skip
    out: str = field(
        default="runs/traces/traces.jsonl",
        metadata={"help": "Output .jsonl (appended, resumable) or .parquet (written at the end from a .jsonl)."},
    )
    part: str = field(default="all", metadata={"help": "Which problems: all, train (without the holdout) or holdout."})
    num_samples: int = field(default=1, metadata={"help": "Explanations sampled per question."})
    best_of: bool = field(
        default=False, metadata={"help": "Also write selected.jsonl: each question's highest-reward sample."}
    )
    max_new_tokens: int = field(default=256, metadata={"help": "Longest explanation, in tokens."})
    temperature: float = field(default=0.7, metadata={"help": "Sampling temperature (0 = greedy)."})
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling threshold."})
    batch_size: int = field(
        default=8, metadata={"help": "Prompts per generate call (transformers), and rows scored per round."}
    )
    seed: int = field(default=42, metadata={"help": "Sampling seed."})
    use_vllm: str = field(
        default="auto", metadata={"help": "Sample with vLLM: auto (when installed and on a GPU), true or false."}
    )
    fresh: bool = field(
        default=False, metadata={"help": "Start --out over instead of resuming it (its old rows are deleted)."}
    )


# -------------------------------------------------------------------------------------------------- traces


def collect_traces(
    problems: list[Problem],
    teacher,
    reward: RLTReward | MultiStudentReward,
    out: Path,
    sampling: SamplingConfig,
    num_samples: int = 1,
    sampler: Sampler | None = None,
    fresh: bool = False,
    data: dict | None = None,
) -> list[dict]:
    """Generate, score and append every missing (question, sample) row; return all rows of `problems`, old and new,
    in (problem, sample) order. `sampler` draws the completions (default: transformers' generate on `teacher`;
    `rlt.sampling.generation.VLLMSampler` on a GPU); `data` describes the dataset for the provenance record."""
    tokenizer, style = reward.tokenizer, reward.style
    if fresh:
        out.unlink(missing_ok=True)
    provenance = traces_provenance(teacher, reward, sampling, data)
    keys = row_keys(problems)
    # rows past num_samples stay in the file, but a rerun that asks for fewer samples gets only those
    done_rows = [r for r in _resumable_rows(out, provenance, set(keys)) if r["sample"] < num_samples]
    done = {(r["key"], r["sample"]) for r in done_rows}
    jobs = [(i, k) for i in range(len(problems)) for k in range(num_samples) if (keys[i], k) not in done]
    logger.info("%s: %d rows already there, %d to generate", out, len(done), len(jobs))
    prompts = [encode(tokenizer, teacher_prompt(tokenizer, problems[i].question, problems[i].solution, style))
               for i, _ in jobs]  # fmt: skip
    write_record(sidecar(out), provenance)
    appender = JsonlAppender(out)
    new_rows = []
    try:
        with tqdm(total=len(jobs), desc="traces", unit="trace") as bar:
            sample = sampler or hf_sampler(teacher, tokenizer)
            # seeded by question and sample number, so a resumed run draws what an uninterrupted one would
            seeds = prompt_seeds(sampling, [f"{keys[i]}/{k}" for i, k in jobs])
            for batch in _batched(sample(prompts, sampling, seeds), sampling.batch_size):
                rows = _score_batch(problems, keys, jobs, prompts, batch, teacher, reward)
                for row in rows:
                    appender.write(row)
                appender.sync()
                new_rows += rows
                bar.update(len(rows))
    finally:
        appender.close()
    position = {key: i for i, key in enumerate(keys)}
    rows = [{**r, "index": position[r["key"]]} for r in done_rows] + new_rows  # old rows: this run's positions
    return sorted(rows, key=lambda r: (r["index"], r["sample"]))


def row_keys(problems: list[Problem]) -> list[str]:
    """Each problem's content key (question + solution); a repeated problem's n-th copy gets `-n` appended, so a
    dataset with duplicates still gets one row per problem and sample."""
    seen: dict[str, int] = {}
    keys = []
    for p in problems:
        key = content_key(p.question, p.solution)
        seen[key] = seen.get(key, -1) + 1
        keys.append(f"{key}-{seen[key]}" if seen[key] else key)
    return keys


def traces_provenance(
    teacher, reward: RLTReward | MultiStudentReward, sampling: SamplingConfig, data: dict | None = None
) -> dict:
    """What makes a trace row what it is: teacher and student weights, reward, format and sampling (compared on
    resume), and the data it came from (recorded)."""
    teacher_dir, student_dirs = teacher.name_or_path, [r.student.name_or_path for r in student_rewards(reward)]
    student_dir = student_dirs[0] if len(student_dirs) == 1 else student_dirs
    sampled = {k: v for k, v in asdict(sampling).items() if k != "batch_size"}
    settings = {"teacher": model_identity(teacher_dir), "student": reward_identity(reward),
                "reward": asdict(reward.config), "style": reward.style.identity, "sampling": sampled}  # fmt: skip
    return describe("traces", settings, teacher_path=teacher_dir, student_path=student_dir, data=data)


def _resumable_rows(out: Path, provenance: dict, keys: set[str]) -> list[dict]:
    """The rows already in `out` when resuming it is safe: same settings, only rows whose key is in `keys`."""
    rows = recover_jsonl(out)
    if not rows:
        return []
    remedy = f"pass --fresh true to start {out} over, or write to another --out"
    record = sidecar(out)
    if not record.exists() or any("key" not in r for r in rows):
        raise DataError(f"{out} holds {len(rows)} rows without a provenance record (another tool or an older rlt); "
                        f"{remedy}")  # fmt: skip
    check_settings(record, provenance, str(out), remedy)
    foreign = [r for r in rows if r["key"] not in keys]
    if foreign:
        raise DataError(f"{out} holds {len(foreign)} rows of questions that are not in this run's data (first: "
                        f"{foreign[0]['question'][:60]!r}); {remedy}")  # fmt: skip
    return rows


def _batched(iterator, size: int):
    batch = []
    for item in iterator:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _score_batch(problems, keys, jobs, prompts, batch, teacher, reward: RLTReward | MultiStudentReward) -> list[dict]:
    batch_problems = [problems[jobs[j][0]] for j, _ in batch]
    samples = reward.align_sampled([p.question for p in batch_problems], [p.solution for p in batch_problems],
                                   [prompts[j] for j, _ in batch], [ids for _, ids in batch])  # fmt: skip
    breakdowns = reward.score(samples, teacher=teacher)
    rows = []
    for (j, completion_ids), sample, b in zip(batch, samples, breakdowns, strict=True):
        index, k = jobs[j]
        problem = problems[index]
        completion = reward.tokenizer.decode(completion_ids, skip_special_tokens=True)
        explanation = sample.explanation if b.aligned else reward.explanation_of(completion_ids)
        rows.append(
            {
                "key": keys[index],
                "index": index,
                "sample": k,
                "question": problem.question,
                "solution": problem.solution,
                "answer": problem.answer,
                "completion": completion,
                "explanation": explanation,
                **b.to_dict(),
                "messages": student_messages(problem.question, explanation, problem.solution, reward.style),
            }
        )
    return rows


def select_best(rows: list[dict]) -> list[dict]:
    """Each question's highest-reward sample (the original's best-of-k selection, spec §5); a sample that could not
    be scored only when none of its question's could (its floor reward is not a score to compare)."""

    def rank(row: dict) -> tuple[bool, float]:
        return row.get("aligned", True), row["reward"]

    best: dict[str, dict] = {}
    for row in rows:
        if row["key"] not in best or rank(row) > rank(best[row["key"]]):
            best[row["key"]] = row
    return sorted(best.values(), key=lambda r: r["index"])


def best_and_worst(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """Of each question's scored samples, the highest- and the lowest-reward one, for the questions that have two
    of different reward: two sets of traces on the same questions that differ by reward alone (whether the reward
    predicts what a student learns, spec §7, without a split by question)."""
    scored: dict[str, list[dict]] = {}
    for row in rows:
        if row.get("aligned", True):
            scored.setdefault(row["key"], []).append(row)
    ordered = [sorted(group, key=lambda r: r["reward"]) for group in scored.values()]
    pairs = sorted(((g[-1], g[0]) for g in ordered if g[-1]["reward"] > g[0]["reward"]), key=lambda p: p[0]["index"])
    return [best for best, _ in pairs], [worst for _, worst in pairs]


#: Explanations no model writes, for students distilled without a teacher: the dataset's own reasoning trace (the
#: expert's: R1's in Stratos, the search in countdown) or its worked solution (Stream of Search's optimal path).
DATASET_TEACHERS = {
    "dataset:trace": lambda problem: problem.reasoning_trace,
    "dataset:solution": lambda problem: problem.solution,
}


def dataset_traces(problems: list[Problem], teacher: str, style, out: Path, data: dict) -> list[dict]:
    """The traces file of a `DATASET_TEACHERS` source: one row per problem, its explanation the dataset's text, in
    the same student chat as a teacher's (unscored: no teacher sampled it)."""
    explanation_of = DATASET_TEACHERS[teacher]
    rows = []
    for index, (key, problem) in enumerate(zip(row_keys(problems), problems, strict=True)):
        explanation = explanation_of(problem)
        if not explanation:
            raise DataError(f"--teacher {teacher}: problem {index} has no {teacher.split(':')[1]} "
                            f"({problem.question[:60]!r})")  # fmt: skip
        rows.append({"key": key, "index": index, "sample": 0, "question": problem.question,
                     "solution": problem.solution, "answer": problem.answer, "explanation": explanation,
                     "messages": student_messages(problem.question, explanation, problem.solution, style)})  # fmt: skip
    write_rows(out, rows, describe("traces", {"teacher": teacher, "style": style.identity}, data=data))
    return rows


def run_traces(args: TracesArguments, data_args, format_args, reward_args, out: Path) -> tuple[list[dict], Path | None]:
    """`rlt traces`: the teacher's explanations of the selected problems, scored, in `out` (resumable: rows are
    appended to OUT.jsonl as they come; a Parquet `out` is written at the end); with `best_of`, each question's
    best sample in selected.EXT beside it. Returns the rows and the selected file."""
    from dataclasses import asdict

    from rlt.measure.scoring import kl_temperature, load_reward
    from rlt.provenance import read_record
    from rlt.sampling.generation import sampler_for, vllm_usable

    problems = data_args.select(args.part)
    journal = out.with_suffix(".jsonl")
    for path in {out, journal}:
        if path.exists() and path.resolve() == Path(data_args.dataset).resolve():
            raise UsageError(f"--out {args.out} would write the traces into the dataset {data_args.dataset}")
    style = format_args.tag_style(problems)
    data = {**asdict(data_args), "part": args.part, "questions": len(problems)}
    if args.teacher in DATASET_TEACHERS:
        return dataset_traces(problems, args.teacher, style, out, data), None
    use_vllm = vllm_usable(args.use_vllm, args.device)
    reward = load_reward(args.teacher, reward_args, style, kl_temperature(args.temperature), args)
    sampling = SamplingConfig(args.max_new_tokens, args.temperature, args.top_p, args.batch_size, args.seed)
    with sampler_for(use_vllm, args.teacher, args.dtype) as sampler:
        rows = collect_traces(problems, reward.teacher, reward, journal, sampling, args.num_samples, sampler,
                              args.fresh, data)  # fmt: skip
    record = read_record(sidecar(journal))
    if out != journal:
        write_rows(out, rows, record)
    selected = None
    if args.best_of:
        selected = out.with_name("selected" + out.suffix)
        write_rows(selected, select_best(rows), record)
    return rows, selected
