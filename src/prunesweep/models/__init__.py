"""Model loading (loader.py), the architecture adapter (architecture.py) and tiny random models for tests."""
