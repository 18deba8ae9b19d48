"""Artefacts record what produced them, and a resume refuses to mix (issue 11, item 1)."""

import json

import pytest

from rlt.cli import main
from rlt.data import DataError, Problem
from rlt.provenance import content_key, model_fingerprint, sidecar
from rlt.reward import RewardConfig, RLTReward
from rlt.sampling.generation import SamplingConfig
from rlt.sampling.traces import collect_traces
from rlt.testing import save_tiny

PROBLEMS = [Problem(f"What is {a} + {a}?", f"{a} + {a} = {2 * a}.", str(2 * a)) for a in range(1, 5)]
OTHER = [Problem(f"What is {a} * 3?", f"{a} * 3 = {3 * a}.", str(3 * a)) for a in range(1, 4)]
SAMPLING = SamplingConfig(max_new_tokens=6, batch_size=4)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    for name, seed in (("student", 0), ("teacher", 1), ("teacher2", 2)):
        save_tiny(root / name, seed=seed)
    return root


def _reward(models, teacher="teacher", **config):
    from rlt.models import load_model

    student, tokenizer = load_model(str(models / "student"))
    teacher_model, _ = load_model(str(models / teacher))
    return RLTReward(student, tokenizer, teacher_model, RewardConfig(**config))


def test_content_keys_and_fingerprints(models):
    assert content_key("What is 1?", "1.") == content_key(" What is 1?\n", "1.")  # whitespace at the ends only
    assert content_key("What is 1?", "1.") != content_key("What is 1?", "2.")
    assert model_fingerprint(str(models / "teacher")) != model_fingerprint(str(models / "teacher2"))
    assert model_fingerprint(str(models / "teacher")) == model_fingerprint(str(models / "teacher"))
    assert model_fingerprint("some-org/some-hub-model") is None


def test_traces_of_other_questions_are_refused(models, tmp_path):
    """Before: a resume on another dataset reported its rows as done and kept 4 foreign rows in the file."""
    out = tmp_path / "traces.jsonl"
    reward = _reward(models)
    collect_traces(OTHER, reward.teacher, reward, out, SAMPLING)
    with pytest.raises(DataError, match=r"holds 3 rows of questions that are not in this run's data.*--fresh true"):
        collect_traces(PROBLEMS, reward.teacher, reward, out, SAMPLING)
    rows = collect_traces(PROBLEMS, reward.teacher, reward, out, SAMPLING, fresh=True)
    on_disk = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == len(on_disk) == 4 and {r["question"] for r in on_disk} == {p.question for p in PROBLEMS}


def _collect(reward, out, sampling=SAMPLING):
    return collect_traces(PROBLEMS[:2], reward.teacher, reward, out, sampling)


def test_traces_of_another_teacher_or_reward_are_refused(models, tmp_path):
    out = tmp_path / "traces.jsonl"
    _collect(_reward(models), out)
    with pytest.raises(DataError, match=r"other settings \(teacher: '[0-9a-f]{16}' then, '[0-9a-f]{16}' now\)"):
        _collect(_reward(models, "teacher2"), out)
    # only the values that differ, each with both values (the review: a ~1,000-character dict dump)
    changed = r"other settings \(reward\.kl_coeffs: \[3\.0, 0\.03\] then, \[1\.0, 0\.01\] now\)"
    with pytest.raises(DataError, match=changed):
        _collect(_reward(models, kl_coeffs=(1.0, 0.01)), out)
    with pytest.raises(DataError, match=r"other settings \(sampling\.temperature: 0\.7 then, 1\.0 now\)"):
        _collect(_reward(models), out, SamplingConfig(6, 1.0, batch_size=4))
    assert len(out.read_text().splitlines()) == 2  # nothing was appended by a refused run


def test_a_resume_on_more_questions_keeps_what_is_done(models, tmp_path):
    out = tmp_path / "traces.jsonl"
    reward = _reward(models)
    first = collect_traces(PROBLEMS[2:], reward.teacher, reward, out, SAMPLING)
    rows = collect_traces(PROBLEMS, reward.teacher, reward, out, SAMPLING)
    assert [r["question"] for r in rows] == [p.question for p in PROBLEMS]  # in this run's order, re-indexed
    assert [r["index"] for r in rows] == [0, 1, 2, 3]
    assert [r["completion"] for r in rows[2:]] == [r["completion"] for r in first]  # reused, not regenerated
    record = json.loads(sidecar(out).read_text())
    assert record["kind"] == "traces" and record["settings"]["style"] == "stratos" and record["rlt_version"]


def test_rows_without_a_provenance_are_refused(models, tmp_path):
    out = tmp_path / "traces.jsonl"
    out.write_text('{"index": 0, "sample": 0, "question": "q"}\n')  # as an older rlt wrote them
    reward = _reward(models)
    with pytest.raises(DataError, match="1 rows without a provenance record"):
        collect_traces(PROBLEMS, reward.teacher, reward, out, SAMPLING)


