"""Does RL make a better teacher? Countdown with search traces, the paper's framing, judged by what students solve.

The setting of the paper at small scale (issue 23): the teacher is shown a countdown question and its worked
solution; its warm-up target is a search trace that ends on that solution's path (`rlt.data.countdown.search_trace`);
RL with the RLT reward then trains it against a frozen SmolLM2-135M student that must predict the whole worked
solution after reading the explanation. A teacher is judged by fresh SmolLM2-135M students distilled on its
explanations: pass@1 and pass@k on held-out problems by the exact checker, paired per problem, over seeds.

Disjoint parts of one generated problem list (3 numbers by default): warm-up problems (their generator traces teach
the teacher the format), RL prompts, distillation problems (every arm's students learn the same problems), held-out
problems (students are measured there; the teachers' reward components are read there).

    stage      what                                                          writes (under --work-dir)
    rows       the four parts as countdown rows                              rows/*.jsonl
    warmup     teacher SFT on the generator's search traces                  warmup/
    rl         teacher GRPO with the RLT reward, one run per --kl-scales     rl_kl<scale>/
    traces     each teacher explains the distillation problems (the RL       traces/<teacher>_distill.jsonl,
               teachers twice: best and worst by their reward) and the        traces/<teacher>_heldout.jsonl
               held-out problems (for the reward components)
    students   per arm and seed a student distilled on the arm's traces,     students/<arm>_seed<s>/,
               then sampled --thoughts times per held-out problem             measures/<arm>_seed<s>.json

Arms: not distilled; generator traces; solutions only (empty thought); warm-up teacher; one per RL teacher; RL best
and RL worst (the two samples of each problem split by reward: the paper's check that the reward predicts gain).
Every stage skips what its output already holds, so a stopped run resumes; an RL run that `--minutes` stopped
counts as finished (its teacher is saved, and the step count is in the summary). Jobs of one stage run --parallel at a
time as separate processes (on a GPU the 135M models leave it mostly idle; on a CPU keep 1).

    python benchmarks/countdown_teaching.py --preset cpu --out benchmarks/results/countdown_teaching_cpu.json
    bash benchmarks/countdown_gpu.sh setup; bash benchmarks/countdown_gpu.sh run     # --preset gpu on a lent H200
    # students on a CPU from a GPU run's teachers (BENCHMARKS §9d):
    python benchmarks/countdown_teaching.py --preset gpu --stages students \
        --work-dir runs/bench/countdown_teaching_gpu --set seeds=1 thoughts=2 thought_tokens=256 \
        students_distill=96 students_heldout=48 batch=8 student_batch=8 generate_batch=16 distill_epochs=1 \
        'arms=["generator traces", "warmup", "rl_kl0.3", "not distilled", "solutions only"]' \
        --out benchmarks/results/countdown_teaching_cpu_students.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from rlt.data.countdown import Search

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("warmup", "rl", "traces", "students", "judge")
RECIPES = ROOT / "recipes" / "cpu"

# Sizes per machine. tiny: a rehearsal of the wiring in minutes. cpu: about 12 hours on 2 cores, in stages that
# resume (warm-up 32 steps of 8 at ~65 s, RL 100 steps at ~55 s per KL scale, each student ~14 min to distil and
# ~5 min to measure). gpu: one H200, sized to a 9-minute budget (RL stops at the deadline).
PRESETS = {
    "tiny": dict(warmup=16, rl=16, distill=8, heldout=6, warmup_steps=2, rl_steps=2, generations=4, prompts=2,
                 explanation_tokens=48, thought_tokens=64, thoughts=2, seeds=1, distill_epochs=1, batch=8,
                 student_lr=5e-5, generate_batch=16),
    "cpu": dict(warmup=256, rl=512, distill=96, heldout=48, warmup_steps=32, rl_steps=100, generations=4, prompts=2,
                explanation_tokens=160, thought_tokens=256, thoughts=2, seeds=3, distill_epochs=1, batch=8,
                student_lr=1e-4, generate_batch=16),
    "gpu": dict(warmup=2000, rl=4000, distill=1500, heldout=300, warmup_steps=100, rl_steps=150, generations=8,
                prompts=8, explanation_tokens=160, thought_tokens=288, thoughts=4, seeds=3, distill_epochs=2, batch=64,
                # distilling at batch 64 in one pass took ~30 GB a process: 8 at once ran out of the H200's memory
                student_lr=1e-4, student_batch=16, generate_batch=600),
}  # fmt: skip


# ------------------------------------------------------------------------------------------------------ stages


def write_rows(work: Path, plan: dict, dataset: str) -> dict[str, Path]:
    """The four disjoint parts of one generated list, as countdown rows with search traces."""
    from rlt.data.countdown import generate, parse_spec

    parts = ("warmup", "rl", "distill", "heldout")
    total = sum(plan[p] for p in parts)
    rows = generate(total, parse_spec(dataset), seed=0, search=Search(plan["dead_ends"], plan["tries"]))
    paths, start = {}, 0
    for part in parts:
        paths[part] = work / "rows" / f"{part}.jsonl"
        if not paths[part].exists():
            paths[part].parent.mkdir(parents=True, exist_ok=True)
            chunk = rows[start : start + plan[part]]
            paths[part].write_text("".join(json.dumps(r) + "\n" for r in chunk))
        start += plan[part]
    return paths


def recipe(name: str, overrides: dict) -> list[str]:
    argv = ["--config", str(RECIPES / name)]
    for key, value in overrides.items():
        argv += [f"--{key}", *(map(str, value) if isinstance(value, list) else [str(value)])]
    return argv


def run_warmup_job(work: Path, plan: dict, rows: dict) -> None:
    from trl import ModelConfig

    from rlt.configs import DataArguments, FormatArguments, RLTSFTConfig, parse
    from rlt.train.sft import run_warmup

    overrides = {"model_name_or_path": plan["student"], "dataset": rows["warmup"], "adapter": "countdown",
                 "holdout": 0, "output_dir": work / "warmup", "max_steps": plan["warmup_steps"],
                 "per_device_train_batch_size": plan["batch"], "gradient_accumulation_steps": 1,
                 "learning_rate": 1e-4, "report_to": "none"}  # fmt: skip
    argv = recipe("warmup.yaml", overrides)
    run_warmup(*parse((ModelConfig, DataArguments, FormatArguments, RLTSFTConfig), argv))


def run_rl_job(work: Path, plan: dict, rows: dict, scale: float, deadline: float) -> None:
    from transformers import TrainerCallback
    from trl import ModelConfig

    from rlt.configs import DataArguments, FormatArguments, RewardArguments, RLTGRPOConfig, parse
    from rlt.train.trainer import run_train

    class StopAt(TrainerCallback):
        """Ends training at a wall-clock time (the model is saved as after the last step): a lent GPU is timed."""

        def on_step_end(self, args, state, control, **kwargs):
            control.should_training_stop = control.should_training_stop or time.time() > deadline

    completions = plan["prompts"] * plan["generations"]
    overrides = {"model_name_or_path": work / "warmup", "student": plan["student"], "dataset": rows["rl"],
                 "adapter": "countdown", "holdout": 0, "max_solution_chars": 10_000,
                 "output_dir": work / f"rl_kl{scale}", "max_steps": plan["rl_steps"],
                 "per_device_train_batch_size": completions, "num_generations": plan["generations"],
                 "max_completion_length": plan["explanation_tokens"], "kl_coeffs": list(kl_coeffs(scale)),
                 "save_steps": 25, "report_to": "none"}  # fmt: skip
    argv = recipe("train.yaml", overrides)
    run_train(*parse((ModelConfig, DataArguments, FormatArguments, RewardArguments, RLTGRPOConfig), argv),
              callbacks=[StopAt()])  # fmt: skip


def kl_coeffs(scale: float) -> tuple[float, float]:
    """The paper's KL coefficients (the reward's defaults) times `scale`."""
    from rlt.reward import RewardConfig

    return tuple(scale * c for c in RewardConfig().kl_coeffs)


def problems_of(path: Path) -> list:
    from rlt.data import load_problems

    return load_problems(str(path), adapter="countdown")[0]


def device_and_dtype():
    from rlt.configs import DeviceArguments

    placement = DeviceArguments()
    return placement.torch_device(), placement.torch_dtype()


def run_traces_job(work: Path, plan: dict, rows: dict, teacher: str, scale: float) -> None:
    """The teacher explains the distillation problems (RL teachers twice) and the held-out problems, scored by its
    own training reward (the RL teacher's KL scale; the paper's for the warm-up teacher)."""
    from rlt.models import load_model
    from rlt.reward import RewardConfig, RLTReward
    from rlt.sampling.generation import SamplingConfig
    from rlt.sampling.traces import collect_traces

    device, dtype = device_and_dtype()
    model, tokenizer = load_model(str(work / teacher), dtype, device)
    student, student_tokenizer = load_model(plan["student"], dtype, device)
    config = RewardConfig(kl_coeffs=kl_coeffs(scale), teacher_temperature=0.7)
    reward = RLTReward(student, tokenizer, model, config, student_tokenizer=student_tokenizer)
    sampling = SamplingConfig(plan["explanation_tokens"], 0.7, 1.0, plan["generate_batch"], 42)
    samples = 1 if teacher == "warmup" else 2
    collect_traces(problems_of(rows["distill"]), model, reward, work / "traces" / f"{teacher}_distill.jsonl",
                   sampling, num_samples=samples)  # fmt: skip
    collect_traces(problems_of(rows["heldout"]), model, reward, work / "traces" / f"{teacher}_heldout.jsonl", sampling)


def arm_rows(work: Path, rows: dict, arm: str, plan: dict) -> list[dict]:
    """Student-format chats of the arm: one per distillation problem."""
    from rlt.records import recover_jsonl
    from rlt.reward.formats import student_messages
    from rlt.sampling.traces import best_and_worst

    problems = problems_of(rows["distill"])[: plan.get("students_distill")]
    if arm in ("generator traces", "solutions only"):
        return [{"messages": student_messages(p.question, p.reasoning_trace if arm == "generator traces" else "",
                                              p.solution)} for p in problems]  # fmt: skip
    teacher, _, pick = arm.partition(" ")
    traces = sorted(
        recover_jsonl(work / "traces" / f"{teacher}_distill.jsonl"), key=lambda r: (r["index"], r["sample"])
    )
    traces = [r for r in traces if r["index"] < len(problems)]
    if pick:  # best / worst of the two samples of every problem, by the teacher's reward
        best, worst = best_and_worst(traces)
        return best if pick == "best" else worst
    return [r for r in traces if r["sample"] == 0]


def run_student_job(work: Path, plan: dict, rows: dict, arm: str, seed: int) -> None:
    """Distil a fresh student on the arm's chats (unless the arm is 'not distilled'), then measure it."""
    from trl import ModelConfig

    from rlt.configs import RLTSFTConfig, parse
    from rlt.records import write_rows as write_trace_rows
    from rlt.train.sft import DistillArguments, run_distill

    slug = measure_path(work, arm, seed).stem
    spec = plan["student"]
    if arm != "not distilled":
        chats = work / "students" / f"{slug}.jsonl"
        chats.parent.mkdir(parents=True, exist_ok=True)
        write_trace_rows(chats, arm_rows(work, rows, arm, plan))
        spec = str(work / "students" / slug)
        argv = recipe("distill.yaml", {"model_name_or_path": plan["student"], "traces": chats, "output_dir": spec,
                                       "num_train_epochs": plan["distill_epochs"], "learning_rate": plan["student_lr"],
                                       "per_device_train_batch_size": plan["student_batch"],
                                       "gradient_accumulation_steps": plan["batch"] // plan["student_batch"],
                                       "seed": seed, "report_to": "none"})  # fmt: skip
        run_distill(*parse((ModelConfig, DistillArguments, RLTSFTConfig), argv))
    measure_job(work, plan, rows, spec, arm, seed)


