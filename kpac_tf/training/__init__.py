"""Training: a run's settings and presets (`settings`), where a process stands in its
cluster (`cluster`), the run folder's layout (`run_folder`, its one owner), starting
weights (`warm_start`), losses (`losses`) and the resumable loop (`loop`). Imports
core, `evaluation.metrics` / `scoring` and `data`; never `deploy` or `paper`."""
