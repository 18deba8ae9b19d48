"""`rlt check-reward`: does the RLT reward prefer real teaching, for this teacher, student and data?

What a researcher runs before spending GPU hours on a new teacher/student pair. On the same problems, explanations
of known quality are scored with the reward:

    reference   the problem's own worked explanation (its reasoning trace, or its worked solution)
    shuffled    another problem's reference explanation: fluent, on-topic in form, no help for this problem
    none        an empty think section
    restated    the solution the teacher was shown, restated (what a copy-task warm-up teaches)
    teacher     optionally, a teacher model's own sampled explanations

A reward worth optimising ranks reference > shuffled > none. The report gives each source's reward and components
with 95 % bootstrap intervals, the paired differences behind that ranking, whether it holds (both paired intervals
above 0), the same test with the KL coefficients scaled (the ranking's dependence on λ), and how often explanations
state the final answer verbatim (leakage: the student can copy instead of understand).

Framing (`--framing`, `rlt.data.frame`): with `answer` the teacher and student are shown "The answer is N." as the
solution and the reference explanation is the trace or the worked solution; with `solution` they are shown the
dataset's solution and the reference is the reasoning trace (or, without one, the solution itself: the copy task).
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar

from rlt.configs import DeviceArguments
from rlt.data import Problem
from rlt.errors import UsageError
from rlt.measure.leakage import states_answer, strip_answer
from rlt.measure.stats import bootstrap, ci, paired
from rlt.measure.teaching import completion
from rlt.reward import RewardBreakdown, RewardConfig, RLTReward, combine, r_ss
from rlt.reward.formats import get_style


@dataclass
class CheckRewardArguments(DeviceArguments):
    #: Least value of each numeric flag (`check_ranges`): a percentile interval needs resamples to be read from.
    MINIMUMS: ClassVar[dict[str, int]] = {"resamples": 100}

    teacher: str = field(
        default="smollm2-135m", metadata={"help": "Model whose log-probs enter the KL term: Hub id, path, embedded."}
    )
    sample_teacher: bool = field(
        default=False, metadata={"help": "Also score one explanation sampled from the teacher per problem."}
    )
    max_new_tokens: int = field(default=128, metadata={"help": "Longest sampled teacher explanation, in tokens."})
    temperature: float = field(default=0.7, metadata={"help": "Sampling and teacher log-prob temperature."})
    kl_scales: list[float] = field(
        default_factory=lambda: [0.0, 0.1, 0.3, 0.5, 1.0, 2.0],
        metadata={"help": "Multipliers of the KL coefficients to test the ranking under."},
    )
    resamples: int = field(default=2000, metadata={"help": "Bootstrap resamples for the 95-percent intervals."})
    seed: int = field(default=0, metadata={"help": "Seed of the shuffle and the bootstrap."})
    out: str = field(default="runs/check_reward.json", metadata={"help": "JSON report; a .md table beside it."})

    def __post_init__(self):
        if not all(0 <= scale < math.inf for scale in self.kl_scales):
            raise UsageError(f"--kl_scales must be finite numbers >= 0, got {self.kl_scales}")


# ------------------------------------------------------------------------------------------------ the sources


def references(problems: Sequence[Problem]) -> list[tuple[Problem, str]]:
    """(problem as the models see it, its reference explanation): the trace, or the solution itself."""
    return [(p, p.reasoning_trace or p.solution) for p in problems]


def derangement(n: int, seed: int) -> list[int]:
    """A seeded permutation with no fixed point: problem i gets the explanation of problem order[i] != i."""
    if n < 2:
        raise UsageError("the shuffled source needs at least two problems")
    order = list(range(n))
    random.Random(seed).shuffle(order)
    successor = {order[k]: order[(k + 1) % n] for k in range(n)}  # one cycle through all problems
    return [successor[i] for i in range(n)]


def explanation_rows(pairs: list[tuple[Problem, str]], end_tag: str, seed: int) -> dict[str, list[dict]]:
    """Score rows (question, solution, raw completion) for every fixed source."""
    shuffled = derangement(len(pairs), seed)
    texts = {
        "reference": [reference for _, reference in pairs],
        "shuffled": [pairs[j][1] for j in shuffled],
        "none": ["" for _ in pairs],
        "restated": [p.solution for p, _ in pairs],
    }
    return {
        name: [
            {"question": p.question, "solution": p.solution, "explanation": completion(text, end_tag)}
            for (p, _), text in zip(pairs, explanations, strict=True)
        ]
        for name, explanations in texts.items()
    }


# ------------------------------------------------------------------------------------------------- statistics


def rescored(breakdowns: Sequence[RewardBreakdown], config: RewardConfig, kl_scale: float) -> list[float]:
    """Each reward recomputed from its components with the KL coefficients multiplied by `kl_scale`; NaN for a
    sample that could not be scored (left out, never ranked by its floor)."""
    scaled = replace(config, kl_coeffs=tuple(kl_scale * c for c in config.kl_coeffs))
    return [
        combine(b.solution_logprob_mean, b.solution_logprob_min, b.kl_mean, b.kl_max, b.matched, scaled)
        if b.aligned
        else math.nan
        for b in breakdowns
    ]


def rewards(breakdowns: Sequence[RewardBreakdown]) -> list[float]:
    """Each sample's reward; NaN for one that could not be scored."""
    return [b.reward if b.aligned else math.nan for b in breakdowns]


