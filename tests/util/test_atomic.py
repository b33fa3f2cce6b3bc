"""Atomic writes leave complete results with the modes the user's umask allows."""

import os
import stat

import pytest

from prunesweep.util.atomic import atomic_dir, write_json


@pytest.fixture(params=[0o002, 0o027, 0o077])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_files_and_folders_follow_the_umask(tmp_path, umask):
    write_json(tmp_path / "status.json", {"state": "done"})
    with atomic_dir(tmp_path / "entry") as tmp:
        write_json(tmp / "records.json", [])
    assert mode(tmp_path / "status.json") == mode(tmp_path / "entry" / "records.json") == 0o666 & ~umask
    assert mode(tmp_path / "entry") == 0o777 & ~umask
    assert sorted(path.name for path in tmp_path.iterdir()) == ["entry", "status.json"]  # no temp left


def test_a_failed_folder_write_keeps_the_old_folder_and_no_temp(tmp_path):
    with atomic_dir(tmp_path / "entry") as tmp:
        write_json(tmp / "records.json", [1])
    with pytest.raises(RuntimeError), atomic_dir(tmp_path / "entry") as tmp:
        write_json(tmp / "records.json", [2])
        raise RuntimeError
    assert [path.name for path in tmp_path.iterdir()] == ["entry"]
    assert (tmp_path / "entry" / "records.json").read_text() == "[\n  1\n]\n"
