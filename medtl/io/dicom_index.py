"""Many files' headers, read on worker processes and held packed by series until each series is assembled.

A series may span folders, so none can be assembled before the whole tree is indexed, and
a scan holds every file's record until then. As objects a record costs about 0.9 kB; the
worker that read a batch of files packs the records of each series in it (pickled, then
zlib) to about 100 bytes a file, so a scan's memory grows little with the number of files
and the main process unpickles one series at a time, when it assembles it.
"""

from __future__ import annotations

import pickle
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial

from .dicom_header import read_dicom_header
from .dicom_records import DicomFile, compact_record, series_group
from .parallel import parallel_batches


@dataclass
class HeaderIndex:
    """The headers of a list of files: unusable files' records, and usable ones packed by series group.

    Groups keep the order of their first file in the list, and each group's records the list's order.
    """

    skipped: list[DicomFile] = field(default_factory=list)
    packed: dict[str, list[bytes]] = field(default_factory=dict)

    def take_series(self, compact: bool = True) -> Iterator[tuple[str, list[DicomFile]]]:
        """Each group's records, unpacked one group at a time and released from the index as they are handed out.

        ``compact``: share the values the records repeat (``compact_record``), for records that will be kept.
        """
        for key in list(self.packed):
            records = [info for blob in self.packed.pop(key) for info in pickle.loads(zlib.decompress(blob))]
            if compact:
                shared: dict = {}
                records = [compact_record(info, shared) for info in records]
            yield key, records


def read_header_batch(paths: list[str], include_derived: bool = False) -> tuple[list[DicomFile], list[tuple[str, bytes]]]:
    """Headers of ``paths`` (run in a worker): the skipped files' records, and the usable ones packed by group."""
    skipped: list[DicomFile] = []
    groups: dict[str, list[DicomFile]] = {}
    for path in paths:
        info = read_dicom_header(path, include_derived)
        if info.skip is not None:
            skipped.append(info)
        else:
            groups.setdefault(series_group(info), []).append(info)
    return skipped, [(key, zlib.compress(pickle.dumps(records, protocol=pickle.HIGHEST_PROTOCOL), 1))
                     for key, records in groups.items()]


def index_headers(paths: list[str], workers: int | None = None, include_derived: bool = False,
                  on_done=None) -> HeaderIndex:
    """Header-only index of ``paths`` (in parallel); ``on_done(n)`` hears each finished batch's size."""
    index = HeaderIndex()
    shared: dict = {}
    reader = partial(read_header_batch, include_derived=include_derived)
    for skipped, groups in parallel_batches(reader, paths, workers, on_done):
        index.skipped += [compact_record(info, shared) for info in skipped]
        for key, blob in groups:
            index.packed.setdefault(key, []).append(blob)
    return index
