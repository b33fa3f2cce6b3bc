"""lm-eval task YAMLs over the offline data files, and their dataset loaders."""
