"""Resource limits that bound every scan in time and memory."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """Bounds applied to hostile input. Hitting one is a finding, never a crash."""

    max_depth: int = 12  # nested containers and payloads (archive in archive, pickle in pickle)
    max_opcodes: int = 20_000_000  # per pickle; one per byte if more (pickle/vm.py)
    max_objects: int = 4_000_000  # containers, tuples, calls per pickle (memory); see pickle/vm.py
    max_inline_bytes: int = 1 << 20  # larger pickle arguments stay on disk
    max_decompressed_bytes: int = 8 << 30  # per compressed member or stream
    max_compression_ratio: int = 1000  # expanded / compressed, above a 64 MiB floor
    ratio_floor_bytes: int = 64 << 20
    # Members per top-level file, nested archives included: past this the per-member cost
    # (headers, sniffing, spooling) is the attack (a 600 KB tar.gz of 100,000 empty files).
    max_archive_members: int = 10_000
    max_pickles_per_file: int = 4096
    max_npy_header: int = 1 << 20
    file_seconds: float = 600.0  # time budget per top-level artifact
    # Bytes inflated per top-level file over every member, stream and CRC pass: per-stream
    # limits do not stop thousands of members that each stay under them (overlapping zips).
    max_file_decompressed_bytes: int = 32 << 30
    scan_seconds: float = 4 * 3600.0  # time budget for a whole scan (every file)
    max_scan_decompressed_bytes: int = 256 << 30
    crc_check_max_bytes: int = 64 << 20
    max_model_config_bytes: int = 64 << 20  # Keras config.json / model_config
    max_config_nodes: int = 2_000_000  # JSON values visited per model config
    max_hdf5_objects: int = 200_000  # groups and datasets visited per HDF5 file
    max_hdf5_attribute_bytes: int = 64 << 20  # larger attributes are reported, not read
    # Address space of the process libhdf5 runs in (RLIMIT_AS): its C parser cannot be
    # interrupted in-process, so it runs in a child that is killed at the deadline.
    hdf5_worker_memory: int = 2 << 30
    # libhdf5 reads only structure and attributes here (honest files answer in well under a
    # second); a fuzzed file can make it loop forever, which must end long before file_seconds.
    hdf5_seconds: float = 6.0
    # Address space of the process py7zr decodes in (RLIMIT_AS); its C decoders (PPMd, BCJ,
    # Deflate64) can hang on corrupt input, so it runs in a child killed at the file's deadline.
    sevenzip_worker_memory: int = 2 << 30
    # Decoding time a 7z archive may take: this much, plus its declared (ratio-checked) size
    # at the slowest honest decoder speed (PPMd, BZip2). A decoder looping on corrupt input is
    # killed then rather than at file_seconds.
    sevenzip_idle_seconds: float = 10.0
    sevenzip_min_bytes_per_second: int = 10 << 20
    max_proto_memory: int = 1 << 30  # protobuf/flatbuffer read into memory when not mappable
    max_graph_nodes: int = 2_000_000  # graph nodes/operators visited per model
    max_graph_depth: int = 32  # nested subgraphs and functions


class ResourceLimitError(Exception):
    """Raised by bounded streams and parsers when a :class:`Limits` bound is reached."""
