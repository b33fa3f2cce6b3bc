"""Pruning methods behind one interface (`Pruner.prune_to`)."""
