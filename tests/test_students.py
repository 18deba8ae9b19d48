"""Several students in one reward (`rlt.reward.students`): one student is today's reward, the combined reward is the
weighted mean of each student's, the teacher is read once, and two students whose tokenizers differ go through `rlt
score`, GRPO (the rewards training logged equal offline scores) and `rlt inspect`."""

import json
import math

import pytest

from rlt.cli import main
from rlt.models import load_model
from rlt.reward import RLTReward
from rlt.reward.students import MultiStudentReward, Student, build_reward, student_names
from rlt.testing import LoggedMetrics, save_tiny, tiny_model, tiny_tokenizer

BYTE_VOCAB = 256 + 3  # a byte-level student: every character of the BPE teacher's tokens spells differently
COMPONENTS = ("reward", "solution_logprob_mean", "solution_logprob_min", "kl_mean", "kl_max")


def rows(n: int = 6) -> list[dict]:
    out = []
    for i in range(n):
        end = "" if i == 2 else "\n\n<|end_of_explanation|>"  # one without its closing tag: the penalty, once
        explanation = ["Add the two numbers.", "Count on from the first.", "Add them"][i % 3] + end
        out.append({"question": f"What is {i} + {i + 1}?", "solution": f"The answer is {2 * i + 1}.",
                    "explanation": explanation})  # fmt: skip
    return out


@pytest.fixture(scope="module")
def pair():
    """A teacher and two students of different vocabularies: A shares the teacher's BPE, B reads bytes."""
    tokenizer, byte_tokenizer = tiny_tokenizer(), tiny_tokenizer(BYTE_VOCAB)
    assert len(byte_tokenizer) != len(tokenizer)
    return {
        "teacher": tiny_model(seed=1),
        "tokenizer": tokenizer,
        "a": Student("a", tiny_model(seed=0), tokenizer, weight=3.0),
        "b": Student("b", tiny_model(seed=2, vocab_size=BYTE_VOCAB), byte_tokenizer, weight=1.0),
    }


def single(pair, name: str) -> RLTReward:
    s = pair[name]
    return RLTReward(s.model, pair["tokenizer"], pair["teacher"], student_tokenizer=s.tokenizer)


def test_one_student_is_exactly_todays_reward(pair):
    today, _ = single(pair, "a").score_texts(rows())
    assert type(build_reward([pair["a"]], pair["tokenizer"], pair["teacher"])) is RLTReward
    panel = MultiStudentReward([pair["a"]], pair["tokenizer"], pair["teacher"])
    combined, _ = panel.score_texts(rows())
    for old, new in zip(today, combined, strict=True):
        for name in COMPONENTS:
            assert getattr(new, name) == pytest.approx(getattr(old, name), abs=1e-6), name
        assert new.students["a"].reward == pytest.approx(old.reward, abs=1e-6)
    # two copies of one student are that student
    twice = MultiStudentReward([pair["a"], Student("a2", pair["a"].model, pair["tokenizer"])], pair["tokenizer"],
                               pair["teacher"])  # fmt: skip
    for old, new in zip(today, twice.score_texts(rows())[0], strict=True):
        assert new.reward == pytest.approx(old.reward, abs=1e-5)


def test_the_reward_is_the_weighted_mean_and_the_missing_tag_is_penalised_once(pair):
    alone = {name: single(pair, name).score_texts(rows())[0] for name in ("a", "b")}
    panel = MultiStudentReward([pair["a"], pair["b"]], pair["tokenizer"], pair["teacher"])
    combined, _ = panel.score_texts(rows())
    assert panel.weights == {"a": 0.75, "b": 0.25}
    for i, b in enumerate(combined):
        assert b.aligned
        for name in COMPONENTS:
            expected = 0.75 * getattr(alone["a"][i], name) + 0.25 * getattr(alone["b"][i], name)
            assert getattr(b, name) == pytest.approx(expected, abs=1e-5), (i, name)
            assert getattr(b.students["b"], name) == pytest.approx(getattr(alone["b"][i], name), abs=1e-5)
        assert alone["a"][i].reward != pytest.approx(alone["b"][i].reward, abs=1e-3)  # the students differ
    penalty = panel.config.missing_end_tag_penalty
    assert not combined[2].matched and all(b.matched for i, b in enumerate(combined) if i != 2)
    # without its tag the sample carries the penalty once: the weighted mean of rewards that each carry it once
    unpenalised = sum(w * (combined[2].students[n].reward - penalty) for n, w in panel.weights.items())
    assert combined[2].reward - unpenalised == pytest.approx(penalty, abs=1e-5)


