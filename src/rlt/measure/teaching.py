"""Who teaches held-out problems best? Explanation sources compared problem by problem, with paired intervals.

On the same held-out problems a frozen student reads explanations from several sources: none (an empty think
section), the dataset's reference explanation, and each teacher's own samples. Because the sources share their
problems, differences are taken per problem and bootstrapped, which removes the problem-to-problem spread that dwarfs
any teacher effect at this size. The comparison that isolates RL is the RL teacher against its own warm-up start;
teachers are sampled with the same seed, so their samples share random numbers too.

Three safeguards make the comparison something RL cannot game by what it optimised:

    answer stripped   every explanation is also rescored without its sentences that state the final answer
                      (`rlt.measure.leakage`), on every problem: a gain that vanishes then was the statement, not
                      teaching
    judges            every explanation is read by the reward's own student and by any further judges: students
                      the teacher was not trained against, for which reward hacking does not carry over for free
    answer log-prob   beside r_SS, the student's mean log-prob of the answer's own tokens: r_SS averages over the
                      whole solution, and under the answer framing half of it is the template "The answer is"

Samples that cannot be scored are left out of every mean and counted (`unscoreable`); a problem with no scored
sample is missing from the paired differences (their `dropped`).

    r_SS            coefficient-weighted mean and min of the student's solution log-probs (higher: the student follows)
    answer_logprob  mean log-prob of the answer's tokens within the solution
    KL              mean teacher − student log-prob over the explanation (lower: the student could have thought it)
    reward          r_SS − λ·r_KL, the quantity RL maximises (under a judge: with the judge as the student)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from rlt.data import Problem
from rlt.measure.leakage import states_answer, strip_answer
from rlt.measure.stats import bootstrap, ci, paired, present
from rlt.reward import RewardBreakdown, RLTReward, r_ss
from rlt.reward.formats import PADDING
from rlt.sampling.generation import SamplingConfig

METRICS = ("r_ss", "answer_logprob", "reward", "kl_mean")
LOWER_IS_BETTER = {"kl_mean"}
VARIANTS = ("as written", "answer stripped")
REWARD_STUDENT = "reward student"  # the judge that is the reward's own frozen student


def completion(explanation: str, end_tag: str) -> str:
    """A teacher completion holding `explanation`: padded as the warm-up teaches, then the closing tag."""
    return (explanation + PADDING if explanation else "") + end_tag


def fixed_sources(problems: Sequence[Problem], end_tag: str) -> dict[str, list[dict]]:
    """`none` and `reference` (the trace or worked solution, as the warm-up teaches it): one sample per problem."""
    texts = {"none": ["" for _ in problems], "reference": [p.reasoning_trace or p.solution for p in problems]}
    return {name: [{"index": i, "sample": 0, "explanation": e, "completion": completion(e, end_tag)}
                   for i, e in enumerate(explanations)]
            for name, explanations in texts.items()}  # fmt: skip


def teacher_source(
    problems: Sequence[Problem], reward: RLTReward, path: Path, sampling: SamplingConfig, samples: int = 1
) -> list[dict]:
    """A teacher's samples (`samples` per problem; resumable at `path`), sorted by problem and sample."""
    from rlt.sampling.traces import collect_traces

    rows = collect_traces(list(problems), reward.teacher, reward, path, sampling, num_samples=samples)
    return sorted(rows, key=lambda r: (r["index"], r["sample"]))


def stripped_completion(row: dict, answer: str | None) -> str:
    """The row's raw completion with the answer-stating sentences of its explanation taken out; what follows the
    explanation (its closing tag, or nothing) is kept as sampled. A completion in which the explanation cannot be
    found (ids whose text could not be placed) is returned as it is."""
    explanation, raw = row["explanation"], row["completion"]
    start = raw.find(explanation)
    if start < 0:
        return raw
    return raw[:start] + strip_answer(explanation, answer) + raw[start + len(explanation) :]


def answer_logprob(per_token: dict, answer: str | None) -> float:
    """Mean log-prob of the solution tokens that overlap the answer's characters (its last occurrence in the
    solution); NaN when the answer is not written in the solution or no such token has a log-prob."""
    tokens, logprobs = per_token["solution_tokens"], per_token["solution_token_logprobs"]
    text = "".join(tokens)
    start = text.rfind(answer.strip()) if answer else -1
    if start < 0:
        return math.nan
    end, position, found = start + len(answer.strip()), 0, []
    for token, logprob in zip(tokens, logprobs, strict=True):
        if position < end and position + len(token) > start and logprob is not None:
            found.append(logprob)
        position += len(token)
    return sum(found) / len(found) if found else math.nan


