"""cliargs.atomic_path / write_text_atomic / npz_bytes: results written whole or not at all."""

from __future__ import annotations

import io

import numpy as np
import pytest

from snn_egru.cliargs import atomic_path, npz_bytes, write_text_atomic


def test_a_failed_write_leaves_the_earlier_file_and_no_temporary(tmp_path) -> None:
    target = tmp_path / "report.json"
    target.write_text("the earlier report\n")
    with pytest.raises(OSError, match="disk full"):
        with atomic_path(target) as tmp:
            tmp.write_text("half of a new rep")
            raise OSError(28, "disk full")
    assert target.read_text() == "the earlier report\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


def test_an_interrupt_leaves_no_file(tmp_path) -> None:
    target = tmp_path / "logits.npy"
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as tmp:
            np.save(tmp, np.zeros(3))
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_the_temporary_keeps_the_suffix_so_writers_add_none(tmp_path) -> None:
    """np.save appends .npy and savez .npz to a name without them: the temporary keeps it."""
    target = tmp_path / "logits.npy"
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".npy" and tmp.name.startswith(".")
        np.save(tmp, np.arange(4))
    np.testing.assert_array_equal(np.load(target), np.arange(4))
    assert [p.name for p in tmp_path.iterdir()] == ["logits.npy"]
    write_text_atomic(tmp_path / "a.txt", "x\n")
    assert (tmp_path / "a.txt").read_text() == "x\n"


def test_npz_bytes_round_trip() -> None:
    data = npz_bytes(a=np.arange(5), b=np.ones((2, 2), np.float32))
    with np.load(io.BytesIO(data)) as npz:
        np.testing.assert_array_equal(npz["a"], np.arange(5))
        assert npz["b"].dtype == np.float32
