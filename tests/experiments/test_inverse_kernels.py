"""experiments/inverse_kernels: confirms Eqs. 4 and 5."""

import json

from absl.testing import flagsaver

from experiments import inverse_kernels as inverse_app


def test_inverse_kernels_app_confirms_eqs_4_and_5(tmp_path, capsys):
    with flagsaver.flagsaver(output=str(tmp_path), images=["camera"]):
        inverse_app.main(["inverse_kernels"])
    result = json.loads((tmp_path / "results.json").read_text())
    assert result["psnr_scaled_inverse_vs_inverse_of_scaled"] > 45     # Eq. 4
    assert result["psnr_dilated_vs_scaled_inverse"] > 45               # Sec. 4.1
    assert result["accuracy_nnls"] >= result["accuracy_alpha_half"] > 0.85   # Eq. 5
    assert (tmp_path / "camera_fig1c_scaled_inverse.png").exists()
    assert "psnr_dilated_vs_scaled_inverse" in capsys.readouterr().out