def record_answer_logprob(record: dict, answer: str | None, reward) -> float:
    """`answer_logprob` of a scored record; with several students, their weighted mean (each student reads the
    answer in its own tokens, kept under the record's `students`)."""
    if not record.get("students"):
        return answer_logprob(record, answer)
    return reward.weighted_mean({name: answer_logprob(own, answer) for name, own in record["students"].items()})


def measure(rows: Sequence[dict], problems: Sequence[Problem], reward: RLTReward, batch_rows: int = 32) -> list[dict]:
    """Each sample rescored by `reward`'s student as written and with its answer statements stripped: per variant
    every metric (NaN where the sample cannot be scored) and `scored`; whether it states the answer; and whether it
    closes its explanation (`closes`: the closing tag within the sampled tokens, else the reward's penalty).

    A stripped explanation is no longer text the teacher sampled, so its KL (and the reward built on it) would
    measure the edit, not the teacher: only r_SS and the answer's log-prob are kept for it. A sample with nothing to
    strip is scored once and counts for both variants."""
    from rlt.measure.scoring import scored_rounds

    texts, stripped = [], []
    for row in rows:
        problem = problems[row["index"]]
        stripped.append(stripped_completion(row, problem.answer))
        raws = [row["completion"]] if stripped[-1] == row["completion"] else [row["completion"], stripped[-1]]
        texts += [{"question": problem.question, "solution": problem.solution, "explanation": raw} for raw in raws]
    scored = iter(r for chunk, _ in scored_rounds(reward, texts, batch_rows, details=True) for r in chunk)
    measured = []
    for row, without_answer in zip(rows, stripped, strict=True):
        answer = problems[row["index"]].answer
        written = next(scored)
        records = {"as written": written, "answer stripped": written if without_answer == row["completion"] else
                   next(scored)}  # fmt: skip
        as_written = RewardBreakdown.from_dict(written)
        result = {"index": row["index"], "sample": row["sample"], "closes": as_written.aligned and as_written.matched,
                  "states_answer": states_answer(row["explanation"], answer)}  # fmt: skip
        for variant, record in records.items():
            b = RewardBreakdown.from_dict(record)
            teacher_sampled = variant == "as written"
            result[variant] = {
                "scored": b.aligned,
                "r_ss": r_ss(b, reward.config),
                "answer_logprob": record_answer_logprob(record, answer, reward) if b.aligned else math.nan,
                "reward": b.reward if b.aligned and teacher_sampled else math.nan,
                "kl_mean": b.kl_mean if b.aligned and teacher_sampled else math.nan,
            }
        measured.append(result)
    return measured


def per_problem(measured: Sequence[dict], problems: int, variant: str, metric: str) -> list[float]:
    """A metric averaged over each problem's scored samples; NaN for a problem with none."""
    values: list[list[float]] = [[] for _ in range(problems)]
    for row in measured:
        value = row[variant][metric]
        if row[variant]["scored"] and present(value):  # None as read back from JSON, NaN as computed
            values[row["index"]].append(value)
    return [sum(v) / len(v) if v else math.nan for v in values]


