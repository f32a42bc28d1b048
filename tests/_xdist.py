"""`--dist loadgroup` that works on this pytest: pytest-xdist 3.8 groups a test by the
`xdist_group` suffix it writes into the item's `_nodeid`, which pytest 9 no longer reads (its
node ids are `_id`), so every test went to any worker. Here each worker writes the groups it
found (tests/_tiers.py marks them) to a file of the run's, and the controller's scheduler reads
them: a group's tests go to one worker, every other test to whichever worker is free."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import uuid
from pathlib import Path
from typing import Any

import pytest
from xdist.scheduler import LoadScopeScheduling


def _groups_dir(testrunuid: str) -> Path:
    return Path(tempfile.gettempdir()) / f"gateway-tests-groups-{testrunuid}"


def configure(config: pytest.Config) -> None:
    """On the controller: a run id that it and its workers know, to name the groups' folder."""
    if not hasattr(config, "workerinput") and config.pluginmanager.hasplugin("xdist"):
        if config.getoption("testrunuid", None) is None:
            config.option.testrunuid = uuid.uuid4().hex


def publish(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On a worker: the xdist_group of each item that has one, for the controller."""
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    if workerinput is None:
        return
    groups = {}
    for item in items:
        marker = item.get_closest_marker("xdist_group")
        if marker is not None:
            groups[item.nodeid] = str(marker.args[0] if marker.args else marker.kwargs.get("name", "default"))
    folder = _groups_dir(workerinput["testrunuid"])
    folder.mkdir(exist_ok=True)
    partial = folder / f"{workerinput['workerid']}.json.partial"
    partial.write_text(json.dumps(groups))
    os.replace(partial, folder / f"{workerinput['workerid']}.json")


class GroupScheduling(LoadScopeScheduling):
    """Units of work: a group's tests together, every other test alone; the largest first."""

    def __init__(self, config: pytest.Config, log: Any = None) -> None:
        super().__init__(config, log)
        self._groups: dict[str, str] | None = None

    def _split_scope(self, nodeid: str) -> str:
        if self._groups is None:
            # schedule() asks once every worker has collected, and so has written its file.
            folder = _groups_dir(self.config.option.testrunuid)
            self._groups = {}
            for path in sorted(folder.glob("*.json")):
                self._groups.update(json.loads(path.read_text()))
                path.unlink()
            with contextlib.suppress(OSError):
                folder.rmdir()
        group = self._groups.get(nodeid)
        return f"group:{group}" if group is not None else nodeid
