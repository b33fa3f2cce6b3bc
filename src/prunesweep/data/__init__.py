"""Offline text corpora (perplexity, calibration, recovery) read from `paths.data_dir`."""
