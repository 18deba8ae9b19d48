"""Bad input across datasets, configs and CLI flags: each gives a clear error naming the row, column or flag
(or, when asked, a counted skip), and nothing already written is lost."""

import json

import pytest
import torch

from rlt.cli import main
from rlt.data import DataError, load_problems, to_problems
from rlt.errors import UsageError
from rlt.measure.evaluate import EvalArguments, evaluate_student
from rlt.models import load_model
from rlt.records import recover_jsonl
from rlt.reward import RewardConfig, RLTReward
from rlt.reward.align import tokenize_texts
from rlt.reward.formats import get_style
from rlt.sampling.generation import SamplingConfig
from rlt.testing import save_tiny, tiny_model, tiny_tokenizer
from rlt.train.sft import warmup_examples

GOOD = {"question": "What is 1 + 1?", "solution": "1 + 1 = 2.", "answer": "2"}
GOOD_ROW = {
    "generic": GOOD,
    "gsm8k": {"question": "What is 1 + 1?", "answer": "1 + 1 = 2\n#### 2"},
    "math": {"problem": "What is 1 + 1?", "solution": "$\\boxed{2}$"},
    "stratos": {"conversations": [{"from": "user", "value": "q"}, {"from": "assistant", "value": "x"}]},
}
STRATOS_OK = "<|begin_of_thought|>t<|end_of_thought|><|begin_of_solution|>s<|end_of_solution|>"
GOOD_ROW["stratos"]["conversations"][1]["value"] = STRATOS_OK


def rows_with(bad: dict, adapter: str = "generic"):
    """The bad row after a good one, so the error must name row 1."""
    return lambda: to_problems([GOOD_ROW[adapter], bad], adapter)


# kind -> (action raising, exception type, message pattern)
DATA_CASES = {
    "missing question": (rows_with({"solution": "s"}), DataError, r"row 1, column 'question': missing"),
    "empty question": (rows_with({"question": " \n", "solution": "s"}), DataError, r"row 1, column 'question': empty"),
    "non-string question": (
        rows_with({"question": 7, "solution": "s"}),
        DataError,
        r"column 'question': expected a string, got int",
    ),
    "missing solution": (rows_with({"question": "q"}), DataError, r"row 1, column 'solution': missing"),
    "empty solution": (rows_with({"question": "q", "solution": ""}), DataError, r"row 1, column 'solution': empty"),
    "non-string solution": (rows_with({"question": "q", "solution": ["s"]}), DataError, r"got list"),
    "gsm8k answer without ####": (
        rows_with({"question": "q", "answer": "just 4"}, "gsm8k"),
        DataError,
        r"row 1, column 'answer': no '#### <final answer>'",
    ),
    "gsm8k empty final answer": (
        rows_with({"question": "q", "answer": "4\n#### "}, "gsm8k"),
        DataError,
        r"column 'answer': no '####",
    ),
    "math without boxed answer": (
        rows_with({"problem": "p", "solution": "no box"}, "math"),
        DataError,
        r"row 1, column 'solution': no \\boxed",
    ),
    "solution containing a tag": (
        rows_with({"question": "q", "solution": "x <|end_of_explanation|> y"}),
        DataError,
        r"column 'solution': contains the format tag '<\|end_of_explanation\|>'",
    ),
    "question containing an R1 tag": (
        rows_with({"question": "why </think> now", "solution": "s"}),
        DataError,
        r"column 'question': contains the format tag '</think>'",
    ),
    "stratos wrong roles": (
        rows_with({"conversations": [{"from": "assistant", "value": "a"}, {"from": "user", "value": "q"}]}, "stratos"),
        DataError,
        r"row 1, column 'conversations': turn 0 must come from 'user'",
    ),
    "stratos missing tags": (
        rows_with(
            {"conversations": [{"from": "user", "value": "q"}, {"from": "assistant", "value": "plain"}]}, "stratos"
        ),
        DataError,
        r"lacks the thought or solution tags",
    ),
    "unknown adapter": (lambda: to_problems([GOOD], "nope"), ValueError, r"unknown adapter 'nope'"),
    "missing dataset file": (
        lambda: load_problems("/no/such/rows.jsonl"),
        DataError,
        r"no such file: /no/such/rows.jsonl",
    ),
    "unknown format style": (lambda: get_style("xml"), ValueError, r"unknown format style 'xml'"),
}

