"""`rlt inspect`: read what a teacher teaches, token by token, in one self-contained HTML page.

Every explanation and solution token is shaded by the student's surprise at it (−log p under the student, the
numbers r_SS reduces), and each explanation token also by the teacher–student KL of the chunk it belongs to (the
k_i r_KL reduces). Hovering a token shows its numbers. Rows carry their reward, its components, the closing-tag
and alignment flags and whether the explanation states the final answer; they sort and filter by each, under a
summary with histograms. For a training run's `completions.jsonl` the page also lines up each prompt's
completions over the steps, to see what RL changed.

Input: `rlt score --details` output (read as it is), or trace files and `completions.jsonl`, which are scored here
(`--teacher`, `--student`) with the same per-token columns `rlt score --details` writes. The page embeds its data
as JSON and its script and style inline: no network, no CDN.
"""

from __future__ import annotations

import html
import json
import math
import re
from pathlib import Path

from rlt.errors import UsageError
from rlt.measure.leakage import states_answer

PER_TOKEN_COLUMNS = ("explanation_tokens", "explanation_token_logprobs", "solution_tokens", "solution_token_logprobs")
COMPONENTS = ("reward", "solution_logprob_mean", "solution_logprob_min", "kl_mean", "kl_max")
_STATED_ANSWER = re.compile(r"answer is\s*([^\n]+?)\.?\s*$", re.I | re.M)
_PLACEHOLDER = re.compile(r"__(TITLE|DATA)__")


def has_per_token(row: dict) -> bool:
    """Whether a row holds the per-token numbers (with several students: each student's)."""
    if isinstance(row.get("students"), dict):
        return all(has_per_token(own) for own in row["students"].values())
    return all(column in row for column in PER_TOKEN_COLUMNS)


def to_score(row: dict) -> dict:
    """A trace or completion row as `rlt score` reads it: the raw completion after the opening tag is the
    explanation (a trace row's `explanation` has lost its closing tag, which the reward checks)."""
    for column in ("question", "solution"):
        if not isinstance(row.get(column), str):
            raise UsageError(f"row has no {column!r} to score (columns: {sorted(row)})")
    explanation = row.get("completion", row.get("explanation"))
    if not isinstance(explanation, str):
        raise UsageError(f"row has neither 'completion' nor 'explanation' (columns: {sorted(row)})")
    ids = {k: row[k] for k in ("prompt_ids", "completion_ids") if k in row}  # a run's own: scored from them
    return {"question": row["question"], "solution": row["solution"], "explanation": explanation, **ids}


def final_answer_of(row: dict) -> str | None:
    """The answer whose verbatim statement in an explanation counts as leakage: the row's, else the one its
    solution states ("The answer is X.")."""
    if row.get("answer") not in (None, ""):
        return str(row["answer"])
    statements = _STATED_ANSWER.findall(row.get("solution") or "")
    return statements[-1].strip() if statements else None


def _finite(value) -> float | None:
    """A number the page's JSON can hold: rounded, None for missing, NaN and infinities."""
    return None if value is None or not math.isfinite(value) else round(value, 4)


def token_view(row: dict) -> tuple[list, list]:
    """([[text, surprise, kl]] per explanation token, [[text, surprise]] per solution token) of a scored row.
    surprise = −log p under the student; kl = the k_i of the KL chunk holding the token (None outside every chunk)."""
    start = row["student_explanation_span"][0]
    kl = [None] * len(row["explanation_tokens"])
    for (_, (s_start, s_end)), value in zip(row.get("kl_chunks") or [], row.get("kl_chunk_values") or [], strict=False):
        for position in range(s_start - start, s_end - start):
            if 0 <= position < len(kl):
                kl[position] = _finite(value)

    def surprise(logprob):
        return None if logprob is None else _finite(-logprob)

    explanation = [[t, surprise(lp), k] for t, lp, k in
                   zip(row["explanation_tokens"], row["explanation_token_logprobs"], kl, strict=True)]  # fmt: skip
    solution = [[t, surprise(lp)] for t, lp in zip(row["solution_tokens"], row["solution_token_logprobs"], strict=True)]
    return explanation, solution


def student_view(row: dict) -> dict:
    """What the page shows of one student's reading of a row: its tokens shaded, its reward and components."""
    aligned = row.get("aligned", True) and has_per_token(row)
    explanation, solution = token_view(row) if aligned else ([], [])
    components = {name: _finite(row.get(name)) for name in COMPONENTS}
    return {"explanation": explanation, "solution_tokens": solution, "aligned": bool(aligned),
            "alignment_error": row.get("alignment_error"), **components}  # fmt: skip


def page_records(rows: list[dict]) -> list[dict]:
    """What the page shows of each row: texts, per-token numbers, components and flags. A row several students
    scored shows the first student's reading, each student's under `students` (the page switches between them), and
    the combined reward as `combined`."""
    records = []
    for index, row in enumerate(rows):
        students = row.get("students") if isinstance(row.get("students"), dict) else None
        view = {name: student_view(own) for name, own in students.items()} if students else None
        text = str(row.get("explanation", row.get("completion", "")))  # as written, not as tokens rejoined
        record = {
            "index": index,
            "question": row.get("question", ""),
            "solution": row.get("solution", ""),
            "explanation_text": text,
            "matched": bool(row.get("matched")),
            "leaks": states_answer(text, final_answer_of(row)),
            **(next(iter(view.values())) if view else student_view(row)),
        }
        if view:
            record |= {"students": view, "combined": _finite(row.get("reward"))}
        if isinstance(row.get("step"), int):
            record["step"] = row["step"]
        if row.get("logged_reward") is not None:  # a run's completion: the reward training logged for it
            record["logged_reward"] = _finite(row["logged_reward"])
        records.append(record)
    return records