def compare(
    measured: dict[str, dict[str, list[dict]]],
    problems: Sequence[Problem],
    pairs: Sequence[tuple[str, str]],
    resamples: int = 2000,
    seed: int = 0,
) -> dict:
    """`measured[source][judge]`: `measure`'s rows. Per source and judge, each metric's mean over problems with a 95 %
    interval, as written and with the answer stripped; per pair (a, b) the paired difference a − b per judge,
    variant and metric (`wins`: problems where a is better; for the KL, lower); per teacher source, what its answer
    statements were worth (stripped − as written)."""
    n = len(problems)
    judges = list(next(iter(measured.values())))
    values = {source: {judge: {variant: {metric: per_problem(rows, n, variant, metric) for metric in METRICS}
                               for variant in VARIANTS} for judge, rows in by_judge.items()}
              for source, by_judge in measured.items()}  # fmt: skip
    sources = {}
    for source, by_judge in measured.items():
        rows = by_judge[judges[0]]
        sources[source] = {
            "samples": len(rows),
            "states_answer": sum(r["states_answer"] for r in rows) / len(rows),
            "closes": sum(r["closes"] for r in rows) / len(rows),
            "unscoreable": {judge: sum(not r["as written"]["scored"] for r in js) for judge, js in by_judge.items()},
            **{judge: {variant: {metric: bootstrap(values[source][judge][variant][metric], resamples, seed)
                                 for metric in METRICS} for variant in VARIANTS} for judge in by_judge},
        }  # fmt: skip

    def difference(a: dict, b: dict) -> dict:
        return {metric: paired(a[metric], b[metric], resamples, seed, metric in LOWER_IS_BETTER) for metric in METRICS}

    return {
        "problems": n,
        "judges": judges,
        "sources": sources,
        "paired": {f"{a} - {b}": {judge: {variant: difference(values[a][judge][variant], values[b][judge][variant])
                                          for variant in VARIANTS} for judge in judges}
                   for a, b in pairs},
        "answer_statements_worth": {source: {judge: difference(v[judge]["as written"], v[judge]["answer stripped"])
                                             for judge in judges}
                                    for source, v in values.items() if source not in ("none", "reference")},
        "per_problem": values,
    }  # fmt: skip


def _outcome(better: str, worse: str, d: dict | None) -> str:
    if d is None:
        return f"the {better} and the {worse} had no problem to compare"
    word = "beat" if d["low"] > 0 else "lost to" if d["high"] < 0 else "did not separate from"
    return f"the {better} {word} the {worse}: {ci(d, signed=True)}, better on {d['wins']} of {d['n']} problems"


def verdict(comparison: dict, better: str, worse: str) -> str:
    """Plain sentences: per judge, did `better` beat `worse` on r_SS and on the answer's log-prob, as written and
    with every answer statement stripped (paired interval above 0)?"""
    diff = comparison["paired"][f"{better} - {worse}"]
    sentences = []
    for judge in comparison["judges"]:
        for variant in VARIANTS:
            d = diff[judge][variant]
            sentences.append(f"Read by the {judge}, {variant}: on r_SS {_outcome(better, worse, d['r_ss'])}; on the "
                             f"answer's log-prob {_outcome(better, worse, d['answer_logprob'])}.")  # fmt: skip
    return " ".join(sentences)


def markdown(comparison: dict) -> list[str]:
    """The comparison as tables: per source, per paired difference, and what answer statements were worth."""
    judges = comparison["judges"]
    lines = ["| explanation source | judge | r_SS | answer log-prob | r_SS, answer stripped | answer log-prob, "
             "stripped | reward | KL (mean) | states the answer | closes it | unscoreable |",
             "|---" * 11 + "|"]  # fmt: skip
    for name, s in comparison["sources"].items():
        for judge in judges:
            written, stripped = s[judge]["as written"], s[judge]["answer stripped"]
            lines.append(f"| {name} | {judge} | {ci(written['r_ss'])} | {ci(written['answer_logprob'])} | "
                         f"{ci(stripped['r_ss'])} | {ci(stripped['answer_logprob'])} | {ci(written['reward'])} | "
                         f"{ci(written['kl_mean'])} | {s['states_answer']:.0%} | {s['closes']:.0%} | "
                         f"{s['unscoreable'][judge]} of {s['samples']} |")  # fmt: skip
    lines += ["", "| paired difference (per problem) | judge | explanations | r_SS | answer log-prob | reward | "
              "KL (mean) |", "|---" * 7 + "|"]  # fmt: skip
    for key, by_judge in comparison["paired"].items():
        for judge in judges:
            for variant in VARIANTS:
                d = by_judge[judge][variant]
                cells = " | ".join(ci(d[m], signed=True) for m in METRICS)
                n = d["r_ss"]["n"] if d["r_ss"] else 0
                lines.append(f"| {key} ({n} problems) | {judge} | {variant} | {cells} |")
    lines += ["", "| answer statements worth (as written − stripped) | judge | r_SS | answer log-prob |",
              "|---|---|---|---|"]  # fmt: skip
    for source, by_judge in comparison["answer_statements_worth"].items():
        for judge in judges:
            d = by_judge[judge]
            lines.append(f"| {source} | {judge} | {ci(d['r_ss'], True)} | {ci(d['answer_logprob'], True)} |")
    return lines
