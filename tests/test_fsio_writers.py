"""fsio.write_png_atomic: a figure is written as PNG through a temporary sibling; a failure leaves the old file."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from hrkd_cli.errors import RunError  # noqa: E402
from hrkd_cli.fsio import write_png_atomic  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_a_figure_is_written_as_png_and_nothing_is_left_beside_it(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    path = tmp_path / "sub" / "figure.png"
    try:
        assert write_png_atomic(path, fig) == path
    finally:
        plt.close(fig)
    assert path.read_bytes().startswith(PNG_MAGIC)
    assert [p.name for p in path.parent.iterdir()] == ["figure.png"]


class _FailingFigure:
    def savefig(self, target, **kwargs):
        with open(target, "wb") as f:
            f.write(b"half a figure")
        raise OSError(28, "No space left on device")


def test_a_failed_save_is_one_line_naming_the_path_and_keeps_the_old_file(tmp_path):
    path = tmp_path / "figure.png"
    path.write_bytes(PNG_MAGIC + b"old")
    with pytest.raises(RunError) as e:
        write_png_atomic(path, _FailingFigure())
    assert str(e.value) == f"cannot write {path}: No space left on device"
    assert path.read_bytes() == PNG_MAGIC + b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["figure.png"]
