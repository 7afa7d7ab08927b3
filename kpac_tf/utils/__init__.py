"""Plumbing every other part may use: files that appear complete or not at all
(`files`), progress of long loops (`progress`), printed tables
(`tables`). Imports nothing else of kpac_tf."""
