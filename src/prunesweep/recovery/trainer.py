"""The recovery fine-tuning loop: LoRA (peft) or full fine-tuning of a pruned model, sparsity-preserving.

A plain torch loop rather than `transformers.Trainer`: the Trainer owns devices, logging, checkpointing and
mixed precision in ways that fight the runner (which owns W&B, checkpoints and the sparsity invariants), and
the mask re-application after every optimizer step is a single line here."""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from torch import nn
from transformers import PreTrainedTokenizerBase, get_scheduler
from transformers.pytorch_utils import Conv1D

from prunesweep.config.schema import RecoveryConfig
from prunesweep.recovery.data import IGNORE_INDEX, Example, build_datasets, check_dataset, collate
from prunesweep.recovery.distill import DistillLoss
from prunesweep.util.console import bar
from prunesweep.util.errors import PrunesweepError

log = logging.getLogger(__name__)

SCHEDULERS = {"linear": "linear", "cosine": "cosine", "constant": "constant_with_warmup"}  # -> transformers name


@dataclass
class RecoveryResult:
    train_losses: list[float]  # per optimizer step (mean over its micro-batches)
    val_loss_before: float | None  # token-mean NLL on the held-out slice; None without a slice
    val_loss_after: float | None  # ... of the returned (merged, re-masked) model
    seconds: float  # wall time of the whole stage (data, validation, training, merge)
    tokens_per_second: float  # non-padding training tokens per second of the training loop
    steps: int
    dataset: str = ""  # "<dataset>@<sha256 prefix>" or hub id
    train_tokens: int = 0


class RecoveryDiverged(RuntimeError):
    """A NaN/inf loss or gradient norm. LoRA adapters are removed unmerged (base weights untouched); after
    `full` fine-tuning the weights may be corrupt. Either way: record the reason, write no checkpoint."""


LossOf = Callable[[nn.Module, dict[str, torch.Tensor]], torch.Tensor]  # (trained model, batch) -> loss


def trained_params(cfg: RecoveryConfig) -> str:
    """What recovery trains: `lora` adapters or `full` weights (recovery=distill says so in `params`)."""
    return str(cfg.params if cfg.kind == "distill" else cfg.kind)


def check_recovery(cfg: RecoveryConfig, data_dir: str) -> None:
    """What the schema cannot say of `recovery.*` (its choices and ranges are checked with the settings), and
    its data located; one-line PrunesweepError, no heavy work."""
    distilled = cfg.kind == "distill"
    if distilled and (cfg.params is None or cfg.distill is None):
        raise PrunesweepError("recovery=distill needs recovery.params (lora | full) and recovery.distill settings")
    if not distilled and cfg.params is not None:
        raise PrunesweepError(
            f"recovery.params={cfg.params} applies to recovery=distill only (recovery={cfg.kind} names what it trains)"
        )
    if not distilled and cfg.distill is not None:
        raise PrunesweepError(f"recovery.distill applies to recovery=distill only, not recovery={cfg.kind}")
    if cfg.kind == "none":
        return
    if trained_params(cfg) == "lora" and not cfg.lora_targets:
        raise PrunesweepError("recovery.lora_targets must name at least one module")
    check_dataset(cfg.dataset, data_dir)


