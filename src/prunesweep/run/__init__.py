"""One sweep cell end to end: validation, the prune -> recover -> evaluate -> record cycle, rate search."""
