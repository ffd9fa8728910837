"""Publication is all or nothing: a kill at any moment leaves the previous one whole."""

import os
import subprocess
import sys
import textwrap

import pytest

from flows.store.publish import publish, recover, staging_dir


def snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_publish_replaces_whole_folder(tmp_path):
    out = tmp_path / "out"
    s1 = staging_dir(out)
    (s1 / "a.txt").write_text("one")
    publish(s1, out)
    s2 = staging_dir(out)
    (s2 / "b.txt").write_text("two")
    publish(s2, out)
    assert snapshot(out) == {"b.txt": b"two"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_kill_between_renames_is_recovered(tmp_path):
    out = tmp_path / "out"
    s1 = staging_dir(out)
    (s1 / "a.txt").write_text("one")
    publish(s1, out)
    before = snapshot(out)
    # A child process publishes but is killed right after moving the old folder aside.
    code = textwrap.dedent(
        f"""
        import os, flows.store.publish as p
        real = os.rename
        calls = []
        def rename(a, b):
            real(a, b)
            calls.append((a, b))
            if len(calls) == 1:
                os.kill(os.getpid(), 9)
        p.os.rename = rename
        s = p.staging_dir(p.Path({str(out)!r}))
        (s / "b.txt").write_text("two")
        p.publish(s, p.Path({str(out)!r}))
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=os.getcwd())
    assert proc.returncode == -9
    assert not out.exists()  # killed between the two renames
    recover(out)
    assert snapshot(out) == before
    # and the next publication succeeds
    s3 = staging_dir(out)
    (s3 / "c.txt").write_text("three")
    publish(s3, out)
    assert snapshot(out) == {"c.txt": b"three"}


def test_staged_leaves_nothing_when_the_block_fails(tmp_path):
    from flows.store.publish import staged

    out = tmp_path / "out"
    out.mkdir()
    (out / "scores.csv").write_text("old\n")
    with pytest.raises(RuntimeError, match="half way"), staged(out) as staging:
        (staging / "scores.csv").write_text("new\n")
        raise RuntimeError("half way")
    assert (out / "scores.csv").read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "out.lock"]
    with staged(out) as staging:
        (staging / "scores.csv").write_text("new\n")
        publish(staging, out)
    assert (out / "scores.csv").read_text() == "new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "out.lock"]