def recover(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    cfg: RecoveryConfig,
    data_dir: str,
    after_update: Callable[[nn.Module], None] | None = None,
    on_step: Callable[[int, float], None] | None = None,
    teacher: nn.Module | None = None,
) -> tuple[nn.Module, RecoveryResult]:
    """Fine-tune in place and return the merged plain model (LoRA merged via peft merge_and_unload, then
    after_update re-applies masks). kind=none returns immediately; kind=distill learns from the frozen `teacher`.

    `after_update` (the pruner's hook) also runs after every optimizer step of `full` fine-tuning, so pruned
    weights stay zero throughout. `on_step(step, loss)` is called after every optimizer step. The model is
    returned in eval mode with its `requires_grad` flags and `use_cache` restored; the global RNG is untouched."""
    if cfg.kind == "none":
        return model, RecoveryResult([], None, None, 0.0, 0.0, 0)
    check_recovery(cfg, data_dir)
    device = next(model.parameters()).device
    dtypes = {p.dtype for p in model.parameters()}
    if device.type == "cpu" and torch.float16 in dtypes:
        raise PrunesweepError("recovery on a float16 model on CPU is not supported (NaN-prone): use bfloat16/fp32")
    if cfg.dtype == "bfloat16" and device.type == "cpu":
        log.warning("bfloat16 recovery on CPU: without native bf16 units steps run ~15x slower than float32")
    params = trained_params(cfg)
    if params == "full" and torch.bfloat16 in dtypes:
        log.warning("full fine-tuning of bfloat16 weights: small updates round away; load the model in float32")
    if cfg.kind == "distill" and teacher is None:
        raise PrunesweepError("recovery=distill needs a teacher model")
    start = time.perf_counter()
    loss_of: LossOf = DistillLoss(teacher, model, cfg.distill) if cfg.kind == "distill" else _lm_loss
    data = build_datasets(cfg, tokenizer, data_dir)
    steps = _total_steps(cfg, len(data.train))
    autocast = cfg.dtype == "bfloat16"
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    requires_grad = [(p, p.requires_grad) for p in model.parameters()]
    use_cache = getattr(model.config, "use_cache", None)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(cfg.seed)  # LoRA init and dropout; data order has its own generator
        val_before = _val_loss(model, data.val, cfg.batch_size, pad_id, autocast)
        model.config.use_cache = False
        trained = _attach_lora(model, cfg) if params == "lora" else model
        if params == "full":
            for param in model.parameters():
                param.requires_grad_(True)
        try:
            losses, tokens, train_seconds = _train(
                trained,
                data.train,
                cfg,
                steps,
                pad_id,
                autocast,
                loss_of,
                after_update if params == "full" else None,
                on_step,
            )
        except RecoveryDiverged:
            if isinstance(trained, PeftModel):
                trained.unload()  # drop the adapters unmerged: the pruned base model is left as it was
            raise
        finally:
            for param, flag in requires_grad:
                param.requires_grad_(flag)
            model.config.use_cache = use_cache
            model.eval()
        if isinstance(trained, PeftModel):
            model = trained.merge_and_unload()
        if after_update is not None:
            after_update(model)
        val_after = _val_loss(model, data.val, cfg.batch_size, pad_id, autocast)
    if val_after is not None and not math.isfinite(val_after):
        raise RecoveryDiverged(f"recovery diverged: validation loss {val_after} after {steps} steps")
    result = RecoveryResult(
        train_losses=losses,
        val_loss_before=val_before,
        val_loss_after=val_after,
        seconds=time.perf_counter() - start,
        tokens_per_second=tokens / max(train_seconds, 1e-9),
        steps=steps,
        dataset=data.source,
        train_tokens=tokens,
    )
    log.info(
        "recovery %s on %s: %d steps, loss %.3f -> %.3f, val %s -> %s, %.0f s",
        cfg.kind,
        data.source,
        steps,
        losses[0],
        losses[-1],
        val_before,
        val_after,
        result.seconds,
    )
    return model, result


def _total_steps(cfg: RecoveryConfig, n_train: int) -> int:
    if cfg.epochs is None:
        return cfg.max_steps
    return max(1, math.ceil(cfg.epochs * n_train / (cfg.batch_size * cfg.grad_accum)))


def _attach_lora(model: nn.Module, cfg: RecoveryConfig) -> PeftModel:
    """Wrap `model` with LoRA adapters on the configured projections that exist in it."""
    leaves = {name.rsplit(".", 1)[-1]: module for name, module in model.named_modules()}
    targets = [t for t in cfg.lora_targets if isinstance(leaves.get(t), nn.Linear | Conv1D)]
    if not targets:
        raise PrunesweepError(f"recovery.lora_targets={list(cfg.lora_targets)} match no linear layer of the model")
    lora = LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=targets,
        fan_in_fan_out=isinstance(leaves[targets[0]], Conv1D),  # GPT-2 stores weights transposed
        bias="none",
        task_type="CAUSAL_LM",
    )
    with warnings.catch_warnings():
        # peft reads `model.is_gradient_checkpointing`, which transformers deprecates with a FutureWarning on
        # every LoRA run: a call inside peft that a user of prunesweep can neither see nor change
        warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
        return get_peft_model(model, lora)


