"""The networks: KPAC and residual layers (`layers`), the authors' three networks
(`networks`), the rewritten full-resolution tail (`fast_path`), and running a network
on inputs of any size (`forward`). Core: imports nothing of kpac_tf but itself."""