def measure_job(work: Path, plan: dict, rows: dict, spec: str, name: str, seed: int) -> None:
    """The student measured as the teaching benchmark measures one (`teaching_distill.measure_student`) on the
    held-out problems, its record kept per problem for pairing over seeds."""
    from teaching_distill import measure_student  # a sibling script, importable once this one runs

    from rlt.sampling.generation import SamplingConfig

    problems, k = problems_of(rows["heldout"])[: plan.get("students_heldout")], plan["thoughts"]
    sampling = SamplingConfig(plan["thought_tokens"], 0.7, 1.0, plan["generate_batch"], seed)
    measured, thoughts = measure_student(spec, problems, k, sampling, *device_and_dtype())
    record = {"student": spec, "seed": seed, "samples": k, "correct": measured["correct"],
              "solution_logprob": [None if v != v else v for v in measured["per_problem"]],
              "example_thoughts": [t[-300:] for t in thoughts[:2]]}  # fmt: skip
    out = measure_path(work, name, seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record))


def run_judge_job(work: Path, plan: dict) -> None:
    """The teachers' held-out explanations read by a student no teacher was trained against (the first student
    distilled on the generator's traces): its r_SS terms per explanation, beside the reward student's."""
    from rlt.models import load_model
    from rlt.records import recover_jsonl
    from rlt.reward import RewardConfig, RLTReward

    device, dtype = device_and_dtype()
    # the first student distilled on the generator's traces
    judge, tokenizer = load_model(
        str(work / "students" / measure_path(work, "generator traces", 0).stem), dtype, device
    )
    reward = RLTReward(judge, tokenizer, config=RewardConfig(teacher_entropy=False))
    judged, end_tag = {}, reward.style.explanation[1]  # score_texts reads the completion, closing tag included
    for teacher in teachers_of(plan):
        rows = recover_jsonl(work / "traces" / f"{teacher}_heldout.jsonl")
        texts = [{"question": r["question"], "solution": r["solution"], "explanation": r["explanation"] + end_tag}
                 for r in rows]  # fmt: skip
        scored, _ = reward.score_texts(texts)
        judged[teacher] = [b.solution_logprob_mean if b.aligned else None for b in scored]
    (work / "judge.json").write_text(json.dumps(judged))