CONFIG_CASES = {
    "negative solution coefficient": (
        lambda: RewardConfig(solution_coeffs=(-1, 0.01)),
        ValueError,
        r"solution_coeffs must be two finite numbers >= 0",
    ),
    "wrong number of KL coefficients": (lambda: RewardConfig(kl_coeffs=(3, 0.03, 1)), ValueError, r"kl_coeffs"),
    "non-finite coefficient": (lambda: RewardConfig(kl_coeffs=(float("nan"), 0.03)), ValueError, r"kl_coeffs"),
    "student temperature zero": (
        lambda: RewardConfig(student_temperature=0),
        ValueError,
        r"student_temperature must be a finite number > 0",
    ),
    "teacher temperature negative": (
        lambda: RewardConfig(teacher_temperature=-0.5),
        ValueError,
        r"teacher_temperature must be a finite number > 0",
    ),
    "positive missing-tag penalty": (
        lambda: RewardConfig(missing_end_tag_penalty=0.5),
        ValueError,
        r"missing_end_tag_penalty must be a finite number <= 0",
    ),
    "zero token budget": (lambda: RewardConfig(token_budget=0), ValueError, r"token_budget must be >= 1"),
    "negative sampling temperature": (lambda: SamplingConfig(temperature=-1), ValueError, r"temperature must be >= 0"),
    "student tokenizer without a chat template": (
        lambda: RLTReward(
            tiny_model(), tiny_tokenizer(), student_tokenizer=type("NoTemplate", (), {"chat_template": None})()
        ),
        ValueError,
        r"the student's tokenizer has no chat template",
    ),
    "tokenizer without offsets": (
        lambda: tokenize_texts(type("SlowTokenizer", (), {})(), ["text"]),
        ValueError,
        r"SlowTokenizer is a slow tokenizer without character offsets",
    ),
    "non-existent model path": (
        lambda: load_model("/no/such/model"),
        UsageError,
        r"could not load model '/no/such/model'",
    ),
}


@pytest.mark.parametrize("kind", sorted(DATA_CASES))
def test_bad_data(kind):
    action, error, pattern = DATA_CASES[kind]
    with pytest.raises(error, match=pattern):
        action()


@pytest.mark.parametrize("kind", sorted(CONFIG_CASES))
def test_bad_config(kind):
    action, error, pattern = CONFIG_CASES[kind]
    with pytest.raises(error, match=pattern):
        action()


def test_skip_invalid_counts_every_bad_row():
    bad = [{"solution": "s"}, {"question": "", "solution": "s"}, {"question": "q", "solution": 3}]
    problems, skipped = to_problems([GOOD, *bad, GOOD], skip_invalid=True)
    assert (len(problems), skipped) == (2, 3)


def test_question_longer_than_the_prompt_budget_is_dropped_and_counted():
    tokenizer = tiny_tokenizer()
    problems, _ = to_problems([GOOD, {"question": "why? " * 400, "solution": "s"}])
    examples, dropped = warmup_examples(problems, tokenizer, "stratos", max_length=400)
    assert (len(examples), dropped) == (1, 1)


def test_pass_at_k_needs_enough_samples():
    args = EvalArguments(num_samples=2, k=[4], max_new_tokens=2)
    problems, _ = to_problems([GOOD])
    with pytest.raises(ValueError, match=r"pass@4 needs num_samples >= 4"):
        evaluate_student(tiny_model(), tiny_tokenizer(), problems, args)


# ---------------------------------------------------------------------------------------------------- CLI


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return str(save_tiny(tmp_path_factory.mktemp("bad") / "tiny"))


def run_cli(argv, capsys) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as e:  # argparse reports unknown flags by exiting
        code = e.code
    return code, capsys.readouterr().err


def test_corrupt_jsonl_line_is_named(tmp_path, model_dir, capsys):
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({**GOOD, "explanation": "e"}) + "\n{broken\n")
    code, err = run_cli(["score", str(rows), "--teacher", model_dir, "--student", model_dir], capsys)
    assert code == 2 and "rows.jsonl:2: not valid JSON" in err


@pytest.mark.parametrize("command", ["score", "train"])
def test_a_line_that_is_not_utf8_is_named_with_its_byte(tmp_path, model_dir, capsys, command):
    """Before: a UnicodeDecodeError traceback from `rlt score` and `rlt train`."""
    rows = tmp_path / "rows.jsonl"
    rows.write_bytes((json.dumps({**GOOD, "explanation": "e"}) + "\n").encode() + b'{"question": "caf\xe9"}\n')
    argv = [str(rows)] if command == "score" else ["--dataset", str(rows), "--output_dir", str(tmp_path / "out")]
    code, err = run_cli([command, *argv, "--teacher" if command == "score" else "--model_name_or_path", model_dir,
                         "--student", model_dir], capsys)  # fmt: skip
    assert code == 2 and "rows.jsonl:2: not UTF-8 (byte 0xe9 at column 18)" in err and "Traceback" not in err


def test_eval_on_own_data_without_a_holdout_says_how_to_choose_the_part(tmp_path, model_dir, capsys):
    """Before: "--part holdout selects no problem (holdout is 0)", with no hint of --holdout or --part all."""
    rows = tmp_path / "mine.jsonl"
    rows.write_text(json.dumps(GOOD) + "\n")
    argv = ["eval", "--model", model_dir, "--dataset", str(rows), "--out", str(tmp_path / "e.json")]
    code, err = run_cli(argv, capsys)
    assert code == 2 and f"--part holdout selects no problem of {rows} (holdout is 0): --holdout N holds out" in err
    assert "or --part all for every problem" in err