def _batches(examples: list[Example], batch_size: int, seed: int) -> Iterator[list[Example]]:
    """Endless seeded epochs of shuffled batches (the last, smaller batch of an epoch is kept)."""
    generator = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(len(examples), generator=generator).tolist()
        for i in range(0, len(order), batch_size):
            yield [examples[j] for j in order[i : i + batch_size]]


def _lm_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The model's own next-token cross-entropy over the labelled positions."""
    return model(**batch).loss


def _autocast(enabled: bool, device: torch.device):
    return torch.autocast(device.type, dtype=torch.bfloat16) if enabled else nullcontext()


def _train(
    model: nn.Module,
    examples: list[Example],
    cfg: RecoveryConfig,
    steps: int,
    pad_id: int,
    autocast: bool,
    loss_of: LossOf,
    after_step: Callable[[nn.Module], None] | None,
    on_step: Callable[[int, float], None] | None,
) -> tuple[list[float], int, float]:
    """Run `steps` optimizer steps; returns (loss per step, training tokens, seconds)."""
    device = next(model.parameters()).device
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = get_scheduler(
        SCHEDULERS[cfg.scheduler], optimizer, num_warmup_steps=min(cfg.warmup_steps, steps), num_training_steps=steps
    )
    batches = _batches(examples, cfg.batch_size, cfg.seed)
    losses: list[float] = []
    tokens = 0
    start = time.perf_counter()
    model.train()
    with bar(total=steps, desc=f"recovery {cfg.kind}", unit="step", mininterval=1.0) as progress:
        for step in range(1, steps + 1):
            step_loss = 0.0
            for _ in range(cfg.grad_accum):
                batch = {k: v.to(device) for k, v in collate(next(batches), pad_id).items()}
                with _autocast(autocast, device):
                    loss = loss_of(model, batch)
                value = loss.item()
                if not math.isfinite(value):
                    raise RecoveryDiverged(f"recovery diverged at step {step}/{steps}: training loss {value}")
                (loss / cfg.grad_accum).backward()
                step_loss += value / cfg.grad_accum
                tokens += int(batch["attention_mask"].sum())
            if cfg.max_grad_norm is not None:
                norm = float(torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm))
                if not math.isfinite(norm):
                    raise RecoveryDiverged(f"recovery diverged at step {step}/{steps}: gradient norm {norm}")
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            if after_step is not None:
                after_step(model)
            losses.append(step_loss)
            if on_step is not None:
                on_step(step, step_loss)
            progress.set_postfix(loss=f"{step_loss:.3f}", tok_s=f"{tokens / (time.perf_counter() - start):.0f}")
            progress.update()
    return losses, tokens, time.perf_counter() - start


@torch.no_grad()
def _val_loss(model: nn.Module, examples: list[Example], batch_size: int, pad_id: int, autocast: bool) -> float | None:
    """Token-weighted mean NLL over the labelled positions of `examples` (eval mode)."""
    if not examples:
        return None
    device = next(model.parameters()).device
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(examples), batch_size):
        batch = {k: v.to(device) for k, v in collate(examples[i : i + batch_size], pad_id).items()}
        with _autocast(autocast, device):
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        labels = batch["labels"][:, 1:]
        nll = nn.functional.cross_entropy(
            logits[:, :-1].float().reshape(-1, logits.size(-1)),
            labels.reshape(-1),
            ignore_index=IGNORE_INDEX,
            reduction="sum",
        )
        total += float(nll)
        count += int((labels != IGNORE_INDEX).sum())
    return total / max(count, 1)
