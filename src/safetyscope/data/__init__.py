"""Prompt sets and bundled prompt lists."""
