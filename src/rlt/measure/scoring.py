"""Scoring explanations with the RLT reward outside training: loading the teacher / student / reward trio every
command that scores uses, scoring rows in rounds, and `rlt score`'s file-to-file scoring.

The reward's settings flow one way: `RewardArguments` (flags, recipes) → `RewardArguments.reward_config` →
`RewardConfig` → `RLTReward`. The one setting not a flag of its own is the teacher's log-prob temperature, which
follows the sampling temperature of the command that drew the explanations (`kl_temperature`); `rlt score`, which
draws nothing, takes it as `--teacher_temperature`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path

from rlt.configs import DeviceArguments, RewardArguments, ScoreArguments
from rlt.data import DataError, read_rows, text_field
from rlt.errors import UsageError
from rlt.provenance import sidecar
from rlt.reward import RewardBreakdown, RLTReward, scored_record, summarize
from rlt.reward.formats import TagStyle
from rlt.reward.students import MultiStudentReward, build_reward

logger = logging.getLogger(__name__)


def kl_temperature(sampling_temperature: float) -> float:
    """The temperature of the teacher's log-probs in the KL: the one its explanations were sampled at (as in
    training), 1 for greedy sampling (0)."""
    return sampling_temperature if sampling_temperature > 0 else 1.0


def load_reward(
    teacher: str,
    reward_args: RewardArguments,
    style: TagStyle,
    teacher_temperature: float,
    placement: DeviceArguments | None = None,
    trust_remote_code: bool = False,
    load: Callable[[str], tuple] | None = None,
) -> RLTReward | MultiStudentReward:
    """The RLT reward between `teacher` and the frozen students `reward_args.student` (`RLTReward` for one,
    `MultiStudentReward` for several), on `placement`'s device and dtype; the teacher model is `reward.teacher`.
    One model object per distinct spec, the teacher's included. `load` replaces loading a spec (the demo's cache of
    frozen models)."""
    from rlt.models import load_model

    config = reward_args.reward_config(teacher_temperature)  # a bad coefficient fails before any model loads
    if load is None:
        placement = placement or DeviceArguments()
        device, dtype = placement.torch_device(), placement.torch_dtype()

        def load(spec: str) -> tuple:
            return load_model(spec, dtype, device, trust_remote_code)

    loaded = {teacher: load(teacher)}
    for spec in reward_args.student:
        if spec not in loaded:
            loaded[spec] = load(spec)
    teacher_model, tokenizer = loaded[teacher]
    return build_reward(reward_args.load_students(loaded.__getitem__), tokenizer, teacher_model, config, style)


def scored_rounds(
    reward: RLTReward | MultiStudentReward, rows: list[dict], batch_rows: int, details: bool
) -> Iterator[tuple[list[dict], list[RewardBreakdown]]]:
    """Score `rows` (question, solution, explanation) in rounds of `batch_rows`, with a progress bar: each round's
    rows with their components (and, with `details`, the ids, spans and per-token numbers), and its breakdowns."""
    from tqdm.auto import tqdm

    with tqdm(total=len(rows), desc="scoring", unit="row") as bar:
        for begin in range(0, len(rows), batch_rows):
            chunk = rows[begin : begin + batch_rows]
            scored, samples = reward.score_texts(chunk, per_token=details)
            records = [{**row, **scored_record(b, sample, details)}
                       for row, b, sample in zip(chunk, scored, samples, strict=True)]  # fmt: skip
            yield records, scored
            bar.update(len(chunk))


def resumable_scores(partial: Path, provenance: dict, most: int) -> list[dict]:
    """The rows (at most `most`) an interrupted `rlt score` finished in `partial`, when the same settings and input
    produced them (else none: the file is started over); `partial` is left holding just those. A torn last line is
    dropped."""
    from rlt.provenance import read_record
    from rlt.records import recover_jsonl, write_rows

    record = read_record(sidecar(partial))
    if not partial.exists() or record is None or score_differences(record, provenance):
        return []
    done = recover_jsonl(partial)[:most]  # a rerun with a smaller --limit takes what it asks
    write_rows(partial, done)
    logger.info("continuing %s: %d rows already scored", partial, len(done))
    return done


def score_differences(record: dict, provenance: dict) -> list[str]:
    """What differs between the settings scores were recorded with and these: every setting that changes a number,
    one an older rlt did not record (dtype, device) included."""
    from rlt.provenance import setting_differences

    unrecorded = sorted(set(provenance["settings"]) - set(record.get("settings", {})))
    return [f"{key}: not recorded then" for key in unrecorded] + setting_differences(record, provenance)


def finished_scores(out: Path, provenance: dict, rows: int) -> list[dict]:
    """The rows of a finished `rlt score` in `out`, when the same settings and input produced all of them; else a
    usage error that says what differs (a finished file is replaced only with --overwrite)."""
    from rlt.provenance import read_record
    from rlt.records import recover_jsonl

    record = read_record(sidecar(out))
    differences = ["no record of its settings beside it"] if record is None else score_differences(record, provenance)
    kept = [] if differences else recover_jsonl(out)
    if not differences and len(kept) != rows:
        differences = [f"{len(kept)} rows, {rows} asked"]
    if differences:
        raise UsageError(f"--out {out} already holds scores ({'; '.join(differences)}): give another --out, or "
                         "--overwrite to replace them")  # fmt: skip
    logger.warning("%s already holds these %d rows scored with these settings: nothing to do (--overwrite scores "
                   "them again)", out, rows)  # fmt: skip
    return kept


def score_file(args: ScoreArguments, out: Path) -> tuple[dict[str, float], int, float | None]:
    """`rlt score`: every row of `args.rows` scored into `out` (JSONL, with a provenance record beside it); the
    summary, the row count and the seconds it took (None: `out` held them already). `out` is replaced only when
    complete."""
    from rlt.provenance import describe, file_digest, model_identity, write_record

    rows = read_rows(args.rows)[: args.limit]
    if not rows:
        raise DataError(f"{args.rows}: no rows to score")
    for index, row in enumerate(rows):
        try:  # question and solution as warmup/train accept them; the explanation is a raw completion (end tag and all)
            text_field(row, "question"), text_field(row, "solution")
        except DataError as e:
            raise DataError(e.message, row=index, column=e.column) from None
        if not isinstance(row.get("explanation"), str):
            raise DataError("missing or not a string", row=index, column="explanation")
    reward = load_reward(args.teacher, args, args.tag_style(), args.teacher_temperature, args, args.trust_remote_code)

    out.parent.mkdir(parents=True, exist_ok=True)
    provenance = describe("scored rows", {
        "teacher": model_identity(args.teacher), "student": args.student_identity(),
        "reward": asdict(reward.config), "style": reward.style.identity, "details": args.details,
        "dtype": str(args.torch_dtype()), "device": args.torch_device(),  # both change the numbers
        "rows": f"{args.rows} sha256:{file_digest(args.rows)}"})  # fmt: skip
    if out.exists() and not args.overwrite:
        kept = finished_scores(out, provenance, len(rows))
        return summarize([RewardBreakdown.from_dict(record) for record in kept]), len(rows), None
    # Scores go to a side file that replaces --out only when complete: a failed or interrupted run leaves an
    # existing --out untouched, and the rounds it finished in OUT.partial, which the same command continues.
    partial = out.with_name(out.name + ".partial")
    done = resumable_scores(partial, provenance, len(rows))
    write_record(sidecar(partial), provenance)
    breakdowns, start = [RewardBreakdown.from_dict(record) for record in done], time.perf_counter()
    try:
        with partial.open("a" if done else "w", encoding="utf-8") as f:
            for records, scored in scored_rounds(reward, rows[len(done) :], args.batch_rows, args.details):
                f.writelines(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
                f.flush()  # every finished round is on disk, whatever happens to the next one
                breakdowns += scored
    except KeyboardInterrupt:
        logger.warning("%d of %d rows scored are kept in %s: the same command continues from there",
                       len(breakdowns), len(rows), partial)  # fmt: skip
        raise
    partial.replace(out)
    sidecar(partial).replace(sidecar(out))
    return summarize(breakdowns), len(rows), time.perf_counter() - start
