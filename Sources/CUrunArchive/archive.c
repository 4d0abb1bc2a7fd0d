// Intentionally empty: this target only exposes <archive.h> to Swift and
// carries the link flags for libarchive and its decompressors.