def test_a_missing_column_names_the_flag_that_picks_another(tmp_path, model_dir, capsys):
    """Before: "row 0, column 'question': missing (columns present: [...])", with no word of --question_column."""
    rows = tmp_path / "mine.jsonl"
    rows.write_text(json.dumps({"problem": "What is 1 + 2?", "solution": "3"}) + "\n")
    argv = ["warmup", "--model_name_or_path", model_dir, "--dataset", str(rows), "--output_dir", str(tmp_path / "o")]
    code, err = run_cli(argv, capsys)
    assert code == 2 and "column 'question': missing (columns present: ['problem', 'solution'])" in err
    assert "--question_column names the column that holds it" in err


def test_json_line_that_is_not_an_object(tmp_path, model_dir, capsys):
    rows = tmp_path / "rows.jsonl"
    rows.write_text("[1, 2]\n")
    code, err = run_cli(["score", str(rows), "--teacher", model_dir, "--student", model_dir], capsys)
    assert code == 2 and "rows.jsonl:1: expected a JSON object, got list" in err


def test_score_row_without_explanation(tmp_path, model_dir, capsys):
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps(GOOD) + "\n")
    code, err = run_cli(["score", str(rows), "--teacher", model_dir, "--student", model_dir], capsys)
    assert code == 2 and "row 0, column 'explanation'" in err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--batch_rows", "-1"], "--batch_rows must be at least 1, got -1"),  # before: "scored 2 rows", nothing written
        (["--batch_rows", "0"], "--batch_rows must be at least 1, got 0"),
        (["--limit", "-1"], "--limit must be at least 1"),  # before: silently dropped the last row
        (["--limit", "0"], "--limit must be at least 1"),  # before: scored nothing, exit 0
    ],
)
def test_score_counts_that_mean_nothing_are_refused(tmp_path, model_dir, capsys, flags, message):
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({**GOOD, "explanation": "e"}) + "\n")
    out = tmp_path / "scored.jsonl"
    code, err = run_cli(["score", str(rows), "--teacher", model_dir, "--student", model_dir, "--out", str(out),
                         *flags], capsys)  # fmt: skip
    assert code == 2 and message in err and not out.exists()


def test_score_never_destroys_a_file(tmp_path, model_dir, capsys, monkeypatch):
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({**GOOD, "explanation": "e"}) + "\n")
    code, err = run_cli(["score", str(rows), "--teacher", model_dir, "--student", model_dir, "--out", str(rows)],
                        capsys)  # fmt: skip
    assert code == 2 and "is the input file" in err
    assert json.loads(rows.read_text())["explanation"] == "e"  # before: truncated to 0 bytes
    (tmp_path / "empty.jsonl").write_text("")
    code, err = run_cli(["score", str(tmp_path / "empty.jsonl"), "--teacher", model_dir, "--student", model_dir],
                        capsys)  # fmt: skip
    assert code == 2 and "no rows to score" in err  # before: "0 rows", NaN summaries, exit 0
    # a run that fails while scoring leaves an existing --out as it was (before: 0 bytes)
    previous = tmp_path / "previous.jsonl"
    previous.write_text('{"kept": true}\n')

    def interrupted(self, rows, **options):
        raise KeyboardInterrupt

    argv = ["score", str(rows), "--teacher", model_dir, "--student", model_dir, "--out", str(previous)]
    assert run_cli(argv, capsys)[0] == 2  # a file rlt score did not write is not replaced without --overwrite
    with monkeypatch.context() as patch:
        patch.setattr(RLTReward, "score_texts", interrupted)
        code, err = run_cli([*argv, "--overwrite"], capsys)
    assert code == 130 and err.strip().splitlines()[-1] == "rlt score: interrupted"  # Ctrl-C: one line, exit 130
    assert previous.read_text() == '{"kept": true}\n'
    assert main([*argv, "--overwrite"]) == 0
    assert "reward" in json.loads(previous.read_text()) and not (tmp_path / "previous.jsonl.partial").exists()
    record = json.loads((tmp_path / "previous.jsonl.provenance.json").read_text())  # what produced the scores
    assert record["kind"] == "scored rows" and record["settings"]["reward"]["kl_coeffs"] == [3.0, 0.03]
    assert record["settings"]["rows"].startswith(f"{rows} sha256:")


def test_score_rejects_format_tags_in_a_question_as_train_does(tmp_path, model_dir, capsys):
    rows = tmp_path / "rows.jsonl"
    tagged = {**GOOD, "question": "Why <|begin_of_solution|>?", "explanation": "e"}
    rows.write_text(json.dumps({**GOOD, "explanation": "e"}) + "\n" + json.dumps(tagged) + "\n")
    code, err = run_cli(["score", str(rows), "--teacher", model_dir, "--student", model_dir,
                         "--out", str(tmp_path / "s.jsonl")], capsys)  # fmt: skip
    assert code == 2 and "row 1, column 'question': contains the format tag '<|begin_of_solution|>'" in err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--max_problems", "0"], "--max_problems must be at least 1"),  # before: used every row
        (["--max_solution_chars", "0"], "--max_solution_chars must be at least 1"),
        (["--holdout", "-2"], "--holdout must be at least 0"),
    ],
)
def test_data_counts_that_mean_nothing_are_refused(tmp_path, model_dir, capsys, flags, message):
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps(GOOD) + "\n")
    code, err = run_cli(["eval", "--model", model_dir, "--dataset", str(rows), "--part", "all", *flags], capsys)
    assert code == 2 and message in err


