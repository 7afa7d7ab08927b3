"""Checkpoint formats, read without running code from the file: the restricted
unpickler (`safe_pickle`), the authors' TF1 `.npz` (`tf1_npz`), PyTorch `.pth`
(`pytorch`), the authors' graph in raw TF ops (`tf1_graph`) and validated conversion
to Keras (`conversion`); `errors.CheckpointError` for all. Core: imports `models` and
`utils` only."""
