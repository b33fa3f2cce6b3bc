"""The teacher of recovery=distill: the trajectory's dense model, or a local folder with the same tokenizer.
Checked before any model loads where its config and tokenizer can be read from disk, again when it loads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from omegaconf import DictConfig, OmegaConf
from transformers import AutoConfig, PretrainedConfig, PreTrainedTokenizerBase

from prunesweep.models.loader import check_model_config, load_model, local_tokenizer
from prunesweep.recovery.distill import check_layers
from prunesweep.util.errors import PrunesweepError

if TYPE_CHECKING:
    from transformers import PreTrainedModel


@dataclass
class Teacher:
    model: PreTrainedModel
    source: str  # where its weights come from
    hash: str  # a hash of them (as the records' model_hash)


def distils(cfg: DictConfig) -> bool:
    return cfg.recovery.kind == "distill"


def teacher_model_config(cfg: DictConfig) -> DictConfig:
    """The model config the teacher loads from: the run's own model, or `recovery.distill.teacher` as a local
    folder in the run's dtype and device."""
    folder = cfg.recovery.distill.teacher
    if folder is None:
        return cfg.model
    return OmegaConf.merge(
        cfg.model,
        {"name": "teacher", "source": "hf", "path": str(folder), "revision": None, "trust_remote_code": False},
    )


def check_teacher(cfg: DictConfig, student: PretrainedConfig | None) -> None:
    """One line for a teacher that is missing, has another vocabulary or tokenizer, or lacks a listed layer."""
    model = teacher_model_config(cfg)
    distill = cfg.recovery.distill
    if distill.teacher is None:
        config = student
    else:
        check_model_config(model)
        config = AutoConfig.from_pretrained(model.path, local_files_only=True)
        if student is not None and config.vocab_size != student.vocab_size:
            raise PrunesweepError(
                f"recovery.distill.teacher {distill.teacher!r} has a vocabulary of {config.vocab_size}, the model "
                f"{cfg.model.name!r} of {student.vocab_size}: the teacher must share the student's tokenizer"
            )
        student_tokenizer = local_tokenizer(cfg.model, cfg.paths.cache_dir)
        if student_tokenizer is not None:
            check_same_tokenizer(student_tokenizer, local_tokenizer(model, cfg.paths.cache_dir), distill.teacher)
    if config is not None:
        check_layers(list(distill.layers), config.num_hidden_layers, f"teacher {model.name!r}")


def check_same_tokenizer(student: PreTrainedTokenizerBase, teacher: PreTrainedTokenizerBase | None, where: str) -> None:
    if teacher is None or teacher.get_vocab() != student.get_vocab():
        raise PrunesweepError(f"recovery.distill.teacher {where!r} does not use the student's tokenizer")


def load_teacher(cfg: DictConfig, student_tokenizer: PreTrainedTokenizerBase, source: tuple[str, str]) -> Teacher:
    """The teacher in the run's dtype (frozen by the distillation loss); `source` = its (origin, hash)."""
    loaded = load_model(teacher_model_config(cfg), cfg.paths.cache_dir, seed=cfg.seed)
    if cfg.recovery.distill.teacher is not None:
        check_same_tokenizer(student_tokenizer, loaded.tokenizer, cfg.recovery.distill.teacher)
    return Teacher(loaded.model, *source)
