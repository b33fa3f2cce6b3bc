"""Read the offline text corpora in `paths.data_dir` exactly as the pruning papers use them."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import PreTrainedTokenizerBase

from prunesweep.data.records import TEXT, AlpacaRecord, Records, TextRecord
from prunesweep.util.errors import PrunesweepError
from prunesweep.util.hashing import file_sha256

# name -> path relative to data_dir
CORPUS_FILES = {
    "wikitext2": "wikitext2/wiki.test.raw",
    "ptb": "ptb/ptb.test.txt",
    "c4": "c4/c4_sample.jsonl",
    "alpaca": "alpaca/alpaca_data_1k.json",
}
# name -> what the file's records look like (checked before any model loads)
CORPUS_RECORDS = {
    "wikitext2": TEXT,
    "ptb": TEXT,
    "c4": Records("jsonl", (TextRecord,)),
    "alpaca": Records("json", (AlpacaRecord,)),
}


@dataclass(frozen=True)
class Corpus:
    name: str
    path: Path
    sha256: str


def corpus_file(name: str, data_dir: str | Path) -> Corpus:
    """Locate a corpus file; raise one clear line when the name is unknown or the file is missing."""
    if name not in CORPUS_FILES:
        raise PrunesweepError(f"unknown text corpus {name!r}; known: {sorted(CORPUS_FILES)}")
    path = Path(data_dir) / CORPUS_FILES[name]
    if not path.is_file():
        raise PrunesweepError(f"data file for {name!r} not found: {path} (set paths.data_dir or PRUNESWEEP_DATA_DIR)")
    return Corpus(name, path, file_sha256(path))


def evaluation_text(name: str, data_dir: str | Path) -> tuple[str, Corpus]:
    """The test split joined as the papers do: WikiText-2 raw rows with "\\n\\n" (HF `wikitext-2-raw-v1`
    layout, as SparseGPT/Wanda/LLM-Pruner), PTB sentences with " " (LLM-Pruner's `ptb_text_only`)."""
    corpus = corpus_file(name, data_dir)
    raw = corpus.path.read_text(encoding="utf-8")
    if name == "wikitext2":
        rows = [line if line.strip() else "" for line in raw.splitlines(keepends=True)]
        return "\n\n".join(rows), corpus
    if name == "ptb":
        return " ".join(line.strip() for line in raw.splitlines() if line.strip()), corpus
    raise PrunesweepError(f"{name!r} is not a perplexity corpus; use wikitext2 or ptb")


def documents(name: str, data_dir: str | Path) -> tuple[list[str], Corpus]:
    """Plain-text documents of a training-like corpus (c4 docs, alpaca prompt+response, wikitext2 rows)."""
    corpus = corpus_file(name, data_dir)
    if name == "c4":
        lines = corpus.path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line)["text"] for line in lines if line.strip()], corpus
    if name == "alpaca":
        return [alpaca_prompt(ex) + ex["output"] for ex in json.loads(corpus.path.read_text())], corpus
    text, corpus = evaluation_text(name, data_dir)
    return [t for t in text.split("\n\n") if len(t.strip()) > 0], corpus


def alpaca_prompt(example: dict) -> str:
    """The Stanford Alpaca prompt template (as LLM-Pruner's post-training uses)."""
    if example.get("input"):
        return (
            "Below is an instruction that describes a task, paired with an input that provides further context. "
            "Write a response that appropriately completes the request.\n\n"
            f"### Instruction:\n{example['instruction']}\n\n### Input:\n{example['input']}\n\n### Response:\n"
        )
    return (
        "Below is an instruction that describes a task. "
        "Write a response that appropriately completes the request.\n\n"
        f"### Instruction:\n{example['instruction']}\n\n### Response:\n"
    )


def calibration_batch(
    tokenizer: PreTrainedTokenizerBase,
    name: str,
    data_dir: str | Path,
    n_samples: int,
    seq_len: int,
    seed: int,
    sampling: str = "random_windows",
) -> tuple[torch.Tensor, Corpus]:
    """`n_samples` x `seq_len` calibration tokens, deterministic for a given seed.

    `random_windows`: documents in a seeded random order, one random window from each longer than `seq_len`
    (LLM-Pruner's `get_examples`); `first_documents`: the first documents in file order with at least `seq_len`
    tokens, each cut to its first `seq_len` (the seed is unused)."""
    docs, corpus = documents(name, data_dir)
    rng = random.Random(seed)
    order = list(range(len(docs)))
    if sampling == "random_windows":
        rng.shuffle(order)
    samples: list[torch.Tensor] = []
    for index in order:
        ids = tokenizer(docs[index], return_tensors="pt", add_special_tokens=False).input_ids[0]
        if sampling == "first_documents" and ids.numel() >= seq_len:
            samples.append(ids[:seq_len])
        elif sampling == "random_windows" and ids.numel() > seq_len:
            start = rng.randint(0, ids.numel() - seq_len - 1)
            samples.append(ids[start : start + seq_len])
        if len(samples) == n_samples:
            return torch.stack(samples), corpus
    raise PrunesweepError(
        f"calibration corpus {name!r} has fewer than {n_samples} documents long enough for {seq_len}-token samples"
    )