# ------------------------------------------------------------------------------------------------ the driver


def teachers_of(plan: dict) -> list[str]:
    return ["warmup"] + [f"rl_kl{s}" for s in plan["kl_scales"]]


def jobs_for(stage: str, work: Path, plan: dict, arms: list[str]) -> list[tuple[str, Path]]:
    """(job spec, the file whose presence says it is done) for every job of a stage."""
    teachers = teachers_of(plan)
    if stage == "judge":
        return [("judge", work / "judge.json")]
    if stage == "warmup":
        return [("warmup", work / "warmup" / "model.safetensors")]
    if stage == "rl":
        return [(f"rl {s}", work / f"rl_kl{s}" / "model.safetensors") for s in plan["kl_scales"]]
    if stage == "traces":
        return [(f"traces {t}", work / "traces" / f"{t}_heldout.jsonl.done") for t in teachers]
    # seed by seed, so that a run stopped by its deadline has every arm at the same number of seeds
    return [(f"student {arm}|{seed}", measure_path(work, arm, seed)) for seed in range(plan["seeds"]) for arm in arms]


def measure_path(work: Path, arm: str, seed: int) -> Path:
    """Where a student's measurement is written; its stem also names the student's directory and chats."""
    return work / "measures" / f"{arm.replace(' ', '_')}_seed{seed}.json"


