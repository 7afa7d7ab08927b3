"""kpac_tf.utils.progress: a bar on terminals, plain log lines in logs."""

import io
import logging
import sys

import keras

from kpac_tf.utils import progress


def test_log_lines_at_a_steady_rate_with_running_means(caplog, monkeypatch):
    clock = iter([0.0, 1.0, 40.0, 41.0, 42.0])  # start, then one reading per add
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    bar = progress.LogProgress(4, "image", interval=30.0)
    with caplog.at_level(logging.INFO, logger="absl"):
        bar.add(1, values=[("psnr", 20.0)])  # 1 s: within the interval, quiet
        bar.add(1, values=[("psnr", 30.0)])  # 40 s: a line
        bar.add(1)  # 41 s: quiet
        bar.add(1, values=[("psnr", 40.0)])  # the total: a line
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["2/4 images, 20.00 s per image, mean psnr 25",
                     "4/4 images, 10.50 s per image, mean psnr 30"], lines


def test_bar_on_terminals_log_lines_elsewhere(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stdout", io.StringIO())
    assert isinstance(progress.progress_bar(3, "image"), progress.LogProgress)
    monkeypatch.setattr(sys, "stdout", Terminal())
    assert isinstance(progress.progress_bar(3, "image"), keras.utils.Progbar)


def test_unknown_total_logs_on_the_interval_and_when_finalized(caplog):
    bar = progress.LogProgress(None, "image", interval=0.0)
    with caplog.at_level(logging.INFO, logger="absl"):
        bar.add(2)
    assert caplog.records[-1].getMessage().startswith("2 images, ")
    bar = progress.LogProgress(None, "image", interval=30.0)
    with caplog.at_level(logging.INFO, logger="absl"):
        bar.add(1, values=[("psnr", 20.0)])
        bar.add(1, values=[("psnr", 30.0)])
        lines_before = len(caplog.records)
        bar.update(2, finalize=True)
    assert len(caplog.records) == lines_before + 1
    assert caplog.records[-1].getMessage().startswith("2 images, ")
    assert caplog.records[-1].getMessage().endswith("mean psnr 25")


def test_no_control_characters_when_output_is_not_a_terminal(caplog, capsys):
    """Under pytest, standard output is not a terminal: the bar Keras would draw there
    (carriage returns, backspaces, colour codes) must not appear."""
    bar = progress.progress_bar(2, "image")
    with caplog.at_level(logging.INFO, logger="absl"):
        bar.add(1, values=[("psnr", 30.0)])
        bar.add(1, values=[("psnr", 32.0)])
    assert caplog.records[-1].getMessage().startswith("2/2 images, ")
    assert caplog.records[-1].getMessage().endswith("mean psnr 31")
    captured = capsys.readouterr()
    assert not any(c in captured.out + captured.err for c in "\r\b\x1b")
