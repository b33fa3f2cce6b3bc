"""The architecture adapter: where layers, linears and coupled groups live in the LLaMA and GPT-2 families,
and how a pruned model stays consistent. Pruners, checkpoints and efficiency read models only through it.

The groups are declared per architecture instead of traced with torch-pruning's DependencyGraph: on this
stack its graph couples q/k/v/o channels 1:1 through SDPA's GQA (head pruning fails with
`shape '[9, -1]' is invalid`), and with eager attention it silently leaves attention unpruned. Every group
is verified by a brute-force check in the tests (zeroing a group in the dense model == removing it)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

import torch
from torch import nn

from prunesweep.models.groups import Group, LayerShape, Slice, Structure, remove_units
from prunesweep.util.errors import PrunesweepError

if TYPE_CHECKING:  # annotations only: importing transformers' model classes costs seconds
    from transformers import PretrainedConfig, PreTrainedModel

ATTENTION_UNITS = ("kv_group", "head")


class Architecture(ABC):
    """Where the coupled structures of one model family live, and how to keep the model consistent."""

    name: str

    @staticmethod
    @abstractmethod
    def matches(model: nn.Module) -> bool: ...

    @abstractmethod
    def layers(self, model: PreTrainedModel) -> nn.ModuleList: ...

    @abstractmethod
    def final_norm(self, model: PreTrainedModel) -> nn.Module:
        """The norm between the last decoder layer and the head."""

    @abstractmethod
    def linears(self, layer: nn.Module) -> dict[str, nn.Module]:
        """The prunable linears of one decoder layer, in forward order, named relative to the layer."""

    @abstractmethod
    def attention_group(self, model: PreTrainedModel, index: int, unit: str) -> Group: ...

    @abstractmethod
    def mlp_group(self, model: PreTrainedModel, index: int) -> Group: ...

    @abstractmethod
    def hidden_group(self, model: PreTrainedModel) -> Group: ...

    @abstractmethod
    def structure(self, model: PreTrainedModel) -> Structure:
        """The shapes the modules actually have."""

    @abstractmethod
    def config_structure(self, config: PretrainedConfig) -> Structure:
        """The shapes a model built from `config` would have."""

    @abstractmethod
    def sync(self, model: PreTrainedModel) -> None:
        """After surgery: update module attributes, re-tie embeddings, and the config where it can describe
        the model (otherwise the config keeps its last describable, larger shape: a base for rebuilding)."""

    @abstractmethod
    def attentions(self, layer: nn.Module) -> list[nn.Module]:
        """The attention modules of one decoder layer (each carries the `layer_idx` its KV cache slot uses)."""

    def check_layer_removal(self, model: PreTrainedModel) -> None:
        """Raise PrunesweepError if this model cannot lose whole layers and still reload as itself."""
        return None  # nothing depends on a layer's position unless a family says so

    def remove_layers(self, model: PreTrainedModel, indices: list[int]) -> None:
        """Depth pruning: delete whole decoder layers, renumber the survivors' `layer_idx` (KV cache slots) and
        update the config (layer count, per-layer `layer_types` if the family has them) so the saved folder
        reloads as exactly this model. Callers validate `indices` (see `pruning.layer_drop.drop_layers`)."""
        self.check_layer_removal(model)
        layers, drop = self.layers(model), set(indices)
        for index in sorted(drop, reverse=True):
            del layers[index]  # ModuleList renumbers its keys, so state-dict names follow the new order
        for new_index, layer in enumerate(layers):
            for attention in self.attentions(layer):
                attention.layer_idx = new_index
        config = model.config
        config.num_hidden_layers = len(layers)  # GPT-2 maps it to n_layer
        if getattr(config, "layer_types", None) is not None:
            config.layer_types = [kind for i, kind in enumerate(config.layer_types) if i not in drop]

    def describable(self, model: PreTrainedModel) -> bool:
        """True if `from_config(model.config)` builds exactly this model's shapes (a plain HF folder works)."""
        return self.structure(model) == self.config_structure(model.config)


