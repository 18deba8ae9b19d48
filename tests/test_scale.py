"""The paths a run takes at scale (placement of the frozen student, the policy's log-probs for the KL), reproduced
on the CPU with tiny models."""

import json
import math
from contextlib import contextmanager

import pytest
import torch

from rlt.configs import RLTGRPOConfig
from rlt.data import Problem
from rlt.reward import RewardConfig, RLTReward
from rlt.testing import tiny_model, tiny_tokenizer
from rlt.train.trainer import RLTGRPOTrainer, dropout_active, rl_dataset, whole_weights

PROBLEMS = [Problem(f"What is {i} + {i + 1}?", f"{i} + {i + 1} = {2 * i + 1}.", str(2 * i + 1)) for i in range(8)]
END = "\n\n<|end_of_explanation|>"


def trainer_for(tmp_path, teacher=None, reward_config=None, **config) -> RLTGRPOTrainer:
    tokenizer = tiny_tokenizer()
    settings = dict(output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=4, num_generations=4,
                    max_completion_length=12, report_to="none", activation_checkpointing=False, logging_steps=1,
                    learning_rate=1e-3, save_strategy="no", seed=0) | config  # fmt: skip
    return RLTGRPOTrainer(teacher or tiny_model(1), tiny_model(0), RLTGRPOConfig(**settings),
                          rl_dataset(PROBLEMS, tokenizer, "stratos"), tokenizer, reward_config)  # fmt: skip


def offline_rewards(trainer, path) -> list[tuple[float, float]]:
    """(reward the trainer logged, rlt's offline score of the same ids) for each recorded completion."""
    samples = [json.loads(line) for line in path.read_text().splitlines()]
    reward = RLTReward(tiny_model(0), tiny_tokenizer(), teacher=tiny_model(1), config=trainer.rlt_reward.config)
    pairs = []
    for s in samples:
        aligned = reward.align_ids(s["question"], s["solution"], s["prompt_ids"], s["completion_ids"])
        pairs.append((math.nan if s["reward"] is None else s["reward"], reward.score([aligned])[0].reward))
    return pairs


# ---------------------------------------------------------------------------------------- the frozen student


def test_scoring_makes_one_collective_call_per_rank_whatever_its_inputs(student, teacher, tokenizer):
    """Under ZeRO-3 with --shard_student, `student_access` gathers the student: a collective every rank must enter
    equally often. Two ranks with unequal inputs (many micro-batches of long samples; one unscoreable sample) each
    enter it exactly once per call, and no student forward runs outside it."""
    long = "step " * (student.config.max_position_embeddings + 10) + END
    rank_inputs = {
        0: [{"question": f"Q{i}", "solution": "S " * (5 + 20 * i), "explanation": "why " * (3 + 7 * i) + END}
            for i in range(5)],
        1: [{"question": "Q", "solution": "S", "explanation": long}],
    }  # fmt: skip
    inside, entries, forwards = [False], {}, {True: 0, False: 0}

    def guard(*_):
        forwards[inside[0]] += 1

    # span_logprobs runs the decoder and the LM head, never student.forward: watch both
    hooks = [m.register_forward_pre_hook(guard) for m in (student.get_decoder(), student.get_output_embeddings())]
    try:
        for rank, rows in rank_inputs.items():
            reward = RLTReward(student, tokenizer, teacher, RewardConfig(token_budget=64))

            @contextmanager
            def gathered(rank=rank, reward=reward):
                entries[rank] = entries.get(rank, 0) + 1
                inside[0] = True
                try:
                    yield reward.student
                finally:
                    inside[0] = False

            reward.student_access = gathered
            scored, _ = reward.score_texts(rows)
            assert len(scored) == len(rows)
    finally:
        for hook in hooks:
            hook.remove()
    assert entries == {0: 1, 1: 1}
    assert forwards[True] > 0 and forwards[False] == 0  # the hooks see the forwards, and all are inside
    assert not scored[0].aligned  # rank 1 forwarded nothing, and still entered once


def test_an_offloaded_student_trains_and_scores_as_the_whole_one(tmp_path):
    trainer = trainer_for(tmp_path, offload_student=True)
    assert next(trainer.rlt_reward.student.parameters()).device.type == "meta"
    trainer.train()
    pairs = offline_rewards(trainer, tmp_path / "completions.jsonl")
    assert pairs and all(abs(logged - offline) <= 1e-4 for logged, offline in pairs)


