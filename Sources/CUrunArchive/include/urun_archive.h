// libarchive, linked statically in release builds: urun uses the tar reader
// and writer and the gzip/xz/zstd/bzip2 decompressors, so none of libarchive's
// other dependencies (libxml2, ICU, nettle, libacl) are pulled in. zlib
// compresses the layers urun writes (commit, save, push).
#ifndef URUN_ARCHIVE_H
#define URUN_ARCHIVE_H
#include <archive.h>
#include <archive_entry.h>
#include <zlib.h>

/// deflateInit2 is a macro: a gzip stream (not raw deflate, not zlib's own header).
static inline int urun_gzip_init(z_stream *stream, int level) {
    return deflateInit2(stream, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
}
#endif