def out_in_weight(module: nn.Module) -> torch.Tensor:
    """The weight as (out_features, in_features): `nn.Linear` as is, GPT-2's `Conv1D` transposed (a view, so
    in-place edits reach the module)."""
    return module.weight if isinstance(module, nn.Linear) else module.weight.T


def tied(model: PreTrainedModel) -> bool:
    out = model.get_output_embeddings()
    return out is not None and out.weight is model.get_input_embeddings().weight


def _retie(model: PreTrainedModel) -> None:
    if getattr(model.config, "tie_word_embeddings", False):
        head = model.get_output_embeddings()
        head.weight = model.get_input_embeddings().weight
        head.in_features = head.weight.shape[1]


def _uniform(structure: Structure) -> LayerShape | None:
    first = structure.layers[0]
    return first if all(layer == first for layer in structure.layers) else None


class Llama(Architecture):
    """LLaMA family (LLaMA, Mistral, Qwen2, SmolLM, ...): q/k/v/o, gate/up/down, RMSNorm, GQA."""

    name = "llama"

    @staticmethod
    def matches(model: nn.Module) -> bool:
        layers = getattr(getattr(model, "model", None), "layers", None)
        if not layers:
            return False
        attn, mlp = getattr(layers[0], "self_attn", None), getattr(layers[0], "mlp", None)
        attn_ok = all(hasattr(attn, n) for n in ("q_proj", "k_proj", "v_proj", "o_proj"))
        return attn_ok and all(hasattr(mlp, n) for n in ("gate_proj", "up_proj", "down_proj"))

    def layers(self, model: PreTrainedModel) -> nn.ModuleList:
        return model.model.layers

    def final_norm(self, model: PreTrainedModel) -> nn.Module:
        return model.model.norm

    def linears(self, layer: nn.Module) -> dict[str, nn.Module]:
        names = [f"self_attn.{n}" for n in ("q_proj", "k_proj", "v_proj", "o_proj")]
        names += [f"mlp.{n}" for n in ("gate_proj", "up_proj", "down_proj")]
        return {name: layer.get_submodule(name) for name in names}

    def attentions(self, layer: nn.Module) -> list[nn.Module]:
        return [layer.self_attn]

    def attention_group(self, model: PreTrainedModel, index: int, unit: str) -> Group:
        attn = self.layers(model)[index].self_attn
        head_dim = attn.head_dim
        n_q, n_kv = attn.q_proj.out_features // head_dim, attn.k_proj.out_features // head_dim
        per_kv = n_q // n_kv  # HF maps query head h to KV head h // per_kv (repeat_kv)
        name = f"layers.{index}.attention"
        # unit "head": query heads, cut equally in every KV group (K/V stay); with one query head per KV head
        # (MHA, or already cut down) a head is a whole KV group
        if unit == "head" and per_kv > 1:
            slices = [Slice(attn.q_proj, "out", 0, head_dim), Slice(attn.o_proj, "in", 0, head_dim)]
            return Group(name, "attention", n_q, slices, blocks=n_kv)
        width = per_kv * head_dim  # a whole KV group: its K/V head and its query heads
        slices = [
            Slice(attn.q_proj, "out", 0, width),
            Slice(attn.k_proj, "out", 0, head_dim),
            Slice(attn.v_proj, "out", 0, head_dim),
            Slice(attn.o_proj, "in", 0, width),
        ]
        return Group(name, "attention", n_kv, slices)

    def mlp_group(self, model: PreTrainedModel, index: int) -> Group:
        mlp = self.layers(model)[index].mlp
        slices = [Slice(mlp.gate_proj, "out"), Slice(mlp.up_proj, "out"), Slice(mlp.down_proj, "in")]
        return Group(f"layers.{index}.mlp", "mlp", mlp.gate_proj.out_features, slices)

    def hidden_group(self, model: PreTrainedModel) -> Group:
        slices = [Slice(model.model.embed_tokens, "out")]
        for layer in self.layers(model):
            attn, mlp = layer.self_attn, layer.mlp
            slices += [Slice(layer.input_layernorm, "out")]
            slices += [Slice(m, "in") for m in (attn.q_proj, attn.k_proj, attn.v_proj)]
            slices += [Slice(attn.o_proj, "out"), Slice(layer.post_attention_layernorm, "out")]
            slices += [Slice(mlp.gate_proj, "in"), Slice(mlp.up_proj, "in"), Slice(mlp.down_proj, "out")]
        slices.append(Slice(model.model.norm, "out"))
        if not tied(model):
            slices.append(Slice(model.lm_head, "in"))
        hidden = model.model.embed_tokens.embedding_dim
        # LlamaConfig requires hidden_size % num_attention_heads == 0: keep it so the config can describe us
        return Group("hidden", "hidden", hidden, slices, step=model.config.num_attention_heads)

    def structure(self, model: PreTrainedModel) -> Structure:
        shapes = []
        for layer in self.layers(model):
            attn, head_dim = layer.self_attn, layer.self_attn.head_dim
            shapes.append(
                LayerShape(
                    attn.q_proj.out_features // head_dim,
                    attn.k_proj.out_features // head_dim,
                    head_dim,
                    layer.mlp.gate_proj.out_features,
                )
            )
        return Structure(model.model.embed_tokens.embedding_dim, tuple(shapes))

    def config_structure(self, config: PretrainedConfig) -> Structure:
        heads = config.num_attention_heads
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
        layer = LayerShape(heads, config.num_key_value_heads, head_dim, config.intermediate_size)
        return Structure(config.hidden_size, (layer,) * config.num_hidden_layers)

    def sync(self, model: PreTrainedModel) -> None:
        structure = self.structure(model)
        for layer, shape in zip(self.layers(model), structure.layers, strict=True):
            layer.self_attn.num_key_value_groups = shape.num_heads // shape.num_kv_heads
            layer.mlp.intermediate_size = shape.intermediate_size
            layer.mlp.hidden_size = layer.hidden_size = structure.hidden_size
        _retie(model)
        config, shape = model.config, _uniform(structure)
        config.head_dim = structure.layers[0].head_dim  # explicit: hidden pruning must not change it
        if shape is not None and structure.hidden_size % shape.num_heads == 0:
            config.hidden_size = structure.hidden_size
            config.num_attention_heads, config.num_key_value_heads = shape.num_heads, shape.num_kv_heads
            config.intermediate_size = shape.intermediate_size


