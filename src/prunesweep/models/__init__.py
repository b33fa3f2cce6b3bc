"""Model loading: offline GGUF package, hub ids / local folders, and tiny random models for tests."""

from prunesweep.models.loader import LoadedModel, check_model_config, load_model

__all__ = ["LoadedModel", "check_model_config", "load_model"]
