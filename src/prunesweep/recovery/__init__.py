"""Recovery fine-tuning (LoRA or full) after each pruning step, preserving the pruned structure."""

from prunesweep.recovery.trainer import RecoveryDiverged, RecoveryResult, check_recovery, recover

__all__ = ["RecoveryDiverged", "RecoveryResult", "check_recovery", "recover"]