def arms_of(plan: dict) -> list[str]:
    if plan.get("arms"):
        return plan["arms"]
    best = f"rl_kl{plan['kl_scales'][-1]}"  # best/worst split of the teacher at the smallest KL scale
    return ["generator traces", "solutions only", "not distilled", "warmup",
            *[f"rl_kl{s}" for s in plan["kl_scales"]], f"{best} best", f"{best} worst"]  # fmt: skip


def run_stage(stage: str, work: Path, plan: dict, args, log: dict, report: Callable[[], None]) -> None:
    """Run the stage's unfinished jobs, `args.parallel` at a time; `report` after each. Past `plan["deadline"]`
    nothing new starts and what runs is stopped (its output stays missing, so a rerun does it)."""
    pending = [(job, done) for job, done in jobs_for(stage, work, plan, arms_of(plan)) if not done.exists()]
    began = time.perf_counter()
    running: list[tuple[subprocess.Popen, str, Path]] = []
    (work / "logs").mkdir(parents=True, exist_ok=True)
    deadline = plan["deadline"] - (30 if stage == "students" else 0)  # the judge, after, takes ~15 s
    try:
        supervise(pending, running, deadline, work, plan, args, log, report)
    finally:  # a crash or a stop here must not leave jobs running on (and holding the GPU)
        for process, job, _ in running:
            process.kill()
            process.wait()
            log.setdefault("jobs", {})[job] = "stopped at the deadline"
    log.setdefault("seconds", {})[stage] = round(time.perf_counter() - began, 1)


