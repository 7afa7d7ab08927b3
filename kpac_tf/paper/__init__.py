"""Reproducing the paper's analyses: inverse kernels (Sec. 3.2, `inverse_kernels`),
complexity (Table 5, `complexity`), scale attention (Figs. 6 and 8, `attention`), the
ablations (Tables 1-3, `ablations`) and Table 4's layout with the paper's numbers
(`table4`). On top: imports anything, imported by nothing but apps and benchmarks."""