class GPT2(Architecture):
    """GPT-2 family: fused c_attn (q|k|v) and c_proj as HF `Conv1D`, LayerNorm, learned positions."""

    name = "gpt2"

    @staticmethod
    def matches(model: nn.Module) -> bool:
        blocks = getattr(getattr(model, "transformer", None), "h", None)
        return bool(blocks) and hasattr(blocks[0].attn, "c_attn") and hasattr(blocks[0].mlp, "c_fc")

    def layers(self, model: PreTrainedModel) -> nn.ModuleList:
        return model.transformer.h

    def final_norm(self, model: PreTrainedModel) -> nn.Module:
        return model.transformer.ln_f

    def linears(self, layer: nn.Module) -> dict[str, nn.Module]:
        names = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")
        return {name: layer.get_submodule(name) for name in names}

    def attentions(self, layer: nn.Module) -> list[nn.Module]:
        return [layer.attn] + ([layer.crossattention] if hasattr(layer, "crossattention") else [])

    def check_layer_removal(self, model: PreTrainedModel) -> None:
        if model.config.scale_attn_by_inverse_layer_idx:  # the scale is fixed at init from layer_idx
            raise PrunesweepError("cannot drop layers of a GPT-2 with scale_attn_by_inverse_layer_idx=True")

    def attention_group(self, model: PreTrainedModel, index: int, unit: str) -> Group:
        attn = self.layers(model)[index].attn  # multi-head: a KV group is one head, so `unit` is moot
        hd, inner = attn.head_dim, attn.split_size
        slices = [Slice(attn.c_attn, "out", offset, hd) for offset in (0, inner, 2 * inner)]
        slices.append(Slice(attn.c_proj, "in", 0, hd))
        return Group(f"layers.{index}.attention", "attention", inner // hd, slices)

    def mlp_group(self, model: PreTrainedModel, index: int) -> Group:
        mlp = self.layers(model)[index].mlp
        return Group(f"layers.{index}.mlp", "mlp", mlp.c_fc.nf, [Slice(mlp.c_fc, "out"), Slice(mlp.c_proj, "in")])

    def hidden_group(self, model: PreTrainedModel) -> Group:
        body = model.transformer
        slices = [Slice(body.wte, "out"), Slice(body.wpe, "out")]
        for block in self.layers(model):
            slices += [Slice(block.ln_1, "out"), Slice(block.attn.c_attn, "in"), Slice(block.attn.c_proj, "out")]
            slices += [Slice(block.ln_2, "out"), Slice(block.mlp.c_fc, "in"), Slice(block.mlp.c_proj, "out")]
        slices.append(Slice(body.ln_f, "out"))
        if not tied(model):
            slices.append(Slice(model.lm_head, "in"))
        return Group("hidden", "hidden", body.wte.embedding_dim, slices)

    def structure(self, model: PreTrainedModel) -> Structure:
        shapes = []
        for block in self.layers(model):
            heads = block.attn.c_attn.nf // 3 // block.attn.head_dim
            shapes.append(LayerShape(heads, heads, block.attn.head_dim, block.mlp.c_fc.nf))
        return Structure(model.transformer.wte.embedding_dim, tuple(shapes))

    def config_structure(self, config: PretrainedConfig) -> Structure:
        heads, hidden = config.n_head, config.n_embd
        layer = LayerShape(heads, heads, hidden // heads, config.n_inner or 4 * hidden)
        return Structure(hidden, (layer,) * config.n_layer)

    def sync(self, model: PreTrainedModel) -> None:
        structure = self.structure(model)
        for block, shape in zip(self.layers(model), structure.layers, strict=True):
            block.attn.num_heads = shape.num_heads
            block.attn.split_size = shape.num_heads * shape.head_dim
        _retie(model)
        shape = _uniform(structure)
        if shape is not None and shape.num_heads * shape.head_dim == structure.hidden_size:
            config = model.config
            config.n_embd, config.n_head = structure.hidden_size, shape.num_heads
            config.n_inner = shape.intermediate_size


ARCHITECTURES: tuple[type[Architecture], ...] = (Llama, GPT2)


def architecture_of(model: nn.Module) -> Architecture | None:
    """The adapter for `model`'s family, or None if it is not a supported architecture."""
    return next((arch() for arch in ARCHITECTURES if arch.matches(model)), None)


def require_architecture(model: nn.Module) -> Architecture:
    arch = architecture_of(model)
    if arch is None:
        known = ", ".join(a.name for a in ARCHITECTURES)
        raise PrunesweepError(f"structural pruning supports the {known} families, not {type(model).__name__}")
    return arch


def resize_to(model: PreTrainedModel, arch: Architecture, target: Structure) -> None:
    """Shrink a model built from its base config to `target` shapes (trailing units go; weights get loaded
    afterwards). Used to rebuild non-uniform checkpoints."""
    current = arch.structure(model)
    if len(current.layers) != len(target.layers):
        raise PrunesweepError(f"manifest has {len(target.layers)} layers, the base config {len(current.layers)}")
    for index, (now, want) in enumerate(zip(current.layers, target.layers, strict=True)):
        if want.num_kv_heads < now.num_kv_heads:
            group = arch.attention_group(model, index, "kv_group")
            remove_units([(group, list(range(want.num_kv_heads, now.num_kv_heads)))])
            arch.sync(model)
        per_kv_now, per_kv_want = now.num_heads // now.num_kv_heads, want.num_heads // want.num_kv_heads
        if per_kv_want < per_kv_now:
            group = arch.attention_group(model, index, "head")
            units = [b * per_kv_now + u for b in range(want.num_kv_heads) for u in range(per_kv_want, per_kv_now)]
            remove_units([(group, units)])
        group = arch.mlp_group(model, index)
        remove_units([(group, list(range(want.intermediate_size, now.intermediate_size)))])
    hidden = arch.hidden_group(model)
    remove_units([(hidden, list(range(target.hidden_size, current.hidden_size)))])
    arch.sync(model)
    if arch.structure(model) != target:
        raise PrunesweepError(f"cannot rebuild {target} from the base config (got {arch.structure(model)})")
