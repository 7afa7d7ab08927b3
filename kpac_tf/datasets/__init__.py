"""TFDS builders, one folder per dataset (builder, README, CITATIONS.bib, dummy data,
builder test), as tensorflow-datasets lays them out: `synthetic_defocus` (rendered,
no download) and `dpdd` (manual download; `dpdd/stand_in.py` writes a stand-in
archive in its layout). Builders import `data` and `rendering`; the DPDD builder
imports nothing from its stand-in."""
