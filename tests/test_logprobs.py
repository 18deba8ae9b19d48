import pytest
import torch

import rlt.reward.logprobs
from benchmarks.verify_scored import reference_logprobs
from rlt.reward.logprobs import micro_batches, span_logprobs


def _sequences(tokenizer):
    texts = ["The answer is 42.", "How many apples does she have left? 0123", "x", "= ( ) . , ? " * 5]
    return [tokenizer(t)["input_ids"] for t in texts]


def test_matches_full_logits_and_ignores_batching(student, tokenizer, monkeypatch):
    sequences = _sequences(tokenizer)
    spans = [[(1, len(s)), (len(s) // 2 or 1, len(s))] for s in sequences]
    one_by_one = span_logprobs(student, sequences, spans, temperature=0.7, token_budget=1)
    monkeypatch.setitem(rlt.reward.logprobs.LOGIT_BUDGET, "cpu", 3 * student.config.vocab_size)  # 3 rows per head chunk
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


def _tiny(config_class, model_class, tokenizer, **extra):
    config = config_class(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                          num_attention_heads=4, num_key_value_heads=2, pad_token_id=tokenizer.pad_token_id,
                          **extra)  # fmt: skip
    torch.manual_seed(0)
    return model_class(config).eval()


@pytest.mark.parametrize("architecture", ["cohere", "granite", "gemma2"])
def test_architectures_that_scale_or_cap_their_logits_are_scored_as_they_predict(architecture, tokenizer):
    import transformers as tf

    config_class, model_class, extra = {
        "cohere": (tf.CohereConfig, tf.CohereForCausalLM, {"logit_scale": 0.25}),
        "granite": (tf.GraniteConfig, tf.GraniteForCausalLM, {"logits_scaling": 8.0}),
        "gemma2": (tf.Gemma2Config, tf.Gemma2ForCausalLM, {"final_logit_softcapping": 3.0, "head_dim": 8}),
    }[architecture]
    model = _tiny(config_class, model_class, tokenizer, **extra)
    for seq in _sequences(tokenizer):
        (got,) = span_logprobs(model, [seq], [[(1, len(seq))]], temperature=0.7)[0]
        torch.testing.assert_close(got, reference_logprobs(model, seq, (1, len(seq)), 0.7), atol=1e-5, rtol=0)


def test_a_student_offloaded_by_accelerate_is_scored_where_it_computes(student, tokenizer):
    """accelerate's cpu_offload leaves every weight on `meta`; the device must come from its hooks."""
    import copy

    from accelerate import cpu_offload

    sequences = _sequences(tokenizer)
    spans = [[(1, len(s))] for s in sequences]
    expected = span_logprobs(student, sequences, spans, temperature=0.7)
    offloaded = cpu_offload(copy.deepcopy(student), execution_device=torch.device("cpu"))
    assert next(offloaded.parameters()).device.type == "meta"
    got = span_logprobs(offloaded, sequences, spans, temperature=0.7)
    for a, b in zip(expected, got, strict=True):
        torch.testing.assert_close(a[0], b[0], atol=1e-6, rtol=0)


def test_a_head_whose_weight_is_a_zero3_placeholder_is_chunked_by_its_declared_size(student, tokenizer, monkeypatch):
    """Under ZeRO-3 a partitioned weight outside a forward is `torch.empty(0)`; its shape says nothing."""
    head = student.get_output_embeddings()
    full = head.weight

    class PartitionedHead(torch.nn.Linear):
        def forward(self, x):  # the gathered weight, as ZeRO-3's pre-forward hook provides it
            return torch.nn.functional.linear(x, full)

    placeholder = PartitionedHead(head.in_features, head.out_features, bias=False)
    placeholder.weight = torch.nn.Parameter(torch.empty(0), requires_grad=False)
    monkeypatch.setattr(student, "get_output_embeddings", lambda: placeholder)
    monkeypatch.setitem(rlt.reward.logprobs.LOGIT_BUDGET, "cpu", 3 * head.out_features)  # 3 rows per head chunk
    (seq,) = _sequences(tokenizer)[1:2]
    (got,) = span_logprobs(student, [seq], [[(1, len(seq))]], temperature=0.7)[0]
    torch.testing.assert_close(got, reference_logprobs(student, seq, (1, len(seq)), 0.7), atol=1e-5, rtol=0)


def test_logit_scale_follows_each_architecture_s_convention():
    from types import SimpleNamespace

    from rlt.reward.logprobs import logit_scale

    def model(model_type="llama", **fields):
        config = SimpleNamespace(model_type=model_type, **fields)
        config.get_text_config = lambda: config
        return SimpleNamespace(config=config)

    assert logit_scale(model()) == 1.0
    assert logit_scale(model("cohere", logit_scale=0.0625)) == 0.0625
    assert logit_scale(model("granite", logits_scaling=8.0)) == 0.125  # divides
    assert logit_scale(model("hyperclovax", logits_scaling=8.0)) == 8.0  # multiplies
    assert logit_scale(model("falcon_h1", lm_head_multiplier=0.5)) == 0.5