def test_eval_without_any_answer_to_check_is_an_error(tmp_path, model_dir, capsys):
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"question": "q", "solution": "s"}) + "\n")
    out = tmp_path / "eval.json"
    code, err = run_cli(["eval", "--model", model_dir, "--dataset", str(rows), "--part", "all", "--out", str(out)],
                        capsys)  # fmt: skip
    assert code == 2 and "none of the 1 questions has a final answer" in err  # before: pass@1 0.000
    assert not out.exists()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--device", "tpu"], "--device must be cpu, cuda, cuda:N or auto, got 'tpu'"),
        (["--dtype", "foo"], "--dtype must be auto, float32, bfloat16 or float16, got 'foo'"),
    ]
    + ([(["--device", "cuda"], "this machine has no CUDA GPU")] if not torch.cuda.is_available() else []),
)
def test_device_and_dtype_errors_name_the_flag(tmp_path, model_dir, capsys, flags, message):
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({**GOOD, "explanation": "e"}) + "\n")
    code, err = run_cli(["score", str(rows), "--teacher", model_dir, "--student", model_dir, *flags], capsys)
    assert code == 2 and message in err  # before: a traceback from torch


def test_a_directory_where_a_file_belongs_is_an_error(tmp_path, model_dir, capsys):
    (tmp_path / "x.jsonl").mkdir()
    code, err = run_cli(["score", str(tmp_path / "x.jsonl"), "--teacher", model_dir, "--student", model_dir], capsys)
    assert code == 2 and "x.jsonl" in err  # before: IsADirectoryError traceback


def test_an_invalid_json_file_is_named(tmp_path):
    bad = tmp_path / "rows.json"
    bad.write_text('[{"question": "q", "solution": ')  # before: a datasets traceback
    with pytest.raises(DataError, match=r"rows\.json: not a readable \.json table"):
        load_problems(str(bad))


@pytest.mark.parametrize("command", ["score", "traces", "eval"])
def test_out_a_directory_is_refused_before_any_work(tmp_path, model_dir, capsys, command):
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({**GOOD, "answer": "4", "explanation": "e"}) + "\n")
    data = [str(rows)] if command == "score" else ["--dataset", str(rows), "--part", "all", "--model", model_dir]
    if command == "traces":
        data = ["--dataset", str(rows), "--teacher", model_dir]
    code, err = run_cli([command, *data, "--student", model_dir, "--out", str(tmp_path)], capsys)
    assert code == 2 and f"--out {tmp_path} is a directory" in err  # before: an OSError after the work was done


def test_unknown_flag_is_named(capsys):
    code, err = run_cli(["score", "rows.jsonl", "--kl_coefs", "3", "0.03"], capsys)
    assert code == 2 and "--kl_coefs" in err


def test_invalid_coefficient_flag(tmp_path, model_dir, capsys):
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({**GOOD, "explanation": "e"}) + "\n")
    code, err = run_cli(["score", str(rows), "--teacher", model_dir, "--student", model_dir,
                         "--solution_coeffs", "1", "-0.5"], capsys)  # fmt: skip
    assert code == 2 and "solution_coeffs must be two finite numbers >= 0" in err


def test_teacher_and_student_with_different_tokenizers_on_the_cli(tmp_path, model_dir, capsys):
    """No longer an error: score, traces and teacher evaluation run with a byte-level student."""
    other = save_tiny(tmp_path / "bytes", vocab_size=256 + 3)
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({**GOOD, "explanation": "One and one make two.\n\n<|end_of_explanation|>"}) + "\n")
    out = tmp_path / "scored.jsonl"
    code, err = run_cli(["score", str(rows), "--teacher", model_dir, "--student", str(other), "--out", str(out),
                         "--details", "true"], capsys)  # fmt: skip
    assert code == 0, err
    (scored,) = [json.loads(line) for line in out.read_text().splitlines()]
    student_tokenizer = tiny_tokenizer(256 + 3)
    explanation = student_tokenizer.decode(scored["student_input_ids"][slice(*scored["student_explanation_span"])])
    assert explanation == "One and one make two.\n\n" and scored["kl_chunks"] and scored["aligned"]
    traces = tmp_path / "traces.jsonl"
    for argv in (["traces", "--out", str(traces), "--max_new_tokens", "8"],
                 ["eval", "--out", str(tmp_path / "eval.json"), "--max_new_tokens", "8", "--part", "all"]):  # fmt: skip
        code, err = run_cli([*argv, "--teacher", model_dir, "--student", str(other), "--dataset", str(rows)], capsys)
        assert code == 0, err
    assert json.loads(traces.read_text().splitlines()[0])["aligned"]
    assert json.loads((tmp_path / "eval.json").read_text())["alignment_failures"] == 0