def test_student_placements_that_cannot_work_are_refused_before_any_model_loads(tmp_path):
    """The config refuses them (before: the trainer did, after both models had loaded)."""
    with pytest.raises(ValueError, match="shard_student true partitions the student with DeepSpeed ZeRO-3"):
        RLTGRPOConfig(output_dir=str(tmp_path), shard_student=True)
    with pytest.raises(ValueError, match="--shard_student and --offload_student both place the student"):
        RLTGRPOConfig(output_dir=str(tmp_path), shard_student=True, offload_student=True)


def test_the_student_loads_whole_inside_a_zero3_run():
    from transformers.integrations import deepspeed as hf_deepspeed

    class Zero3Config:
        def is_zero3(self):
            return True

    config = Zero3Config()
    hf_deepspeed.set_hf_deepspeed_config(config)
    try:
        assert hf_deepspeed.is_deepspeed_zero3_enabled()
        with whole_weights():
            assert not hf_deepspeed.is_deepspeed_zero3_enabled()  # from_pretrained would not partition here
        assert hf_deepspeed.is_deepspeed_zero3_enabled()
    finally:
        hf_deepspeed.unset_hf_deepspeed_config()


# ------------------------------------------------------------------------------------ the policy's log-probs


def test_the_kl_reads_the_policy_without_dropout(tmp_path):
    """LoRA dropout (or any) in train mode would make the reward of one completion random."""
    teacher = tiny_model(1)
    teacher.config.attention_dropout = 0.5
    for module in teacher.modules():  # attention layers copy the rate when built
        if hasattr(module, "attention_dropout"):
            module.attention_dropout = 0.5
    trainer = trainer_for(tmp_path, teacher=teacher)
    trainer.model.train()
    assert dropout_active(trainer.model)
    tokenizer = tiny_tokenizer()
    trainer._generated_prompt_ids = [tokenizer("<|im_start|>user\nWhat is 1 + 2?<|im_end|>\n")["input_ids"]] * 2
    completions = [tokenizer("1 + 2 = 3." + END)["input_ids"], tokenizer("Add them." + END)["input_ids"]]
    first, second = trainer._policy_completion_logprobs(completions), trainer._policy_completion_logprobs(completions)
    assert trainer.model.training  # restored
    trainer.model.eval()
    reference = trainer._policy_completion_logprobs(completions)
    for a, b, c in zip(first, second, reference, strict=True):
        assert torch.equal(a, b)
        torch.testing.assert_close(a, c, atol=1e-6, rtol=0)


def _policy_forwards(trainer) -> list[int]:
    """Counts the no-grad policy forwards (TRL's and rlt's) while sampling and scoring."""
    calls = []
    original = RLTGRPOTrainer._get_per_token_logps_and_entropies

    def counted(self, model, *args, **kwargs):
        if model is self.model and not torch.is_grad_enabled():
            calls.append(1)
        return original(self, model, *args, **kwargs)

    trainer._get_per_token_logps_and_entropies = counted.__get__(trainer)
    return calls


def test_the_kl_reuses_the_log_probs_trl_already_computed(tmp_path):
    """With num_iterations 2, TRL computes the policy's log-probs for importance sampling before the rewards."""
    trainer = trainer_for(tmp_path, num_iterations=2)
    calls = _policy_forwards(trainer)
    trainer.train()
    assert len(calls) == 1  # one policy forward for the step's completions, not two
    pairs = offline_rewards(trainer, tmp_path / "completions.jsonl")
    assert pairs and all(abs(logged - offline) <= 1e-4 for logged, offline in pairs)


def test_log_probs_trl_masked_for_truncation_are_not_reused(tmp_path):
    """With mask_truncated_completions TRL's log-probs of a truncated completion are 0: the KL computes its own."""
    trainer = trainer_for(tmp_path, num_iterations=2, mask_truncated_completions=True, max_completion_length=4)
    calls = _policy_forwards(trainer)
    trainer.train()
    assert len(calls) == 2
    pairs = offline_rewards(trainer, tmp_path / "completions.jsonl")
    assert pairs and all(abs(logged - offline) <= 1e-4 for logged, offline in pairs)


def test_no_policy_forward_when_the_reward_does_not_read_it(tmp_path):
    trainer = trainer_for(tmp_path, reward_config=RewardConfig(kl_coeffs=(0.0, 0.0)))
    calls = _policy_forwards(trainer)
    trainer.train()
    assert calls == []
    history = [h for h in trainer.state.log_history if "rlt/reward" in h]
    assert history and "rlt/seconds_teacher_logprobs" not in history[0]
    pairs = offline_rewards(trainer, tmp_path / "completions.jsonl")
    assert pairs and all(abs(logged - offline) <= 1e-4 for logged, offline in pairs)


