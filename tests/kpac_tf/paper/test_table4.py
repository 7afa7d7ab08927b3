"""kpac_tf.paper.table4: our numbers beside the paper's Table 4."""

from kpac_tf.paper import table4


def test_table_shows_the_paper_for_dpdd():
    summary = dict(psnr=25.0, ssim=0.84, input_psnr=23.9, input_ssim=0.81)
    table = table4.format_table(summary, "single_2level", 1_578_277, with_paper=True)
    assert "single_2level (paper)  25.24  0.845  0.229" in table
    assert "Blurry input (paper)" in table and "1.58" in table
    assert "(paper)" not in table4.format_table(summary, "dual", 2_061_493)


def test_table_shows_our_lpips_beside_the_papers():
    summary = dict(psnr=25.0, ssim=0.84, input_psnr=23.9, input_ssim=0.81, lpips=0.2314,
                   input_lpips=0.3456)
    table = table4.format_table(summary, "single_2level", 1_578_277, with_paper=True)
    assert "single_2level (paper)  25.24  0.845  0.229" in table
    assert "single_2level (ours)   25.00  0.840  0.231" in table
    assert "Blurry input (ours)" in table and "0.346" in table