def supervise(pending: list, running: list, deadline: float, work: Path, plan: dict, args, log: dict,
              report: Callable[[], None]) -> None:  # fmt: skip
    """Start jobs up to `args.parallel` at once until none is pending, the finished ones reported; at `deadline`
    return with what still runs (the caller stops it) and what never started logged."""
    logs = work / "logs"
    while pending or running:
        if time.time() > deadline:
            log.setdefault("not started at the deadline", []).extend(job for job, _ in pending)
            return
        while pending and len(running) < args.parallel:
            job, done = pending.pop(0)
            name = re.sub(r"[^A-Za-z0-9_.-]", "_", job)
            command = [sys.executable, __file__, "--job", job, "--work-dir", str(work), "--plan", json.dumps(plan)]
            # each job its share of the cores: more threads than cores stall every process (6-12x on 2 cores)
            env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // args.parallel))}
            with (logs / f"{name}.log").open("w") as f:
                running.append((subprocess.Popen(command, stdout=f, stderr=subprocess.STDOUT, env=env), job, done))
        time.sleep(1)
        for item in [r for r in running if r[0].poll() is not None]:
            running.remove(item)
            process, job, done = item
            status = "ok" if process.returncode == 0 and done.exists() else f"failed ({process.returncode})"
            log.setdefault("jobs", {})[job] = status
            print(f"[{time.strftime('%H:%M:%S')}] {job}: {status}", flush=True)
            report()


def run_job(job: str, work: Path, plan: dict) -> None:
    rows = {p: work / "rows" / f"{p}.jsonl" for p in ("warmup", "rl", "distill", "heldout")}
    kind, _, rest = job.partition(" ")
    if kind == "warmup":
        run_warmup_job(work, plan, rows)
    elif kind == "rl":
        run_rl_job(work, plan, rows, float(rest), plan["rl_deadline"])
    elif kind == "judge":
        run_judge_job(work, plan)
    elif kind == "traces":
        scale = 1.0 if rest == "warmup" else float(rest.removeprefix("rl_kl"))
        run_traces_job(work, plan, rows, rest, scale)
        (work / "traces" / f"{rest}_heldout.jsonl.done").touch()
    else:
        arm, _, seed = rest.partition("|")
        run_student_job(work, plan, rows, arm, int(seed))


# ----------------------------------------------------------------------------------------------- the summary


def summarize(work: Path, plan: dict, log: dict) -> dict:
    """Per arm pass@1 / pass@k / solution log-prob over seeds; paired differences; the teachers' explanations."""
    from rlt.measure.evaluate import pass_at_k
    from rlt.measure.stats import bootstrap, paired, seeded_difference

    arms = arms_of(plan)
    measured = {}
    for arm in arms:
        paths = [measure_path(work, arm, seed) for seed in range(plan["seeds"])]
        records = [json.loads(p.read_text()) for p in paths if p.exists()]
        if records:
            measured[arm] = records
    settings = {key: value for key, value in plan.items() if not key.endswith("deadline")}  # clock times: noise
    result = {"plan": settings, "log": log, "students": {}, "paired": {}, "teachers": teacher_stats(work, plan)}
    for arm, records in measured.items():
        k = records[0]["samples"]
        entry = {"seeds": len(records)}
        for j in sorted({1, k}):
            per_seed = [statistics.mean(pass_at_k(k, c, j) for c in r["correct"]) for r in records]
            entry[f"pass@{j}"] = statistics.mean(per_seed)
            entry[f"pass@{j}_per_seed"] = per_seed
        # the worked solution's mean log-prob after the student's own thought: moves before pass@1 does
        entry["solution_logprob"] = bootstrap([v for r in records for v in r["solution_logprob"]])
        result["students"][arm] = entry
    pairs = [("generator traces", "not distilled"), ("generator traces", "solutions only"),
             ("warmup", "not distilled"), *[(f"rl_kl{s}", "warmup") for s in plan["kl_scales"]],
             *[(f"{t} best", f"{t} worst") for t in teachers_of(plan)[1:]]]  # fmt: skip
    for a, b in pairs:
        seeds = sorted({r["seed"] for r in measured.get(a, [])} & {r["seed"] for r in measured.get(b, [])})
        if seeds:  # per problem, the share of its samples solved; paired over the seeds both arms have
            per_problem = {
                name: [[c / r["samples"] for c in r["correct"]] for r in measured[name] if r["seed"] in seeds]
                for name in (a, b)
            }
            logprobs = {name: [r["solution_logprob"] for r in measured[name] if r["seed"] in seeds] for name in (a, b)}
            result["paired"][f"{a} - {b}"] = {
                "seeds": len(seeds),
                "solution_logprob": seeded_difference(logprobs[a], logprobs[b]),
                "pass@1": seeded_difference(per_problem[a], per_problem[b]),
                "pass@1_first_seed": paired(per_problem[a][0], per_problem[b][0]),
            }
    return result


