"""`rlt inspect`: the page's data from scored rows, on-the-fly scoring of traces and completions, and the page as a
person sees it in headless Chromium (skipped where no Chromium is installed; `make test-browser` installs it)."""

import json
import math
import shutil
from pathlib import Path

import pytest

from rlt.cli import main
from rlt.testing import save_tiny
from rlt.tools.inspector import final_answer_of, page_records, render, token_view

FAST_SCORE = ["--device", "cpu", "--student_temperature", "0.7"]
SCREENSHOT = Path(__file__).resolve().parent / "artifacts" / "inspector.png"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("inspect")
    save_tiny(root / "student", seed=0)
    save_tiny(root / "teacher", seed=1)
    return root


def rows(n: int = 6) -> list[dict]:
    """Explanations that differ: right, wrong, stating the answer, and one without its closing tag."""
    out = []
    for i in range(n):
        answer = 2 * i + 1
        explanation = ["Add the two numbers.", f"So x = {answer}.", "Subtract them.", "Add them"][i % 4]
        end = "" if i % 4 == 3 else "\n\n<|end_of_explanation|>"
        out.append({"question": f"What is {i} + {i + 1}?", "solution": f"The answer is {answer}.",
                    "explanation": explanation + end, "answer": str(answer)})  # fmt: skip
    return [*out, HOSTILE]


# Text that quotes markup, and characters byte-level BPE splits over several tokens: shown as written, never run.
HOSTILE = {
    "question": '<!--<script>document.title="pwned"</script> "What" is 2 × 2? é😀',
    "solution": "The answer is 4.",
    "explanation": "Two and two make <b>4</b> — é😀 ✓\n\n<|end_of_explanation|>",
}


@pytest.fixture(scope="module")
def scored(models):
    path = models / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows()))
    out = models / "scored.jsonl"
    assert main(["score", str(path), "--out", str(out), "--details", "true", "--teacher", str(models / "teacher"),
                 "--student", str(models / "student"), *FAST_SCORE]) == 0  # fmt: skip
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_details_carry_the_per_token_numbers_the_components_reduce(scored):
    for row in scored:
        solution = row["solution_token_logprobs"]
        assert (
            len(row["solution_tokens"])
            == len(solution)
            == row["student_solution_span"][1] - row["student_solution_span"][0]
        )
        assert sum(solution) / len(solution) == pytest.approx(row["solution_logprob_mean"], abs=1e-5)
        assert min(solution) == pytest.approx(row["solution_logprob_min"], abs=1e-5)
        kl = row["kl_chunk_values"]
        assert len(kl) == len(row["kl_chunks"])
        assert sum(kl) / len(kl) == pytest.approx(row["kl_mean"], abs=1e-5) and max(kl) == pytest.approx(row["kl_max"])
        # the tokens spell the span's text exactly (split characters included), so the page shows what was read
        assert "".join(row["solution_tokens"]) == row["solution"]
        assert "".join(row["explanation_tokens"]) == row["explanation"].split("<|end_of_explanation|>")[0]


def test_page_records_shade_each_explanation_token_by_its_chunk(scored):
    row = scored[0]
    explanation, solution = token_view(row)
    assert [t for t, *_ in explanation] == row["explanation_tokens"]
    assert [s for _, s in solution] == [pytest.approx(-lp, abs=1e-4) for lp in row["solution_token_logprobs"]]
    start = row["student_explanation_span"][0]
    for (_, (s_start, s_end)), value in zip(row["kl_chunks"], row["kl_chunk_values"], strict=True):
        assert all(explanation[p - start][2] == pytest.approx(value, abs=1e-4) for p in range(s_start, s_end))
    records = page_records(scored)
    assert [r["leaks"] for r in records[:4]] == [False, True, False, False]  # "So x = 3." states row 1's answer
    assert not records[-1]["leaks"]  # the answer from "The answer is 4.": a bare "<b>4</b>" does not state it
    assert [r["matched"] for r in records[:4]] == [True, True, True, False]
    assert all(math.isfinite(r["reward"]) for r in records)


def test_the_page_data_holds_no_markup_and_no_number_json_cannot_carry(scored):
    rows = [{**scored[0], "step": '<img src=x onerror="alert(1)">', "reward": float("inf")},
            {**scored[1], "solution_token_logprobs": [float("-inf"), *scored[1]["solution_token_logprobs"][1:]],
             "step": 3}]  # fmt: skip
    page = render(page_records(rows), "t __DATA__ <x>", "src")
    block = page.split('<script id="data" type="application/json">')[1].split("</script>")[0]
    assert "<" not in block and ">" not in block  # nothing in the data can close or re-open a script element
    data = json.loads(block)  # strict JSON: no NaN or Infinity
    assert "step" not in data["rows"][0] and data["rows"][1]["step"] == 3  # only integer steps are kept
    assert data["rows"][0]["reward"] is None and data["rows"][1]["solution_tokens"][0][1] is None
    assert page.count('<script id="data"') == 1 and "<title>t __DATA__ &lt;x&gt;</title>" in page


