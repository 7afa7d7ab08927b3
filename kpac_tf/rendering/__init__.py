"""Rendered defocus: thin-lens physics (`defocus`), synthetic scenes and the photos
and text pages they draw on (`synthetic`, `package_photos`), and a second, unrelated
renderer for held-out checks (`gather_defocus`). Imports `data` and `utils` only; no
core module imports it."""