def teacher_stats(work: Path, plan: dict) -> dict:
    """On the held-out problems, per teacher: the reward and its components (unscoreable left out and counted), how
    long its explanations are, how many back-ups they make, and how often they copy a line of the shown solution."""
    from rlt.measure.stats import paired
    from rlt.records import recover_jsonl

    stats = {"generator": explanation_stats(generator_rows(work))}
    judge = json.loads((work / "judge.json").read_text()) if (work / "judge.json").exists() else {}
    for teacher in teachers_of(plan):
        path = work / "traces" / f"{teacher}_heldout.jsonl"
        if not path.with_name(path.name + ".done").exists():  # absent, or being written by a job still running
            continue
        rows = recover_jsonl(path)
        scored = [r for r in rows if r.get("aligned", True) and r.get("reward") is not None]
        entry = {"explanations": len(rows), "unscoreable": len(rows) - len(scored)}
        for key in ("reward", "solution_logprob_mean", "solution_logprob_min", "kl_mean", "kl_max"):
            values = [r[key] for r in scored if isinstance(r.get(key), int | float)]
            if values:
                entry[key] = statistics.mean(values)
        judged = [v for v in judge.get(teacher, []) if v is not None]
        if judged:
            entry["judge_solution_logprob_mean"] = statistics.mean(judged)
            entry["judge_unscoreable"] = len(judge[teacher]) - len(judged)
        entry |= explanation_stats(rows)
        entry["per_problem_solution_logprob"] = [r["solution_logprob_mean"] if r.get("aligned", True) else None
                                                 for r in sorted(rows, key=lambda r: r["index"])]  # fmt: skip
        stats[teacher] = entry
    for teacher in teachers_of(plan)[1:]:  # each RL teacher against its warm-up start, paired per held-out problem
        if teacher in stats and "warmup" in stats:
            first, second = (stats[t]["per_problem_solution_logprob"] for t in (teacher, "warmup"))
            stats[teacher]["solution_logprob_minus_warmup"] = paired(first, second)
    return stats


def generator_rows(work: Path) -> list[dict]:
    """The held-out problems with the generator's own search as their explanation: the reference row."""
    rows = [json.loads(line) for line in (work / "rows" / "heldout.jsonl").read_text().splitlines()]
    return [{"explanation": r["reasoning_trace"], "solution": r["solution"]} for r in rows]


