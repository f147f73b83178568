"""Self-contained HTML reports with inline SVG figures (no scripts, no network fetches)."""