def test_holdout_part_out_of_range(model_dir, tmp_path, capsys):
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps(GOOD) + "\n")
    code, err = run_cli(["traces", "--teacher", model_dir, "--student", model_dir, "--dataset", str(rows),
                         "--holdout", "5", "--part", "holdout"], capsys)  # fmt: skip
    assert code == 2 and "--holdout 5: the data has 1 problems, and at least one must stay to train on" in err


def test_corrupt_traces_file_is_refused_and_left_untouched(model_dir, tmp_path, capsys):
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps(GOOD) + "\n")
    out = tmp_path / "traces.jsonl"
    content = '{"index": 0, "sample": 0}\nnot json\n{"index": 1, "sample": 0}\n'
    out.write_text(content)
    code, err = run_cli(["traces", "--teacher", model_dir, "--student", model_dir, "--dataset", str(rows),
                         "--out", str(out), "--max_new_tokens", "2"], capsys)  # fmt: skip
    assert code == 2 and "traces.jsonl:2: not valid JSON" in err
    assert out.read_text() == content  # nothing already written is lost


def test_torn_last_line_is_the_only_thing_dropped(tmp_path):
    out = tmp_path / "traces.jsonl"
    out.write_text('{"index": 0, "sample": 0}\n{"index": 1, "sa')
    assert recover_jsonl(out) == [{"index": 0, "sample": 0}]
    assert out.read_text() == '{"index": 0, "sample": 0}\n'


def test_remote_code_is_off_unless_asked(tmp_path, model_dir):
    from rlt.configs import RLTGRPOConfig, RLTSFTConfig, ScoreArguments

    assert not ScoreArguments().trust_remote_code
    assert not RLTGRPOConfig(output_dir=str(tmp_path)).trust_remote_code
    assert not RLTSFTConfig(output_dir=str(tmp_path)).trust_remote_code
    # A model whose config asks for code from its repository is refused, not executed.
    remote = tmp_path / "remote"
    tiny_model().save_pretrained(remote)
    tiny_tokenizer().save_pretrained(remote)
    config = json.loads((remote / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_evil.EvilForCausalLM"}
    config["model_type"] = "evil-unknown"
    (remote / "config.json").write_text(json.dumps(config))
    (remote / "modeling_evil.py").write_text("raise SystemExit('remote code ran')\n")  # would end pytest
    with pytest.raises(ValueError, match="evil-unknown"):
        load_model(str(remote))


def test_pickle_checkpoint_is_refused(tmp_path):
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text("{}")
    (pickled / "pytorch_model.bin").write_bytes(b"\x80\x04not really a pickle")
    with pytest.raises(ValueError, match=r"holds only pickle \(\*\.bin\) weights; rlt loads safetensors only"):
        load_model(str(pickled))


# ------------------------------------------------------------------ a first hour without surprises (issue 25)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        # before: a 120-step run (transformers trains the epochs for any max_steps <= 0)
        (["train", "--max_steps", "-5"], "--max_steps -5: give a positive count, or -1 to train num_train_epochs"),
        # before: exit 0, "0 traces" and a NaN summary
        (["traces", "--num_samples", "0"], "--num_samples must be at least 1, got 0"),
        (["traces", "--num_samples", "-1"], "--num_samples must be at least 1, got -1"),
        (["eval", "--k", "0"], "--k must be at least 1, got [0]"),  # before: a pass@0 column
        # before: --model was ignored without a word
        (["eval", "--model", "a", "--teacher", "b"], "--model (a student's accuracy) and --teacher"),
        # before: taken as --kl_coeffs (argparse's prefix matching)
        (["score", "rows.jsonl", "--kl_coef", "0.1"], "['--kl_coef', '0.1']"),
    ],
)
def test_flags_out_of_range_or_unknown_are_usage_errors_before_any_work(tmp_path, capsys, argv, message):
    out = ["--output_dir", str(tmp_path / "run")] if argv[0] == "train" else ["--out", str(tmp_path / "out.jsonl")]
    code, err = run_cli([*argv, *out], capsys)
    assert code == 2 and message in err
    assert len(err.strip().splitlines()) == 1  # one line, not a traceback


def test_the_demo_takes_resume_false_as_its_own_error_message_suggests():
    from rlt.configs import parse
    from rlt.tools.demo import DemoArguments

    (args,) = parse((DemoArguments,), ["--resume", "false"])  # before: "arguments are not used" (exit 2)
    assert args.resume is False


def test_a_scalar_where_two_coefficients_belong_is_a_usage_error(tmp_path, model_dir, capsys):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("kl_coeffs: 0.9\n")  # before: a TypeError traceback
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({**GOOD, "explanation": "e"}) + "\n")
    code, err = run_cli(["score", str(rows), "--config", str(recipe), "--teacher", model_dir], capsys)
    assert code == 2 and "--kl_coeffs takes two numbers, the weights on (mean, max)" in err and "0.9" in err