RANKED = ("reference", "shuffled", "none")  # the order a reward worth optimising must respect


def ranking(values: dict[str, list[float]], resamples: int, seed: int) -> dict:
    """Paired differences reference − shuffled and shuffled − none (over problems where both were scored), and
    whether both intervals lie above 0."""
    pairs = {f"{better} - {worse}": paired(values[better], values[worse], resamples, seed)
             for better, worse in (("reference", "shuffled"), ("shuffled", "none"), ("reference", "none"))}  # fmt: skip
    holds = all(pairs[k] is not None and pairs[k]["low"] > 0 for k in ("reference - shuffled", "shuffled - none"))
    return {"paired": pairs, "holds": holds}


# ------------------------------------------------------------------------------------------------------- run


def summarize_sources(
    scored: dict[str, list[RewardBreakdown]],
    stripped: dict[str, list[RewardBreakdown]],
    explanations: dict[str, list[str]],
    answers: list[str | None],
    config: RewardConfig,
    args: CheckRewardArguments,
) -> dict:
    """The report: per source, the ranking at the given coefficients, the KL-scale sweep, leakage and the causal
    check (`stripped`: every source rescored without its answer-stating sentences). Samples that could not be scored
    are left out of every mean and ranking, and counted (`alignment_failures`)."""

    def interval(values: list[float]) -> dict[str, float] | None:
        return bootstrap(values, args.resamples, args.seed)

    def r_ss_of(breakdowns: list[RewardBreakdown]) -> list[float]:
        return [r_ss(b, config) for b in breakdowns]

    sources = {}
    for name, breakdowns in scored.items():
        scoreable = [b for b in breakdowns if b.aligned]
        stated = [states_answer(e, a) for e, a in zip(explanations[name], answers, strict=True)]
        sources[name] = {
            "reward": interval(rewards(breakdowns)),
            "r_ss": interval(r_ss_of(breakdowns)),
            "r_ss_answer_stripped": interval(r_ss_of(stripped[name])),
            "answer_statements_worth_r_ss": paired(
                r_ss_of(breakdowns), r_ss_of(stripped[name]), args.resamples, args.seed
            ),
            "solution_logprob_mean": interval([b.solution_logprob_mean for b in scoreable]),
            "kl_mean": interval([b.kl_mean for b in scoreable]),
            "closing_tag_rate": sum(b.matched for b in scoreable) / len(scoreable) if scoreable else math.nan,
            "alignment_failures": len(breakdowns) - len(scoreable),
            "leakage_rate": sum(stated) / len(stated),
        }
    sweep = {
        str(scale): ranking({n: rescored(scored[n], config, scale) for n in RANKED}, args.resamples, args.seed)
        for scale in args.kl_scales
    }
    # Restating the solution the teacher was shown is the shortcut RL takes when the reward does not prefer a real
    # explanation to it (under the answer framing: stating the answer; README, BENCHMARKS §3d).
    for scale in args.kl_scales:
        sweep[str(scale)]["reference - restated"] = paired(rescored(scored["reference"], config, scale),
                                                           rescored(scored["restated"], config, scale),
                                                           args.resamples, args.seed)  # fmt: skip
    restating_not_worse = [float(s) for s, r in sweep.items()
                           if r["reference - restated"] is None or r["reference - restated"]["low"] <= 0]  # fmt: skip
    return {
        "sources": sources,
        "ranking": ranking({n: rewards(scored[n]) for n in RANKED}, args.resamples, args.seed),
        "ranking_r_ss": ranking({n: r_ss_of(scored[n]) for n in RANKED}, args.resamples, args.seed),
        "ranking_r_ss_answer_stripped": ranking({n: r_ss_of(stripped[n]) for n in RANKED}, args.resamples, args.seed),
        "kl_scale_sweep": sweep,
        "ranking_holds_at_kl_scales": [float(s) for s, r in sweep.items() if r["holds"]],
        "restating_not_worse_at_kl_scales": restating_not_worse,
    }


