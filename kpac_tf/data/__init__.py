"""Pixels and data: value ranges and conversions (`pixels`), photo files (`images`),
the TFDS-to-tf.data pipelines (`pipelines`) and the decoded 8-bit training cache
(`training_cache`). Core: imports only `kpac_tf.utils` and (pipelines, lazily, by
name) the builders in `kpac_tf.datasets`."""