def test_a_bug_keeps_its_traceback_and_is_not_called_a_usage_error(tmp_path, monkeypatch):
    """Before, every ValueError (and OSError) from anywhere became a one-line usage error with exit 2."""
    import rlt.measure.scoring

    def broken(*args, **kwargs):
        raise ValueError("an internal invariant broke")

    monkeypatch.setattr(rlt.measure.scoring, "score_file", broken)
    with pytest.raises(ValueError, match="an internal invariant broke"):
        main(["score", "rows.jsonl", "--out", str(tmp_path / "scored.jsonl")])


def test_version_and_help_need_neither_torch_nor_trl():
    """`rlt --help` took ~4.5 s importing torch and TRL; `rlt --version` was an unknown command."""
    import subprocess
    import sys

    probe = ("import sys; from rlt.cli import main; main(['--help']); main(['--version']); "
             "print('loaded:', sorted(m for m in ('torch', 'trl', 'transformers') if m in sys.modules))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert "usage: rlt COMMAND" in out and "rlt 0.1.0" in out and "loaded: []" in out


def test_embedded_names_in_any_case():
    """`smollm2-135M` spent 51 s on Hub retries as an unknown model id."""
    from rlt.models import resolve

    assert resolve("SmolLM2-135M") == resolve("smollm2-135m") != "smollm2-135m"


def test_quick_demo_has_its_own_directory_and_keeps_the_flags_given():
    from rlt.tools.demo import DemoArguments

    quick = DemoArguments(quick=True)
    # before: both wrote runs/demo, and the full demo then refused the quick run's checkpoints
    assert quick.output_dir == "runs/demo-quick" and DemoArguments().output_dir == "runs/demo"
    assert (quick.explanation_tokens, quick.holdout) == (32, 8)
    given = DemoArguments(quick=True, explanation_tokens=48, output_dir="elsewhere", holdout=5)
    assert (given.explanation_tokens, given.output_dir, given.holdout) == (48, "elsewhere", 5)  # before: 32 (cut)


def test_score_says_what_a_negative_kl_estimate_means(tmp_path, monkeypatch, capsys):
    import rlt.measure.scoring

    summary = {"reward": 1.147, "kl_mean": -1.095}  # README's off-topic example row, as the review measured it
    monkeypatch.setattr(rlt.measure.scoring, "score_file", lambda args, out: (summary, 1, 1.0))
    assert main(["score", "rows.jsonl", "--out", str(tmp_path / "scored.jsonl")]) == 0
    said = capsys.readouterr().out
    assert "kl_mean < 0: each token's term is a one-sample log-ratio" in said and "README, `rlt score`" in said
    summary["kl_mean"] = 0.5
    assert main(["score", "rows.jsonl", "--out", str(tmp_path / "scored.jsonl")]) == 0
    assert "kl_mean < 0" not in capsys.readouterr().out


def test_an_interrupted_score_continues_where_it_stopped(tmp_path, model_dir, capsys, monkeypatch, caplog):
    """Before, Ctrl-C left OUT.partial without a word, and a rerun scored every row again."""
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({**GOOD, "explanation": f"e {i}"}) + "\n" for i in range(4)))
    out = tmp_path / "scored.jsonl"
    argv = ["score", str(rows), "--teacher", model_dir, "--student", model_dir, "--out", str(out), "--batch_rows", "2"]
    score_texts, calls = RLTReward.score_texts, []

    def interrupted_second_round(self, chunk, **options):
        calls.append(len(chunk))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return score_texts(self, chunk, **options)

    with monkeypatch.context() as patch:
        patch.setattr(RLTReward, "score_texts", interrupted_second_round)
        assert run_cli(argv, capsys)[0] == 130
    assert "2 of 4 rows scored are kept in" in caplog.text and not out.exists()
    calls.clear()
    with monkeypatch.context() as patch:
        patch.setattr(RLTReward, "score_texts", interrupted_second_round)  # the third call would not come
        assert main(argv) == 0
    assert calls == [2]  # only the two rows not yet scored
    resumed = [json.loads(line) for line in out.read_text().splitlines()]
    assert main([*argv[:-2], "--batch_rows", "4", "--out", str(tmp_path / "whole.jsonl")]) == 0
    whole = [json.loads(line) for line in (tmp_path / "whole.jsonl").read_text().splitlines()]
    assert [r["explanation"] for r in resumed] == [f"e {i}" for i in range(4)]
    assert [r["reward"] for r in resumed] == pytest.approx([r["reward"] for r in whole], abs=1e-5)
    # interrupted again after two rows, then rerun asking for one: one row, not the two kept
    calls.clear()
    with monkeypatch.context() as patch:
        patch.setattr(RLTReward, "score_texts", interrupted_second_round)
        assert run_cli([*argv, "--out", str(tmp_path / "again.jsonl")], capsys)[0] == 130
    assert main([*argv, "--out", str(tmp_path / "again.jsonl"), "--limit", "1"]) == 0
    assert len((tmp_path / "again.jsonl").read_text().splitlines()) == 1