def render(records: list[dict], title: str, source: str) -> str:
    """The page: `records` as embedded JSON, drawn by the inline script."""
    data = json.dumps({"title": title, "source": source, "rows": records}, ensure_ascii=False, allow_nan=False)
    # No text may end or re-enter the data block ("</script>", "<!--<script>"): markup characters as JSON escapes.
    data = data.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    page = (Path(__file__).with_name("inspector.html")).read_text(encoding="utf-8")  # markup, style and script
    filled = {"TITLE": html.escape(title), "DATA": data}
    return _PLACEHOLDER.sub(lambda m: filled[m.group(1)], page)  # one pass: no filled text is read again


def write_page(rows: list[dict], out: str | Path, source: str) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(page_records(rows), f"rlt inspect: {Path(source).name}", source), encoding="utf-8")
    return out


#: The flags a run's own settings replace when its completions are rescored.
RUN_SETTINGS = ("teacher", "student", "student_weights", "teacher_temperature", "solution_coeffs", "kl_coeffs",
                "student_temperature", "missing_end_tag_penalty", "schulman_kl", "teacher_entropy")  # fmt: skip


def scoring_settings(args, given: set[str] = frozenset()):
    """The settings to rescore `args.rows` with, how to say so on the page, and whether they are the run's own (its
    starting teacher, student and reward coefficients, from the rlt_provenance.json beside its completions.jsonl;
    not `--run_settings false`). The tag style and prompts are the flags' either way. A flag in `given` (typed on
    the command line) that the run's settings would replace is a usage error, not silently overridden."""
    from dataclasses import replace

    from rlt.provenance import read_record
    from rlt.train.runs import RUN_RECORD

    record = read_record(Path(args.rows).parent / RUN_RECORD) if args.run_settings else None
    if not record or "teacher_spec" not in record:  # not a run's file, or an older rlt's run
        return args, f"with --teacher {args.teacher}, --student {' '.join(args.student)} and the reward flags", False
    overridden = [f"--{name}" for name in RUN_SETTINGS if name in given]
    if overridden:
        raise UsageError(f"{args.rows} is a training run's: it is rescored with the run's own teacher, students and "
                         f"reward, which {', '.join(overridden)} would not change; add --run_settings false to score "
                         "it with the flags instead")  # fmt: skip
    reward, students = record["settings"]["reward"], record["student_spec"]
    args = replace(args, teacher=record["teacher_spec"], student=students if isinstance(students, list) else [students],
                   student_weights=record.get("student_weights"), teacher_temperature=reward["teacher_temperature"],
                   **{k: reward[k] for k in ("solution_coeffs", "kl_coeffs", "student_temperature",
                                             "missing_end_tag_penalty", "schulman_kl", "teacher_entropy")})  # fmt: skip
    how = (f"with the run's starting teacher {args.teacher}, its student(s) {', '.join(args.student)} and its reward "
           "coefficients; training scored each row with the policy of its step (logged_reward)")  # fmt: skip
    return args, how, True


def inspect_file(args, out: Path, given: set[str] = frozenset()) -> tuple[int, int]:
    """`rlt inspect`: the page of `args.rows` in `out`; rows `rlt score --details` wrote are shown as they are, the
    others (traces, completions.jsonl) are scored here first (`given`: the flags typed, see `scoring_settings`).
    Returns the row count and how many were scored."""
    import sys

    from rlt.data import DataError, read_rows
    from rlt.measure.scoring import load_reward, scored_rounds

    rows = read_rows(args.rows)[: args.limit]
    if not rows:
        raise DataError(f"{args.rows}: no rows to inspect")
    todo = [i for i, row in enumerate(rows) if not has_per_token(row) and row.get("aligned", True)]
    if todo:
        try:
            texts = [to_score(rows[i]) for i in todo]
        except ValueError as e:
            raise DataError(str(e), row=todo[0]) from None
        args, how, own_run = scoring_settings(args, given)
        if not own_run:  # the sampled ids are the run's teacher's tokens: another teacher reads the text
            texts = [{k: v for k, v in text.items() if k not in ("prompt_ids", "completion_ids")} for text in texts]
        reward = load_reward(args.teacher, args, args.tag_style(), args.teacher_temperature, args,
                             args.trust_remote_code)  # fmt: skip
        done = [record for records, _ in scored_rounds(reward, texts, args.batch_rows, True) for record in records]
        for i, record in zip(todo, done, strict=True):
            logged = {"logged_reward": rows[i]["reward"]} if "reward" in rows[i] else {}  # kept beside the new score
            own = {k: v for k, v in rows[i].items() if k != "students"}  # the students scoring here read it now
            rows[i] = {**own, **record, **logged}
        note = f"{len(todo)} rows rescored here {how}"
        print(note, file=sys.stderr)
        source = f"{args.rows} · {note}"
    write_page(rows, out, source if todo else args.rows)
    return len(rows), len(todo)
