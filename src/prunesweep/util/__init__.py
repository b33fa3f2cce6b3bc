"""Helpers every layer may use: errors, atomic writes, hashes, console, process lifetime."""