def check_reward(
    problems: list[Problem], reward: RLTReward, args: CheckRewardArguments, teacher=None, framing: str = "auto"
) -> dict:
    """Score every source on `problems` (already framed, `rlt.data.frame`), and again with the sentences that state
    the final answer taken out of every explanation, and build the report."""
    pairs = references(problems)
    end_tag = get_style(reward.style).explanation[1]
    rows = explanation_rows(pairs, end_tag, args.seed)
    if args.sample_teacher:
        from rlt.sampling.generation import SamplingConfig
        from rlt.sampling.traces import collect_traces

        journal = Path(args.out).with_suffix(".teacher.jsonl")
        sampling = SamplingConfig(args.max_new_tokens, args.temperature, 1.0, 8, args.seed)
        # fresh: never score another run's samples as this one's
        traced = collect_traces([p for p, _ in pairs], teacher, reward, journal, sampling, fresh=True)
        traced.sort(key=lambda r: r["index"])
        rows["teacher"] = [{"question": r["question"], "solution": r["solution"], "explanation": r["completion"]}
                           for r in traced]  # fmt: skip
    answers = [p.answer for p in problems]
    scored = {name: reward.score_texts(source_rows)[0] for name, source_rows in rows.items()}
    stripped = {name: reward.score_texts([{**row, "explanation": strip_answer(row["explanation"], answer)}
                                          for row, answer in zip(source_rows, answers, strict=True)])[0]
                for name, source_rows in rows.items()}  # fmt: skip
    explanations = {name: [r["explanation"] for r in source_rows] for name, source_rows in rows.items()}
    report = summarize_sources(scored, stripped, explanations, answers, reward.config, args)
    coefficients = {"solution_coeffs": list(reward.config.solution_coeffs), "kl_coeffs": list(reward.config.kl_coeffs)}
    return {"framing": framing, "problems": len(problems), "coefficients": coefficients, **report}


def markdown(report: dict) -> str:
    """The report as tables a person reads."""

    lines = [
        f"Framing: {report['framing']}; {report['problems']} problems; coefficients {report['coefficients']}.",
        "",
        "| source | reward | r_SS | r_SS, answer stripped | answer statements worth (r_SS) | solution log-prob | "
        "KL (mean) | closing tag | states the answer | unscoreable |",
        "|---" * 10 + "|",
    ]
    for name, s in report["sources"].items():
        cells = [ci(s["reward"]), ci(s["r_ss"]), ci(s["r_ss_answer_stripped"]),
                 ci(s["answer_statements_worth_r_ss"], signed=True), ci(s["solution_logprob_mean"]), ci(s["kl_mean"]),
                 f"{s['closing_tag_rate']:.0%}", f"{s['leakage_rate']:.0%}", str(s["alignment_failures"])]  # fmt: skip
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "| paired difference | reward | r_SS | r_SS, answer stripped |", "|---|---|---|---|"]
    for key, by_reward in report["ranking"]["paired"].items():
        lines.append(f"| {key} | {ci(by_reward, True)} | {ci(report['ranking_r_ss']['paired'][key], True)} | "
                     f"{ci(report['ranking_r_ss_answer_stripped']['paired'][key], True)} |")  # fmt: skip
    verdict = {True: "holds", False: "does NOT hold"}
    scales = report["ranking_holds_at_kl_scales"]
    lines += [
        "",
        f"Ranking reference > shuffled > none (both paired intervals above 0): {verdict[report['ranking']['holds']]}"
        f" with the reward; {verdict[report['ranking_r_ss']['holds']]} with r_SS alone; "
        f"{verdict[report['ranking_r_ss_answer_stripped']['holds']]} with r_SS once every sentence stating the final "
        "answer is taken out.",
        f"With the KL coefficients scaled by {[float(s) for s in report['kl_scale_sweep']]} the ranking holds at "
        f"{scales if scales else 'none of them'}.",
        f"Restating the solution the teacher was shown scores no worse than the reference (a shortcut open to RL) "
        f"at KL scales {report['restating_not_worse_at_kl_scales'] or 'none of them'}.",
    ]
    return "\n".join(lines) + "\n"


def write_report(report: dict, out: str | Path) -> str:
    """The report as JSON at `out` and as markdown beside it; returns the markdown."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    table = markdown(report)
    out.with_suffix(".md").write_text(table)
    return table


def run_check_reward(args: CheckRewardArguments, data_args, format_args, reward_args) -> str:
    """`rlt check-reward`: the ranking check on every problem of the dataset, written to `args.out` (JSON, and a
    markdown table beside it); the table."""
    from rlt.measure.scoring import load_reward

    train, held_out, _ = data_args.load()
    reward = load_reward(args.teacher, reward_args, format_args.tag_style(train + held_out), args.temperature, args)
    report = check_reward(train + held_out, reward, args, reward.teacher, data_args.framing)
    return write_report(report, args.out)