# ------------------------------------------------------------------------------------------ BOS-adding tokenizers


@pytest.fixture(scope="module")
def bos_tokenizer():
    """A Llama-style tokenizer: its chat template writes the BOS and its post-processor would add another."""
    import copy

    from tokenizers import processors

    tokenizer = copy.deepcopy(tiny_tokenizer())
    bos = tokenizer.bos_token
    tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", special_tokens=[(bos, tokenizer.bos_token_id)]
    )
    tokenizer.chat_template = "{{ bos_token }}" + tokenizer.chat_template
    assert tokenizer("x")["input_ids"][0] == tokenizer.bos_token_id  # it does add one
    return tokenizer


def _leading_bos(ids, tokenizer) -> int:
    return next(i for i, token in enumerate(ids) if token != tokenizer.bos_token_id)


def test_prompts_carry_one_bos_in_every_stage(bos_tokenizer, tmp_path):
    from rlt.reward.formats import teacher_prompt, teacher_text
    from rlt.train.sft import warmup_examples

    # the template's "<|im_start|>" BOS, then chatml's "<|im_start|>" role marker: two; a third is the added one
    problem = PROBLEMS[0]
    prompt = teacher_prompt(bos_tokenizer, problem.question, problem.solution)
    expected = 2
    reward = RLTReward(tiny_model(0), bos_tokenizer, teacher=tiny_model(1))
    assert _leading_bos(reward.encoded_prompt(prompt), bos_tokenizer) == expected
    (example,), _ = warmup_examples([problem], bos_tokenizer, "stratos", None)
    assert _leading_bos(example["input_ids"], bos_tokenizer) == expected
    text = teacher_text(bos_tokenizer, problem.question, problem.solution)
    assert example["input_ids"][: len(reward.encoded_prompt(text.prompt))] == list(reward.encoded_prompt(text.prompt))
    trainer = RLTGRPOTrainer(tiny_model(1), tiny_model(0), RLTGRPOConfig(output_dir=str(tmp_path), report_to="none",
                             per_device_train_batch_size=4, num_generations=4),
                             rl_dataset(PROBLEMS, bos_tokenizer, "stratos"), bos_tokenizer)  # fmt: skip
    (trainer_ids,), _, _ = trainer._tokenize_prompts([prompt])
    assert trainer_ids == list(reward.encoded_prompt(prompt))


# ------------------------------------------------------------------------------------ traces of failed samples


@pytest.mark.parametrize("failure", ["too long for the student", "ids that cannot be placed in their text"])
def test_a_trace_row_that_cannot_be_scored_keeps_its_explanation_without_the_eos(failure, monkeypatch):
    import rlt.reward.align
    from rlt.reward.align import encode
    from rlt.reward.formats import teacher_prompt
    from rlt.sampling.traces import _score_batch, row_keys

    tokenizer = tiny_tokenizer()
    student = tiny_model(0)
    if failure == "too long for the student":
        student.config.max_position_embeddings = 20
    else:
        monkeypatch.setattr(rlt.reward.align, "sampled_texts", lambda tokenizer, ids: [None] * len(ids))
    reward = RLTReward(student, tokenizer, teacher=tiny_model(1))
    problem = PROBLEMS[1]
    prompt = encode(tokenizer, teacher_prompt(tokenizer, problem.question, problem.solution))
    rows = []
    for completion in ("Add one to one and then two.", "Add one to one." + END):
        ids = [*encode(tokenizer, completion), tokenizer.eos_token_id]
        (row,) = _score_batch([problem], row_keys([problem]), [(0, 0)], [prompt], [(0, ids)], tiny_model(1), reward)
        rows.append(row)
    assert [r["aligned"] for r in rows] == [False, False]
    assert [r["explanation"] for r in rows] == ["Add one to one and then two.", "Add one to one.\n\n"]
    for row in rows:
        assert tokenizer.eos_token not in row["messages"][-1]["content"]


# --------------------------------------------------------------------------------- long generation, vLLM, dtypes