def test_duplicate_problems_keep_one_row_each(models, tmp_path):
    reward = _reward(models)
    rows = collect_traces(PROBLEMS[:2] * 2, reward.teacher, reward, tmp_path / "t.jsonl", SAMPLING)
    assert len(rows) == 4 and len({r["key"] for r in rows}) == 4


def test_traces_out_equal_to_the_dataset_is_refused(models, tmp_path, capsys):
    """Before: the dataset's last line was dropped as 'torn', then KeyError: 'index'."""
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"question": p.question, "solution": p.solution}) + "\n" for p in PROBLEMS))
    before = rows.read_text()
    for out in (rows, rows.with_suffix(".parquet")):  # the Parquet output's journal is rows.jsonl too
        code = main(["traces", "--teacher", str(models / "teacher"), "--student", str(models / "student"),
                     "--dataset", str(rows), "--out", str(out), "--max_new_tokens", "4"])  # fmt: skip
        assert code == 2 and "would write the traces into the dataset" in capsys.readouterr().err
    assert rows.read_text() == before


def test_a_rerun_asking_fewer_samples_gets_only_those(models, tmp_path):
    """Before, a rerun with --num_samples 1 after a 2-sample run returned all 4 stored rows for 2 questions (and
    best-of-k then chose among more samples than asked)."""
    out = tmp_path / "traces.jsonl"
    reward = _reward(models)
    assert len(collect_traces(PROBLEMS[:2], reward.teacher, reward, out, SAMPLING, num_samples=2)) == 4
    again = collect_traces(PROBLEMS[:2], reward.teacher, reward, out, SAMPLING, num_samples=1)
    assert [r["sample"] for r in again] == [0, 0] and len(out.read_text().splitlines()) == 4  # the rest are kept


def test_a_resumed_trace_run_draws_what_an_uninterrupted_one_would(models, tmp_path):
    """Before, each batch was seeded by its position in the list of jobs still to do: a run resumed after a kill
    (its first batch saved) drew other samples than an uninterrupted one. And it reseeded torch's global RNG."""
    import shutil

    import torch

    from rlt.provenance import sidecar

    reward, sampling = _reward(models), SamplingConfig(max_new_tokens=6, temperature=1.0, batch_size=2)
    whole = tmp_path / "whole.jsonl"
    torch.manual_seed(123)
    state = torch.get_rng_state()
    rows = collect_traces(PROBLEMS, reward.teacher, reward, whole, sampling, num_samples=2)
    assert torch.equal(torch.get_rng_state(), state)  # the caller's random state is left alone
    killed = tmp_path / "killed.jsonl"
    killed.write_text("".join(whole.read_text().splitlines(keepends=True)[:2]))  # the first batch was saved
    shutil.copy(sidecar(whole), sidecar(killed))
    resumed = collect_traces(PROBLEMS, reward.teacher, reward, killed, sampling, num_samples=2)
    assert [r["completion"] for r in resumed] == [r["completion"] for r in rows]
    assert len({r["completion"] for r in rows}) > 4  # the samples do differ from each other


def test_a_run_records_its_split_and_eval_refuses_one_that_rlt_no_longer_makes(tmp_path, capsys):
    """Before: the countdown held-out part changed (`rows[::-1]`) and nothing recorded which one a run trained
    beside, so an older teacher could be evaluated on its own training problems without a word."""
    from rlt.configs import DataArguments
    from rlt.measure.evaluate import trained_on
    from rlt.provenance import describe, write_record
    from rlt.train.runs import RUN_RECORD

    data = DataArguments(dataset="countdown:3", countdown_problems=40, holdout=8)
    train, held_out, _ = data.load()
    run = tmp_path / "run"
    write_record(run / RUN_RECORD, describe("teacher warm-up", {"data": data.recorded(held_out)}))
    assert trained_on(str(run), held_out) == 0
    assert trained_on(str(run), train[:5] + held_out) == 5  # counted, as for a student's distillation data
    assert trained_on(str(tmp_path), held_out) == 0  # a model with no run record: nothing to compare
    # the same settings split otherwise when the run was made (an older rlt): refused before any model loads
    record = json.loads((run / RUN_RECORD).read_text())
    record["settings"]["data"]["held_out"] = "sha256:0123456789abcdef"
    (run / RUN_RECORD).write_text(json.dumps(record))
    argv = ["eval", "--model", str(run), "--dataset", "countdown:3", "--countdown_problems", "40", "--holdout", "8",
            "--out", str(tmp_path / "eval.json")]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "was trained beside another held-out part of countdown:3" in err and "rlt has changed how it splits" in err