def explanation_stats(rows: list[dict]) -> dict:
    """What the explanations' text shows: length, back-ups, true arithmetic, whether they reach the target and walk
    the shown solution's path, whether they copy one of its lines."""
    from rlt.data.countdown import arithmetic, copies_solution_line, walks_solution_path

    explanations = [r["explanation"] for r in rows]
    true, stated = map(sum, zip(*map(arithmetic, explanations), strict=True))
    return {
        "explanation_chars_median": statistics.median(map(len, explanations)),
        "back_ups_mean": statistics.mean(e.count("Back to") for e in explanations),
        "arithmetic_true": true / stated if stated else None,
        "ends_with_yes": statistics.mean(e.rstrip().endswith("Yes!") for e in explanations),
        "walks_the_solution_path": statistics.mean(walks_solution_path(r["explanation"], r["solution"]) for r in rows),
        "copies_a_solution_line": statistics.mean(copies_solution_line(r["explanation"], r["solution"]) for r in rows),
        "examples": explanations[:2],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    parser.add_argument("--dataset", default="countdown:3")
    parser.add_argument("--student", default="smollm2-135m", help="Base model of teacher, reward student, students.")
    parser.add_argument("--kl-scales", type=float, nargs="+", default=[1.0, 0.3])
    parser.add_argument("--dead-ends", type=int, default=Search.dead_ends, help="Search traces: --search_dead_ends.")
    parser.add_argument("--tries", type=int, default=Search.tries, help="Search traces: --search_tries.")
    parser.add_argument("--parallel", type=int, default=1, help="Jobs of a stage run at once (processes).")
    parser.add_argument("--minutes", type=float, default=None, help="Wall-clock budget of the whole run.")
    parser.add_argument("--after-rl", type=float, default=4.3, help="Minutes of --minutes kept for what follows RL.")
    parser.add_argument(
        "--stages",
        nargs="*",
        default=list(STAGES),
        choices=STAGES,
        help="Stages to run (none: only summarize what the work dir holds).",
    )
    parser.add_argument("--work-dir", default="runs/bench/countdown_teaching")
    parser.add_argument("--out", default="benchmarks/results/countdown_teaching.json")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=JSON",
                        help="Override the preset, e.g. seeds=1 students_distill=256 students_heldout=64 (students "
                        "learn from / are measured on the first N problems) arms='[\"warmup\"]'.")  # fmt: skip
    parser.add_argument("--job", help=argparse.SUPPRESS)
    parser.add_argument("--plan", help=argparse.SUPPRESS)
    args = parser.parse_args()
    work = Path(args.work_dir)
    if args.job:
        run_job(args.job, work, json.loads(args.plan))
        return

    began = time.time()
    plan = {**PRESETS[args.preset], "preset": args.preset, "dataset": args.dataset, "student": args.student,
            "kl_scales": [float(s) for s in args.kl_scales],  # "1" and "1.0" name one run: rl_kl1.0
            "dead_ends": args.dead_ends, "tries": args.tries}  # fmt: skip
    for item in args.set:
        key, _, value = item.partition("=")
        plan[key] = json.loads(value)
    plan["student_batch"] = min(plan.get("student_batch", plan["batch"]), plan["batch"])  # the rest: accumulation
    budget = args.minutes * 60 if args.minutes else 1e9
    plan["deadline"] = began + budget
    plan["rl_deadline"] = began + budget - args.after_rl * 60  # RL stops there; what follows needs the rest
    log: dict = {"started": time.strftime("%Y-%m-%d %H:%M:%S")}
    write_rows(work, plan, args.dataset)

    def report() -> None:
        result = summarize(work, plan, log)
        result["rl_steps_done"] = rl_steps_done(work, plan)
        result["seconds_total"] = round(time.time() - began, 1)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2))

    for stage in args.stages:
        run_stage(stage, work, plan, args, log, report)
    report()
    result = json.loads(Path(args.out).read_text())
    print(json.dumps({k: result[k] for k in ("students", "paired", "rl_steps_done")}, indent=1))


def rl_steps_done(work: Path, plan: dict) -> dict:
    done = {}
    for scale in plan["kl_scales"]:
        state = work / f"rl_kl{scale}" / "trainer_state.json"
        if state.exists():
            history = json.loads(state.read_text())
            steps = [h for h in history["log_history"] if "reward" in h]
            done[str(scale)] = {"steps": history["global_step"], "step_seconds_median": median_step_seconds(history)}
            for key in ("reward", "rlt/solution_logprob_mean", "rlt/kl_mean", "completions/mean_length",
                        "rlt/seconds_generation"):  # fmt: skip
                values = [h[key] for h in steps if key in h]
                if values:
                    done[str(scale)][key] = {
                        "first_5": statistics.mean(values[:5]),
                        "last_5": statistics.mean(values[-5:]),
                    }
    return done


def median_step_seconds(history: dict) -> float | None:
    times = [h["step_time"] for h in history["log_history"] if "step_time" in h]
    return statistics.median(times) if times else None


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
