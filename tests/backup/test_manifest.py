"""A backup's manifest and its verification, without servers."""

import pytest

from exchange.backup import manifest as mf

PARTS = {
    mf.COMMANDS_PART: mf.Part(10, "a" * 64),
    mf.CREDENTIALS_PART: mf.Part(5, "b" * 64),
    mf.HISTORY_PART: mf.Part(99, "c" * 64),
    mf.SNAPSHOT_PART: mf.Part(7, "d" * 64),
}


def _manifest(parts: dict | None = None) -> mf.Manifest:
    engine = {"snapshot": {"log_id": "1-0", "seq": 3}, "seq": 5}
    return mf.Manifest(1, engine, {"seq": 4}, {"exchange": "0.1.0"}, dict(parts or PARTS))


def test_a_manifest_round_trips_and_verifies_against_its_own_parts():
    manifest = _manifest()
    assert mf.decode(manifest.encode()) == manifest
    assert mf.problems(manifest, PARTS) == []


def test_every_problem_is_named():
    found = dict(PARTS)
    del found[mf.COMMANDS_PART]
    found[mf.HISTORY_PART] = mf.Part(99, "0" * 64)
    found[mf.SNAPSHOT_PART] = mf.Part(8, "d" * 64)
    assert mf.problems(_manifest(), found) == [
        "commands.jsonl is missing",
        "engine.snapshot has 8 bytes, the manifest says 7",
        "history.pgdump does not match its checksum (corrupted)",
    ]
    unlisted = _manifest(parts={k: v for k, v in PARTS.items() if k != mf.SNAPSHOT_PART})
    assert mf.problems(unlisted, PARTS) == ["the manifest lists no engine.snapshot"]


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b"{not json", "not JSON"),
        (b'{"format": "something-else"}', "not an exchange backup"),
        (b'{"format": "exchange-backup", "version": 2}', "newer than this exchange reads"),
        (b'{"format": "exchange-backup", "version": 1}', "incomplete or malformed"),
    ],
)
def test_unreadable_manifests_are_refused(raw: bytes, says: str):
    with pytest.raises(mf.BadManifest, match=says):
        mf.decode(raw)


def test_the_newest_snapshot_the_history_has_passed_is_chosen():
    snapshots = [(b"30-0", 300), (b"20-0", 200), (b"10-0", 100)]
    assert mf.choose_snapshot(snapshots, None) == (b"30-0", 300)
    assert mf.choose_snapshot(snapshots, 301) == (b"30-0", 300)
    assert mf.choose_snapshot(snapshots, 300) == (b"20-0", 200)
    assert mf.choose_snapshot(snapshots, 100) is None
    assert mf.choose_snapshot([], 5) is None
