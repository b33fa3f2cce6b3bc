"""Tokenised train/validation sets for recovery fine-tuning.

Two kinds of records:
- instruction (Alpaca: `instruction`, `input`, `output`): tokenised as LLM-Pruner's post_training.py /
  alpaca-lora do: prompt + response truncated to `cutoff_len`, EOS appended when it fits; the loss covers
  the response only unless `train_on_inputs`.
- plain text (`text`): documents joined with EOS and cut into `cutoff_len` blocks (HF run_clm packing).

Sources: `alpaca` (offline 1k subset), `c4` (offline sample), `wikitext2` (the *validation* split: the
test split is what perplexity is measured on), a local .json/.jsonl file of either record kind, or a hub
dataset id such as `yahma/alpaca-cleaned` (needs internet)."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import PreTrainedTokenizerBase

from prunesweep.config.schema import RecoveryConfig
from prunesweep.data.corpora import CORPUS_RECORDS, alpaca_prompt, corpus_file
from prunesweep.data.records import AlpacaRecord, Records, TextRecord
from prunesweep.util.errors import PrunesweepError
from prunesweep.util.hashing import file_sha256

IGNORE_INDEX = -100  # label of positions that are not trained on
WIKITEXT_TRAIN_FILE = "wikitext2/valid.txt"  # tokenised WikiText-2 v1 valid: the only non-test split offline
LOCAL_SUFFIXES = (".json", ".jsonl")


@dataclass(frozen=True)
class Example:
    input_ids: list[int]
    labels: list[int]  # IGNORE_INDEX where no loss is taken


@dataclass
class RecoveryData:
    train: list[Example]
    val: list[Example]
    source: str  # "<dataset>@<sha256 prefix>" (or the hub id), recorded with the results


def check_dataset(name: str, data_dir: str | Path) -> None:
    """Resolve `recovery.dataset` without loading or tokenising it; raise one clear line when it cannot be found."""
    dataset_location(name, data_dir)


def build_datasets(cfg: RecoveryConfig, tokenizer: PreTrainedTokenizerBase, data_dir: str | Path) -> RecoveryData:
    """Tokenise `cfg.dataset` and split off a seeded validation slice (`val_fraction`, at most `val_max_examples`)."""
    if tokenizer.eos_token_id is None:
        raise PrunesweepError("recovery needs a tokenizer with an EOS token (ends examples and packed documents)")
    records, source = _load_records(cfg.dataset, data_dir)
    if all("text" in record for record in records):
        examples = _packed_text([str(r["text"]) for r in records], tokenizer, cfg.cutoff_len)
    elif all("instruction" in record and "output" in record for record in records):
        examples = _instructions(records, tokenizer, cfg.cutoff_len, cfg.train_on_inputs)
    else:
        raise PrunesweepError(
            f"recovery.dataset={cfg.dataset!r}: every record needs `text`, or `instruction` + `output` (Alpaca)"
        )
    random.Random(cfg.seed).shuffle(examples)
    n_val = 0
    if cfg.val_fraction > 0:
        n_val = max(1, round(cfg.val_fraction * len(examples)))
        if cfg.val_max_examples is not None:
            n_val = min(n_val, cfg.val_max_examples)
    if len(examples) - n_val < 1:
        raise PrunesweepError(
            f"recovery.dataset={cfg.dataset!r} yields {len(examples)} usable examples at cutoff_len={cfg.cutoff_len} "
            "(instructions whose response is cut off are dropped): too few for a validation slice and training"
        )
    return RecoveryData(train=examples[n_val:], val=examples[:n_val], source=source)


def collate(examples: list[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a batch; padded positions get attention 0 and label IGNORE_INDEX."""
    width = max(len(e.input_ids) for e in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    attention = torch.zeros((len(examples), width), dtype=torch.long)
    for row, example in enumerate(examples):
        n = len(example.input_ids)
        input_ids[row, :n] = torch.tensor(example.input_ids)
        labels[row, :n] = torch.tensor(example.labels)
        attention[row, :n] = 1
    return {"input_ids": input_ids, "attention_mask": attention, "labels": labels}


def dataset_location(name: str, data_dir: str | Path) -> Path | str:
    """A local file for offline names and paths, or the hub id string."""
    if name in ("alpaca", "c4"):
        return corpus_file(name, data_dir).path
    if name == "wikitext2":
        path = Path(data_dir) / WIKITEXT_TRAIN_FILE
        if not path.is_file():
            raise PrunesweepError(f"recovery data for 'wikitext2' not found: {path} (set paths.data_dir)")
        return path
    if name.endswith(LOCAL_SUFFIXES):
        path = Path(name).expanduser()
        if not path.is_file():
            raise PrunesweepError(f"recovery.dataset file not found: {path}")
        return path
    if "/" in name and not Path(name).expanduser().exists():
        return name  # hub dataset id, loaded with `datasets` (needs internet)
    raise PrunesweepError(
        f"recovery.dataset={name!r} is not one of alpaca, c4, wikitext2, a .json/.jsonl file or a hub id (owner/name)"
    )


def dataset_records(name: str) -> Records:
    """What the records of the local file `dataset_location(name)` must look like: a local file holds plain-text
    records or Alpaca instructions, one kind throughout."""
    if name in CORPUS_RECORDS:  # wikitext2's validation split is plain text as its test split
        return CORPUS_RECORDS[name]
    return Records("jsonl" if name.endswith(".jsonl") else "json", (TextRecord, AlpacaRecord))


def _load_records(name: str, data_dir: str | Path) -> tuple[list[dict], str]:
    where = dataset_location(name, data_dir)
    if isinstance(where, str):
        return _hub_records(where), where
    source = f"{name if name in ('alpaca', 'c4', 'wikitext2') else where.name}@{file_sha256(where)[:16]}"
    text = where.read_text(encoding="utf-8")
    if name == "wikitext2":
        return [{"text": text}], source
    try:
        if where.suffix == ".jsonl":
            records = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            records = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PrunesweepError(f"recovery.dataset {where}: not valid JSON ({exc})") from exc
    if not isinstance(records, list) or not records or not all(isinstance(r, dict) for r in records):
        raise PrunesweepError(f"recovery.dataset {where}: expected a non-empty list of JSON objects")
    return records, source


def _hub_records(hub_id: str) -> list[dict]:
    from datasets import load_dataset  # heavy import, only for hub datasets

    try:
        return list(load_dataset(hub_id, split="train"))
    except Exception as exc:  # offline, unknown id, no train split: one clear line
        raise PrunesweepError(f"cannot load recovery dataset {hub_id!r}: {str(exc).splitlines()[0]}") from exc


def _instructions(
    records: list[dict], tokenizer: PreTrainedTokenizerBase, cutoff: int, train_on_inputs: bool
) -> list[Example]:
    prompts = [alpaca_prompt(r) for r in records]
    full = tokenizer(
        [p + r["output"] for p, r in zip(prompts, records, strict=True)], truncation=True, max_length=cutoff
    ).input_ids
    prompt_lens = [len(ids) for ids in tokenizer(prompts, truncation=True, max_length=cutoff).input_ids]
    examples = []
    for ids, prompt_len in zip(full, prompt_lens, strict=True):
        if ids[-1] != tokenizer.eos_token_id and len(ids) < cutoff:
            ids = [*ids, tokenizer.eos_token_id]
        labels = list(ids) if train_on_inputs else [IGNORE_INDEX] * prompt_len + ids[prompt_len:]
        if any(label != IGNORE_INDEX for label in labels[1:]):  # a response cut off entirely trains nothing
            examples.append(Example(ids, labels))
    return examples


def _packed_text(texts: list[str], tokenizer: PreTrainedTokenizerBase, cutoff: int) -> list[Example]:
    stream: list[int] = []
    for ids in tokenizer(texts, add_special_tokens=False, verbose=False).input_ids:
        stream.extend([*ids, tokenizer.eos_token_id])
    blocks = [stream[i : i + cutoff] for i in range(0, len(stream) - cutoff + 1, cutoff)]
    return [Example(block, list(block)) for block in blocks]