def test_a_finished_score_is_kept_unless_overwrite_and_every_numeric_setting_is_checked(tmp_path, model_dir, capsys,
                                                                                        monkeypatch):  # fmt: skip
    """Before: `rlt score --out` replaced earlier scores without a word, and a run resumed across --dtype."""
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({**GOOD, "explanation": f"e {i}"}) + "\n" for i in range(3)))
    out = tmp_path / "scored.jsonl"
    argv = ["score", str(rows), "--teacher", model_dir, "--student", model_dir, "--out", str(out)]
    assert main(argv) == 0
    first = out.read_text()
    calls = []
    monkeypatch.setattr(RLTReward, "score_texts", lambda *a, **k: calls.append(1))
    assert main(argv) == 0 and calls == [] and out.read_text() == first  # the same settings: kept, nothing scored
    code, err = run_cli([*argv, "--dtype", "bfloat16"], capsys)
    assert code == 2 and "already holds scores (dtype: 'torch.float32' then, 'torch.bfloat16' now)" in err
    code, err = run_cli([*argv, "--limit", "2"], capsys)
    assert code == 2 and "(3 rows, 2 asked): give another --out, or --overwrite" in err
    assert out.read_text() == first
    monkeypatch.undo()
    assert main([*argv, "--limit", "2", "--overwrite"]) == 0 and len(out.read_text().splitlines()) == 2
    # an interrupted bfloat16 run is not continued in float32: the precisions would mix in one file
    partial = tmp_path / "p.jsonl"
    assert main([*argv[:-1], str(partial), "--dtype", "bfloat16", "--limit", "1"]) == 0
    partial.rename(tmp_path / "p.jsonl.partial")
    (tmp_path / "p.jsonl.provenance.json").rename(tmp_path / "p.jsonl.partial.provenance.json")
    assert main([*argv[:-1], str(partial)]) == 0
    rewards = [json.loads(line)["reward"] for line in partial.read_text().splitlines()]
    assert rewards == pytest.approx([json.loads(line)["reward"] for line in first.splitlines()], abs=1e-6)


