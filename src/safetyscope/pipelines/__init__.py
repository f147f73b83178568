"""End-to-end pipelines that combine safetyscope's building blocks."""