def test_the_teacher_is_read_once_for_every_student(pair):
    calls = []

    def count(module, args, kwargs, out):
        calls.append((args[0] if args else kwargs["input_ids"]).shape[0])

    handle = pair["teacher"].get_decoder().register_forward_hook(count, with_kwargs=True)  # rlt.reward.logprobs runs it
    try:
        single(pair, "a").score_texts(rows())
        one = sum(calls)
        calls.clear()
        MultiStudentReward([pair["a"], pair["b"]], pair["tokenizer"], pair["teacher"]).score_texts(rows())
    finally:
        handle.remove()
    assert one == len(rows()) and sum(calls) == one  # sequences through the teacher: one per row, both times


def test_a_sample_one_student_cannot_score_is_not_scored_and_says_which(pair):
    short = tiny_model(seed=3, vocab_size=BYTE_VOCAB)
    panel = MultiStudentReward(
        [pair["a"], Student("b", short, pair["b"].tokenizer)], pair["tokenizer"], pair["teacher"]
    )
    long_row = {**rows()[0], "question": "What is " + " + ".join(map(str, range(40))) + "?"}
    fits, too_long = (len(s.by_student["b"].student_input_ids) for s in panel.align_texts([rows()[0], long_row]))
    assert too_long > fits
    short.config.max_position_embeddings = fits  # student b reads the long question's chat in more positions
    prompt_ids, completion_ids = [], []
    for row in (rows()[0], long_row):
        from rlt.reward.formats import teacher_prompt

        prompt = teacher_prompt(pair["tokenizer"], row["question"], row["solution"])
        prompt_ids.append(list(panel.encoded_prompt(prompt)))
        completion_ids.append(pair["tokenizer"](row["explanation"], add_special_tokens=False)["input_ids"])
    logged = LoggedMetrics()
    rewards = panel(prompts=["", ""], completions=["", ""], completion_ids=completion_ids,
                    question=[rows()[0]["question"], long_row["question"]], solution=[rows()[0]["solution"]] * 2,
                    log_metric=logged, prompt_ids=prompt_ids)  # fmt: skip
    assert rewards[0] is not None and rewards[1] is None
    scored, _ = panel.score_texts([rows()[0], long_row])
    assert "student b:" in scored[1].alignment_error and "positions" in scored[1].alignment_error
    assert scored[1].students["a"].aligned  # student a could have: the sample is left out for the reward's sake
    assert logged["rlt/alignment_failures"] == 1
    assert logged["rlt/reward"] == pytest.approx(rewards[0], abs=1e-6)
    for name in ("a", "b"):  # each student's own components, under its name
        assert logged[f"rlt/{name}/reward"] == pytest.approx(scored[0].students[name].reward, abs=1e-6)
        assert f"rlt/{name}/solution_logprob_mean" in logged and f"rlt/{name}/kl_mean" in logged


def test_names_and_weights_from_flags():
    assert student_names(["smollm2-135m", "runs/a/student", "runs/b/student/", "org/model"]) == [
        "smollm2-135m", "student", "student-2", "model"]  # fmt: skip
    from rlt.configs import RewardArguments, parse

    (args,) = parse((RewardArguments,), ["--student", "x", "--student", "y", "--student_weights", "1", "3"])
    assert args.student == ["x", "y"] and args.student_weights == [1.0, 3.0]
    (args,) = parse((RewardArguments,), ["--student", "x", "y"])
    assert args.student == ["x", "y"] and args.student_weight_list() == [1.0, 1.0]
    assert parse((RewardArguments,), [])[0].student == ["smollm2-135m"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--student", "x", "--student_weights", "1", "2"], "one weight per student: 1 student(s), 2 weight(s)"),
        (["--student", "x", "y", "--student_weights", "1", "0"], "must be finite numbers > 0"),
        (["--student", "x", "y", "--student_weights", "1", "-1"], "> 0"),
    ],
)
def test_bad_student_flags_are_usage_errors(argv, message, capsys):
    assert main(["score", "rows.jsonl", *argv]) == 2
    assert message in capsys.readouterr().err


