"""LLM-Pruner-style structural pruning: coupled groups, importance, planning and physical removal."""
