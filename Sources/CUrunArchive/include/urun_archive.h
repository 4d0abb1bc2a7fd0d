// libarchive's reading side, linked statically in release builds: urun uses
// only the tar reader and the gzip/xz/zstd/bzip2 decompressors, so none of
// libarchive's other dependencies (libxml2, ICU, nettle, libacl) are pulled in.
#ifndef URUN_ARCHIVE_H
#define URUN_ARCHIVE_H
#include <archive.h>
#include <archive_entry.h>
#endif
