"""splat4d.npy: .npy reading that loader threads can do at once (CPython 3.11's shared AST counter)."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from splat4d.npy import load_npy, npy_shape


@pytest.mark.parametrize(
    "array",
    [
        np.arange(12, dtype=np.float32).reshape(3, 4),
        np.asfortranarray(np.arange(24, dtype=np.int16).reshape(2, 3, 4)),
        np.arange(6, dtype=">f8").reshape(2, 3),  # big-endian
        np.zeros((0, 4), dtype=np.float32),
    ],
)
def test_load_npy_equals_np_load(tmp_path, array):
    path = tmp_path / "a.npy"
    np.save(path, array)
    loaded = load_npy(path)
    expected = np.load(path)
    assert loaded.dtype == expected.dtype and loaded.shape == expected.shape
    np.testing.assert_array_equal(loaded, expected)
    assert npy_shape(path) == array.shape


def test_load_npy_rejects_truncated_and_non_npy_files(tmp_path):
    path = tmp_path / "a.npy"
    np.save(path, np.ones((10, 4), dtype=np.float32))
    path.write_bytes(path.read_bytes()[:-8])
    with pytest.raises(ValueError, match="38 of the 40 values"):
        load_npy(path)
    text = tmp_path / "b.npy"
    text.write_text("not an array")
    with pytest.raises(ValueError):
        load_npy(text)
    pickled = tmp_path / "c.npy"
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="Python objects"):
        load_npy(pickled)


def test_many_threads_load_at_once(tmp_path):
    """Eight threads reading at once get each its own file's data (the race itself is rare: CPython
    only switches threads inside an AST conversion when it runs Python code, e.g. from the GC)."""
    paths = []
    for i in range(16):
        paths.append(tmp_path / f"{i}.npy")
        np.save(paths[-1], np.full((50, 4), i, dtype=np.float32))
    with ThreadPoolExecutor(8) as pool:
        for _ in range(20):
            arrays = list(pool.map(load_npy, paths))
            assert [int(a[0, 0]) for a in arrays] == list(range(16))
