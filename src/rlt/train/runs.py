"""What every training command shares: the dtype to load in, resuming, refusing to resume another run, skipping a
finished one, and saving a plain model at the end (teacher warm-up and RL, student distillation and RL)."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path

import torch
from accelerate.utils import DistributedType
from transformers.trainer_utils import get_last_checkpoint
from trl import ModelConfig

from rlt.errors import UsageError
from rlt.provenance import check_settings, describe, write_record

logger = logging.getLogger(__name__)


def model_dtype(model_args: ModelConfig, config) -> torch.dtype:
    """The dtype to load a trained model in: the model args' when set, else bf16 when training in bf16, else fp32."""
    if model_args.dtype not in (None, "auto"):
        return getattr(torch, model_args.dtype)
    return torch.bfloat16 if config.bf16 else torch.float32


RUN_RECORD = "rlt_provenance.json"


def last_checkpoint(config) -> str | None:
    """The checkpoint to resume from: the newest in output_dir when `resume` is set."""
    if not config.resume or not Path(config.output_dir).is_dir():
        return None
    checkpoint = get_last_checkpoint(config.output_dir)
    if checkpoint:
        logger.info("resuming from %s", checkpoint)
    return checkpoint


def finished_step(config) -> int | None:
    """The step a finished run in output_dir reached, when it reached this config's max_steps; else None.

    A finished run has a saved model and its trainer state beside it (`train_and_save`). Resuming it would train past
    max_steps and overwrite the model, so a rerun with `resume` is a no-op; a larger --max_steps continues it.
    """
    out = Path(config.output_dir)
    state_path = out / "trainer_state.json"
    if not (config.resume and state_path.exists() and (out / "config.json").exists()):
        return None
    state = json.loads(state_path.read_text())
    target = config.max_steps if config.max_steps > 0 else state.get("max_steps", 0)
    return state["global_step"] if state.get("global_step", 0) >= target else None


#: The training arguments that shape what a run learns, recorded with the model, data and reward each command
#: names: a rerun into the run's output_dir with other values is refused. Not max_steps: a larger one continues a
#: finished run (a run trained by epochs too: give it --max_steps past its last step).
TRAINING_SETTINGS = (
    "learning_rate", "lr_scheduler_type", "warmup_ratio", "warmup_steps", "weight_decay", "optim", "adam_beta1",
    "adam_beta2", "adam_epsilon", "max_grad_norm", "num_train_epochs", "per_device_train_batch_size",
    "gradient_accumulation_steps", "seed", "bf16", "fp16", "max_length", "completion_only_loss", "num_generations",
    "max_completion_length", "temperature", "top_p", "beta", "loss_type", "scale_rewards", "num_iterations",
    "epsilon", "reward_weights",
)  # fmt: skip


def check_run(config, kind: str, settings: dict, **recorded) -> None:
    """Refuse to resume (or skip as finished) a run in output_dir that other settings produced, also one killed before
    its first checkpoint that left samples; then record this run's in output_dir/rlt_provenance.json (with
    `recorded`, kept on record but not compared). A start that failed before training left nothing to protect: its
    record is replaced."""
    out = Path(config.output_dir)
    training = {name: getattr(config, name) for name in TRAINING_SETTINGS if hasattr(config, name)}
    record, provenance = out / RUN_RECORD, describe(kind, {**settings, "training": training}, **recorded)
    started = out.is_dir() and bool(get_last_checkpoint(str(out)) or (out / "trainer_state.json").exists()
                                    or any(out.glob("completions*.jsonl")))  # fmt: skip
    if config.resume and started:
        if record.exists():
            remedy = "use another --output_dir, or --resume false to train it over"
            check_settings(record, provenance, f"the run in {out}", remedy)
        else:  # a checkpoint copied on its own, or an older rlt's run: nothing to compare with
            logger.warning("%s has no %s: resuming without checking what produced it", out, RUN_RECORD)
    if config.process_index == 0:
        write_record(record, provenance)


def skip_finished(config) -> bool:
    """Say so and skip when output_dir already holds this run, finished."""
    step = finished_step(config)
    if step is not None:
        logger.warning("%s already holds a finished run (step %d): nothing to do (--resume false trains it again)",
                       config.output_dir, step)  # fmt: skip
    return step is not None


def train_and_save(trainer, tokenizer) -> None:
    """Train (from the last checkpoint when resuming), then save a plain, loadable model (LoRA merged) with its
    tokenizer and the log history in output_dir."""
    check_launch(trainer.accelerator)
    trainer.train(resume_from_checkpoint=last_checkpoint(trainer.args))
    trainer.save_state()
    model = trainer.accelerator.unwrap_model(trainer.model)
    main = trainer.accelerator.is_main_process
    if zero3(trainer):
        save_partitioned(model, trainer.args.output_dir, main)
    elif hasattr(model, "merge_and_unload"):
        if main:
            model.merge_and_unload().save_pretrained(trainer.args.output_dir, safe_serialization=True)
    else:  # whole weights, or FSDP's shards, which transformers gathers
        trainer.save_model(trainer.args.output_dir)
    if main:
        tokenizer.save_pretrained(trainer.args.output_dir)
    trainer.accelerator.wait_for_everyone()  # a next stage may read the model as soon as any rank returns


