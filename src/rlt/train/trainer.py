"""Teacher RL: TRL's GRPOTrainer with the RLT reward (spec §3).

`RLTGRPOTrainer` is a thin subclass. It places the frozen student the way TRL places its reference model, and
hands the reward the trainer's own tensors: the prompt ids TRL generated from and the policy's per-token
log-probs of each sampled completion, computed by TRL's log-prob head at the sampling temperature. Nothing is
re-tokenised from decoded text. GRPO loss, sampling, vLLM, reference sync, DDP / ZeRO / FSDP, checkpointing and
logging are TRL's.

The seam with TRL (pinned at 1.16.0; read these first at the next upgrade). `RLTGRPOTrainer` overrides four private
methods of `GRPOTrainer` and relies on their call order within one step: `_generate` (the prompt ids, before the
rewards), `_generate_and_score_completions` (one step's sampling and scoring), `_get_per_token_logps_and_entropies`
(the policy's log-probs) and `_calculate_rewards`. When TRL computes the policy's log-probs itself before the
rewards (`old_per_token_logps`: generation spans several optimiser steps, or vLLM importance sampling), the KL reuses
them instead of a second forward; `_generate_and_score_completions` copies TRL's condition for that, and the first
no-grad policy forward after it is taken as those log-probs. Guards: `tests/test_scale.py`
(`test_the_kl_reuses_the_log_probs_trl_already_computed`: one policy forward, not two, and rewards equal offline
scores; `test_log_probs_trl_masked_for_truncation_are_not_reused`), and the assertion in `_calculate_rewards` that
`_generate` ran first. If TRL changes the condition or the order, these tests fail; deleting the capture costs one
policy forward per step in those settings (BENCHMARKS §2 has its share of a step) and changes no reward.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import asdict
from pathlib import Path

import torch
from datasets import Dataset
from transformers.trainer_utils import get_last_checkpoint
from trl import GRPOTrainer, ModelConfig, get_peft_config
from trl.models import prepare_deepspeed, unwrap_model_for_generation
from trl.trainer.utils import nanstd, pad

from rlt.configs import DataArguments, FormatArguments, RewardArguments, RLTGRPOConfig
from rlt.data import Problem
from rlt.models import load_model
from rlt.provenance import model_identity
from rlt.records import recover_jsonl, write_rows
from rlt.reward import RewardConfig, RLTReward
from rlt.reward.align import encode
from rlt.reward.formats import TagStyle, teacher_prompt
from rlt.reward.logprobs import eval_mode
from rlt.reward.students import Student, build_reward, student_rewards
from rlt.train.runs import check_positions, check_run, model_dtype, require_vllm, skip_finished, train_and_save

logger = logging.getLogger(__name__)


def rl_dataset(problems: list[Problem], tokenizer, style: TagStyle | str) -> Dataset:
    """One row per problem: the teacher prompt for TRL, and the columns the reward reads."""
    return Dataset.from_list(
        [
            {
                "prompt": teacher_prompt(tokenizer, p.question, p.solution, style),
                "question": p.question,
                "solution": p.solution,
            }
            for p in problems
        ]
    )


def dropout_active(model: torch.nn.Module) -> bool:
    """Whether a forward of `model` as it is now is random: in train mode with a dropout module (LoRA's included) or
    a config dropout rate above 0."""
    if not model.training:
        return False
    if any(isinstance(m, torch.nn.Dropout) and m.p > 0 for m in model.modules()):
        return True
    # each config once: a model's layers share one object, and this runs every generation step
    configs = {id(m.config): m.config for m in model.modules() if hasattr(getattr(m, "config", None), "to_dict")}
    rates = [v for c in configs.values() for k, v in c.to_dict().items() if "dropout" in k or "pdrop" in k]
    return any(isinstance(v, float) and v > 0 for v in rates)


@contextmanager
def whole_weights():
    """Load a model whole even inside a ZeRO-3 run, where transformers would partition it as it loads."""
    from transformers.integrations import deepspeed as hf_deepspeed

    saved = hf_deepspeed._hf_deepspeed_config_weak_ref
    hf_deepspeed.unset_hf_deepspeed_config()
    try:
        yield
    finally:
        hf_deepspeed._hf_deepspeed_config_weak_ref = saved


class ChatGRPOTrainer(GRPOTrainer):
    """GRPO on prompts that are rendered chats (teacher prompts, student prompts), tokenised as they are."""

    def _tokenize_prompts(self, prompts: list[str]):
        # TRL adds the tokenizer's special tokens to string prompts: a second BOS after the one a Llama-style chat
        # template writes. The prompts are rendered chats; every rlt stage tokenises them as they are.
        return [encode(self.processing_class, prompt) for prompt in prompts], None, {}


#: How far below its group's lowest scored reward an unscoreable completion is placed.
UNSCOREABLE_MARGIN = 1.0


def rank_unscoreable_last(rewards: torch.Tensor, group_size: int, margin: float = UNSCOREABLE_MARGIN) -> torch.Tensor:
    """Rewards of one reward function over whole groups (consecutive `group_size` rows), with each missing one (NaN:
    a completion the reward could not score) set to its group's lowest scored reward minus `margin`.

    A failure must never look good. TRL would leave it out of the baseline with advantage 0, neutral; the floor
    reward, a fixed number, can sit above a group's scored rewards (an explanation the student finds harder than no
    explanation at all). Placed below its group, it gets the group's most negative advantage: with `scale_rewards`
    "group" the advantages are (r − mean) / std within the group, so the margin sets how far below, not whether.
    A group with nothing scored gets one value throughout, hence advantage 0 (there is nothing to rank it against):
    the batch's lowest scored reward minus `margin`, so that logged means are not lifted by it (0 if nothing at all
    was scored).
    """
    groups = rewards.reshape(-1, group_size)
    missing = torch.isnan(groups)
    lowest = torch.where(missing, torch.inf, groups).min(dim=1, keepdim=True).values
    batch_lowest = lowest.min()
    lowest = torch.where(torch.isinf(lowest), batch_lowest if torch.isfinite(batch_lowest) else margin, lowest)
    return torch.where(missing, (lowest - margin).expand_as(groups), groups).reshape(rewards.shape)


class RLTGRPOTrainer(ChatGRPOTrainer):
    """GRPO on a teacher, rewarded by a frozen student's understanding of the solution: `student` is a model (with
    `student_tokenizer`, default the teacher's), or several `rlt.reward.students.Student`s whose rewards are
    averaged."""

    def __init__(
        self,
        model,
        student: torch.nn.Module | Sequence[Student],
        args: RLTGRPOConfig,
        train_dataset: Dataset,
        processing_class,
        reward_config: RewardConfig | None = None,
        style: TagStyle | str = "stratos",
        peft_config=None,
        callbacks=None,
        student_tokenizer=None,
    ):
        # The KL reads the policy's log-probs at the sampling temperature: the config must say so, not be overridden.
        reward_config = reward_config or RewardConfig(teacher_temperature=args.temperature)
        if reward_config.teacher_temperature != args.temperature:
            raise ValueError(f"the reward's teacher temperature ({reward_config.teacher_temperature}) must be the "
                             f"sampling temperature ({args.temperature}): build it with "
                             "RewardArguments.reward_config(config.temperature)")  # fmt: skip
        if isinstance(student, Sequence) and student_tokenizer is not None:
            raise ValueError("several students carry their own tokenizers (Student.tokenizer): no student_tokenizer")
        students = list(student) if isinstance(student, Sequence) else [Student("student", student, student_tokenizer)]
        self.rlt_reward = build_reward(students, processing_class, config=reward_config, style=style)
        super().__init__(
            model=model,
            reward_funcs=[self.rlt_reward],
            args=args,
            train_dataset=train_dataset,
            processing_class=processing_class,
            peft_config=peft_config,
            callbacks=callbacks,
        )
        for reward in student_rewards(self.rlt_reward):
            reward.student = self._place_student(reward, args)
        rank = self.accelerator.process_index
        name = "completions.jsonl" if rank == 0 else f"completions.rank{rank}.jsonl"
        self._samples_path = Path(args.output_dir) / name
        self._trl_policy_logprobs: torch.Tensor | None = None
        self._awaiting_trl_policy_logprobs = False
        self._generated_prompt_ids: list[list[int]] | None = None
        self._scored_rewards: torch.Tensor | None = None  # this step's rewards before the fill, NaN where unscoreable

    def train(self, resume_from_checkpoint: str | None = None, **kwargs):
        # Resumed from checkpoint-N (or started over: N = 0), the run samples steps N, N+1, ... again: rows that a
        # killed run wrote for them go, so that completions.jsonl holds each step once.
        start = 0
        if resume_from_checkpoint is True:  # transformers' "the newest checkpoint in output_dir"
            resume_from_checkpoint = get_last_checkpoint(self.args.output_dir)
        if resume_from_checkpoint:
            state = json.loads((Path(resume_from_checkpoint) / "trainer_state.json").read_text(encoding="utf-8"))
            start = state["global_step"]
        rows = recover_jsonl(self._samples_path)  # a torn last line (a kill mid-write) is cut off first
        kept = [row for row in rows if row["step"] < start]
        if len(kept) < len(rows):
            write_rows(self._samples_path, kept)
        return super().train(resume_from_checkpoint=resume_from_checkpoint, **kwargs)

    def _place_student(self, reward: RLTReward, args: RLTGRPOConfig):
        """A frozen student where it computes (every student alike); see README "GPUs" for what each placement costs
        in memory.

        By default a whole copy on every device, under DDP, ZeRO and FSDP alike: its forwards then need no other
        rank, so ranks whose samples differ in length or in how many can be scored never wait on each other.
        `shard_student` (ZeRO-3) partitions it like the policy and gathers it whole once per scoring call: one
        collective that every rank makes exactly once, whatever its inputs. `offload_student` keeps it in CPU
        memory and streams each layer in for its forward.
        """
        student = reward.student
        if args.shard_student:  # under ZeRO-3, which RLTGRPOConfig checked
            engine = prepare_deepspeed(student, self.accelerator)
            reward.student_access = lambda: unwrap_model_for_generation(engine, self.accelerator)
            return engine
        if args.offload_student:
            from accelerate import cpu_offload

            return cpu_offload(student, execution_device=self.accelerator.device)
        return student.to(self.accelerator.device)

    def _timed(self, name: str, fn, *args):
        """Run fn and log its seconds as `rlt/seconds_<name>`: where a step's time goes, in every log."""
        start = time.perf_counter()
        result = fn(*args)
        self._metrics["train" if self.model.training else "eval"][f"rlt/seconds_{name}"].append(
            time.perf_counter() - start
        )
        return result

    def _generate(self, prompts):
        output = self._timed("generation", super()._generate, prompts)
        self._generated_prompt_ids = output[0]  # the ids TRL generated from: the reward reads these, not a re-encoding
        return output

    def _generate_and_score_completions(self, inputs):
        # TRL computes the policy's log-probs of the completions itself when it needs them for importance sampling
        # (`old_per_token_logps`, the first policy forward below, before the rewards): the KL term reuses them
        # when they are what it would compute, i.e. when no dropout makes a train-mode forward random.
        generate_every = self.args.steps_per_generation * self.num_iterations
        trl_computes = self.args.gradient_accumulation_steps % generate_every != 0 or (
            self.use_vllm and self.vllm_importance_sampling_correction
        )
        # Not with mask_truncated_completions: TRL then masks out truncated rows, whose log-probs come back as 0.
        reusable = not dropout_active(self.model) and not self.mask_truncated_completions
        self._awaiting_trl_policy_logprobs = trl_computes and reusable
        self._trl_policy_logprobs = None
        self._scored_rewards = None
        try:
            output = super()._generate_and_score_completions(inputs)
        finally:
            self._awaiting_trl_policy_logprobs, self._trl_policy_logprobs = False, None
        self._log_scored_rewards_only()
        return output

    def _log_scored_rewards_only(self) -> None:
        """TRL logs the mean and spread of the rewards it was given, fills and all: the step's logged `reward`,
        `reward_std` and the function's own mean and std are recomputed over the scored completions alone."""
        scored = self._scored_rewards
        if scored is None or not torch.isnan(scored).any():
            return
        metrics = self._metrics["train" if self.model.training else "eval"]
        name, weight = self.reward_func_names[0], self.reward_weights[0].item()
        metrics[f"rewards/{name}/mean"][-1] = torch.nanmean(scored).item()
        metrics[f"rewards/{name}/std"][-1] = nanstd(scored).item()
        if len(self.reward_funcs) == 1:  # else the total holds other functions' rewards too
            metrics["reward"][-1] = torch.nanmean(weight * scored).item()
            metrics["reward_std"][-1] = nanstd(weight * scored).item()

    def _get_per_token_logps_and_entropies(self, model, *args, **kwargs):
        result = super()._get_per_token_logps_and_entropies(model, *args, **kwargs)
        if self._awaiting_trl_policy_logprobs and model is self.model and not torch.is_grad_enabled():
            self._trl_policy_logprobs, self._awaiting_trl_policy_logprobs = result[0], False
        return result

    def _policy_completion_logprobs(self, completion_ids: list[list[int]]) -> list[torch.Tensor]:
        """Per-token log-probs of each sampled completion under the current policy, at the sampling temperature,
        with dropout off (a reward must not be noisy): TRL's own when it already computed them."""
        if self._trl_policy_logprobs is not None:
            logps = self._trl_policy_logprobs
        else:
            device = self.accelerator.device
            pad_id = self.processing_class.pad_token_id
            prompts = [torch.tensor(ids) for ids in self._generated_prompt_ids]
            completions = [torch.tensor(ids) for ids in completion_ids]
            prompt_ids = pad(prompts, padding_value=pad_id, padding_side="left")
            prompt_mask = pad([torch.ones_like(p) for p in prompts], padding_value=0, padding_side="left")
            completion_tensor = pad(completions, padding_value=pad_id, padding_side="right")
            completion_mask = pad([torch.ones_like(c) for c in completions], padding_value=0, padding_side="right")
            with eval_mode(self.model), torch.no_grad():
                logps, _, _ = self._get_per_token_logps_and_entropies(
                    self.model,
                    torch.cat([prompt_ids, completion_tensor], dim=1).to(device),
                    torch.cat([prompt_mask, completion_mask], dim=1).to(device),
                    completion_tensor.size(1),
                    batch_size=self.args.per_device_train_batch_size,
                )
        return [row[: len(c)].float().cpu() for row, c in zip(logps, completion_ids, strict=True)]

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        # TRL calls `_generate` (which records the prompt ids) before this in every step; say so if that changes.
        assert self._generated_prompt_ids is not None and len(self._generated_prompt_ids) == len(completion_ids_list), (
            "the rewards need the prompt ids of this step's generation: TRL no longer calls _generate first"
        )
        if self.rlt_reward.config.uses_teacher_logprobs:
            teacher_logprobs = self._timed("teacher_logprobs", self._policy_completion_logprobs, completion_ids_list)
        else:  # the KL term does not read them: no forward for them
            teacher_logprobs = [torch.zeros(len(ids)) for ids in completion_ids_list]
        for example, ids, logprobs in zip(inputs, self._generated_prompt_ids, teacher_logprobs, strict=True):
            example["prompt_ids"] = ids
            example["teacher_logprobs"] = logprobs
        calculate = super()._calculate_rewards
        rewards = self._timed("student_scoring", calculate, inputs, prompts, completions, completion_ids_list)
        # Gathered over every process, so whole groups are here even when a group's completions span ranks.
        group_size = self.num_generations if self.model.training else self.num_generations_eval
        self._scored_rewards = rewards[:, 0].clone()  # NaN where the reward could not score: kept out of the logs
        rewards[:, 0] = rank_unscoreable_last(rewards[:, 0], group_size)
        self._append_samples(inputs, completions, completion_ids_list, self._scored_rewards, rewards[:, 0])
        return rewards

    def _append_samples(self, inputs, completions, completion_ids, scored: torch.Tensor, ranked: torch.Tensor) -> None:
        """A few completions per step with their rewards, for reading what the teacher writes (one file per rank). A
        completion the reward could not score has reward None, and the reward it was ranked with for its advantage
        beside it (`rank_unscoreable_last`)."""
        count = self.args.completion_samples_per_step
        if not count:
            return
        offset = self.accelerator.process_index * len(completions)  # rewards are gathered across processes
        self._samples_path.parent.mkdir(parents=True, exist_ok=True)
        with self._samples_path.open("a", encoding="utf-8") as f:
            for i in range(min(count, len(completions))):
                record = {
                    "step": self.state.global_step,
                    "question": inputs[i]["question"],
                    "solution": inputs[i]["solution"],
                    "completion": completions[i],
                    "prompt_ids": list(self._generated_prompt_ids[i]),
                    "completion_ids": list(completion_ids[i]),
                    "reward": None if torch.isnan(scored[offset + i]) else scored[offset + i].item(),
                }
                if record["reward"] is None:
                    record["unscoreable"] = "the reward could not score it: ranked below its group's scored ones"
                    record["ranked_as"] = ranked[offset + i].item()
                f.write(json.dumps(record, ensure_ascii=False) + "\n")


