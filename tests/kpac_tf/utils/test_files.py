"""kpac_tf.utils.files: outputs appear complete or not at all, with the permissions a
plain open / mkdir would give."""

import json
import os
import stat

import pytest

from kpac_tf.utils import files


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def _write_text(path, text):
    with open(path, "w") as f:
        f.write(text)


def test_an_output_appears_only_when_written_whole(tmp_path):
    target = tmp_path / "model.keras"
    with files.atomic_output(target) as tmp:
        assert tmp.endswith(".keras") and os.path.dirname(tmp) == str(tmp_path)
        assert not target.exists()
        _write_text(tmp, "new")
    assert target.read_text() == "new" and os.listdir(tmp_path) == ["model.keras"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "metrics.json"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="disk full"):
        with files.atomic_output(target) as tmp:
            _write_text(tmp, "half")
            raise RuntimeError("disk full")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["metrics.json"]


def test_a_missing_folder_is_named_before_anything_is_written(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"output folder {tmp_path / 'absent'} "
                                                "does not exist; create it first"):
        with files.atomic_output(tmp_path / "absent" / "x.json"):
            pytest.fail("the body ran")


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_new_files_get_the_umask_and_replaced_files_keep_their_mode(tmp_path, umask):
    old = os.umask(umask)
    try:
        files.write_json(tmp_path / "new.json", {"a": 1})
        kept = tmp_path / "kept.json"
        kept.write_text("{}")
        os.chmod(kept, 0o640)
        files.write_json(kept, {"b": 2})
        folder = tmp_path / "tree"
        (folder / "sub").mkdir(parents=True)
        (folder / "sub" / "file").write_text("x")
        os.chmod(folder / "sub" / "file", 0o600)
        os.chmod(folder / "sub", 0o700)
        files.apply_umask(folder)
    finally:
        os.umask(old)
    assert _mode(tmp_path / "new.json") == 0o666 & ~umask
    assert _mode(kept) == 0o640 and json.loads(kept.read_text()) == {"b": 2}
    assert _mode(folder / "sub") == 0o777 & ~umask
    assert _mode(folder / "sub" / "file") == 0o666 & ~umask


def test_write_json_passes_dump_options_and_mode(tmp_path):
    path = tmp_path / "info.json"
    files.write_json(path, {"b": 1, "a": [1, 2]}, mode=0o644, indent=1, sort_keys=True)
    assert path.read_text() == '{\n "a": [\n  1,\n  2\n ],\n "b": 1\n}'
    assert _mode(path) == 0o644