# ------------------------------------------------------------------------------------------- through the CLI


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("students")
    save_tiny(root / "teacher", seed=1)
    save_tiny(root / "student", seed=0)
    save_tiny(root / "byte_student", seed=2, vocab_size=BYTE_VOCAB)
    (root / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows()))
    return root


def score(models, out: str, *students: str, extra=()) -> list[dict]:
    argv = ["score", str(models / "rows.jsonl"), "--out", str(models / out), "--teacher", str(models / "teacher"),
            "--device", "cpu", *extra]  # fmt: skip
    for name in students:
        argv += ["--student", str(models / name)]
    assert main(argv) == 0
    return [json.loads(line) for line in (models / out).read_text().splitlines()]


def test_score_writes_each_students_numbers_and_the_weighted_reward(models, capsys):
    a = score(models, "a.jsonl", "student")
    b = score(models, "b.jsonl", "byte_student")
    both = score(models, "both.jsonl", "student", "byte_student",
                 extra=["--student_weights", "1", "3", "--details", "true"])  # fmt: skip
    summary = capsys.readouterr().out
    assert "student/reward" in summary and "byte_student/kl_mean" in summary
    for row_a, row_b, row in zip(a, b, both, strict=True):
        assert set(row["students"]) == {"student", "byte_student"}
        assert row["reward"] == pytest.approx(0.25 * row_a["reward"] + 0.75 * row_b["reward"], abs=1e-5)
        for name, alone in (("student", row_a), ("byte_student", row_b)):
            own = row["students"][name]
            assert own["reward"] == pytest.approx(alone["reward"], abs=1e-5)
            # --details: each student's ids, spans and per-token numbers beside its own components
            lp = own["solution_token_logprobs"]
            assert len(lp) == own["student_solution_span"][1] - own["student_solution_span"][0]
            assert own["solution_logprob_mean"] == pytest.approx(sum(lp) / len(lp), abs=1e-4)
        byte_ids = row["students"]["byte_student"]["student_input_ids"]
        bpe_ids = row["students"]["student"]["student_input_ids"]
        assert max(byte_ids) < BYTE_VOCAB and len(byte_ids) > len(bpe_ids)  # its own tokenizer
    record = json.loads((models / "both.jsonl.provenance.json").read_text())
    assert [s["weight"] for s in record["settings"]["student"]] == [0.25, 0.75]


def test_inspect_switches_between_students(models):
    score(models, "both_details.jsonl", "student", "byte_student", extra=["--details", "true"])
    out = models / "both.html"
    assert main(["inspect", str(models / "both_details.jsonl"), "--out", str(out)]) == 0
    data = json.loads(out.read_text().split('<script id="data" type="application/json">')[1].split("</script>")[0])
    row = data["rows"][0]
    assert set(row["students"]) == {"student", "byte_student"}
    for view in row["students"].values():
        assert view["aligned"] and len(view["explanation"]) > 0
    # the byte-level student reads the explanation in more, shorter tokens
    assert len(row["students"]["byte_student"]["explanation"]) > len(row["students"]["student"]["explanation"])
    both = [json.loads(line) for line in (models / "both_details.jsonl").read_text().splitlines()]
    assert row["combined"] == pytest.approx(both[0]["reward"], abs=1e-4)
    assert 'id="student"' in out.read_text()