def test_a_stated_answer_is_read_from_the_last_statement():
    assert final_answer_of({"solution": "What the answer is depends on x.\nSo the answer is 7."}) == "7"
    assert final_answer_of({"solution": "The answer is 7.\nCheck: 3 + 4 = 7."}) == "7"
    assert final_answer_of({"answer": 0, "solution": "The answer is 5."}) == "0"


def test_traces_and_completions_are_scored_on_the_fly(models, scored, tmp_path):
    completions = [{"step": step, "question": r["question"], "solution": r["solution"], "completion": r["explanation"],
                    "reward": 0.0} for step in (1, 2) for r in rows(3)[:3]]  # fmt: skip
    path = tmp_path / "completions.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in completions))
    out = tmp_path / "run.html"
    assert main(["inspect", str(path), "--out", str(out), "--teacher", str(models / "teacher"),
                 "--student", str(models / "student"), *FAST_SCORE]) == 0  # fmt: skip
    page = out.read_text()
    data = json.loads(page.split('<script id="data" type="application/json">')[1].split("</script>")[0])
    assert [r["step"] for r in data["rows"]] == [1, 1, 1, 2, 2, 2]
    assert [r["logged_reward"] for r in data["rows"]] == [0.0] * 6  # the reward training logged, kept beside
    # scored here as `rlt score` scores them: the same reward as the scored file for the same explanation
    assert [r["reward"] for r in data["rows"][:3]] == [pytest.approx(s["reward"], abs=1e-3) for s in scored[:3]]
    assert "http://" not in page and "https://" not in page and "<link" not in page  # self-contained
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "q", "completion": "c"}) + "\n")
    assert main(["inspect", str(bad), "--out", str(tmp_path / "bad.html"), "--teacher", str(models / "teacher"),
                 "--student", str(models / "student")]) == 2  # fmt: skip


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


@pytest.mark.skipif(_chromium() is None or shutil.which("chromedriver") is None,
                    reason="no Chromium and ChromeDriver here: `make test-browser` installs them (Debian's chromium, "
                    "chromium-driver) and runs this test")  # fmt: skip
def test_the_page_in_a_real_browser(models, scored, tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed: `make test-browser`")
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    path = tmp_path / "scored.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in scored))
    page = tmp_path / "report.html"
    assert main(["inspect", str(path), "--out", str(page)]) == 0  # every row already scored: no model loads

    options = webdriver.ChromeOptions()
    options.binary_location = _chromium()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        driver.get(page.as_uri())
        # what a person sees: one row per scored row, every token of both spans as its own shaded span
        assert len(driver.find_elements(By.CSS_SELECTOR, "tr.row")) == len(scored)
        # quoted markup stays text: the page's two scripts only, the question shown as written, the title untouched
        assert driver.execute_script("return document.scripts.length") == 2 and driver.title.startswith("rlt inspect")
        assert HOSTILE["question"] in [q.text for q in driver.find_elements(By.CSS_SELECTOR, "td.q")]
        expected = sum(len(r["explanation_tokens"]) + len(r["solution_tokens"]) for r in scored)
        assert len(driver.find_elements(By.CSS_SELECTOR, "#rows span.tok")) == expected
        first = driver.find_element(By.CSS_SELECTOR, "#rows span.tok")
        assert "−log p" in first.get_attribute("title") and "rgba(" in first.get_attribute("style")
        assert driver.find_element(By.ID, "shown").text == f"{len(scored)} of {len(scored)} rows"

        def rewards():
            return [float(r.get_attribute("data-reward")) for r in driver.find_elements(By.CSS_SELECTOR, "tr.row")]

        driver.find_element(By.CSS_SELECTOR, 'th[data-key="reward"]').click()  # sort by reward, highest first
        assert rewards() == pytest.approx(sorted((r["reward"] for r in scored), reverse=True), abs=1e-3)
        driver.find_element(By.CSS_SELECTOR, 'th[data-key="reward"]').click()  # again: lowest first
        assert rewards() == pytest.approx(sorted(r["reward"] for r in scored), abs=1e-3)
        driver.find_element(By.ID, "onlyUnmatched").click()  # filter: explanations without the closing tag
        assert len(rewards()) == sum(not r["matched"] for r in scored) == 1
        driver.find_element(By.ID, "onlyUnmatched").click()
        SCREENSHOT.parent.mkdir(exist_ok=True)
        driver.save_screenshot(str(SCREENSHOT))
        assert [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")] == []

        # a training run: each prompt's completions over the steps, side by side
        run = tmp_path / "completions_scored.jsonl"
        run.write_text("".join(json.dumps({**r, "step": step}) + "\n" for step in (5, 10) for r in scored))
        assert main(["inspect", str(run), "--out", str(tmp_path / "run.html")]) == 0
        driver.get((tmp_path / "run.html").as_uri())
        groups = driver.find_elements(By.CSS_SELECTOR, "#steps .group")
        assert len(groups) == len(scored)
        steps = [c.find_element(By.TAG_NAME, "b").text for c in groups[0].find_elements(By.CSS_SELECTOR, ".card")]
        assert steps == ["step 5", "step 10"]
        assert [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")] == []
    finally:
        driver.quit()
