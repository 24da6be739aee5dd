"""One-off diagnostics of trained runs (not part of the package); run from the repo root: python -m experiments.NAME."""