def test_trls_deprecated_gradient_checkpointing_call_does_not_warn_on_every_run():
    """TRL 1.16 asks every model `is_gradient_checkpointing`, which transformers 5 deprecates: a FutureWarning on
    every training run that no rlt user can act on."""
    import warnings

    assert main(["--version"]) == 0  # every command sets the filter first
    with warnings.catch_warnings(record=True) as caught:
        warnings.warn("`is_gradient_checkpointing` is deprecated and will be removed in v6.", FutureWarning, 1)
        warnings.warn("another deprecation", FutureWarning, 1)
    assert [str(w.message) for w in caught] == ["another deprecation"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [  # what a second reviewer's 68 bad inputs found (issue 25), each refused now before any model loads
        (["train", "--learning_rate", "inf"], "--learning_rate must be a finite number >= 0, got inf"),  # NaN weights
        (["train", "--learning_rate", "nan"], "--learning_rate must be a finite number >= 0, got nan"),  # traceback
        (["warmup", "--learning_rate", "-0.001"], "--learning_rate must be a finite number >= 0"),  # traceback
        (["train", "--per_device_train_batch_size", "0"], "--per_device_train_batch_size must be at least 1"),
        (["train", "--max_completion_length", "0"], "--max_completion_length must be at least 1, got 0"),
        (["warmup", "--num_train_epochs", "0"], "--num_train_epochs 0.0 trains nothing"),  # untrained model saved
        (["score", "ROWS", "--student_temperature", "inf"], "student_temperature must be a finite number > 0"),
        (["score", "ROWS", "--missing_end_tag_penalty=-inf"], "missing_end_tag_penalty must be a finite number <= 0"),
        (["eval", "--question_template", "{problem}"], "--question_template '{problem}': only {question} may be"),
        (["eval", "--question_template", "Solve it."], "--question_template 'Solve it.' must hold {question} once"),
        (["eval", "--thought_samples", "-1"], "--thought_samples must be at least 0, got -1"),  # switched it on
        (["check-reward", "--resamples", "0"], "--resamples must be at least 100, got 0"),  # IndexError traceback
        (["traces", "--top_p", "2"], "--top_p must be in (0, 1], got 2.0"),
        (["traces", "--out", "traces.csv"], "--out traces.csv: traces are written as .jsonl or .parquet"),
        (["inspect", "ROWS", "--out", "ROWS"], "is the input file"),  # the rows were overwritten with HTML
        (["eval", "--dataset", "ROWS", "--out", "ROWS"], "is the input file"),  # the dataset overwritten with JSON
        (["check-reward", "--dataset", "ROWS", "--out", "ROWS"], "is the input file"),
    ],
)
def test_values_that_broke_a_run_or_a_file_are_usage_errors(tmp_path, capsys, argv, message):
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({**GOOD, "explanation": "e"}) + "\n")
    argv = [str(rows) if a == "ROWS" else a for a in argv]
    if argv[0] in ("train", "warmup"):
        argv += ["--output_dir", str(tmp_path / "run")]
    code, err = run_cli(argv, capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert json.loads(rows.read_text()) == {**GOOD, "explanation": "e"}  # no input was touched


@pytest.mark.parametrize(
    ("argv", "message"),
    [  # messages that named the wrong thing, and exit codes other than 2 for a usage mistake
        (
            ["score", "--rows", "ROWS", "extra.jsonl"],
            "flags or stray arguments that rlt score does not take: "
            "['extra.jsonl'] (the command's own argument comes first: `rlt score ROWS.jsonl",
        ),  # "HfArgumentParser"
        (
            ["warmup", "--config", "TYPO"],
            "the recipe's keys that rlt warmup does not take: ['--learning_ratee', '0.1']",
        ),  # before: "... or set `fail_with_unknown_args=False`"
        (["train", "--temperature", "0"], "--temperature must be a finite number > 0, got 0.0"),  # teacher_temperature
        (["score", "ROWS", "--reward_token_budget", "0"], "--reward_token_budget must be at least 1, got 0"),
        (["check-reward", "--kl_scales", "-1"], "--kl_scales must be finite numbers >= 0, got [-1.0]"),  # kl_coeffs
        (["score"], "give the rows to score"),  # before: exit 1
        (["inspect"], "give the file to inspect"),  # before: exit 1
        (["plot"], "usage: rlt plot RUN_DIR [OUT_DIR] (got nothing)"),  # before: exit 1
        (["plot", "a", "b", "c"], "usage: rlt plot RUN_DIR [OUT_DIR] (got a b c)"),  # before: c silently ignored
        (["distill", "--traces", "DIR"], "a directory, not a traces file"),  # before: "no such file"
        (["distill", "--traces", "EMPTY"], "the file is empty"),  # before: "no trace fits max_length=4096"
    ],
)
def test_usage_mistakes_name_what_the_user_gave_and_exit_2(tmp_path, capsys, argv, message):
    (tmp_path / "rows.jsonl").write_text(json.dumps({**GOOD, "explanation": "e"}) + "\n")
    (tmp_path / "typo.yaml").write_text("learning_ratee: 0.1\n")
    (tmp_path / "empty.jsonl").write_text("")
    names = {"ROWS": "rows.jsonl", "TYPO": "typo.yaml", "DIR": ".", "EMPTY": "empty.jsonl"}
    argv = [str(tmp_path / names[a]) if a in names else a for a in argv]
    if argv[0] in ("train", "warmup", "distill"):
        argv += ["--output_dir", str(tmp_path / "run")]
    code, err = run_cli(argv, capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["score", "NULL"], "row 0, column 'solution': null, where text belongs"),  # before: "missing"
        (["inspect", "TXT"], "scored.txt: rlt reads .jsonl, .json, .parquet and .csv files"),  # before: a Hub lookup
        (["warmup", "--config", "DIR"], "a directory, where a YAML recipe belongs"),  # before: a bare Errno 21
        (["coldstart", "--format_weight", "nan"], "--format_weight must be a finite number >= 0, got nan"),  # taken
    ],
)
def test_what_the_second_review_also_found(tmp_path, capsys, argv, message):
    (tmp_path / "null.jsonl").write_text(json.dumps({**GOOD, "solution": None, "explanation": "e"}) + "\n")
    (tmp_path / "scored.txt").write_text("not rows\n")
    names = {"NULL": "null.jsonl", "TXT": "scored.txt", "DIR": "."}
    argv = [str(tmp_path / names[a]) if a in names else a for a in argv]
    if argv[0] in ("warmup", "coldstart"):
        argv += ["--output_dir", str(tmp_path / "run")]
    code, err = run_cli([*argv, *(["--out", str(tmp_path / "o.jsonl")] if argv[0] == "score" else [])], capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["score", "ROWS", "--out", "ROWS/scored.jsonl"], "rows.jsonl is a file, not a directory"),  # bare Errno 17
        (["train", "--output_dir", "ROWS"], "rows.jsonl is a file; give a directory"),  # bare Errno
        (["train", "--report_to", "wandbb"], "--report_to wandbb: not one of none, all, "),  # a traceback
        (["plot", ".", "ROWS"], "rows.jsonl is a file; give a directory for the PNGs"),  # bare Errno 17
    ],
)
def test_paths_and_reporters_that_cannot_work_are_named(tmp_path, capsys, argv, message):
    (tmp_path / "rows.jsonl").write_text(json.dumps({**GOOD, "explanation": "e"}) + "\n")
    argv = [a.replace("ROWS", str(tmp_path / "rows.jsonl")) for a in argv]
    if argv[:2] == ["train", "--report_to"]:
        argv += ["--output_dir", str(tmp_path / "run")]
    code, err = run_cli(argv, capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