def run_train(
    model_args: ModelConfig,
    data_args: DataArguments,
    format_args: FormatArguments,
    reward_args: RewardArguments,
    config: RLTGRPOConfig,
    callbacks: list | None = None,
) -> RLTGRPOTrainer | None:
    """Teacher RL as `rlt train` runs it; `callbacks` (transformers `TrainerCallback`s) join the trainer's, e.g. to
    stop at a wall-clock limit. None when output_dir already holds this run, finished."""
    require_vllm(config)
    reward_config = reward_args.reward_config(config.temperature)
    train, held_out, skipped = data_args.load()
    style = format_args.tag_style(train)
    check_run(
        config,
        "teacher RL",
        {
            "model": model_identity(model_args.model_name_or_path),
            "data": data_args.recorded(held_out),
            "style": style.identity,
            "student": reward_args.student_identity(),
            "reward": asdict(reward_config),
        },
        # kept on record, not compared: `rlt inspect` rescores the run's samples with them
        teacher_spec=model_args.model_name_or_path,
        student_spec=reward_args.student,
        student_weights=reward_args.student_weights,
    )
    if skip_finished(config):
        return None
    dtype = model_dtype(model_args, config)
    # Two separate models even when both specs are the same: the policy trains, the student must stay frozen.
    teacher, tokenizer = load_model(model_args.model_name_or_path, dtype, "cpu", config.trust_remote_code)
    # A replicated student loads whole even in a ZeRO-3 run; a sharded one is partitioned as it loads.
    with nullcontext() if config.shard_student else whole_weights():
        students = reward_args.load_students(lambda spec: load_model(spec, dtype, "cpu", config.trust_remote_code))
    logger.info("RL on %d problems (%d invalid rows skipped)", len(train), skipped)
    dataset = rl_dataset(train, tokenizer, style)
    check_positions(teacher, tokenizer, dataset["prompt"], config.max_completion_length)
    trainer = RLTGRPOTrainer(
        model=teacher,
        student=students,
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        reward_config=reward_config,
        style=style,
        peft_config=get_peft_config(model_args),
        callbacks=callbacks,
    )
    train_and_save(trainer, tokenizer)
    return trainer
