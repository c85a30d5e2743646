"""The one directory swap (fsio.staging_dir, fsio.replace_dir, fsio.recover_dir): prepared data, exports and
checkpoints are built aside and swapped in whole; a failed swap leaves the old directory in place, and one killed
between its renames is undone before the next read."""

import os

import pytest

from hrkd_cli import fsio
from hrkd_cli.fsio import recover_dir, replace_dir, staging_dir


def test_staging_dir_is_an_empty_hidden_sibling_with_its_parents_made(tmp_path):
    final = tmp_path / "a" / "b" / "data"
    tmp = staging_dir(final)
    assert tmp.parent == final.parent and tmp.name.startswith(".data.tmp-")
    assert tmp.is_dir() and not any(tmp.iterdir()) and not final.exists()


@pytest.mark.parametrize("existing", [False, True])
def test_replace_dir_swaps_the_new_directory_in_and_leaves_nothing_aside(tmp_path, existing):
    final = tmp_path / "data"
    if existing:
        final.mkdir()
        (final / "old.txt").write_text("old")
    new = staging_dir(final)
    (new / "new.txt").write_text("new")
    replace_dir(new, final)
    assert sorted(p.name for p in final.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # no staging or old directory left


def test_a_failed_swap_puts_the_old_directory_back(tmp_path, monkeypatch):
    final = tmp_path / "data"
    final.mkdir()
    (final / "old.txt").write_text("old")
    new = staging_dir(final)
    real_replace = os.replace

    def refuse_the_new_one(src, dst):
        if str(src) == str(new):
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(fsio.os, "replace", refuse_the_new_one)
    with pytest.raises(OSError, match="No space left"):
        replace_dir(new, final)
    assert (final / "old.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["data", new.name])  # the caller removes `new`


def test_a_swap_killed_between_its_renames_is_undone_by_recover_dir(tmp_path, monkeypatch):
    final = tmp_path / "last"
    final.mkdir()
    (final / "old.txt").write_text("old")
    new = staging_dir(final)
    real_replace = os.replace

    def killed_after_the_first_rename(src, dst):
        if str(src) != str(final):  # the old one was set aside; the process dies before anything else
            raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(fsio.os, "replace", killed_after_the_first_rename)
    with pytest.raises(KeyboardInterrupt):
        replace_dir(new, final)
    monkeypatch.setattr(fsio.os, "replace", real_replace)
    assert not final.exists()
    recover_dir(final)
    assert (final / "old.txt").read_text() == "old"
    recover_dir(final)  # nothing to undo: the directory stays as it is
    assert (final / "old.txt").read_text() == "old"
