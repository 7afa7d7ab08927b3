r"""The bundled model's held-out checks, for any single-image model.

python -m experiments.held_out [--checkpoint=RUN_OR_FILE] [--output=held_out.json]

Scores the model (the bundled one without --checkpoint) on matplotlib's and
scikit-learn's sample photographs (never used in training) defocused by a second
renderer unlike the training one, on in-focus photographs, which should come back
unchanged (PSNR of output to input), and on soft ones (reported); see
`kpac_tf.evaluation.held_out`. Needs matplotlib and scikit-learn installed (they ship the
photographs).
"""

from kpac_tf.evaluation import held_out
from kpac_tf.utils.files import write_json

from .common_flags import (CHECKPOINT as _CHECKPOINT, LOGGING, MODEL as _MODEL,
                           OUTPUT as _OUTPUT, deblurrer_from_flags, run_app)


def main(argv):
    del argv  # run_app refuses extra arguments
    try:
        deblurrer = deblurrer_from_flags()
        if deblurrer.num_inputs != 1:
            raise ValueError(f"{deblurrer.name} takes dual-pixel views; the held-out "
                             "photographs are single images")
        result = held_out.check(deblurrer)
    except (ValueError, FileNotFoundError) as e:
        raise SystemExit(f"held_out: {e}") from None
    print(held_out.format_report(result))
    if _OUTPUT.value:
        write_json(_OUTPUT.value, result, indent=2)


FLAG_GROUPS = {
    "Model": [_CHECKPOINT, _MODEL],
    "Output": [_OUTPUT],
    "Logging": LOGGING,
}
FLAG_DEFAULTS = {_OUTPUT.name: "unset: the report is printed, no JSON written"}

if __name__ == "__main__":
    run_app(main)
