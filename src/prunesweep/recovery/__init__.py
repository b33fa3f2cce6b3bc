"""Recovery after each pruning step (LoRA or full fine-tuning, or distillation from the dense model), preserving
the pruned structure."""

from prunesweep.recovery.trainer import RecoveryDiverged, RecoveryResult, check_recovery, recover, trained_params

__all__ = ["RecoveryDiverged", "RecoveryResult", "check_recovery", "recover", "trained_params"]
