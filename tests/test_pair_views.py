"""images.pair_views: by name (user folders) or by sorted position (DPDD's archive)."""

import pytest

from kpac_tf.data import images


def _folders(tmp_path, listing):
    """Creates empty image files: {view: [file names]} -> {view: folder}."""
    folders = {}
    for view, names in listing.items():
        folders[view] = tmp_path / view
        folders[view].mkdir(parents=True)
        for name in names:
            (folders[view] / name).write_bytes(b"")
    return folders


def test_by_position_pairs_sorted_lists_whatever_the_names(tmp_path):
    folders = _folders(tmp_path, {
        "center": ["1P0A0984.png", "1P0A0917.png", "notes.txt"],
        "sharp": ["1P0A0985.png", "1P0A0916.png"],
        "left": ["1P0A0917_L.png", "1P0A0984_L.png"]})
    pairs = images.pair_views({v: str(f) for v, f in folders.items()}, by="position")
    assert [(name, {v: p.name for v, p in paths.items()}) for name, paths in pairs] == [
        ("1P0A0917", {"center": "1P0A0917.png", "sharp": "1P0A0916.png",
                      "left": "1P0A0917_L.png"}),
        ("1P0A0984", {"center": "1P0A0984.png", "sharp": "1P0A0985.png",
                      "left": "1P0A0984_L.png"})]


def test_by_name_stays_the_default(tmp_path):
    folders = _folders(tmp_path, {"blurry": ["b.png", "a.jpg"], "sharp": ["a.png", "b.png"],
                                  "left": ["a_L.png", "b_L.png"]})
    pairs = images.pair_views(folders)
    assert [(name, paths["sharp"].name, paths["left"].name) for name, paths in pairs] == [
        ("a", "a.png", "a_L.png"), ("b", "b.png", "b_L.png")]
    folders = _folders(tmp_path / "x", {"blurry": ["1P0A0917.png"], "sharp": ["1P0A0916.png"]})
    with pytest.raises(FileNotFoundError, match="1P0A0917.png has no sharp view"):
        images.pair_views(folders, label="x")


def test_by_position_needs_equal_counts_and_says_where(tmp_path):
    folders = _folders(tmp_path, {"center": ["a.png", "b.png", "c.png"],
                                  "sharp": ["x.png", "y.png"]})
    with pytest.raises(ValueError, match=r"DPDD: the view folders hold different numbers "
                                         r".*center 3, .*sharp 2\. Every folder needs"):
        images.pair_views(folders, label="DPDD", by="position")
    with pytest.raises(ValueError, match='by must be "name" or "position"'):
        images.pair_views(folders, by="order")
