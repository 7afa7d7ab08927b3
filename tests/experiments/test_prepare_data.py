"""experiments/prepare_data: builds a dataset where the pipeline finds it."""

import pytest
from absl.testing import flagsaver

from kpac_tf.data import pipelines
from tests.test_case import DPDD_DUMMY


def test_prepare_data_app_builds_dpdd(tmp_path):
    from experiments import prepare_data

    with flagsaver.flagsaver(dataset="dpdd", dataset_config="single",
                             data_dir=str(tmp_path), manual_dir=str(DPDD_DUMMY)):
        prepare_data.main(["prepare_data"])
    splits = pipelines.get_builder("dpdd", str(tmp_path), "single").info.splits
    assert splits["test"].num_examples == 2
    with flagsaver.flagsaver(dataset="dpdd", dataset_config="single",
                             data_dir=str(tmp_path / "x"),
                             manual_dir=str(tmp_path / "missing")):
        with pytest.raises(SystemExit, match="prepare_data: "):
            prepare_data.main(["prepare_data"])