@pytest.fixture
def stand_in_vllm(monkeypatch):
    """A `vllm` module whose engine samples like vLLM's: a request with a seed draws from that seed alone."""
    import importlib.machinery
    import random
    import sys
    import types

    module = types.ModuleType("vllm")
    module.__spec__ = importlib.machinery.ModuleSpec("vllm", None)  # installed, as far as find_spec can tell

    class SamplingParams:
        def __init__(self, temperature, top_p, max_tokens, seed=None):
            self.temperature, self.top_p, self.max_tokens, self.seed = temperature, top_p, max_tokens, seed

    class LLM:
        def __init__(self, model, dtype, gpu_memory_utilization, seed):
            self.seed = seed

        def generate(self, prompts, params):
            params = params if isinstance(params, list) else [params] * len(prompts)
            outputs = []
            for _prompt, p in zip(prompts, params, strict=True):
                rng = random.Random(self.seed if p.seed is None else p.seed)
                ids = (
                    [rng.randrange(40, 200) for _ in range(p.max_tokens)] if p.temperature > 0 else [50] * p.max_tokens
                )
                outputs.append(types.SimpleNamespace(outputs=[types.SimpleNamespace(token_ids=ids)]))
            return outputs

    module.LLM, module.SamplingParams, module.TokensPrompt = (
        LLM,
        SamplingParams,
        lambda prompt_token_ids: prompt_token_ids,
    )
    monkeypatch.setitem(sys.modules, "vllm", module)
    return LLM


def test_vllm_samples_of_one_prompt_differ_and_reruns_repeat_them(stand_in_vllm, tmp_path):
    from rlt.sampling.generation import SamplingConfig, VLLMSampler
    from rlt.sampling.traces import collect_traces

    sampler = VLLMSampler("teacher-path", memory_share=0.5)
    sampling = SamplingConfig(max_new_tokens=8, temperature=0.7, batch_size=4)
    first = dict(sampler([[1, 2, 3]] * 4, sampling))
    assert len({tuple(ids) for ids in first.values()}) == 4  # four samples, not four copies of one
    assert dict(sampler([[1, 2, 3]] * 4, sampling)) == first
    reward = RLTReward(tiny_model(0), tiny_tokenizer(), teacher=tiny_model(1))
    rows = collect_traces(PROBLEMS[:2], reward.teacher, reward, tmp_path / "t.jsonl", sampling, num_samples=3,
                          sampler=sampler)  # fmt: skip
    for index in range(2):
        assert len({r["completion"] for r in rows if r["index"] == index}) == 3
    sampler.close()
    assert sampler.llm is None


def test_vllm_is_not_used_where_the_run_asks_for_the_cpu(stand_in_vllm, monkeypatch):
    from rlt.sampling.generation import vllm_usable

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert vllm_usable("auto", "cuda") and not vllm_usable("auto", "cpu") and not vllm_usable("false", "cuda")
    with pytest.raises(ValueError, match="--use_vllm true samples on a GPU; it contradicts --device cpu"):
        vllm_usable("true", "cpu")


def test_the_kv_cache_of_a_long_evaluation_is_computed_and_refused_where_it_cannot_fit(monkeypatch):
    import rlt.sampling.generation
    from rlt.sampling.generation import SamplingConfig, hf_generate, kv_cache_bytes

    qwen_7b = transformers_config("Qwen2Config", num_hidden_layers=28, num_attention_heads=28, num_key_value_heads=4,
                                  hidden_size=3584)  # fmt: skip
    need = kv_cache_bytes(qwen_7b, batch=64, tokens=32768 + 256, dtype=torch.bfloat16)
    assert need == 2 * 28 * 4 * 128 * 2 * 64 * (32768 + 256)
    assert 120 < need / 1e9 < 125  # the paper eval recipe's batch on transformers' generate
    model, tokenizer = tiny_model(0), tiny_tokenizer()
    per_sequence = kv_cache_bytes(model.config, 1, 3 + 1000, torch.float32)
    monkeypatch.setattr(rlt.sampling.generation, "free_memory", lambda device: 4 * per_sequence)
    with pytest.raises(ValueError, match=r"needs .* GiB of KV cache on cpu.*--use_vllm true"):
        list(hf_generate(model, tokenizer, [[1, 2, 3]] * 8, SamplingConfig(max_new_tokens=1000, batch_size=8)))
    assert (
        len(list(hf_generate(model, tokenizer, [[1, 2, 3]] * 8, SamplingConfig(max_new_tokens=2, batch_size=4)))) == 8
    )


def transformers_config(name: str, **fields):
    import transformers

    return getattr(transformers, name)(**fields)


def test_models_load_in_the_dtype_the_device_needs():
    from rlt.configs import DeviceArguments

    def _dtype(name: str, device: str) -> torch.dtype:
        return DeviceArguments(device=device, dtype=name).torch_dtype()

    assert _dtype("auto", "cpu") is torch.float32
    assert _dtype("bfloat16", "cpu") is torch.bfloat16
    with pytest.raises(ValueError, match="--dtype must be auto, float32, bfloat16 or float16"):
        _dtype("fp8", "cpu")
