"""Scoring models: PSNR / SSIM / MAE (`metrics`), LPIPS (`lpips`), deblurring and
scoring a set of scenes (`scoring`) from a dataset split or a folder (`items`), the
Wiener baseline (`wiener`) and the bundled model's held-out acceptance checks
(`held_out`). Imports core, `rendering` and `datasets`-free code only: a model comes
in as a callable (a `deploy` Deblurrer), never by import."""
