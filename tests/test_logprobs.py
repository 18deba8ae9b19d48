import pytest
import torch

import rlt.logprobs
from benchmarks.verify_scored import reference_logprobs
from rlt.logprobs import micro_batches, span_logprobs


def _sequences(tokenizer):
    texts = ["The answer is 42.", "How many apples does she have left? 0123", "x", "= ( ) . , ? " * 5]
    return [tokenizer(t)["input_ids"] for t in texts]


def test_matches_full_logits_and_ignores_batching(student, tokenizer, monkeypatch):
    sequences = _sequences(tokenizer)
    spans = [[(1, len(s)), (len(s) // 2 or 1, len(s))] for s in sequences]
    one_by_one = span_logprobs(student, sequences, spans, temperature=0.7, token_budget=1)
    monkeypatch.setitem(rlt.logprobs.LOGIT_BUDGET, "cpu", 3 * student.config.vocab_size)  # 3 rows per head chunk
    batched = span_logprobs(student, sequences, spans, temperature=0.7, token_budget=10_000)
    for seq, seq_spans, a, b in zip(sequences, spans, one_by_one, batched, strict=True):
        for span, x, y in zip(seq_spans, a, b, strict=True):
            ref = reference_logprobs(student, seq, span, 0.7)
            assert x.shape == ref.shape == (span[1] - span[0],)
            torch.testing.assert_close(x, ref, atol=1e-5, rtol=0)
            torch.testing.assert_close(y, ref, atol=1e-5, rtol=0)


def test_temperature_changes_values(student, tokenizer):
    (seq,) = _sequences(tokenizer)[:1]
    (hot,), (cold,) = (span_logprobs(student, [seq], [[(1, len(seq))]], t)[0] for t in (1.0, 0.5))
    assert not torch.allclose(hot, cold)


def testmicro_batches_respect_the_budget():
    lengths = [5, 100, 30, 30, 7]
    batches = micro_batches(lengths, token_budget=64)
    assert sorted(i for b in batches for i in b) == list(range(5))
    assert all(len(b) * max(lengths[i] for i in b) <= 64 or len(b) == 1 for b in batches)
    assert batches[0] == [1]


def test_bad_spans_and_temperature(student):
    with pytest.raises(ValueError, match="out of range"):
        span_logprobs(student, [[1, 2, 3]], [[(0, 2)]])
    with pytest.raises(ValueError, match="temperature must be > 0"):
        span_logprobs(student, [[1, 2, 3]], [[(1, 2)]], temperature=0)


def test_training_mode_is_restored(student, tokenizer):
    student.train()
    span_logprobs(student, [[1, 2, 3]], [[(1, 3)]])
    assert student.training
    student.eval()
