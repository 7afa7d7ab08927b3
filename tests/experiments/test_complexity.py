"""experiments/complexity: the complexity table."""

import json

from absl.testing import flagsaver

from experiments import complexity as complexity_app
from kpac_tf.paper import complexity


def test_complexity_app(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(complexity, "TABLE5_SIZE", (64, 96))
    with flagsaver.flagsaver(output=str(tmp_path), runs=1):
        complexity_app.main(["complexity"])
    result = json.loads((tmp_path / "results.json").read_text())
    assert result["single_2level"]["params"] == 1_578_277
    assert result["dual"]["gflops"] > result["dual"]["gflops_without_transposed_convs"]
