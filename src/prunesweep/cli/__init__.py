"""The console scripts: `prunesweep`, `prunesweep-report`, `prunesweep-eval`."""
