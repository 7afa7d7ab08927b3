"""kpac_tf.paper.complexity: MACs and FLOPs by formula, against the profiler and Table 5."""

import pytest

from kpac_tf import build_model
from kpac_tf.paper.complexity import count_flops, count_macs, mac_breakdown


def test_macs_by_formula_agree_with_the_profiler():
    for name in ("single_2level", "single_3level", "dual"):
        model = build_model(name, channels=8)
        assert 2 * count_macs(model, 64, 96) == pytest.approx(count_flops(model, 64, 96),
                                                              rel=0.01)


@pytest.mark.large
def test_paper_table5_flops_are_ours_without_transposed_convs():
    for name, paper in (("single_2level", 358), ("single_3level", 197)):
        model = build_model(name)
        flops = count_flops(model, 720, 1280)
        without = flops - 2 * mac_breakdown(model, 720, 1280)["transposed_conv"]
        assert without / 1e9 == pytest.approx(paper, abs=0.6)
