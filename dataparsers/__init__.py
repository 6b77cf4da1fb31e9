"""Dataparsers for dynamic scenes, and synthetic scenes with exact ground truth (see DATASETS.md)."""