def save_partitioned(model, output_dir: str, main: bool) -> None:
    """Save a ZeRO-3 model whole from rank 0, never holding more of it whole at once than one module's weights.

    Under ZeRO-3 each rank holds a slice of every weight and the module an empty placeholder, which a plain save
    would write. Gathering the whole model at once would put all of it on every rank (15 GB per GPU for a 7B in
    bf16, on top of the optimizer state), so each module's own weights are gathered in turn, copied to rank 0's CPU
    memory and released, as DeepSpeed's own 16-bit save does. A LoRA adapter is merged the same way, one layer at a
    time, before the adapters are dropped. Every rank must enter: each gather is a collective."""
    import deepspeed

    if hasattr(model, "merge_and_unload"):
        from peft.tuners.lora import LoraLayer

        for module in model.modules():
            if isinstance(module, LoraLayer):
                with deepspeed.zero.GatheredParameters(list(module.parameters()), modifier_rank=0):
                    module.merge()  # every rank the same sum; rank 0's is partitioned back
        model = model.unload()
    # one gather per module, in the same order on every rank; a weight two modules share (tied embeddings) once
    copies: dict[int, torch.Tensor | None] = {}
    peak = 0
    for module in model.modules():
        own = [p for p in module.parameters(recurse=False) if id(p) not in copies]
        if not own:
            continue
        peak = max(peak, sum(p.ds_numel for p in own))
        with deepspeed.zero.GatheredParameters(own, modifier_rank=None):
            for p in own:
                copies[id(p)] = p.detach().to("cpu", copy=True) if main else None
    if main:
        state = model.state_dict()  # the keys and buffers; placeholders for the weights, replaced by the copies
        state.update({name: copies[id(p)] for name, p in model.named_parameters(remove_duplicate=False)})
        model.save_pretrained(output_dir, state_dict=state, safe_serialization=True)
        total = sum(p.ds_numel for p in model.parameters())
        logger.info("saved the ZeRO-3 model one module at a time: at most %d of its %d weights whole at once",
                    peak, total)  # fmt: skip


#: What `accelerate launch` sets when its config asks for DeepSpeed or FSDP, and the distributed type each should give.
REQUESTED = {"ACCELERATE_USE_DEEPSPEED": DistributedType.DEEPSPEED, "ACCELERATE_USE_FSDP": DistributedType.FSDP}


def check_launch(accelerator) -> None:
    """Refuse a run that is not what its accelerate config asked for. accelerate turns FSDP on only where there are
    GPUs (or other accelerators): on CPU processes an FSDP config runs plain DDP without a word (README "GPUs")."""
    for variable, wanted in REQUESTED.items():
        if os.environ.get(variable, "false").lower() == "true" and accelerator.distributed_type != wanted:
            raise UsageError(f"the accelerate config asks for {wanted.value}, but accelerate runs "
                             f"{accelerator.distributed_type.value} ({accelerator.num_processes} processes): FSDP "
                             "needs GPUs under accelerate; on CPU processes use DeepSpeed (DS_ACCELERATOR=cpu, "
                             "README \"GPUs\")")  # fmt: skip


def zero3(trainer) -> bool:
    """Whether the trainer runs under DeepSpeed ZeRO-3, which partitions every weight across ranks."""
    return trainer.is_deepspeed_enabled and trainer.accelerator.state.deepspeed_plugin.zero_stage == 3


def check_positions(model, tokenizer, prompts: Iterable[str], max_completion_length: int) -> None:
    """Refuse a --max_completion_length that does not fit the model's positions after the longest prompt: past
    them a model with rotary positions does not fail, it writes from positions it never saw."""
    limit, prompts = getattr(model.config, "max_position_embeddings", None), list(prompts)
    if limit is None or not prompts:
        return
    lengths = [len(ids) for ids in tokenizer(prompts, add_special_tokens=False)["input_ids"]]
    over = sum(length + max_completion_length > limit for length in lengths)
    if over:
        raise UsageError(f"--max_completion_length {max_completion_length} does not fit the model's {limit} positions "
                         f"after {over} of the {len(prompts)} prompts (the longest is {max(lengths)} tokens): "
                         f"use at most {limit - max(lengths)}, or leave out the longest questions")  # fmt: skip


def require_vllm(config) -> None:
    """Refuse --use_vllm without vLLM now: TRL would fail only after loading the models."""
    if config.use_vllm and importlib.util.find_spec("vllm") is None:
        raise UsageError("--use_vllm true needs vLLM: pip install -e '.[vllm]' on a machine with a CUDA GPU")
