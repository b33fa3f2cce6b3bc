"""Coupled structures (LLM-Pruner's dependency groups): what gets removed together, and the removal itself.

The surgery goes through torch-pruning's pruning functions (`surgery.prune_channels`); which channels are
coupled is declared per architecture in `architectures.py`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

from torch import nn

from prunesweep.models.surgery import channel_params, prune_channels


@dataclass(frozen=True)
class Slice:
    """Channels [offset + u*width, offset + (u+1)*width) on side `kind` of `module` belong to unit u."""

    module: nn.Module
    kind: str  # out | in
    offset: int = 0
    width: int = 1

    def channels(self, units: Iterable[int]) -> list[int]:
        return [self.offset + u * self.width + j for u in units for j in range(self.width)]


@dataclass
class Group:
    """Coupled structures: removing unit u removes the unit-u channels of every slice at once."""

    name: str  # e.g. "layers.5.attention"
    pool: str  # attention | mlp | hidden: units of one pool are comparable across layers
    n_units: int
    slices: list[Slice]  # the output-side member last (what `aggregation=last` scores)
    blocks: int = 1  # units form `blocks` equal contiguous blocks (query heads of one KV head), cut equally
    step: int = 1  # units are removed `step` at a time (hidden dims: keeps hidden % heads == 0)

    @property
    def unit_params(self) -> int:
        """Parameters removed with one unit."""
        return sum(s.width * channel_params(s.module, s.kind) for s in self.slices)

    @property
    def units_per_step(self) -> int:
        return self.blocks * self.step

    @property
    def max_steps(self) -> int:
        """Removal steps possible while every block keeps one step's worth of units."""
        return max(0, self.n_units // self.blocks // self.step - 1)


@dataclass(frozen=True)
class LayerShape:
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int


@dataclass(frozen=True)
class Structure:
    """The shapes that define a (possibly non-uniform) pruned model."""

    hidden_size: int
    layers: tuple[LayerShape, ...]

    def to_dict(self) -> dict:
        return {"hidden_size": self.hidden_size, "layers": [asdict(layer) for layer in self.layers]}

    @classmethod
    def from_dict(cls, data: dict) -> Structure:
        return cls(data["hidden_size"], tuple(LayerShape(**layer) for layer in data["layers"]))


def remove_units(removals: Iterable[tuple[Group, list[int]]]) -> None:
    """Physically remove the given units of each group from every member (indices refer to the shapes before
    this call). Call `Architecture.sync` afterwards."""
    remove_slice_units((s, units) for group, units in removals for s in group.slices)


def remove_slice_units(removals: Iterable[tuple[Slice, list[int]]]) -> None:
    """Remove the given units of each slice. Channels of one module side are collected first and cut in one
    call, so offsets stay valid (GPT-2's fused c_attn carries three slices)."""
    cuts: dict[tuple[int, str], tuple[nn.Module, list[int]]] = {}
    for s, units in removals:
        cuts.setdefault((id(s.module), s.kind), (s.module, []))[1].extend(s.channels(units))
    for (_, kind), (module, channels) in cuts.items():
        prune_channels(module, kind, channels)