def test_grpo_with_two_students_logs_each_and_rewards_equal_offline(models):
    out = models / "rl"
    argv = ["train", "--model_name_or_path", str(models / "teacher"), "--student", str(models / "student"),
            "--student", str(models / "byte_student"), "--student_weights", "2", "1",
            "--dataset", str(models / "rows.jsonl"), "--output_dir", str(out), "--max_steps", "2",
            "--per_device_train_batch_size", "4", "--num_generations", "4", "--max_completion_length", "12",
            "--learning_rate", "1e-3", "--save_steps", "1", "--report_to", "none", "--logging_steps", "1",
            "--seed", "0", "--activation_checkpointing", "false"]  # fmt: skip
    assert main(argv) == 0
    history = [h for h in json.loads((out / "trainer_state.json").read_text())["log_history"] if "rlt/reward" in h]
    assert [h["step"] for h in history] == [1, 2]
    for h in history:
        for name in ("student", "byte_student"):
            for component in ("reward", "solution_logprob_mean", "kl_mean", "kl_max"):
                assert math.isfinite(h[f"rlt/{name}/{component}"])
        weighted = (2 * h["rlt/student/reward"] + h["rlt/byte_student/reward"]) / 3
        assert h["rlt/reward"] == pytest.approx(weighted, abs=1e-4)
    teacher, tokenizer = load_model(str(models / "teacher"))
    students = [Student(n, *load_model(str(models / n)), w) for n, w in (("student", 2.0), ("byte_student", 1.0))]
    panel = MultiStudentReward(students, tokenizer, teacher)
    samples = [json.loads(line) for line in (out / "completions.jsonl").read_text().splitlines()]
    first = [s for s in samples if s["step"] == 0]
    assert first
    offline, _ = panel.score_texts([{**s, "explanation": s["completion"]} for s in first])
    for s, b in zip(first, offline, strict=True):
        assert b.reward == pytest.approx(s["reward"], abs=1e-4)
    record = json.loads((out / "rlt_provenance.json").read_text())
    assert [s["name"] for s in record["settings"]["student"]] == ["student", "byte_student"]
    # rlt inspect rescores the run's samples with its own two students
    page = models / "rl.html"
    assert main(["inspect", str(out / "completions.jsonl"), "--out", str(page), "--limit", "4"]) == 0
    data = json.loads(page.read_text().split('<script id="data" type="application/json">')[1].split("</script>")[0])
    assert all(set(r["students"]) == {"student", "byte_student"} for r in data["rows"])
    for r, s in zip(data["rows"], first, strict=False):
        assert r["combined"] == pytest.approx(s["reward"], abs=1e-3)  # rounded to 4 places on the page


def test_traces_with_two_students_and_a_resume_against_other_students_is_refused(models, capsys):
    out = models / "traces.jsonl"
    argv = ["traces", "--teacher", str(models / "teacher"), "--student", str(models / "student"), "--student",
            str(models / "byte_student"), "--dataset", str(models / "rows.jsonl"), "--out", str(out),
            "--max_new_tokens", "8", "--device", "cpu"]  # fmt: skip
    assert main(argv) == 0
    traces = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(traces) == len(rows())
    for row in traces:  # each student's numbers beside the combined reward; the distillation chat is one
        assert set(row["students"]) == {"student", "byte_student"} and row["messages"][-1]["role"] == "assistant"
        if row["aligned"]:
            expected = sum(own["reward"] for own in row["students"].values()) / 2
            assert row["reward"] == pytest.approx(expected, abs=1e-5)
    # the same file, continued against one student only, is another reward: refused, naming the setting
    assert main(argv[:5] + argv[7:]) == 2
    assert "student" in capsys.readouterr().err


def test_a_component_one_student_cannot_measure_enters_as_the_number_its_reward_used(pair):
    """A KL is NaN for a student whose tokens hold no KL chunk, and its reward counted the penalty in its place.
    Before: the combined KL averaged over the other students only, so the shown components no longer gave the
    combined reward."""
    from rlt.reward import RewardBreakdown, combine

    panel = MultiStudentReward([pair["a"], pair["b"]], pair["tokenizer"], pair["teacher"])  # weights 0.75, 0.25
    config = panel.config

    def breakdown(lp_mean, lp_min, kl_mean, kl_max, dropped):
        reward = combine(lp_mean, lp_min, kl_mean, kl_max, True, config)
        return RewardBreakdown(reward, lp_mean, lp_min, kl_mean, kl_max, True, kl_edge_tokens_dropped=dropped)

    a, b = breakdown(-1.0, -3.0, 0.5, 1.0, 1), breakdown(-2.0, -4.0, math.nan, math.nan, 2)
    combined = panel._combined({"a": a, "b": b})
    assert combined.reward == pytest.approx(0.75 * a.reward + 0.25 * b.reward)
    assert combined.kl_mean == pytest.approx(0.75 * 0.5 + 0.25 * -config.missing_end_tag_penalty)
    parts = [getattr(combined, k) for k in ("solution_logprob_mean", "solution_logprob_min", "kl_mean", "kl_max")]
    assert combine(*parts, True, config) == pytest.approx(combined.reward)  # the shown numbers give the reward
    assert combined.kl_edge_tokens_dropped == 3  # over every student
    neither = panel._combined({"a": b, "b": b})
    assert math.isnan(neither.kl_mean) and neither.reward == pytest.approx(b.reward)


