"""The leaf helpers every package shares: seed derivation and atomic writes."""

import zlib

import numpy as np
import pytest

from keysynth.common import IMAGE_EXTENSIONS, atomic_open, atomic_write_text, derive_seed, seed_rng


def test_derive_seed_is_seedsequence_of_seed_and_tags():
    hi, lo = np.random.SeedSequence([7, 3, zlib.crc32(b"val")]).generate_state(2, dtype=np.uint32)
    assert derive_seed(7, 3, "val") == ((int(hi) & 0x7FFFFFFF) << 32) | int(lo)
    assert 0 <= derive_seed(2**62, 2**40) < 2**63
    assert derive_seed(1, "a") != derive_seed(1, "b") and derive_seed(1, 2) != derive_seed(2, 1)


def test_seed_rng_draws_like_a_seedsequence_generator():
    a = seed_rng(2**63 + 5, 1, "x").random(4)  # the seed is taken mod 2**63
    b = np.random.default_rng(np.random.SeedSequence([5, 1, zlib.crc32(b"x")])).random(4)
    assert np.array_equal(a, b)


def test_atomic_writes_leave_no_partial_file(tmp_path):
    atomic_write_text(tmp_path / "a.txt", "hello")
    assert (tmp_path / "a.txt").read_text() == "hello"
    with pytest.raises(RuntimeError):
        with atomic_open(tmp_path / "b.bin") as fh:
            fh.write(b"half")
            raise RuntimeError("killed mid-write")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]
    assert ".jpg" in IMAGE_EXTENSIONS and ".png" in IMAGE_EXTENSIONS
