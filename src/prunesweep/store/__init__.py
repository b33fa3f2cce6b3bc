"""What a run keeps: the content-addressed step store, checkpoints, provenance, results files."""
