r"""Peak memory of `python -m experiments.evaluate` on full-size DPDD-layout splits.

python benchmarks/evaluate_memory.py [--scenes=2,12] [--models=single,dual] \
    [--sources=input_dir,tfds] [--root=/tmp/kpac_evaluate_memory] [--manual_dir=DIR]

Evaluation streams one scene at a time, so its peak RSS should not grow with the
number of scenes. For each scene count this makes a DPDD-layout folder of 1680x1120
16-bit PNGs (smooth random content plus noise; or the first N test scenes of
--manual_dir, e.g. a stand-in archive, linked), builds it into a TFDS data folder
(`experiments.prepare_data`, not measured), then runs the evaluation app in a fresh
process per case and reports that process's peak RSS (`os.wait4`) and wall time:

- single: the bundled model (no --checkpoint);
- dual: the full-width dual network with random weights, saved in the authors' npz
  format (`--checkpoint=dual.npz --model=dual`);
- input_dir: `--input_dir=<folder> --split=test`; tfds: `--dataset=dpdd
  --manual_dir=<folder> --data_dir=<built>`.

--repo runs another copy of the code (e.g. `git archive HEAD | tar -x -C /tmp/old`)
on the same data, for before/after numbers. Each case prints its command.
"""

import os
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEIGHT, WIDTH = 1120, 1680
_SCENES = flags.DEFINE_list("scenes", ["2", "12"], "Scene counts of the test split.")
_MODELS = flags.DEFINE_list("models", ["single", "dual"], "single and/or dual.")
_SOURCES = flags.DEFINE_list("sources", ["input_dir", "tfds"],
                             "input_dir (a DPDD-layout folder) and/or tfds (its build).")
_ROOT = flags.DEFINE_string("root", "/tmp/kpac_evaluate_memory",
                            "Where the scene folders, TFDS builds and outputs go.")
_MANUAL_DIR = flags.DEFINE_string("manual_dir", None, "A DPDD-layout folder to take the "
                                  "first N test scenes from (default: make them).")
_RUN_REPO = flags.DEFINE_string("repo", REPO, "Copy of kpac-tf whose evaluate app runs.")

# DPDD's layout: view folder -> file-name suffix of the dual-pixel views.
FOLDERS = {"c/source": "", "c/target": "", "l/source": "_L", "r/source": "_R"}


def make_scenes(root, count):
    """`count` full-size 16-bit scenes in DPDD layout under root/made (reused when
    there); train and val hold one scene each, as the builder needs every split."""
    import numpy as np
    import tensorflow as tf

    from kpac_tf.data import images

    made = os.path.join(root, "made")
    for i in range(count):
        name = f"SCENE{i:03d}"
        paths = {f: os.path.join(made, f"test_{f[0]}", f[2:], f"{name}{s}.png")
                 for f, s in FOLDERS.items()}
        if all(os.path.exists(p) for p in paths.values()):
            continue
        rng = np.random.RandomState(i)
        coarse = rng.uniform(2000, 63000, (1, HEIGHT // 32, WIDTH // 32, 3))
        base = tf.image.resize(coarse, (HEIGHT, WIDTH), "bicubic")[0].numpy()
        for path in paths.values():
            os.makedirs(os.path.dirname(path), exist_ok=True)
            noisy = base + rng.normal(0, 200, base.shape)
            images.write_png(path, np.clip(noisy, 0, 65535).astype(np.uint16))
    return made


def split_folder(root, source, count):
    """root/scenes_<count>: the first `count` test scenes of `source` (links) and its
    first train / val scene."""
    target = os.path.join(root, f"scenes_{count}")
    if os.path.isdir(os.path.join(source, "dd_dp_dataset_canon")):
        source = os.path.join(source, "dd_dp_dataset_canon")
    for split, n in (("test", count), ("train", 1), ("val", 1)):
        from_split = split if os.path.isdir(os.path.join(source, f"{split}_c")) else "test"
        for folder in FOLDERS:
            src = os.path.join(source, f"{from_split}_{folder[0]}", folder[2:])
            dst = os.path.join(target, f"{split}_{folder[0]}", folder[2:])
            os.makedirs(dst, exist_ok=True)
            for name in sorted(os.listdir(src))[:n]:
                if not os.path.exists(os.path.join(dst, name)):
                    os.symlink(os.path.join(src, name), os.path.join(dst, name))
    return target


def dual_checkpoint(root):
    """The full-width dual network, random weights, in the authors' npz format."""
    path = os.path.join(root, "dual_random.npz")
    if not os.path.exists(path):
        import keras

        from kpac_tf import build_model, save_tf1_npz

        keras.utils.set_random_seed(0)
        save_tf1_npz(build_model("dual"), path)
    return path


def peak_rss(command, cwd):
    """(peak RSS in MB, seconds) of `command` run to completion in its own process."""
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise SystemExit(f"failed ({process.returncode}): {' '.join(command)}\n"
                         f"{process.stderr.read().decode()[-3000:]}")
    return usage.ru_maxrss / 1024, seconds


def main(argv):
    del argv
    root = _ROOT.value
    os.makedirs(root, exist_ok=True)
    counts = sorted(int(n) for n in _SCENES.value)
    source = _MANUAL_DIR.value or make_scenes(root, max(counts))
    python = [sys.executable, "-m"]
    for count in counts:
        folder = split_folder(root, source, count)
        for model in _MODELS.value:
            model_flags = ([f"--checkpoint={dual_checkpoint(root)}", "--model=dual"]
                           if model == "dual" else [])
            data_dir = os.path.join(root, f"tfds_{count}")
            if "tfds" in _SOURCES.value:  # built beforehand: the build is not measured
                subprocess.run(python + ["experiments.prepare_data", "--dataset=dpdd",
                                         f"--dataset_config={model}",
                                         f"--manual_dir={folder}", f"--data_dir={data_dir}"],
                               cwd=_RUN_REPO.value, check=True, capture_output=True)
            for source_kind in _SOURCES.value:
                images_flags = ([f"--input_dir={folder}", "--split=test"]
                                if source_kind == "input_dir" else
                                ["--dataset=dpdd", f"--manual_dir={folder}",
                                 f"--data_dir={data_dir}", "--split=test"])
                out = os.path.join(root, "out", f"{model}_{source_kind}_{count}")
                command = python + ["experiments.evaluate"] + model_flags + images_flags \
                    + [f"--output_dir={out}"]
                mb, seconds = peak_rss(command, _RUN_REPO.value)
                print(f"{model:<6} {source_kind:<9} {count:3d} scenes  peak RSS "
                      f"{mb:6.0f} MB  {seconds:6.1f} s   python {' '.join(command[1:])}",
                      flush=True)


if __name__ == "__main__":
    app.run(main)