def test_the_answer_logprob_of_a_several_student_record_is_their_weighted_mean(pair):
    """Before: `teaching.measure` raised KeyError 'solution_tokens' with a several-student reward."""
    from rlt.data import Problem
    from rlt.measure.scoring import scored_rounds
    from rlt.measure.teaching import answer_logprob, measure

    panel = MultiStudentReward([pair["a"], pair["b"]], pair["tokenizer"], pair["teacher"])
    row = rows()[0]  # "What is 0 + 1?", "The answer is 1."
    problem = Problem(question=row["question"], solution=row["solution"], answer="1")
    sample = {"index": 0, "sample": 0, "explanation": row["explanation"], "completion": row["explanation"]}
    (result,) = measure([sample], [problem], panel)
    alone = {}
    for name in ("a", "b"):
        ((record,), _) = next(scored_rounds(single(pair, name), [row], 1, True))
        alone[name] = answer_logprob(record, "1")
    assert not any(math.isnan(v) for v in alone.values()) and alone["a"] != pytest.approx(alone["b"])
    expected = 0.75 * alone["a"] + 0.25 * alone["b"]
    assert result["as written"]["answer_logprob"] == pytest.approx(expected, abs=1e-5)


BAD_RECIPES = [("student: 5\n", "--student takes model specs"), ("student: []\n", "--student takes model specs"),
               ("student: [x, y]\nstudent_weights: 2\n", "one weight per student")]  # fmt: skip


@pytest.mark.parametrize("recipe, message", BAD_RECIPES)
def test_bad_student_recipes_are_usage_errors(recipe, message, tmp_path, capsys):
    (tmp_path / "r.yaml").write_text(recipe)
    assert main(["score", "rows.jsonl", "--config", str(tmp_path / "r.yaml")]) == 2
    assert message in capsys.readouterr().err


def test_flags_that_replace_a_recipes_students_do_not_inherit_its_weights(tmp_path, capsys):
    """Before: `student: [a, b]`, `student_weights: [1, 2]` and `--student c --student d` gave c and d the weights."""
    from rlt.configs import RewardArguments, parse

    (tmp_path / "r.yaml").write_text("student: [a, b]\nstudent_weights: [1, 2]\n")
    recipe = ["--config", str(tmp_path / "r.yaml")]
    assert main(["score", "rows.jsonl", *recipe, "--student", "c", "--student", "d"]) == 2
    said = capsys.readouterr().err
    assert "--student replaces the recipe's students ['a', 'b'], whose student_weights [1, 2]" in said
    (args,) = parse((RewardArguments,), [*recipe, "--student", "c", "--student", "d", "--student-weights", "1", "1"])
    assert args.student == ["c", "d"] and args.student_weights == [1.0, 1.0]
    (args,) = parse((RewardArguments,), recipe)
    assert args.student == ["a", "b"] and args.student_weight_list() == [1, 2]  # the recipe alone: its own pairing


def test_inspect_rescoring_two_student_traces_with_one_student_shows_the_new_scores(models):
    """Before, the input rows' `students` block stayed beside the new single-student scores: every row was drawn
    from the old block, "not aligned", with no tokens."""
    traces = models / "traces_two.jsonl"
    assert main(["traces", "--teacher", str(models / "teacher"), "--student", str(models / "student"), "--student",
                 str(models / "byte_student"), "--dataset", str(models / "rows.jsonl"), "--out", str(traces),
                 "--max_new_tokens", "8", "--device", "cpu"]) == 0  # fmt: skip
    page = models / "one.html"
    assert main(["inspect", str(traces), "--out", str(page), "--teacher", str(models / "teacher"), "--student",
                 str(models / "student")]) == 0  # fmt: skip
    data = json.loads(page.read_text().split('<script id="data" type="application/json">')[1].split("</script>")[0])
    assert all("students" not in r for r in data["rows"])
    assert any(r["aligned"] and r["explanation"] for r in data["rows"])
